import type { Clock } from '../clock/index.js';
import { ExpiringMap } from '../clock/index.js';
import type { Issuer } from './issuer.js';

export interface IssuerLookup {
  /** The issuer whose tokens carry this `iss`. */
  findByIssuer(iss: string): Promise<Issuer | undefined>;
}

/**
 * Issuer rows by `iss`, remembered for a second, as workload rows are (see CachedWorkloads): a change
 * through this replica is forgotten at once, one on another replica is seen within `ttlMs`. Withdrawing
 * an issuer also disables its workloads, which the permit statement re-checks, so that second never
 * lets a credential out.
 */
export class CachedIssuers implements IssuerLookup {
  /** `null` remembers that no issuer has this `iss` (tokens of unknown issuers cost no query each). */
  private readonly entries: ExpiringMap<string, Issuer | null>;

  constructor(
    private readonly source: IssuerLookup,
    private readonly clock: Clock,
    private readonly ttlMs = 1000,
    maxEntries = 1000,
  ) {
    this.entries = new ExpiringMap(maxEntries);
  }

  async findByIssuer(iss: string): Promise<Issuer | undefined> {
    const now = this.clock.now();
    const hit = this.entries.get(iss, now);
    if (hit !== undefined) return hit ?? undefined;
    const issuer = await this.source.findByIssuer(iss);
    this.entries.set(iss, issuer ?? null, now + this.ttlMs, now);
    return issuer;
  }

  /** An issuer changed through this replica; its `iss` may have changed too, so forget them all. */
  forget(): void {
    this.entries.clear();
  }
}
