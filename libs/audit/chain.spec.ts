import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChainWalk, GENESIS_HASH, canonicalEvent, eventHash, link, verifyChain, type ChainedContent, type LinkedEvent } from './chain.js';

function event(n: number, data: Record<string, unknown> = { n }): ChainedContent {
  return {
    id: `00000000-0000-7000-8000-${String(n).padStart(12, '0')}`,
    seq: String(n),
    at: `2026-11-27T05:00:00.${String(n).padStart(6, '0')}Z`,
    kind: 'task.opened',
    actor: 'workload:chatbot',
    taskId: null,
    leaseId: null,
    data,
  };
}

function chain(count: number): LinkedEvent[] {
  const events = Array.from({ length: count }, (_, i) => event(i + 1));
  const links = link(GENESIS_HASH, events);
  return events.map((e, i) => ({ ...e, prevHash: links[i]!.prevHash, hash: links[i]!.hash }));
}

describe('the canonical event', () => {
  it('holds exactly the documented keys, sorted', () => {
    const e = { ...event(7, { z: 1, a: 'x' }), taskId: '11111111-1111-4111-8111-111111111111' };
    expect(canonicalEvent(e)).toBe(
      '{"actor":"workload:chatbot","at":"2026-11-27T05:00:00.000007Z","data":{"a":"x","z":1},' +
        '"id":"00000000-0000-7000-8000-000000000007","kind":"task.opened","lease_id":null,"seq":"7",' +
        '"task_id":"11111111-1111-4111-8111-111111111111"}',
    );
  });
});

describe('eventHash', () => {
  it('is SHA-256 over prev_hash followed by the canonical JSON, in lowercase hex', () => {
    const e = event(1);
    const expected = createHash('sha256')
      .update(GENESIS_HASH + canonicalEvent(e))
      .digest('hex');
    expect(eventHash(GENESIS_HASH, e)).toBe(expected);
    expect(expected).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes with the predecessor and with any field', () => {
    const e = event(1);
    const base = eventHash(GENESIS_HASH, e);
    expect(eventHash('1'.repeat(64), e)).not.toBe(base);
    for (const changed of [
      { ...e, seq: '2' },
      { ...e, actor: 'admin' },
      { ...e, at: '2026-11-27T05:00:00.000002Z' },
      { ...e, leaseId: e.id },
      { ...e, data: { n: 2 } },
    ]) {
      expect(eventHash(GENESIS_HASH, changed)).not.toBe(base);
    }
  });
});

describe('link', () => {
  it('starts at the head given and links each event to the one before', () => {
    const links = link(GENESIS_HASH, [event(1), event(2), event(3)]);
    expect(links[0]!.prevHash).toBe(GENESIS_HASH);
    expect(links[1]!.prevHash).toBe(links[0]!.hash);
    expect(links[2]!.prevHash).toBe(links[1]!.hash);
    // Linking in two batches gives the same chain as linking at once.
    const first = link(GENESIS_HASH, [event(1), event(2)]);
    expect([...first, ...link(first[1]!.hash, [event(3)])]).toEqual(links);
  });
});

describe('verifyChain', () => {
  it('accepts an intact chain and reports its head', () => {
    const events = chain(5);
    expect(verifyChain(events)).toEqual({ ok: true, verified: 5, head: { seq: '5', hash: events[4]!.hash } });
    expect(verifyChain([])).toEqual({ ok: true, verified: 0, head: null });
  });

  it('finds an altered event', () => {
    const events = chain(5);
    events[2] = { ...events[2]!, data: { n: 99 } };
    expect(verifyChain(events)).toMatchObject({
      ok: false,
      verified: 2,
      head: { seq: '2' },
      firstBroken: { seq: '3', id: events[2]!.id, reason: 'altered' },
    });
  });

  it('finds a rehashed event: its successor no longer links to it', () => {
    const events = chain(5);
    const forged = { ...events[2]!, data: { n: 99 } };
    events[2] = { ...forged, hash: eventHash(forged.prevHash, forged) };
    expect(verifyChain(events).firstBroken).toEqual({ seq: '4', id: events[3]!.id, reason: 'missing' });
  });

  it('finds a missing event', () => {
    const events = chain(5);
    events.splice(1, 1);
    expect(verifyChain(events)).toMatchObject({ ok: false, verified: 1, firstBroken: { seq: '3', reason: 'missing' } });
  });

  it('finds a missing first event', () => {
    expect(verifyChain(chain(3).slice(1)).firstBroken).toMatchObject({ seq: '2', reason: 'missing' });
  });

  it('finds reordered events', () => {
    const events = chain(5);
    [events[1], events[2]] = [events[2]!, events[1]!];
    expect(verifyChain(events)).toMatchObject({ ok: false, verified: 1, firstBroken: { seq: '3', reason: 'reordered' } });
  });

  it('finds swapped hashes', () => {
    const events = chain(5);
    const [a, b] = [events[1]!, events[3]!];
    events[1] = { ...a, hash: b.hash };
    events[3] = { ...b, hash: a.hash };
    expect(verifyChain(events).firstBroken).toEqual({ seq: '2', id: a.id, reason: 'altered' });
  });
});

describe('ChainWalk', () => {
  it('stops at the first broken link: even the right next event is not verified after it', () => {
    const events = chain(3);
    const walk = new ChainWalk();
    expect(walk.step(events[0]!)).toBe(true);
    expect(walk.step({ ...events[1]!, data: { n: 99 } })).toBe(false);
    expect(walk.broken).toMatchObject({ seq: '2', reason: 'altered' });
    expect(walk.step(events[1]!)).toBe(false);
    expect(walk.verified).toBe(1);
    expect(walk.head).toEqual({ seq: '1', hash: events[0]!.hash });
  });

  it('says unlinked for an event that does not follow the last one', () => {
    const events = chain(3);
    const walk = new ChainWalk();
    walk.step(events[0]!);
    expect(walk.step(events[2]!)).toBe(false);
    expect(walk.broken).toEqual({ seq: '3', id: events[2]!.id, reason: 'unlinked', prevHash: events[2]!.prevHash });
  });
});
