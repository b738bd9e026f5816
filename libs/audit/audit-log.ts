import type { Clock } from '../clock/index.js';
import { Conflict } from '../errors/index.js';
import type { SigningKey } from '../keys/index.js';
import type { AuditFilter, AuditRecord, AuditStore, ChainPosition } from './audit-store.js';
import { ChainWalk, GENESIS_HASH, type Verification } from './chain.js';
import { signCheckpoint, type Checkpoint } from './checkpoint.js';

/** Events read per page while verifying. */
const VERIFY_PAGE = 5_000;

export interface ChainReport extends Verification {
  /** Events not linked yet: the normal tail while their transactions end and the chainer runs. */
  unchained: number;
  /** Where the walk started when older history was pruned: the last dropped event's seq and hash. */
  anchor?: { seq: string; hash: string };
}

/** What reviewers ask of the audit log: its events, whether the chain holds, a signed head. */
export class AuditLog {
  private readonly store: AuditStore;
  private readonly signingKey: () => SigningKey | Promise<SigningKey>;
  private readonly issuer: string;
  private readonly clock: Clock;

  constructor(options: { store: AuditStore; signingKey: () => SigningKey | Promise<SigningKey>; issuer: string; clock: Clock }) {
    this.store = options.store;
    this.signingKey = options.signingKey;
    this.issuer = options.issuer;
    this.clock = options.clock;
  }

  list(filter: AuditFilter): Promise<AuditRecord[]> {
    return this.store.list(filter);
  }

  /**
   * Walks the whole chain in chain order, in pages, recomputing every hash. Stops at the first
   * broken link. Linked events never change (the trigger), so pages read one after another see one
   * chain; events the chainer links meanwhile only extend it. After a prune the walk starts at the
   * newest anchor: the first kept event must name the last dropped one's hash.
   */
  async verify(): Promise<ChainReport> {
    const anchor = await this.store.anchor();
    const walk = new ChainWalk(anchor);
    let after: ChainPosition | undefined = anchor;
    for (;;) {
      const page = await this.store.chainPage(after, VERIFY_PAGE);
      for (const event of page) if (!walk.step(event)) break;
      if (walk.broken || page.length < VERIFY_PAGE) break;
      after = page[page.length - 1]!;
    }
    let firstBroken =
      walk.broken && walk.breakWith(walk.broken.reason === 'unlinked' && (await this.store.hashExists(walk.broken.prevHash)));
    // An event the chain went past without linking it is out of place: reordered.
    const last = await this.store.head();
    if (!firstBroken && last) {
      const skipped = await this.store.skippedBefore(last);
      if (skipped) firstBroken = { seq: skipped.seq, id: skipped.id, reason: 'reordered' };
    }
    const unchained = await this.store.countUnlinked();
    return {
      ok: !firstBroken,
      verified: walk.verified,
      head: walk.head,
      unchained,
      ...(anchor ? { anchor: { seq: anchor.seq, hash: anchor.hash } } : {}),
      ...(firstBroken ? { firstBroken } : {}),
    };
  }

  /**
   * Signs the head, only after verifying the chain up to it: a checkpoint over a broken chain would
   * vouch for the tampering. An empty chain is signed as seq "0" with the genesis hash.
   */
  async checkpoint(): Promise<Checkpoint> {
    const report = await this.verify();
    if (!report.ok) {
      const broken = report.firstBroken!;
      throw new Conflict(`the audit chain is broken at seq ${broken.seq} (${broken.reason}); no checkpoint is signed over it`);
    }
    return signCheckpoint(await this.signingKey(), this.issuer, report.head ?? { seq: '0', hash: GENESIS_HASH }, this.clock.now());
  }
}
