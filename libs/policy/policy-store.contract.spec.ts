import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { exampleBoundary } from './boundary.fixture.js';
import { BoundaryStore } from './boundary-store.js';
import { PolicyStore } from './policy-store.js';

const FORBID = 'forbid (principal, action == Tollgate::Action::"refund:create", resource) when { context.note == "ünï ☃" };';

describeOnBothBackends('PolicyStore contract', ({ db }) => {
  let store: PolicyStore;
  beforeAll(async () => {
    store = new PolicyStore(db());
    const boundaries = new BoundaryStore(db());
    const { id: _id, version: _version, createdAt: _createdAt, ...definition } = exampleBoundary();
    await db().transaction((tx) => boundaries.put('crm', { ...definition, actions: ['orders:read'] }, tx));
    await db().transaction((tx) =>
      boundaries.put(
        'crm',
        { ...definition, actions: ['orders:read', 'refund:create'], policy: 'permit (principal, action, resource);' },
        tx,
      ),
    );
    await db().transaction((tx) => boundaries.put('pay', { ...definition, actions: ['refund:create', 'refund:void'] }, tx));
  });

  it('starts with no active policy: an empty key and no sources', async () => {
    expect(await store.active()).toEqual({ key: '', sources: [] });
  });

  it('writes version 1 and reads it back (unicode text, description), naming it in the active set', async () => {
    const { policy, changed, created } = await db().transaction((tx) =>
      store.put('guard', { policy: FORBID, description: 'no ☃ refunds', enabled: true }, tx),
    );
    expect({ changed, created }).toEqual({ changed: true, created: true });
    expect(policy).toMatchObject({ id: 'guard', version: 1, policy: FORBID, description: 'no ☃ refunds', enabled: true });
    expect(await store.current('guard')).toEqual(policy);
    const active = await store.active();
    expect(active.key).not.toBe('');
    expect(active.sources).toEqual([{ id: 'guard', version: 1, text: FORBID, scope: 'global' }]);
  });

  it('changes the active key with every write and only then: an unchanged put keeps it', async () => {
    const before = (await store.active()).key;
    const same = await db().transaction((tx) => store.put('guard', { policy: FORBID, description: 'no ☃ refunds', enabled: true }, tx));
    expect(same).toMatchObject({ changed: false, created: false });
    expect((await store.active()).key).toBe(before);
    await db().transaction((tx) => store.put('other', { policy: FORBID, description: null, enabled: false }, tx));
    const after = (await store.active()).key;
    expect(after).not.toBe(before);
    expect((await store.active()).sources.map((s) => s.id)).toEqual(['guard']);
  });

  it('empties the key when the last enabled policy is disabled, and lists only current versions', async () => {
    const disabled = await db().transaction((tx) =>
      store.put('guard', { policy: FORBID, description: 'no ☃ refunds', enabled: false }, tx),
    );
    expect(disabled.policy.version).toBe(2);
    expect(await store.active()).toEqual({ key: '', sources: [] });
    expect((await store.list()).map((p) => [p.id, p.version, p.enabled])).toEqual([
      ['guard', 2, false],
      ['other', 1, false],
    ]);
  });

  it('keeps the enabled count right under concurrent writes of different policies', async () => {
    await Promise.all(
      ['a', 'b', 'c', 'd'].map((id) =>
        db().transaction((tx) => store.put(`p-${id}`, { policy: FORBID, description: null, enabled: true }, tx)),
      ),
    );
    expect((await store.active()).sources.map((s) => s.id)).toEqual(['p-a', 'p-b', 'p-c', 'p-d']);
    await Promise.all(
      ['a', 'b', 'c', 'd'].map((id) =>
        db().transaction((tx) => store.put(`p-${id}`, { policy: FORBID, description: null, enabled: false }, tx)),
      ),
    );
    expect(await store.active()).toEqual({ key: '', sources: [] });
  });

  it("knows the current boundaries' actions and policies, not superseded versions'", async () => {
    expect((await store.knownActions()).sort()).toEqual(['orders:read', 'refund:create', 'refund:void']);
    expect((await store.knownActions('pay')).sort()).toEqual(['refund:create', 'refund:void']);
    expect(await store.knownActions('nobody')).toEqual([]);
    const policies = await store.boundaryPolicies();
    expect(policies.get('crm')).toEqual({
      version: 2,
      tool: exampleBoundary().tool,
      policy: 'permit (principal, action, resource);',
      paramsSchemas: null,
    });
    expect(policies.get('pay')).toEqual({ version: 1, tool: exampleBoundary().tool, policy: null, paramsSchemas: null });
  });
});
