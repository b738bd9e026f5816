import type { z } from 'zod';
import type { AuditEvent, CanonicalParams } from '../audit/index.js';
import type { Clock } from '../clock/index.js';
import type { Env } from '../config/index.js';
import type { Database, Sql } from '../db/index.js';
import type { SigningKey } from '../keys/index.js';
import type { ToolBoundary } from '../policy/index.js';

/** A boundary's `credential` settings: `kind` names the provider, the rest is that provider's. */
export interface CredentialSettings {
  kind: string;
}

/** What a provider needs to mint a credential for a committed lease. */
export interface IssueRequest<S extends CredentialSettings = CredentialSettings> {
  lease: { id: string; issuedAt: number; expiresAt: number; action: string; resource: string | null };
  task: { id: string; intent: string; subject: string };
  workloadId: string;
  boundary: ToolBoundary;
  /** The boundary's credential settings, already checked against the kind's schema when it was written. */
  settings: S;
  /** The call's params as the bot sent them (parsed JSON); undefined when it sent none. */
  params?: Record<string, unknown> | undefined;
  /** Their digest and canonical size, as the lease recorded them (computed when absent). */
  canonicalParams?: CanonicalParams | undefined;
  /** Set when the request proved possession of a key (RFC 9449 DPoP): the credential is bound to it. */
  confirmation?: { jkt: string } | undefined;
}

/** The credential as the bot receives it (`kind` plus the provider's own fields). */
export interface IssuedCredential {
  kind: string;
  [field: string]: unknown;
}

/** What a provider hands back: the payload for the bot (once; never stored), and what to keep. */
export interface Issued {
  credential: IssuedCredential;
  /** What the source calls this credential (a Vault lease id): stored on the lease, used to revoke it. */
  externalHandle?: string | undefined;
  /** When the source itself ends the credential (ms since the epoch): the lease is cut to it. */
  sourceExpiresAt?: number | undefined;
}

/**
 * A source call that failed. `nothingIssued` is true only when the source certainly created nothing
 * (it could not be reached, or answered with an error): the lease can then simply be dropped. A
 * timeout is not that: the credential may exist, so the lease goes to the outbox to be revoked.
 * `code` names the failure (an HTTP status, a network code), never a payload.
 */
export class SourceError extends Error {
  constructor(
    readonly code: string,
    readonly nothingIssued: boolean,
  ) {
    super(`credential source failed: ${code}`);
  }
}

/** What revoking (or renewing) needs: the lease and the handle the source gave at issuance. */
export interface ExternalHandle {
  leaseId: string;
  externalHandle: string | null;
}

/**
 * One kind of credential, as Vault's secret types are: it mints for a committed lease and revokes
 * at its source. Providers keep no timers and retry nothing themselves; the lease machinery owns
 * expiry, retries and restore (as Vault's expiration manager does for its secret engines).
 */
export interface CredentialProvider<S extends CredentialSettings = CredentialSettings> {
  readonly kind: S['kind'];
  /**
   * True when the credential lives at a source that must be told when the lease ends. Such leases go
   * through the durable outbox (issuing → active → revoking → revoked); others (our JWTs, which die
   * with their lease row) keep the one-statement hot path.
   */
  readonly external: boolean;
  issue(request: IssueRequest<S>): Promise<Issued>;
  /** Revokes at the source; throws when the source did not confirm (the outbox retries). Idempotent. */
  revoke(handle: ExternalHandle): Promise<void>;
  /** Extends the credential at its source, when the source supports it; returns the new source expiry. */
  renew?(handle: ExternalHandle, ttlSeconds: number): Promise<{ sourceExpiresAt: number }>;
}

/**
 * Everything a provider may be built from, in one place (as SPIRE hands its plugins one set of host
 * services): a provider talks to its source; what it needs of Tollgate comes through here.
 */
export interface ProviderContext {
  /** Tollgate's issuer URL: the `iss` of the credentials it signs. */
  issuer: string;
  clock: Clock;
  /** Synchronous on the hot path; a promise only when this replica must re-read its keys first. */
  signingKey: () => SigningKey | Promise<SigningKey>;
  /** Appends an audit event in the caller's transaction, so it commits with the change it describes. */
  audit: (sql: Sql, event: AuditEvent) => Promise<void>;
  /** The shared database, for a kind's own store (STS: one writer per role's deny policy across replicas). */
  db: Database;
}

/**
 * One entry of the catalog (libs/credentials/catalog.ts): the settings a boundary may carry for the
 * kind (a strict zod object with `kind` as a literal, checked when the boundary is written), the
 * kind's own start-up configuration (its source's address and login: read and checked with the rest
 * of the configuration, so a bad deployment is reported in one pass), and how to build its provider.
 */
export interface CredentialKind<S extends CredentialSettings = CredentialSettings, C = unknown> {
  readonly kind: S['kind'];
  readonly settings: z.ZodType<S>;
  /** TOLLGATE_* variables `configure` reads (the unknown-setting check must know them). */
  readonly variables?: readonly string[];
  /** Reads the kind's own variables; pushes each problem (naming the variable, never a secret) to `problems`. */
  configure?(env: Env, problems: string[]): C;
  /** `config` is what `configure` returned (undefined for a kind without one). */
  create(context: ProviderContext, config: C): CredentialProvider<S>;
}

/** The credential providers of a running broker, by kind. */
export class CredentialProviders {
  private readonly byKind = new Map<string, CredentialProvider>();

  register<S extends CredentialSettings>(provider: CredentialProvider<S>): this {
    if (this.byKind.has(provider.kind)) throw new Error(`credential provider "${provider.kind}" registered twice`);
    this.byKind.set(provider.kind, provider as unknown as CredentialProvider);
    return this;
  }

  get(kind: string): CredentialProvider {
    const provider = this.byKind.get(kind);
    if (!provider) throw new Error(`no credential provider for kind "${kind}"`);
    return provider;
  }

  /** Whether leases of this kind must be revoked at a source (and so go through the outbox). */
  isExternal(kind: string): boolean {
    return this.byKind.get(kind)?.external ?? false;
  }
}
