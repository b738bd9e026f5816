import type { JWK } from 'jose';
import type { Clock } from '../clock/index.js';
import type { Database, Sql } from '../db/index.js';
import { ConfigurationError, TemporarilyUnavailable } from '../errors/index.js';
import { SigningKeyStore, type KeyRow } from './signing-key-store.js';
import { decrypt, encrypt, generateSigningKey, openSigningKey, type SigningAlg, type SigningKey } from './signing-keys.js';

/**
 * How the replicas of one database share their signing keys, as named thresholds. A key is
 * published as `next` at the rotation before the one that makes it sign, so a verifier that caches
 * the JWKS has met it long before its first token. After rotation the old key stays published until
 * the last token it can have signed has expired.
 */
export interface KeyTimings {
  /** How often each replica re-reads `signing_keys` (a handful of rows). */
  pollMs: number;
  /**
   * A replica signs only with a key it has seen active this recently; older knowledge is re-read
   * before signing (so a replica whose reads fail stops signing instead of using a retired key).
   */
  staleMs: number;
  /**
   * How long after its retirement a key may still have signed something on a replica that had not
   * yet seen the rotation: more than `staleMs` plus one read. Leases issued up to then count.
   */
  signingGraceMs: number;
  /** Lower bound on the gap between two refreshes triggered by an unknown kid (a forged kid costs little). */
  unknownKidRefreshMs: number;
  /**
   * How long the next key must have been published before an automatic rotation makes it sign
   * (capped at the rotation period): the JWKS max-age (60 s) plus a few replica reads, so a
   * verifier caching the JWKS as we tell it to has the key before its first token. Matters after a
   * start replaced the next key (a change of alg); otherwise the next key is a whole period old.
   */
  publishLeadMs: number;
}

export const DEFAULT_KEY_TIMINGS: KeyTimings = {
  pollMs: 2_000,
  staleMs: 6_000,
  signingGraceMs: 15_000,
  unknownKidRefreshMs: 1_000,
  publishLeadMs: 75_000,
};

export interface RotationResult {
  activeKid: string;
  retiredKid: string | undefined;
  nextKid: string;
}

export interface PublishedKey {
  kid: string;
  alg: SigningAlg;
  state: KeyRow['state'];
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
  publishUntil: Date | null;
}

/** `admin:<key id>` for a rotation an admin asked for, `system:key-rotation` for a due one. */
type Actor = string;

/** What the ring did to a key, for the audit log: written in the same transaction as the change. */
export interface KeyEvent {
  kind: 'signing_key.rotated' | 'signing_key.resealed' | 'signing_key.publish_until';
  actor: Actor;
  data: Record<string, unknown>;
}

/**
 * Where key events go. The audit log sits above the keys (its checkpoints are signed with them), so
 * the ring declares this port and the composition root fills it with the audit log's append.
 */
export type RecordKeyEvent = (tx: Sql, event: KeyEvent) => Promise<void>;

/** How a replica's ring is opened: what it signs with, when it rotates, and its two ports. */
export interface KeyRingOptions {
  alg: SigningAlg;
  rotationMs: number | undefined;
  /** The latest expiry among leases issued in a range: how long a retired key stays published. */
  latestLeaseExpiry: (issuedFrom: number, issuedTo: number) => Promise<number | undefined>;
  recordEvent: RecordKeyEvent;
  clock: Clock;
  timings?: Partial<KeyTimings>;
}

/**
 * The signing keys one replica knows: the active key (private half in memory) and every public key
 * a verifier may meet. Rotation, manual or automatic, happens in one transaction under an advisory
 * lock, so replicas sharing a database rotate once per period; the others pick the new active key up
 * at their next read (every `pollMs`, or at once when a token names a kid they do not know).
 */
export class SigningKeyRing {
  private current!: SigningKey;
  private rows: KeyRow[] = [];
  private jwks: JWK[] = [];
  private shape = '';
  /** Local time of the last read that saw `current` active. */
  private confirmedAt = 0;
  /** Database clock minus local clock at the last read. */
  private offset = 0;
  private lastUnknownKidRefresh = -Infinity;
  private reading: Promise<void> | undefined;

  private readonly store: SigningKeyStore;
  private readonly alg: SigningAlg;
  /** Automatic rotation period; undefined when off. */
  private readonly rotationMs: number | undefined;
  private readonly latestLeaseExpiry: KeyRingOptions['latestLeaseExpiry'];
  private readonly recordEvent: RecordKeyEvent;
  private readonly clock: Clock;
  readonly timings: KeyTimings;

  private constructor(
    private readonly db: Database,
    private readonly kek: Buffer,
    options: KeyRingOptions,
  ) {
    this.store = new SigningKeyStore(db);
    this.alg = options.alg;
    this.rotationMs = options.rotationMs;
    this.latestLeaseExpiry = options.latestLeaseExpiry;
    this.recordEvent = options.recordEvent;
    this.clock = options.clock;
    this.timings = { ...DEFAULT_KEY_TIMINGS, ...options.timings };
  }

  /**
   * Call under the startup lock. On a fresh database: an active key and a next key in the
   * configured alg. Later starts: keys sealed under a previous KEK are re-sealed under `kek` (KEK
   * rotation), and the next key is replaced when the configured alg changed (it never signed
   * anything), so the next rotation moves to the configured alg. A stored key that neither the KEK
   * nor a previous one opens stops start: signing with a fresh key would orphan every outstanding
   * token. Returns how many keys were re-sealed.
   */
  static async bootstrap(
    startup: Sql,
    kek: Buffer,
    alg: SigningAlg,
    recordEvent: RecordKeyEvent,
    previousKeks: readonly Buffer[] = [],
  ): Promise<{ resealed: number }> {
    const store = new SigningKeyStore(startup);
    const resealed = await resealUnder(store, startup, kek, previousKeks, recordEvent);
    const { rows } = await store.published(false);
    if (!rows.some((row) => row.state === 'active')) await store.insert(startup, await generateSigningKey(alg), kek, 'active');
    const next = rows.find((row) => row.state === 'next');
    if (next?.alg !== alg) {
      await store.dropNext(startup);
      await store.insert(startup, await generateSigningKey(alg), kek, 'next');
    }
    return { resealed };
  }

  static async open(db: Database, kek: Buffer, options: KeyRingOptions): Promise<SigningKeyRing> {
    const ring = new SigningKeyRing(db, kek, options);
    await ring.refresh();
    return ring;
  }

  /** The active key, as last read. */
  get active(): SigningKey {
    return this.current;
  }

  /**
   * The key to sign with now. Synchronous while this replica's knowledge is fresh (the hot path);
   * otherwise it reads the keys first, and a read that fails refuses to sign (fail closed).
   */
  signingKey(): SigningKey | Promise<SigningKey> {
    if (this.clock.now() - this.confirmedAt <= this.timings.staleMs) return this.current;
    return this.refresh().then(
      () => this.current,
      () => {
        throw new TemporarilyUnavailable('the signing keys could not be read; try again');
      },
    );
  }

  /** Every public key a verifier may meet: active first, then next, then retired ones. Same array until a key changes. */
  get publicJwks(): JWK[] {
    return this.jwks;
  }

  /** The algorithms of the published keys. */
  get algorithms(): SigningAlg[] {
    return [...new Set(this.rows.map((row) => row.alg))];
  }

  get published(): PublishedKey[] {
    const date = (ms: number | null) => (ms === null ? null : new Date(ms));
    return this.rows.map((row) => ({
      kid: row.kid,
      alg: row.alg,
      state: row.state,
      createdAt: new Date(row.created_ms),
      activatedAt: date(row.activated_ms),
      retiredAt: date(row.retired_ms),
      publishUntil: date(row.publish_until_ms),
    }));
  }

  /** Re-reads the keys (one small query); concurrent callers share one read. */
  refresh(): Promise<void> {
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    return this.reading;
  }

  /**
   * A token names a kid this replica does not publish: another replica may have rotated since the
   * last read. Re-reads at most once per `unknownKidRefreshMs`; true when the key set changed.
   */
  async refreshForUnknownKid(): Promise<boolean> {
    const now = this.clock.now();
    if (now - this.lastUnknownKidRefresh < this.timings.unknownKidRefreshMs) return false;
    this.lastUnknownKidRefresh = now;
    const before = this.jwks;
    await this.refresh();
    return this.jwks !== before;
  }

  /**
   * Promotes the next key (published since the previous rotation) to active, retires the active
   * one, and publishes a new next key in the configured alg. With `ifDue`, only when the active key
   * has signed for a whole rotation period, decided under the lock on the database clock: replicas
   * racing for the same period rotate once.
   */
  async rotate(actor: Actor, ifDue = false): Promise<RotationResult | undefined> {
    const fresh = await generateSigningKey(this.alg);
    const result = await this.db.transaction(async (tx) => {
      await this.store.lockRotation(tx);
      const { now, rows } = await this.store.published(false, tx);
      const next = rows.find((row) => row.state === 'next');
      if (ifDue && !this.due(rows, now)) return undefined;
      // Normally the next key has been published since the previous rotation. A database from
      // before rotation existed has none: one is made and used at once.
      let promoted: { kid: string; alg: SigningAlg } | undefined = next;
      let upcoming = fresh;
      if (!promoted) {
        await this.store.insert(tx, fresh, this.kek, 'next');
        promoted = { kid: fresh.kid, alg: fresh.alg };
        upcoming = await generateSigningKey(this.alg);
      }
      const retiredKid = await this.store.promote(tx, promoted.kid);
      await this.store.insert(tx, upcoming, this.kek, 'next');
      await this.recordEvent(tx, {
        kind: 'signing_key.rotated',
        actor,
        data: {
          active_kid: promoted.kid,
          alg: promoted.alg,
          retired_kid: retiredKid ?? null,
          next_kid: upcoming.kid,
          next_alg: upcoming.alg,
        },
      });
      return { activeKid: promoted.kid, retiredKid, nextKid: upcoming.kid };
    });
    await this.refresh();
    return result;
  }

  /**
   * One maintenance pass, every `pollMs` on every replica: re-read the keys, rotate when the period
   * is over, and give each retired key the time it leaves the JWKS once nothing can still be signed
   * with it.
   */
  async tick(): Promise<void> {
    await this.refresh();
    const now = this.clock.now() + this.offset;
    if (this.due(this.rows, now)) await this.rotate('system:key-rotation', true);
    for (const row of this.rows) {
      if (row.state !== 'retired' || row.publish_until_ms !== null || row.retired_ms === null) continue;
      const signedUntil = row.retired_ms + this.timings.signingGraceMs;
      if (signedUntil > now) continue;
      await this.schedule(row, signedUntil);
    }
  }

  /** An automatic rotation is due: the active key has signed for a period, and the next key has been published long enough. */
  private due(rows: readonly KeyRow[], now: number): boolean {
    if (this.rotationMs === undefined) return false;
    const active = rows.find((row) => row.state === 'active');
    const next = rows.find((row) => row.state === 'next');
    if ((active?.activated_ms ?? 0) + this.rotationMs > now) return false;
    return !next || next.created_ms + Math.min(this.timings.publishLeadMs, this.rotationMs) <= now;
  }

  /**
   * A retired key stays published until every token it can have signed has expired: the latest
   * expiry among leases issued while it was active (plus the grace for replicas that had not yet
   * seen the rotation). Lease ids are time-ordered, so this is one range read, once per key.
   */
  private async schedule(row: KeyRow, signedUntil: number): Promise<void> {
    // Leases issued before the key became active were not signed with it; the margins absorb the
    // gap between a replica's estimate of the database clock (which dates lease ids) and the clock.
    const from = (row.activated_ms ?? row.created_ms) - this.timings.signingGraceMs;
    const latest = await this.latestLeaseExpiry(from, signedUntil + this.timings.signingGraceMs);
    const until = Math.max(signedUntil, latest ?? 0);
    await this.db.transaction(async (tx) => {
      if (await this.store.setPublishUntil(tx, row.kid, until)) {
        await this.recordEvent(tx, {
          kind: 'signing_key.publish_until',
          actor: 'system:key-rotation',
          data: { kid: row.kid, publish_until: new Date(until).toISOString() },
        });
      }
    });
    await this.refresh();
  }

  private async read(): Promise<void> {
    const localBefore = this.clock.now();
    const { now, rows } = await this.store.published(true);
    const active = rows.find((row) => row.state === 'active');
    if (!active || active.sealed === null) throw new Error('no active signing key');
    if (this.current?.kid !== active.kid) this.current = openSigningKey(active, active.sealed, this.kek);
    for (const row of rows) row.sealed = null;
    this.rows = rows;
    this.offset = now - localBefore;
    this.confirmedAt = localBefore;
    const shape = rows.map((row) => `${row.kid}:${row.state}`).join(',');
    if (shape !== this.shape) {
      this.shape = shape;
      this.jwks = rows.map((row) => row.public_jwk);
    }
  }
}

/**
 * Opens every kept private key with the current KEK, or else with a previous one and re-seals it
 * under the current: after one start with TOLLGATE_KEK_PREVIOUS the old KEK opens nothing.
 */
async function resealUnder(
  store: SigningKeyStore,
  tx: Sql,
  kek: Buffer,
  previousKeks: readonly Buffer[],
  recordEvent: RecordKeyEvent,
): Promise<number> {
  let resealed = 0;
  for (const { kid, sealed } of await store.sealedKeys(tx)) {
    if (opens(sealed, kek, kid)) continue;
    const previous = previousKeks.find((candidate) => opens(sealed, candidate, kid));
    if (previous === undefined) {
      throw new ConfigurationError([
        `TOLLGATE_KEK: does not decrypt the stored signing keys (was the key-encryption key changed? put the old one in TOLLGATE_KEK_PREVIOUS)`,
      ]);
    }
    await store.reseal(tx, kid, encrypt(decrypt(sealed, previous, kid), kek, kid));
    await recordEvent(tx, { kind: 'signing_key.resealed', actor: 'system:startup', data: { kid } });
    resealed++;
  }
  return resealed;
}

function opens(sealed: string, kek: Buffer, kid: string): boolean {
  try {
    decrypt(sealed, kek, kid);
    return true;
  } catch {
    return false;
  }
}
