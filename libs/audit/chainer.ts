import type { Database } from '../db/index.js';
import { setImmediate as yieldToRequests } from 'node:timers/promises';
import type { AuditStore, ChainPosition, Link } from './audit-store.js';
import { GENESIS_HASH, link, type ChainedContent } from './chain.js';

/** How often the broker runs a pass (apps/broker/app.ts). */
export const CHAIN_INTERVAL_MS = 1_000;

/**
 * Events hashed between two turns of the event loop. Canonical JSON and SHA-256 cost about 15 µs
 * an event here, so a second's 500 events hashed in one go held every request that arrived
 * meanwhile for 7-12 ms, once a second. 50 keep each turn near 1 ms.
 */
const HASH_SLICE = 50;

export interface ChainPass {
  /** False when another replica held the chainer's lock: this one linked nothing. */
  leader: boolean;
  linked: number;
  /** Events not linked yet after this pass: the normal tail (transactions still in flight). */
  unlinked: number;
}

/**
 * Links committed audit events into the hash chain after the fact, so no issuing transaction
 * ever waits on a chain head: writers only take a seq (a sequence, never blocking) and record their
 * transaction id; this links them, one chainer at a time across replicas.
 *
 * Order, and why it is safe. The chain runs in (xid, seq) order, and a pass links only events
 * whose writer's xid is below xmin, the oldest transaction id still in flight
 * (pg_snapshot_xmin(pg_current_snapshot())). Every transaction that can still insert an event has
 * an xid >= xmin: it is in flight (so not below xmin), or it will be given an xid later, and xids
 * are handed out in increasing order (xid8 never wraps), all above today's xmin. So the set "events
 * with xid < xmin" is final the moment it is read, xmin only grows between passes, and every event
 * that commits later sorts after everything already linked: nothing ever needs to go before a
 * linked event. Within one transaction, seq is its insertion order.
 * Plain seq order would not be safe: seqs are taken when a row is inserted, not when it commits. A
 * transaction can take seq 15, stay in flight while another with a smaller xid takes seq 20 and
 * commits; linking 20 then would leave 15 needing to go before it.
 * The cost: one long transaction holds back linking (never issuance) until it ends.
 */
export class AuditChainer {
  constructor(
    private readonly db: Database,
    private readonly store: AuditStore,
    private readonly onPass: (pass: ChainPass) => void = () => {},
    private readonly batch = 1_000,
  ) {}

  /** Links everything linkable now, a batch per transaction; bounded so a pass cannot run forever. */
  async runOnce(maxBatches = 1_000): Promise<ChainPass> {
    let linked = 0;
    let leader = true;
    for (let i = 0; i < maxBatches; i++) {
      const n = await this.db.transaction(async (tx) => {
        if (!(await this.store.lockChain(tx))) return undefined;
        // After a prune took every linked event, the chain goes on from the anchor, not genesis.
        const head = (await this.store.head(tx)) ?? (await this.store.anchor(tx));
        const events = await this.store.linkable(tx, head, this.batch);
        const links = await linkInSlices(head?.hash ?? GENESIS_HASH, events);
        const written = await this.store.link(tx, links);
        // The INSERT writes every link or fails (a second link or successor breaks a key); refuse
        // to commit a chain that is not the one computed all the same.
        if (written !== links.length)
          throw new Error(`linked ${written} audit events of ${links.length}; the chain changed under the chainer`);
        return written;
      });
      if (n === undefined) {
        leader = false;
        break;
      }
      linked += n;
      if (n < this.batch) break;
    }
    const pass = { leader, linked, unlinked: await this.store.countUnlinked() };
    this.onPass(pass);
    return pass;
  }
}

/** The links of `events` after `headHash`, a slice at a time, letting requests run in between. */
async function linkInSlices(headHash: string, events: readonly (ChainedContent & ChainPosition)[]): Promise<Link[]> {
  const links: Link[] = [];
  let prevHash = headHash;
  for (let start = 0; start < events.length; start += HASH_SLICE) {
    if (start > 0) await yieldToRequests();
    const slice = events.slice(start, start + HASH_SLICE);
    link(prevHash, slice).forEach((l, i) => links.push({ ...l, xid: slice[i]!.xid, seq: slice[i]!.seq }));
    prevHash = links[links.length - 1]!.hash;
  }
  return links;
}
