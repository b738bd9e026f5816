import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { IssuerStore } from './issuer-store.js';
import { WorkloadStore } from './workload-store.js';

const JWKS = { keys: [{ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', kid: 'ключ-☃' }] };

describeOnBothBackends('WorkloadStore contract', ({ db }) => {
  let store: WorkloadStore;
  beforeAll(async () => {
    store = new WorkloadStore(db());
    await new IssuerStore(db()).put(
      'iss-k8s',
      {
        issuer: 'https://kubernetes.default.svc',
        kind: 'kubernetes',
        trustDomain: null,
        jwksUri: 'https://k8s.example/jwks',
        jwks: null,
        audiences: ['tollgate'],
      },
      undefined,
      db(),
    );
  });

  it('creates a workload and reads back its keys (JSON, unicode) and rate limit as written', async () => {
    const { workload, created } = await store.put('bot-ünï', { jwks: JWKS }, undefined, { requests: 30, per: 'minute', burst: 5 });
    expect(created).toBe(true);
    expect(workload).toMatchObject({
      id: 'bot-ünï',
      jwks: JWKS,
      issuerId: null,
      subject: null,
      enabled: true,
      revision: 1,
      rateLimit: { requests: 30, per: 'minute', burst: 5 },
    });
    expect(await store.find('bot-ünï')).toEqual(workload);
    expect(workload.createdAt).toBeInstanceOf(Date);
    expect(workload.createdAt.getTime()).toBe(workload.updatedAt.getTime());
  });

  it('replaces on a second put, bumps the revision and keeps a disabled workload disabled unless told', async () => {
    await store.put('bot-kill', { jwks: JWKS }, undefined, null);
    const disabled = await store.disable('bot-kill');
    expect(disabled).toMatchObject({ enabled: false, revision: 2 });
    const again = await store.put('bot-kill', { jwks: { keys: [] } }, undefined, null);
    expect(again.created).toBe(false);
    expect(again.workload).toMatchObject({ enabled: false, revision: 3, jwks: { keys: [] }, rateLimit: null });
    expect(again.workload.updatedAt.getTime()).toBeGreaterThanOrEqual(again.workload.createdAt.getTime());
    const enabled = await store.put('bot-kill', { jwks: { keys: [] } }, true, null);
    expect(enabled.workload).toMatchObject({ enabled: true, revision: 4 });
  });

  it('records a workload.revoked event when disabling, and nothing for an unknown id', async () => {
    await store.put('bot-event', { jwks: JWKS }, undefined, null);
    await store.disable('bot-event');
    expect(await store.disable('bot-nobody')).toBeUndefined();
    const { rows } = await db().query<{ type: string; reason: string }>(
      `SELECT type, reason FROM revocation_events WHERE workload_id = $1`,
      ['bot-event'],
    );
    expect(rows).toEqual([{ type: 'workload.revoked', reason: 'workload_revoked' }]);
    const { rows: none } = await db().query(`SELECT 1 FROM revocation_events WHERE workload_id = 'bot-nobody'`);
    expect(none).toEqual([]);
  });

  it('binds one workload per (issuer, subject) and finds it by the binding', async () => {
    const { workload } = await store.put('bot-fed', { issuerId: 'iss-k8s', subject: 'system:serviceaccount:ns:bot' }, undefined, null);
    expect(workload).toMatchObject({ jwks: null, issuerId: 'iss-k8s', subject: 'system:serviceaccount:ns:bot' });
    expect((await store.findBound('iss-k8s', 'system:serviceaccount:ns:bot'))?.id).toBe('bot-fed');
    expect(await store.findBound('iss-k8s', 'system:serviceaccount:ns:other')).toBeUndefined();
    await expect(
      store.put('bot-fed-2', { issuerId: 'iss-k8s', subject: 'system:serviceaccount:ns:bot' }, undefined, null),
    ).rejects.toThrow();
    await expect(store.put('bot-ghost', { issuerId: 'iss-missing', subject: 's' }, undefined, null)).rejects.toThrow();
  });

  it('lists bound workloads in id order; lockBoundTo names only the enabled ones', async () => {
    await store.put('bot-fed-b', { issuerId: 'iss-k8s', subject: 'sub-b' }, undefined, null);
    await store.put('bot-fed-a', { issuerId: 'iss-k8s', subject: 'sub-a' }, false, null);
    const { bound, locked } = await db().transaction(async (tx) => ({
      bound: await store.boundTo('iss-k8s', tx),
      locked: await store.lockBoundTo('iss-k8s', tx),
    }));
    expect(bound).toEqual([
      { id: 'bot-fed', subject: 'system:serviceaccount:ns:bot' },
      { id: 'bot-fed-a', subject: 'sub-a' },
      { id: 'bot-fed-b', subject: 'sub-b' },
    ]);
    expect(locked).toEqual(['bot-fed', 'bot-fed-b']);
  });

  it('lists every workload ordered by id', async () => {
    const ids = (await store.list()).map((w) => w.id);
    expect(ids).toEqual([...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(ids).toEqual(expect.arrayContaining(['bot-ünï', 'bot-kill', 'bot-fed']));
  });

  it('serialises concurrent puts of one workload: every one bumps the revision once', async () => {
    await store.put('bot-race', { jwks: JWKS }, undefined, null);
    await Promise.all(Array.from({ length: 8 }, () => store.put('bot-race', { jwks: JWKS }, undefined, null)));
    expect((await store.find('bot-race'))?.revision).toBe(9);
  });
});
