// The event log moved to libs/audit/event-log.ts (it sits below every writer: identity, tasks,
// approvals, leases). This re-export keeps apps/broker/http/events.controller.ts compiling until
// it imports from there; delete it then.
export { APPROVAL_EVENT_TYPES, RevocationEventLog, visibleTo, type ApprovalEventType, type RevocationEvent } from '../audit/event-log.js';
