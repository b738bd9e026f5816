import type { ToolBoundary } from '../policy/boundary.js';

/** What a provider needs to mint a credential for a committed lease. */
export interface IssueRequest {
  lease: { id: string; issuedAt: number; expiresAt: number; action: string; resource: string | null };
  task: { id: string; intent: string; subject: string };
  workloadId: string;
  boundary: ToolBoundary;
  /** Set when the request proved possession of a key (RFC 9449 DPoP): the credential is bound to it. */
  confirmation?: { jkt: string } | undefined;
}

/** The credential as the bot receives it (`kind` plus the provider's own fields). */
export interface IssuedCredential {
  kind: string;
  [field: string]: unknown;
}

/**
 * One kind of credential, as Vault's secret types are: it mints for a committed lease and revokes
 * at its source. Providers keep no timers and retry nothing themselves; the lease machinery owns
 * expiry and retries.
 */
export interface CredentialProvider {
  readonly kind: string;
  issue(request: IssueRequest): Promise<IssuedCredential>;
  /** Revokes at the source. Credentials that die with their lease row (our JWTs) do nothing here. */
  revoke(lease: { id: string; externalHandle: string | null }): Promise<void>;
}

/** The catalog of credential providers, by kind. */
export class CredentialProviders {
  private readonly byKind = new Map<string, CredentialProvider>();

  register(provider: CredentialProvider): this {
    if (this.byKind.has(provider.kind)) throw new Error(`credential provider "${provider.kind}" registered twice`);
    this.byKind.set(provider.kind, provider);
    return this;
  }

  get(kind: string): CredentialProvider {
    const provider = this.byKind.get(kind);
    if (!provider) throw new Error(`no credential provider for kind "${kind}"`);
    return provider;
  }
}
