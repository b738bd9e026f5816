import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';

/** The prev_hash of the first event in the chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** What an event's hash covers: everything it says, and its place (seq). */
export interface ChainedContent {
  id: string;
  /** A string of digits: a bigint in the database. */
  seq: string;
  /** RFC 3339 UTC with microseconds, exactly as stored (e.g. 2026-11-27T05:10:06.123456Z). */
  at: string;
  kind: string;
  actor: string;
  taskId: string | null;
  leaseId: string | null;
  data: unknown;
}

export interface LinkedEvent extends ChainedContent {
  prevHash: string;
  hash: string;
}

/** The canonical JSON of an event: the keys id, seq, at, kind, actor, task_id, lease_id, data. */
export function canonicalEvent(event: ChainedContent): string {
  return canonicalJson({
    id: event.id,
    seq: event.seq,
    at: event.at,
    kind: event.kind,
    actor: event.actor,
    task_id: event.taskId,
    lease_id: event.leaseId,
    data: event.data,
  });
}

/** hash = lowercase hex SHA-256 of the UTF-8 bytes of prev_hash (64 hex characters) followed by the canonical JSON. */
export function eventHash(prevHash: string, event: ChainedContent): string {
  return createHash('sha256').update(prevHash, 'utf8').update(canonicalEvent(event), 'utf8').digest('hex');
}

/** Links events after `headHash`, in the order given: what the chainer writes. */
export function link(headHash: string, events: readonly ChainedContent[]): { id: string; prevHash: string; hash: string }[] {
  let prevHash = headHash;
  return events.map((event) => {
    const hash = eventHash(prevHash, event);
    const linked = { id: event.id, prevHash, hash };
    prevHash = hash;
    return linked;
  });
}

/**
 * Why a link is broken. `altered`: the event's content (or its hash) is not what was hashed.
 * `missing`: its prev_hash names an event that is not in the chain (deleted). `reordered`: its
 * prev_hash names an event that exists, elsewhere.
 */
export type BreakReason = 'altered' | 'missing' | 'reordered';

export interface Break {
  seq: string;
  id: string;
  reason: BreakReason;
}

/**
 * Walks a chain from its start, one event at a time in chain order, so a chain of any length can
 * be checked in pages. The first broken link stops the walk.
 */
export class ChainWalk {
  verified = 0;
  head: { seq: string; hash: string } | null = null;
  /** Set when a link is broken; `unlinked` until the caller tells missing from reordered. */
  broken: { seq: string; id: string; reason: 'altered' | 'unlinked'; prevHash: string } | undefined;
  private prevHash: string;

  /** From the genesis hash, or from an anchor where pruned history ended (its seq and hash). */
  constructor(from?: { seq: string; hash: string }) {
    this.prevHash = from?.hash ?? GENESIS_HASH;
    this.head = from ? { seq: from.seq, hash: from.hash } : null;
  }

  /** Checks the next event; false once the chain is broken. */
  step(event: LinkedEvent): boolean {
    if (this.broken) return false;
    if (event.prevHash !== this.prevHash) {
      this.broken = { seq: event.seq, id: event.id, reason: 'unlinked', prevHash: event.prevHash };
      return false;
    }
    if (eventHash(event.prevHash, event) !== event.hash) {
      this.broken = { seq: event.seq, id: event.id, reason: 'altered', prevHash: event.prevHash };
      return false;
    }
    this.prevHash = event.hash;
    this.head = { seq: event.seq, hash: event.hash };
    this.verified++;
    return true;
  }

  /** The break, with `unlinked` resolved by whether an event with the named prev_hash exists. */
  breakWith(prevHashExists: boolean): Break | undefined {
    if (!this.broken) return undefined;
    const { seq, id, reason } = this.broken;
    return { seq, id, reason: reason === 'altered' ? 'altered' : prevHashExists ? 'reordered' : 'missing' };
  }
}

export interface Verification {
  ok: boolean;
  verified: number;
  head: { seq: string; hash: string } | null;
  firstBroken?: Break;
}

/** Verifies a whole chain held in memory, in chain order (an export, a test). */
export function verifyChain(events: readonly LinkedEvent[]): Verification {
  const walk = new ChainWalk();
  for (const event of events) if (!walk.step(event)) break;
  const hashes = new Set(events.map((event) => event.hash));
  const firstBroken = walk.breakWith(walk.broken !== undefined && hashes.has(walk.broken.prevHash));
  return { ok: !firstBroken, verified: walk.verified, head: walk.head, ...(firstBroken ? { firstBroken } : {}) };
}
