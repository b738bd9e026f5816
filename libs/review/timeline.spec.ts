import { describe, expect, it } from 'vitest';
import type { Decision, Lease } from '../leases/lease.js';
import type { Task, TaskEvent } from '../tasks/task.js';
import { taskTimeline } from './timeline.js';

const T0 = Date.parse('2026-11-24T10:00:00Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);

const task: Task = {
  id: 't1',
  workloadId: 'bot',
  intent: 'refund_request',
  subject: 'customer-42',
  context: {},
  state: 'completed',
  createdAt: at(0),
  expiresAt: at(1800),
  endedAt: at(30),
  endReason: 'task_completed',
};
const event = (id: string, kind: TaskEvent['kind'], seconds: number, intent: string | null, reason: string | null): TaskEvent => ({
  id,
  kind,
  intent,
  reason,
  at: at(seconds),
});
const decision = (id: string, outcome: Decision['outcome'], seconds: number, extra: Partial<Decision> = {}): Decision => ({
  id,
  taskId: 't1',
  workloadId: 'bot',
  boundaryId: 'crm',
  boundaryVersion: 1,
  action: 'orders:read',
  resource: null,
  outcome,
  reasons: outcome === 'deny' ? ['intent_mismatch'] : [],
  drift: null,
  policies: null,
  leaseId: null,
  leaseState: null,
  at: at(seconds),
  ...extra,
});
const lease = (id: string, seconds: number, extra: Partial<Lease> = {}): Lease => ({
  id,
  taskId: 't1',
  workloadId: 'bot',
  boundaryId: 'crm',
  boundaryVersion: 1,
  action: 'orders:read',
  resource: null,
  credentialKind: 'jwt',
  state: 'active',
  issuedAt: at(seconds),
  expiresAt: at(seconds + 120),
  revokedAt: null,
  revokeReason: null,
  paramsDigest: null,
  ...extra,
});

describe('taskTimeline', () => {
  it('orders by time, and events of one instant by cause and effect', () => {
    const events = taskTimeline({
      task,
      events: [
        event('e1', 'opened', 0, 'order_status', null),
        event('e2', 'intent_changed', 20, 'refund_request', 'journey_changed'),
        event('e3', 'completed', 30, null, 'task_completed'),
      ],
      decisions: [decision('d2', 'deny', 10), decision('d1', 'permit', 5, { leaseId: 'l1' })],
      // Revoked by the intent change (same now()), and one revoked by the completion (same now()).
      leases: [
        lease('l1', 5, { state: 'revoked', revokedAt: at(20), revokeReason: 'journey_changed' }),
        lease('l2', 25, { state: 'revoked', revokedAt: at(30), revokeReason: 'task_completed' }),
      ],
      approvals: [],
      audit: [],
    });
    expect(events.map((e) => `${e.kind}${'lease_id' in e.detail ? `:${e.detail.lease_id}` : ''}`)).toEqual([
      'task.opened',
      'decision.permit:l1',
      'lease.issued:l1',
      'decision.deny',
      'task.intent_changed',
      'lease.revoked:l1',
      'lease.issued:l2',
      'lease.revoked:l2',
      'task.completed',
    ]);
    expect(events[4]!.detail).toEqual({ from: 'order_status', intent: 'refund_request', reason: 'journey_changed' });
  });

  it('shows a lease past its time as expired at its expiry, and an audit event with its actor and data', () => {
    const events = taskTimeline({
      task,
      events: [event('e1', 'opened', 0, 'order_status', null)],
      decisions: [],
      leases: [lease('l1', 1, { state: 'expired' })],
      approvals: [],
      audit: [{ at: at(200), kind: 'task.drift_suspended', actor: 'system:drift_guard', leaseId: null, data: { threshold: 3 } }],
    });
    expect(events.map((e) => [e.kind, e.at.getTime() - T0])).toEqual([
      ['task.opened', 0],
      ['lease.issued', 1000],
      ['lease.expired', 121_000],
      ['task.drift_suspended', 200_000],
    ]);
    expect(events[3]!.detail).toEqual({ actor: 'system:drift_guard', threshold: 3 });
  });
});
