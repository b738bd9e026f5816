import { describe, expect, it, vi } from 'vitest';
import { TemporarilyUnavailable } from '../errors/index.js';
import { BatchedLeaseReads } from './lease-reads.js';
import type { Lease } from './lease.js';

const A = '01a23940-7e8b-7056-b649-ce1abb19e0a1';
const B = '01a23940-7e8b-7056-b649-ce1abb19e0b2';
const C = '01a23940-7e8b-7056-b649-ce1abb19e0c3';
const UNKNOWN = '01a23940-7e8b-7056-b649-ce1abb19e0ff';

function lease(id: string): Lease {
  return {
    id,
    taskId: 'task-1',
    workloadId: 'chatbot',
    boundaryId: 'crm-orders',
    boundaryVersion: 1,
    action: 'orders:read',
    resource: null,
    credentialKind: 'jwt',
    state: 'active',
    issuedAt: new Date(0),
    expiresAt: new Date(0),
    revokedAt: null,
    revokeReason: null,
    paramsDigest: null,
  };
}

/**
 * A hand-written lease store: records each statement and answers it when the test says so, with
 * the rows as they were when the statement was sent (as a statement's snapshot would be).
 */
class FakeStore {
  readonly statements: Array<{ kind: 'one' | 'many'; ids: string[] }> = [];
  private readonly pending: Array<() => void> = [];
  readonly rows = new Map([A, B, C].map((id) => [id, lease(id)]));
  failMany: unknown;
  failOne = new Set<string>();

  find(id: string): Promise<Lease | undefined> {
    this.statements.push({ kind: 'one', ids: [id] });
    const row = this.rows.get(id);
    return this.held(() => {
      if (this.failOne.has(id)) throw new Error(`reading ${id} failed`);
      return row;
    });
  }

  findMany(ids: readonly string[]): Promise<Map<string, Lease>> {
    this.statements.push({ kind: 'many', ids: [...ids] });
    const rows = new Map(this.rows);
    return this.held(() => {
      if (this.failMany !== undefined) throw this.failMany;
      // Rows come back in the database's order, not the callers': the reader must match by id.
      return new Map([...ids].reverse().flatMap((id) => (rows.has(id) ? [[id, rows.get(id)!] as const] : [])));
    });
  }

  async answer(): Promise<void> {
    this.pending.shift()!();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  }

  async answerAll(): Promise<void> {
    while (this.pending.length > 0) await this.answer();
  }

  private held<T>(outcome: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push(() => {
        try {
          resolve(outcome());
        } catch (error) {
          reject(error);
        }
      });
    });
  }
}

describe('BatchedLeaseReads', () => {
  it('sends a lone read at once, as the single-row find, with no timer to wait for', async () => {
    vi.useFakeTimers();
    try {
      const store = new FakeStore();
      const reads = new BatchedLeaseReads(store);
      const read = reads.find(A);
      // Sent before find() returned: nothing waits for a timer or a tick.
      expect(store.statements).toEqual([{ kind: 'one', ids: [A] }]);
      await store.answer();
      expect(await read).toEqual(lease(A));
    } finally {
      vi.useRealTimers();
    }
  });

  it('joins the reads that arrive while a statement is in flight into one, each caller getting its own row', async () => {
    const store = new FakeStore();
    const reads = new BatchedLeaseReads(store);
    const first = reads.find(A);
    const later = [reads.find(B), reads.find(UNKNOWN), reads.find(C), reads.find(B)];
    expect(store.statements).toEqual([{ kind: 'one', ids: [A] }]);
    await store.answer();
    expect(store.statements[1]).toEqual({ kind: 'many', ids: [B, UNKNOWN, C, B] });
    await store.answer();
    expect(await first).toEqual(lease(A));
    expect(await Promise.all(later)).toEqual([lease(B), undefined, lease(C), lease(B)]);
  });

  it('never answers a read from a statement sent before it was asked (no lease state is remembered)', async () => {
    const store = new FakeStore();
    const reads = new BatchedLeaseReads(store);
    const before = reads.find(A);
    store.rows.set(A, { ...lease(A), state: 'revoked' }); // revoked while the first statement is in flight
    const after = reads.find(A);
    await store.answerAll();
    expect((await before)?.state).toBe('active');
    // The same id asked again waits for a statement of its own, sent after the revocation.
    expect(store.statements).toEqual([
      { kind: 'one', ids: [A] },
      { kind: 'one', ids: [A] },
    ]);
    expect((await after)?.state).toBe('revoked');
  });

  it('a statement that fails as a whole is read again row by row: only the failing read sees its error', async () => {
    const store = new FakeStore();
    const reads = new BatchedLeaseReads(store);
    const first = reads.find(A);
    const b = reads.find(B);
    const c = reads.find(C);
    store.failMany = new Error('statement failed');
    store.failOne.add(C);
    await store.answerAll();
    await first;
    expect(await b).toEqual(lease(B));
    await expect(c).rejects.toThrow(`reading ${C} failed`);
    expect(store.statements.map((s) => s.kind)).toEqual(['one', 'many', 'one', 'one']);
  });

  it('a database that is not there fails the whole batch at once, without a retry per row', async () => {
    const store = new FakeStore();
    const reads = new BatchedLeaseReads(store);
    const first = reads.find(A);
    const batch = [reads.find(B), reads.find(C)];
    store.failMany = new TemporarilyUnavailable('database unavailable');
    await store.answerAll();
    await first;
    for (const read of batch) await expect(read).rejects.toBeInstanceOf(TemporarilyUnavailable);
    expect(store.statements.map((s) => s.kind)).toEqual(['one', 'many']);
  });

  it('carries at most `max` ids per statement, the rest in the next one, in order', async () => {
    const store = new FakeStore();
    const reads = new BatchedLeaseReads(store, { max: 2, lanes: 1 });
    const all = [reads.find(A), reads.find(B), reads.find(C), reads.find(UNKNOWN)];
    await store.answerAll();
    expect(store.statements).toEqual([
      { kind: 'one', ids: [A] },
      { kind: 'many', ids: [B, C] },
      { kind: 'one', ids: [UNKNOWN] },
    ]);
    expect(await Promise.all(all)).toEqual([lease(A), lease(B), lease(C), undefined]);
  });

  it('with batching off, every read is its own statement, all in flight at once', async () => {
    const store = new FakeStore();
    const reads = new BatchedLeaseReads(store, false);
    const all = [reads.find(A), reads.find(B), reads.find(C)];
    expect(store.statements.map((s) => s.kind)).toEqual(['one', 'one', 'one']);
    await store.answerAll();
    expect(await Promise.all(all)).toEqual([lease(A), lease(B), lease(C)]);
  });
});
