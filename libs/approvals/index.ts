// libs/approvals: step-up approvals: the gate on the hot path and the reviewers' decisions.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './approval-gate.js';
export * from './approval-store.js';
export * from './approval.js';
export * from './approvals.js';
