import { afterEach, describe, expect, it, vi } from 'vitest';
import { TemporarilyUnavailable } from '../errors/index.js';
import { StatementCoalescer, type CoalescedStatements } from './statement-coalescer.js';

/** A hand-written store: records each statement, and answers it when the test says so. */
class FakeWrites implements CoalescedStatements<number, string> {
  readonly statements: number[][] = [];
  private readonly pending: Array<{ settle: (fail?: unknown) => void }> = [];
  failMany: unknown;
  failOne = new Set<number>();

  many(items: readonly number[]): Promise<string[]> {
    this.statements.push([...items]);
    return this.held(() => {
      if (this.failMany !== undefined) throw this.failMany;
      return items.map((item) => `many:${item}`);
    });
  }

  one(item: number): Promise<string> {
    this.statements.push([item]);
    return this.held(() => {
      if (this.failOne.has(item)) throw new Error(`row ${item} breaks a constraint`);
      return `one:${item}`;
    });
  }

  /** Answers the oldest statement still in flight. */
  async answer(): Promise<void> {
    this.pending.shift()!.settle();
    // Let the answered callers and the next batch's send run.
    for (let i = 0; i < 5; i++) await Promise.resolve();
  }

  get inFlight(): number {
    return this.pending.length;
  }

  private held<T>(outcome: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({
        settle: () => {
          try {
            resolve(outcome());
          } catch (error) {
            reject(error);
          }
        },
      });
    });
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('StatementCoalescer', () => {
  it('sends a lone write at once, before write() returns, with no timer to wait for', async () => {
    vi.useFakeTimers();
    const writes = new FakeWrites();
    const coalescer = new StatementCoalescer(writes, { max: 64, lanes: 1 });
    const outcome = coalescer.submit(1);
    // Sent synchronously: no tick, no timer.
    expect(writes.statements).toEqual([[1]]);
    await writes.answer();
    await expect(outcome).resolves.toBe('one:1');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gathers the writes that arrive while a statement is in flight into the next one, each getting its own outcome', async () => {
    const writes = new FakeWrites();
    const coalescer = new StatementCoalescer(writes, { max: 64, lanes: 1 });
    const outcomes = [1, 2, 3, 4].map((item) => coalescer.submit(item));
    expect(writes.statements).toEqual([[1]]);
    await writes.answer();
    expect(writes.statements).toEqual([[1], [2, 3, 4]]);
    await writes.answer();
    expect(await Promise.all(outcomes)).toEqual(['one:1', 'many:2', 'many:3', 'many:4']);
  });

  it('answers no caller before the statement carrying its item has answered', async () => {
    const writes = new FakeWrites();
    const coalescer = new StatementCoalescer(writes, { max: 64, lanes: 1 });
    let settled = 0;
    void coalescer.submit(1).then(() => settled++);
    void coalescer.submit(2).then(() => settled++);
    void coalescer.submit(3).then(() => settled++);
    await writes.answer();
    expect(settled).toBe(1);
    await writes.answer();
    expect(settled).toBe(3);
  });

  it('caps a statement at max items and keeps at most `lanes` statements in flight', async () => {
    const writes = new FakeWrites();
    const coalescer = new StatementCoalescer(writes, { max: 3, lanes: 2 });
    const outcomes = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((item) => coalescer.submit(item));
    expect(writes.statements).toEqual([[1], [2]]);
    expect(writes.inFlight).toBe(2);
    await writes.answer();
    expect(writes.statements).toEqual([[1], [2], [3, 4, 5]]);
    while (writes.inFlight > 0) await writes.answer();
    expect(writes.statements).toEqual([[1], [2], [3, 4, 5], [6, 7, 8], [9]]);
    expect(await Promise.all(outcomes)).toHaveLength(9);
  });

  it('a statement that fails as a whole is written again row by row: only the guilty row fails', async () => {
    const writes = new FakeWrites();
    const coalescer = new StatementCoalescer(writes, { max: 64, lanes: 1 });
    writes.failMany = new Error('duplicate key value violates unique constraint');
    writes.failOne.add(3);
    const outcomes = [1, 2, 3, 4].map((item) => coalescer.submit(item).catch((error: Error) => error.message));
    await writes.answer(); // [1]
    await writes.answer(); // [2, 3, 4] fails
    expect(writes.statements).toEqual([[1], [2, 3, 4], [2], [3], [4]]);
    while (writes.inFlight > 0) await writes.answer();
    expect(await Promise.all(outcomes)).toEqual(['one:1', 'one:2', 'row 3 breaks a constraint', 'one:4']);
  });

  it('a database that is not there fails every caller of the statement at once, without retrying them', async () => {
    const writes = new FakeWrites();
    const coalescer = new StatementCoalescer(writes, { max: 64, lanes: 1 });
    writes.failMany = new TemporarilyUnavailable('the database is not available; try again shortly');
    const outcomes = [1, 2, 3].map((item) => coalescer.submit(item).catch((error: unknown) => error));
    await writes.answer();
    await writes.answer();
    const errors = await Promise.all(outcomes.slice(1));
    expect(errors.every((error) => error instanceof TemporarilyUnavailable)).toBe(true);
    expect(writes.statements).toEqual([[1], [2, 3]]);
  });

  it('keeps items that must stay apart in different statements, in their order', async () => {
    const writes = new FakeWrites();
    // Even and odd items of the same "task" must not share a statement.
    const coalescer = new StatementCoalescer(writes, { max: 64, lanes: 1 }, (item) => (item >= 10 ? `task-${item % 2}` : undefined));
    const outcomes = [1, 10, 12, 2, 11, 14, 3].map((item) => coalescer.submit(item));
    await writes.answer();
    expect(writes.statements).toEqual([[1], [10, 2, 11, 3]]);
    await writes.answer();
    expect(writes.statements).toEqual([[1], [10, 2, 11, 3], [12]]);
    await writes.answer();
    expect(writes.statements).toEqual([[1], [10, 2, 11, 3], [12], [14]]);
    await writes.answer();
    expect(await Promise.all(outcomes)).toHaveLength(7);
  });

  it('refuses options it cannot run on, naming them', () => {
    const writes = new FakeWrites();
    expect(() => new StatementCoalescer(writes, { max: 0, lanes: 1 })).toThrow(/max/);
    expect(() => new StatementCoalescer(writes, { max: 8, lanes: 0.5 })).toThrow(/lanes/);
  });
});
