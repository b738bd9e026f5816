import { describe, expect, it } from 'vitest';
import { CredentialProviders, type CredentialProvider } from '../credentials/provider.js';
import { AccessDenied, ApprovalPending, NotFound, TemporarilyUnavailable } from '../errors/errors.js';
import { exampleBoundary } from '../policy/boundary.fixture.js';
import type { DecisionRecord } from './decision-ledger.js';
import type { LeaseRecord } from './lease-store.js';
import type { RequestContext } from './request-context.js';
import { CredentialIssuance, type DecisionObserver, type IssuanceLedger, type IssuanceOptions } from './request-credential.js';
import { RequestContextCache } from './request-context-cache.js';
import type { LeaseRevocation } from './revocation.js';

const NOW = 1_800_000_000_000;
const boundary = exampleBoundary({ id: 'crm', version: 3 });
const task = {
  id: 't1',
  workloadId: 'bot',
  intent: 'order_status',
  subject: 'user-1',
  state: 'active',
  expiresAt: NOW + 600_000,
  createdAt: NOW - 60_000,
  denials: 0,
};

/** A hand-written ledger: records what the service wrote, in order. */
function ledger(context: Partial<RequestContext> = {}, permitCommits = true) {
  const writes: string[] = [];
  const fake: IssuanceLedger &
    Pick<LeaseRevocation, 'revokeLease'> & { writes: string[]; denials: DecisionRecord[]; leases: LeaseRecord[] } = {
    writes,
    denials: [],
    leases: [],
    requestContext: async () => ({ now: NOW, task, boundary, policiesKey: '', ...context }),
    recordPermit: async (_decision, lease) => {
      writes.push('permit');
      fake.leases.push(lease);
      return permitCommits;
    },
    // Like the statement: a refusal decided on remembered rows is written only if the rows still stand.
    recordDenial: async (decision, decidedOn) => {
      if (decidedOn && decidedOn.intent !== (await fake.requestContext('t1', 'crm')).task?.intent) {
        writes.push('deny refused: stale');
        return { written: false, suspended: false };
      }
      writes.push(`deny:${decision.reasons.join(',')}`);
      fake.denials.push(decision);
      return { written: true, suspended: false };
    },
    markIssued: async (id) => {
      writes.push(`issued:${id}`);
      return { state: 'active', expiresAt: NOW + 300_000 };
    },
    dropUnissued: async (id) => {
      writes.push(`drop:${id}`);
      return true;
    },
    revokeLease: async (id: string, reason: string) => {
      writes.push(`revoke:${id}:${reason}`);
      return true;
    },
  };
  return fake;
}

function providers(issue: CredentialProvider['issue'] = async () => ({ credential: { kind: 'jwt', access_token: 'token' } })) {
  return new CredentialProviders().register({ kind: 'jwt', external: false, issue, revoke: async () => {} });
}

type Ledger = ReturnType<typeof ledger>;
function issuance(store: Ledger, catalog: CredentialProviders, observe?: DecisionObserver, cache?: RequestContextCache) {
  return new CredentialIssuance({
    storage: { context: store, decisions: store, leases: store },
    providers: catalog,
    revocation: store,
    observe,
    cache,
  });
}

const request = { taskId: 't1', boundary: 'crm', action: 'orders:read' };

describe('CredentialIssuance', () => {
  it('commits the permit before minting, with the capped TTL', async () => {
    const store = ledger();
    const order: string[] = [];
    const service = issuance(
      store,
      providers(async () => {
        order.push(`mint after ${store.writes.join(',')}`);
        return { credential: { kind: 'jwt', access_token: 'token' } };
      }),
    );
    const issued = await service.request('bot', { ...request, ttl: 9999 });
    expect(order).toEqual(['mint after permit']);
    expect(issued.expiresIn).toBe(300);
    expect(store.leases[0]).toMatchObject({ issuedAt: NOW, expiresAt: NOW + 300_000, credentialKind: 'jwt' });
  });

  it('decides again when the permit did not commit (the task ended meanwhile), and mints nothing', async () => {
    const store = ledger({}, false);
    const contexts: RequestContext[] = [
      { now: NOW, task, boundary, policiesKey: '' },
      { now: NOW + 5, task: { ...task, state: 'completed' }, boundary, policiesKey: '' },
    ];
    store.requestContext = async () => contexts.shift()!;
    let minted = false;
    const service = issuance(
      store,
      providers(async () => {
        minted = true;
        return { credential: { kind: 'jwt' } };
      }),
    );
    const error = await service.request('bot', request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AccessDenied);
    expect((error as AccessDenied).reasons).toEqual(['task_not_active']);
    expect(minted).toBe(false);
    expect(store.writes).toEqual(['permit', 'deny:task_not_active']);
  });

  it('fails closed with a 503 when the permit loses the race twice', async () => {
    const store = ledger({}, false);
    const service = issuance(store, providers());
    await expect(service.request('bot', request)).rejects.toBeInstanceOf(TemporarilyUnavailable);
    expect(store.writes).toEqual(['permit', 'permit']);
  });

  it('revokes the committed lease when minting fails, and answers 503', async () => {
    const store = ledger();
    const service = issuance(
      store,
      providers(async () => {
        throw new Error('signer down');
      }),
    );
    await expect(service.request('bot', request)).rejects.toBeInstanceOf(TemporarilyUnavailable);
    expect(store.writes).toEqual(['permit', `revoke:${store.leases[0]!.id}:mint_failed`]);
  });

  it("treats another workload's task as missing, and still records the decision", async () => {
    const store = ledger();
    const service = issuance(store, providers());
    await expect(service.request('intruder', request)).rejects.toBeInstanceOf(NotFound);
    expect(store.denials[0]).toMatchObject({ taskId: null, workloadId: 'intruder', reasons: ['unknown_task'] });
  });

  it('denies a task with less than a second left', async () => {
    const store = ledger({ task: { ...task, expiresAt: NOW + 500 } });
    const service = issuance(store, providers());
    const error = await service.request('bot', request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AccessDenied);
    expect((error as AccessDenied).reasons).toEqual(['task_not_active']);
  });

  it('tells the observer every outcome', async () => {
    const seen: string[] = [];
    const service = issuance(ledger(), providers(), (outcome, reason) => seen.push(`${outcome}:${reason}`));
    await service.request('bot', request);
    await service.request('bot', { ...request, action: 'orders:delete' }).catch(() => {});
    expect(seen).toEqual(['permit:null', 'deny:action_not_allowed']);
  });
});

describe('CredentialIssuance with remembered tasks and boundaries', () => {
  function cached(context: Partial<RequestContext>) {
    const cache = new RequestContextCache({ now: () => NOW });
    cache.remember({ now: NOW, task, boundary, policiesKey: '', ...context });
    return cache;
  }

  it('permits in one round trip: no read, straight to the committing statement', async () => {
    const store = ledger();
    let reads = 0;
    const read = store.requestContext;
    store.requestContext = async (...args) => (reads++, read(...args));
    const service = issuance(store, providers(), undefined, cached({}));
    await service.request('bot', request);
    expect(reads).toBe(0);
    expect(store.writes).toEqual(['permit']);
  });

  it('refuses on remembered rows in one round trip, when those rows still stand', async () => {
    const store = ledger();
    const service = issuance(store, providers(), undefined, cached({}));
    await expect(service.request('bot', { ...request, action: 'orders:delete' })).rejects.toBeInstanceOf(AccessDenied);
    expect(store.writes).toEqual(['deny:action_not_allowed']);
  });

  it("a refusal keeps its task remembered, one denial up: the task's next request reads nothing either", async () => {
    const store = ledger();
    let reads = 0;
    const read = store.requestContext;
    store.requestContext = async (...args) => (reads++, read(...args));
    // Written as the statement would (the remembered rows stand), without the fake's own read.
    store.recordDenial = async (decision) => (store.writes.push(`deny:${decision.reasons.join(',')}`), { written: true, suspended: false });
    const cache = cached({ boundary: exampleBoundary({ id: 'crm', version: 3, policy: 'permit(principal, action, resource);' }) });
    const service = issuance(store, providers(), undefined, cache);
    await expect(service.request('bot', { ...request, action: 'orders:delete' })).rejects.toBeInstanceOf(AccessDenied);
    await service.request('bot', request);
    expect(reads).toBe(0);
    expect(store.writes).toEqual(['deny:action_not_allowed', 'permit']);
    expect(cache.get('t1', 'crm')?.task?.denials).toBe(1);
  });

  it('never refuses on stale remembered rows: the refusal is not written, and fresh rows decide', async () => {
    const store = ledger(); // fresh rows: intent order_status, which the boundary serves
    const service = issuance(store, providers(), undefined, cached({ task: { ...task, intent: 'refund' } }));
    await service.request('bot', request);
    expect(store.writes).toEqual(['deny refused: stale', 'permit']);
  });

  it('decides again from fresh rows when the statement refuses a remembered permit', async () => {
    const store = ledger();
    const outcomes = [false, true];
    store.recordPermit = async (_decision, lease) => {
      store.writes.push('permit');
      store.leases.push(lease);
      return outcomes.shift()!;
    };
    const cache = cached({});
    const service = issuance(store, providers(), undefined, cache);
    await service.request('bot', request);
    expect(store.writes).toEqual(['permit', 'permit']);
  });
});

describe('CredentialIssuance with step-up approval', () => {
  const stepUp = exampleBoundary({ id: 'crm', version: 3, approval: { when: 'true', ttl: 600 } });
  type Gate = NonNullable<IssuanceOptions['approvals']>;
  type Decider = NonNullable<IssuanceOptions['policies']>;

  /** Cedar's step as a stub: allows, asking for approval unless the request is approved. */
  function cedar(approvalRequired = true) {
    const approved: boolean[] = [];
    const decide: Decider['decide'] = async (facts) => {
      approved.push(facts.approved);
      return {
        decision: 'allow',
        reasons: [],
        determiningPolicies: [],
        errors: [],
        approvalRequired: approvalRequired && !facts.approved,
        policiesKey: '',
      };
    };
    return { decide, approved };
  }
  function gate(named: Awaited<ReturnType<Gate['named']>>) {
    const seen = { named: [] as string[], asked: 0 };
    const expiresAt = new Date(NOW + 600_000);
    const stub: Gate = {
      named: async (_input, approvalId) => (seen.named.push(approvalId), named),
      ask: async () => (seen.asked++, { outcome: 'pending', approvalId: 'ap-new', expiresAt }),
    };
    return { stub, seen, expiresAt };
  }
  const service = (store: Ledger, approvals: Gate | undefined, decider: Decider | undefined, cache?: RequestContextCache) =>
    new CredentialIssuance({
      storage: { context: store, decisions: store, leases: store },
      providers: providers(),
      revocation: store,
      cache,
      approvals,
      policies: decider,
    });

  it('a request Cedar sends to a reviewer writes no lease and throws ApprovalPending with the approval id', async () => {
    const store = ledger({ boundary: stepUp });
    const { stub, seen, expiresAt } = gate({ outcome: 'consume', approvalId: 'unused', ttl: 60 });
    const policies = cedar();
    await expect(service(store, stub, policies).request('bot', request)).rejects.toMatchObject({
      constructor: ApprovalPending,
      approvalId: 'ap-new',
      expiresAt,
    });
    expect(seen).toEqual({ named: [], asked: 1 });
    expect(policies.approved).toEqual([false]);
    expect(store.writes).toEqual([]);
  });

  it('an approved repeat is decided by Cedar as approved and consumes the approval in the permit statement', async () => {
    const store = ledger({ boundary: stepUp });
    const consumed: (string | undefined)[] = [];
    store.recordPermit = async (_decision, lease, _intent, audit, _policiesKey, approvalId) => {
      consumed.push(approvalId, audit.approval_id as string);
      store.leases.push(lease);
      return true;
    };
    const { stub, seen } = gate({ outcome: 'consume', approvalId: 'ap-2', ttl: 60 });
    const policies = cedar();
    await service(store, stub, policies).request('bot', { ...request, approvalId: 'ap-2' });
    expect(seen).toEqual({ named: ['ap-2'], asked: 0 });
    expect(policies.approved).toEqual([true]);
    expect(consumed).toEqual(['ap-2', 'ap-2']);
  });

  it('a refused approval is a written denial with its reason, before Cedar is asked', async () => {
    const store = ledger({ boundary: stepUp });
    const { stub } = gate({ outcome: 'deny', reason: 'approval_used', description: 'used' });
    const policies = cedar();
    await expect(service(store, stub, policies).request('bot', { ...request, approvalId: 'ap-3' })).rejects.toMatchObject({
      reasons: ['approval_used'],
    });
    expect(policies.approved).toEqual([]);
    expect(store.writes).toEqual(['deny:approval_used']);
  });

  it('a repeat of a still pending approval answers pending again, without Cedar', async () => {
    const store = ledger({ boundary: stepUp });
    const expiresAt = new Date(NOW + 1000);
    const { stub } = gate({ outcome: 'pending', approvalId: 'ap-4', expiresAt });
    const policies = cedar();
    await expect(service(store, stub, policies).request('bot', { ...request, approvalId: 'ap-4' })).rejects.toMatchObject({
      constructor: ApprovalPending,
      approvalId: 'ap-4',
    });
    expect(policies.approved).toEqual([]);
  });

  it('is asked for on fresh rows only, never on remembered ones', async () => {
    const store = ledger({ boundary: stepUp });
    let reads = 0;
    const read = store.requestContext;
    store.requestContext = async (...args) => (reads++, read(...args));
    const cache = new RequestContextCache({ now: () => NOW });
    cache.remember({ now: NOW, task, boundary: stepUp, policiesKey: '' });
    const { stub, seen } = gate({ outcome: 'consume', approvalId: 'unused', ttl: 60 });
    await expect(service(store, stub, cedar(), cache).request('bot', request)).rejects.toBeInstanceOf(ApprovalPending);
    expect(reads).toBe(1);
    expect(seen.asked).toBe(1);
  });

  it("fails closed without a gate, or without Cedar to decide the boundary's rule", async () => {
    const store = ledger({ boundary: stepUp });
    await expect(service(store, undefined, cedar()).request('bot', request)).rejects.toBeInstanceOf(TemporarilyUnavailable);
    await expect(
      service(store, gate({ outcome: 'consume', approvalId: 'x', ttl: 60 }).stub, undefined).request('bot', request),
    ).rejects.toBeInstanceOf(TemporarilyUnavailable);
    expect(store.writes).toEqual([]);
  });
});
