import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { lockWriter } from '../db/writer-lock.js';
import type { BoundaryDefinition } from './boundary.js';
import { exampleBoundary } from './boundary.fixture.js';
import { BoundaryStore } from './boundary-store.js';

function definition(overrides: Partial<BoundaryDefinition> = {}): BoundaryDefinition {
  const { id: _id, version: _version, createdAt: _createdAt, ...rest } = exampleBoundary();
  return { ...rest, ...overrides };
}

describeOnBothBackends('BoundaryStore contract', ({ db }) => {
  let store: BoundaryStore;
  beforeAll(() => {
    store = new BoundaryStore(db());
  });

  it('writes version 1 and reads back the definition: JSON lists, unicode, approval and policy', async () => {
    const written = definition({
      tool: 'https://crm.acme.test/ünï',
      actions: ['orders:read', 'refund:create'],
      intents: ['order_status', 'remboursement_é'],
      approval: { when: 'context.amount > 100', ttl: 300 },
      policy: 'permit (principal, action, resource) when { context.note == "☃" };',
      driftThreshold: 3,
      sensitivity: 'high',
    });
    const { boundary, changed, created } = await db().transaction((tx) => store.put('crm', written, tx));
    expect({ changed, created }).toEqual({ changed: true, created: true });
    expect(boundary).toMatchObject({ id: 'crm', version: 1, ...written });
    expect(boundary.createdAt).toBeInstanceOf(Date);
    expect(await store.current('crm')).toEqual(boundary);
  });

  it('writes nothing for an unchanged definition, and a new version with the old one superseded for a change', async () => {
    const same = await db().transaction(async (tx) => store.put('crm', (await store.current('crm', tx))!, tx));
    expect(same).toMatchObject({ changed: false, created: false, boundary: { version: 1 } });
    const next = await db().transaction((tx) => store.put('crm', definition({ enabled: false }), tx));
    expect(next).toMatchObject({
      changed: true,
      created: false,
      boundary: { version: 2, enabled: false, approval: null, policy: null, driftThreshold: null },
    });
    expect((await store.current('crm'))?.version).toBe(2);
    const { rows } = await db().query<{ version: number; superseded: boolean }>(
      `SELECT version, superseded_at IS NOT NULL AS superseded FROM boundaries WHERE id = 'crm' ORDER BY version`,
    );
    expect(rows).toEqual([
      { version: 1, superseded: true },
      { version: 2, superseded: false },
    ]);
  });

  it('gives concurrent changes of one boundary, queued by the writer lock, distinct consecutive versions', async () => {
    await Promise.all(
      [30, 40, 50, 70, 80].map((ttl) =>
        db().transaction(async (tx) => {
          await lockWriter(tx, 'boundary', 'race');
          return store.put('race', definition({ defaultTtl: ttl }), tx);
        }),
      ),
    );
    const { rows } = await db().query<{ version: number; current: boolean }>(
      `SELECT version, superseded_at IS NULL AS current FROM boundaries WHERE id = 'race' ORDER BY version`,
    );
    expect(rows.map((r) => r.version)).toEqual([1, 2, 3, 4, 5]);
    expect(rows.map((r) => r.current)).toEqual([false, false, false, false, true]);
  });

  it('never stores two rows of one version, even for writers without the lock: the loser fails', async () => {
    const outcomes = await Promise.allSettled(
      [31, 41, 51, 71].map((ttl) => db().transaction((tx) => store.put('unlocked', definition({ defaultTtl: ttl }), tx))),
    );
    const written = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.boundary.version] : []));
    expect(new Set(written).size).toBe(written.length);
    const { rows } = await db().query<{ version: number; current: boolean }>(
      `SELECT version, superseded_at IS NULL AS current FROM boundaries WHERE id = 'unlocked' ORDER BY version`,
    );
    expect(rows.map((r) => r.version)).toEqual(written.sort((a, b) => a - b));
    expect(rows.filter((r) => r.current)).toHaveLength(1);
  });

  it('refuses ttls the table does not allow', async () => {
    await expect(db().transaction((tx) => store.put('bad', definition({ defaultTtl: 600, maxTtl: 300 }), tx))).rejects.toThrow();
    expect(await store.current('bad')).toBeUndefined();
  });

  it('lists the latest version of each boundary, by id', async () => {
    const listed = await store.list();
    expect(listed.map((b) => [b.id, b.version])).toEqual([
      ['crm', 2],
      ['race', 5],
      ['unlocked', expect.any(Number)],
    ]);
  });
});
