import { readFile } from 'node:fs/promises';
import nodeVault from 'node-vault';
import type { VaultConfig } from './config.js';
import { SourceError } from '../provider.js';

/** The node-vault client, as Tollgate uses it. */
export type VaultClient = ReturnType<typeof nodeVault>;

/** Renew (or log in again) once less than this share of the token's TTL is left. */
const RENEW_WHEN_LEFT = 1 / 3;

/**
 * Tollgate's own Vault login: a token, AppRole or Kubernetes auth, made on first use. The token is
 * renewed (renew-self) before it expires, or, when it cannot be renewed, obtained again by logging
 * in. Every call goes through `call`, which maps failures to SourceError without any payload.
 */
export class VaultSession {
  readonly client: VaultClient;
  /** When the token expires (ms since the epoch); Infinity for a token without TTL (a root token). */
  private expiresAt = 0;
  private ttlMs = 0;
  private renewable = false;
  private loggingIn: Promise<void> | undefined;

  constructor(
    private readonly config: VaultConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.client = nodeVault({
      endpoint: config.addr,
      namespace: config.namespace,
      token: config.auth.method === 'token' ? config.auth.token : undefined,
      requestOptions: { timeout: config.timeoutMs },
    });
  }

  /** Runs a Vault call with a live token; failures become SourceError (nothing issued unless it timed out). */
  async call<T>(run: (client: VaultClient) => Promise<T>): Promise<T> {
    try {
      await this.ensureToken();
      return await run(this.client);
    } catch (error) {
      const failure = toSourceError(error);
      // Refused: the token was revoked or lapsed early. Log in again on the next call.
      if (failure.code === 'vault_http_403') this.expiresAt = 0;
      throw failure;
    }
  }

  private async ensureToken(): Promise<void> {
    const left = this.expiresAt - this.now();
    if (left > this.ttlMs * RENEW_WHEN_LEFT) return;
    this.loggingIn ??= this.refresh().finally(() => (this.loggingIn = undefined));
    await this.loggingIn;
  }

  private async refresh(): Promise<void> {
    const { auth } = this.config;
    // A token that can still be renewed is renewed; one that cannot, or has lapsed, is replaced.
    if (this.expiresAt > this.now() && this.renewable) {
      try {
        this.remember((await this.client.tokenRenewSelf()) as AuthResponse);
        return;
      } catch {
        if (auth.method === 'token') throw new SourceError('vault_token_renewal_failed', true);
      }
    }
    if (auth.method === 'token') {
      const lookup = (await this.client.tokenLookupSelf()) as { data?: { ttl?: number; renewable?: boolean } };
      const ttl = lookup.data?.ttl ?? 0;
      this.setExpiry(ttl, lookup.data?.renewable === true);
      return;
    }
    if (auth.method === 'approle') {
      this.remember(
        (await this.client.approleLogin({ role_id: auth.roleId, secret_id: auth.secretId, mount_point: auth.mount })) as AuthResponse,
      );
      return;
    }
    const jwt = (await readFile(auth.jwtPath, 'utf8')).trim();
    this.remember((await this.client.kubernetesLogin({ role: auth.role, jwt, mount_point: auth.mount })) as AuthResponse);
  }

  private remember(response: AuthResponse): void {
    if (response.auth?.client_token) this.client.token = response.auth.client_token;
    this.setExpiry(response.auth?.lease_duration ?? 0, response.auth?.renewable === true);
  }

  private setExpiry(ttlSeconds: number, renewable: boolean): void {
    // A TTL of 0 is a token that never expires (root, or a periodic token's lookup in dev mode).
    this.ttlMs = ttlSeconds * 1000;
    this.expiresAt = ttlSeconds > 0 ? this.now() + this.ttlMs : Number.POSITIVE_INFINITY;
    this.renewable = renewable;
  }
}

interface AuthResponse {
  auth?: { client_token?: string; lease_duration?: number; renewable?: boolean };
}

/**
 * Vault's answers and network failures, named by status or code only: Vault's error messages can
 * echo request data, so they go nowhere. Only a timeout leaves it open whether Vault acted.
 */
export function toSourceError(error: unknown): SourceError {
  if (error instanceof SourceError) return error;
  const e = error as { response?: { statusCode?: number }; code?: string };
  if (typeof e?.response?.statusCode === 'number') return new SourceError(`vault_http_${e.response.statusCode}`, true);
  const code = typeof e?.code === 'string' ? e.code : 'error';
  const timedOut = code === 'ECONNABORTED' || code === 'ETIMEDOUT' || code === 'ECONNRESET' || code === 'ERR_CANCELED';
  return new SourceError(`vault_${code.toLowerCase()}`, !timedOut);
}
