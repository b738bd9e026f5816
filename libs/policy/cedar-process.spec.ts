import { afterAll, describe, expect, it } from 'vitest';
import { PolicyUnavailable } from '../errors/errors.js';
import { exampleBoundary } from './boundary.fixture.js';
import { buildCedarContext, type PolicySource } from './cedar.js';
import { CedarProcess } from './cedar-process.js';

const request = (amount: number) =>
  buildCedarContext({
    workloadId: 'chatbot',
    task: { intent: 'order_status', subject: 'user-42', ageSeconds: 1, denials: 0 },
    boundary: exampleBoundary({ id: 'crm' }),
    action: 'orders:read',
    resource: null,
    params: { amount },
    purpose: null,
    approved: false,
    at: Date.now(),
  });
const LIMIT: PolicySource = {
  id: 'limit',
  version: 1,
  text: 'permit(principal, action, resource) when { context.params has amount && context.params.amount <= 100 };',
  scope: 'global',
};
const DEEP: PolicySource = {
  id: 'deep',
  version: 1,
  text: `permit(principal, action, resource) when { ${'('.repeat(200)}true${')'.repeat(200)} };`,
  scope: 'global',
};

let restarts = 0;
const cedar = new CedarProcess('test', { onRestart: () => restarts++, timeoutMs: 5000 });
afterAll(() => cedar.close());

describe('CedarProcess (issue 12, finding 3)', () => {
  const set = (sources: PolicySource[], key = 'k') => ({ key, tool: 'https://crm.acme.test', sources });

  it('decides in a child process, sending a set once', async () => {
    expect(await cedar.decide({ set: set([LIMIT]), request: request(50) })).toMatchObject({ decision: { decision: 'allow' } });
    expect(await cedar.decide({ set: set([LIMIT]), request: request(500) })).toMatchObject({
      decision: { decision: 'deny', reasons: ['policy_no_permit'] },
    });
    expect(await cedar.validate('permit(principal, action, resource);', ['orders:read'])).toEqual([]);
    expect(cedar.pid).not.toBe(process.pid);
  });

  it('fails closed when the child is killed, and comes back with a fresh one', async () => {
    const pid = cedar.pid!;
    const inFlight = cedar.replay({
      sets: { k: { tool: 'https://crm.acme.test', sources: [LIMIT] } },
      rows: Array.from({ length: 20_000 }, () => ({ set: 'k', request: request(5) })),
    });
    process.kill(pid, 'SIGKILL');
    await expect(inFlight).rejects.toBeInstanceOf(PolicyUnavailable);
    expect(restarts).toBe(1);
    expect(await cedar.decide({ set: set([LIMIT]), request: request(500) })).toMatchObject({ decision: { decision: 'deny' } });
    expect(cedar.pid).not.toBe(pid);
  });

  it('a trap in Cedar kills only the child: that call fails closed, the next one is decided', async () => {
    const before = restarts;
    await expect(cedar.decide({ set: set([DEEP], 'deep'), request: request(5) })).rejects.toBeInstanceOf(PolicyUnavailable);
    expect(restarts).toBe(before + 1);
    expect(await cedar.decide({ set: set([LIMIT], 'k2'), request: request(50) })).toMatchObject({ decision: { decision: 'allow' } });
  });
});
