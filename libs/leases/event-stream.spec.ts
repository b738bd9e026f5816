import { describe, expect, it } from 'vitest';
import { renderEvent } from './event-stream.js';
import type { RevocationEvent } from '../audit/event-log.js';

const AT = new Date('2026-01-31T12:00:00.000Z');

function event(fields: Partial<RevocationEvent>): RevocationEvent {
  return {
    seq: '42',
    type: 'lease.revoked',
    leaseId: 'lease-1',
    approvalId: null,
    boundaryId: 'payments',
    taskId: 'task-1',
    workloadId: 'chatbot',
    reason: 'revoked_by_admin',
    at: AT,
    audience: 'https://pay.acme.test',
    ...fields,
  };
}

/** The JSON of a frame's data line. */
function data(frame: string): unknown {
  return JSON.parse(/^data: (.*)$/m.exec(frame)![1]!);
}

describe('renderEvent', () => {
  it('frames a revocation with its position to resume after, its type, and the lease it killed (also as jti)', () => {
    const frame = renderEvent(event({}));
    expect(frame).toMatch(/^id: 42\nevent: lease\.revoked\ndata: .*\n\n$/);
    expect(data(frame)).toEqual({
      type: 'lease.revoked',
      lease_id: 'lease-1',
      jti: 'lease-1',
      task_id: 'task-1',
      workload_id: 'chatbot',
      reason: 'revoked_by_admin',
      at: '2026-01-31T12:00:00.000Z',
    });
  });

  it('names an approval and nothing of its reason (the reviewer writes that for reviewers, not the stream)', () => {
    const frame = renderEvent(
      event({ seq: '43', type: 'approval.denied', leaseId: null, approvalId: 'approval-1', reason: 'not for this customer' }),
    );
    expect(frame.startsWith('id: 43\nevent: approval.denied\n')).toBe(true);
    expect(data(frame)).toEqual({
      type: 'approval.denied',
      approval_id: 'approval-1',
      task_id: 'task-1',
      workload_id: 'chatbot',
      boundary_id: 'payments',
      at: '2026-01-31T12:00:00.000Z',
    });
    expect(frame).not.toContain('not for this customer');
  });
});
