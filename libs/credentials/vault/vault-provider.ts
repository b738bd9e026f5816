import { z } from 'zod';
import { systemClock, type Clock } from '../../clock/index.js';
import type { CredentialKind, CredentialProvider, ExternalHandle, Issued, IssueRequest } from '../provider.js';
import { SourceError } from '../provider.js';
import { readVaultConfig, type VaultConfig } from './config.js';
import { VaultSession } from './vault-session.js';

/**
 * Boundary settings: the Vault path that issues a leased secret (a dynamic secrets engine, such as
 * `database/creds/<role>`), read (GET) or written (POST, with `data`), and optionally wrapped: the
 * bot then gets a single-use wrapping token valid for `wrap_ttl` seconds instead of the secret.
 */
export const vaultSettings = z
  .strictObject({
    kind: z.literal('vault'),
    path: z
      .string()
      .regex(/^[a-z0-9][a-zA-Z0-9._/-]{0,255}$/, 'must be a Vault path such as database/creds/readonly')
      .refine(
        (path) => !path.split('/').some((part) => part === '' || part === '.' || part === '..'),
        'must not contain empty, . or .. segments',
      )
      .refine(
        (path) => !/^(sys|auth|identity|cubbyhole)\//.test(path),
        'must be a secrets engine path, not sys/, auth/, identity/ or cubbyhole/',
      ),
    method: z.enum(['read', 'write']).optional(),
    data: z
      .record(
        z.string().regex(/^[a-z_][a-z0-9_]{0,63}$/, 'keys must match [a-z_][a-z0-9_]{0,63}'),
        z.union([z.string().max(1024), z.number(), z.boolean()]),
      )
      .refine((data) => Object.keys(data).length <= 32, 'must have at most 32 fields')
      .optional(),
    wrap_ttl: z.number().int('must be an integer').min(1, 'must be at least 1').max(3600, 'must be at most 3600').optional(),
  })
  .refine((settings) => settings.data === undefined || settings.method === 'write', {
    message: 'is sent only with method "write"',
    path: ['data'],
  });
export type VaultSettings = z.infer<typeof vaultSettings>;

/**
 * The catalog entry. Tollgate's own Vault login comes from Vault's standard variables (VAULT_ADDR,
 * VAULT_TOKEN, …: vault/config.ts), checked at start with the rest of the configuration; without
 * VAULT_ADDR the kind exists but every call fails as `vault_not_configured`.
 */
export const vaultCredential: CredentialKind<VaultSettings, VaultConfig | undefined> = {
  kind: 'vault',
  settings: vaultSettings,
  configure: readVaultConfig,
  create: ({ clock }, config) => new VaultCredentialProvider(config ? new VaultSession(config, () => clock.now()) : undefined, clock),
};

/** What Vault answers for a leased secret (and for sys/wrapping/wrap). */
interface SecretResponse {
  lease_id?: string;
  lease_duration?: number;
  renewable?: boolean;
  data?: Record<string, unknown>;
  wrap_info?: { token: string; ttl: number; creation_time?: string };
}

/**
 * Vault dynamic secrets. The Vault lease id is the external handle: revoking the Tollgate lease
 * revokes it with sys/leases/revoke, and the Tollgate lease never outlives Vault's lease_duration.
 * The secret is returned once; Tollgate keeps only the lease id (and the audit log a hash).
 */
export class VaultCredentialProvider implements CredentialProvider<VaultSettings> {
  readonly kind = 'vault';
  readonly external = true;

  constructor(
    private readonly session: VaultSession | undefined,
    private readonly clock: Clock = systemClock,
  ) {}

  async issue({ settings, lease }: IssueRequest<VaultSettings>): Promise<Issued> {
    const session = this.vault();
    const secret = (await session.call((client) =>
      settings.method === 'write' ? client.write(settings.path, settings.data ?? {}) : client.read(settings.path),
    )) as SecretResponse;
    if (typeof secret?.data !== 'object' || secret.data === null) throw new SourceError('vault_no_secret_data', false);
    // Not a leased secret (a KV read, say): nothing to revoke, nothing to expire it but our lease.
    const leaseId = secret.lease_id ? secret.lease_id : undefined;
    const leaseDuration = typeof secret.lease_duration === 'number' && secret.lease_duration > 0 ? secret.lease_duration : undefined;
    const sourceExpiresAt = leaseDuration === undefined ? undefined : lease.issuedAt + leaseDuration * 1000;
    const ttl = Math.round((Math.min(lease.expiresAt, sourceExpiresAt ?? Infinity) - lease.issuedAt) / 1000);

    if (settings.wrap_ttl === undefined) {
      return { credential: { kind: 'vault', data: secret.data, lease_duration: ttl }, externalHandle: leaseId, sourceExpiresAt };
    }
    // Wrapped by a second call rather than by wrapping the first: a wrapped answer hides the lease
    // id, and without it the secret could not be revoked when the Tollgate lease ends. The secret
    // is still lost track of at once, and the lease id, if the wrap fails, goes to the outbox.
    let wrapped: SecretResponse;
    try {
      wrapped = (await session.call((client) =>
        client.write('sys/wrapping/wrap', secret.data, { headers: { 'X-Vault-Wrap-TTL': `${settings.wrap_ttl}s` } }),
      )) as SecretResponse;
    } catch (error) {
      // The secret exists: the lease must be revoked, not dropped.
      throw new SourceError(error instanceof SourceError ? error.code : 'vault_wrap_failed', false);
    }
    if (!wrapped?.wrap_info?.token) throw new SourceError('vault_no_wrap_info', false);
    return {
      credential: { kind: 'vault', wrapping_token: wrapped.wrap_info.token, wrap_ttl: wrapped.wrap_info.ttl, lease_duration: ttl },
      externalHandle: leaseId,
      sourceExpiresAt,
    };
  }

  async revoke({ externalHandle }: ExternalHandle): Promise<void> {
    // No lease id (a secret without a lease, or a broker that stopped before recording it): Vault
    // ends such a lease at its own TTL; there is nothing here to revoke by.
    if (externalHandle === null) return;
    await this.vault().call((client) => client.revoke({ lease_id: externalHandle }));
  }

  async renew({ externalHandle }: ExternalHandle, ttlSeconds: number): Promise<{ sourceExpiresAt: number }> {
    if (externalHandle === null) throw new SourceError('vault_no_lease', true);
    const renewed = (await this.vault().call((client) =>
      client.write('sys/leases/renew', { lease_id: externalHandle, increment: ttlSeconds }),
    )) as SecretResponse;
    return { sourceExpiresAt: this.clock.now() + (renewed.lease_duration ?? 0) * 1000 };
  }

  private vault(): VaultSession {
    if (!this.session) throw new SourceError('vault_not_configured', true);
    return this.session;
  }
}
