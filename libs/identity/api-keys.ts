import type { JWK } from 'jose';
import { appendAudit } from '../audit/index.js';
import type { Clock } from '../clock/index.js';
import { ExpiringMap } from '../clock/index.js';
import { thenForget, type Database, type Sql } from '../db/index.js';
import { InvalidClient, NotFound } from '../errors/index.js';
import { isUuid, uuidv7 } from '../ids/index.js';
import { BOOTSTRAP_KEY_ID, hashKey, newApiKeySecret, type ApiKey, type ApiKeyRole } from './api-key.js';
import { ApiKeyStore } from './api-key-store.js';

export interface NewApiKey {
  role: ApiKeyRole;
  audience?: string | undefined;
  label?: string | undefined;
  jwks?: { keys: JWK[] } | undefined;
}

/**
 * API keys: created and revoked at runtime, looked up in the database by every replica. A looked-up
 * key (or its absence) is remembered for `ttlMs`, so the hot path (introspection) hashes the
 * presented key and reads a map; a revocation reaches every replica within `ttlMs`, and the
 * replica that made it at once (its memory is dropped when the change is over). The bootstrap key
 * from the environment lives in memory only and cannot be revoked through the API.
 */
export class ApiKeys {
  /** Pending lookups are remembered too: a burst of requests with one key costs one query. */
  private readonly byHash: ExpiringMap<string, Promise<ApiKey | undefined>>;
  private readonly byId: ExpiringMap<string, Promise<ApiKey | undefined>>;

  constructor(
    private readonly db: Database,
    private readonly store: ApiKeyStore,
    private readonly clock: Clock,
    private readonly bootstrapHash: string | undefined,
    private readonly ttlMs = 1000,
    maxEntries = 10_000,
  ) {
    this.byHash = new ExpiringMap(maxEntries);
    this.byId = new ExpiringMap(maxEntries);
  }

  /**
   * At start, under the startup lock: with no key in the environment and none stored, an admin key
   * is generated, its hash stored, and the key returned once for the operator (like Vault's dev
   * root token).
   */
  static async bootstrap(sql: Sql, bootstrapKey: string | undefined): Promise<{ generated?: string }> {
    if (bootstrapKey !== undefined) return {};
    const store = new ApiKeyStore(sql);
    if ((await store.count()) > 0) return {};
    const generated = newApiKeySecret('admin');
    await store.insert(sql, {
      id: uuidv7(),
      hash: hashKey(generated),
      role: 'admin',
      audience: null,
      label: 'generated at first start',
      jwks: null,
    });
    await appendAudit(sql, { kind: 'api_key.created', actor: 'system:start', data: { role: 'admin', label: 'generated at first start' } });
    return { generated };
  }

  /** The live key a presented secret is; 401 invalid_client for anything else. */
  async authenticate(presented: string | undefined, challenge: 'Bearer' | 'Basic' = 'Bearer'): Promise<ApiKey> {
    if (!presented || presented.length > 512) throw new InvalidClient('a valid API key is required', challenge);
    const hash = hashKey(presented);
    if (hash === this.bootstrapHash) return BOOTSTRAP_KEY;
    const key = await this.remembered(this.byHash, hash, () => this.store.findByHash(hash));
    if (!key) throw new InvalidClient('a valid API key is required', challenge);
    return key;
  }

  /** The live key with this id (an OAuth client_id), if any. */
  async client(id: string): Promise<ApiKey | undefined> {
    if (!isUuid(id)) return undefined;
    return this.remembered(this.byId, id, () => this.store.findById(id));
  }

  /**
   * Which of these key ids are still live, asked of the database (not the cache): the event feed
   * checks every open stream's key with it once a second. The bootstrap key cannot be revoked.
   */
  async liveIds(ids: readonly string[]): Promise<Set<string>> {
    const live = await this.store.liveIds(ids.filter(isUuid));
    if (ids.includes(BOOTSTRAP_KEY_ID)) live.add(BOOTSTRAP_KEY_ID);
    return live;
  }

  async create(input: NewApiKey, actor: string): Promise<{ apiKey: ApiKey; secret: string }> {
    const secret = newApiKeySecret(input.role);
    const apiKey = await thenForget(
      () =>
        this.db.transaction(async (tx) => {
          const created = await this.store.insert(tx, {
            id: uuidv7(),
            hash: hashKey(secret),
            role: input.role,
            audience: input.audience ?? null,
            label: input.label ?? null,
            jwks: input.jwks ?? null,
          });
          await appendAudit(tx, { kind: 'api_key.created', actor, data: auditData(created) });
          return created;
        }),
      // A "no such key" remembered a moment ago must not outlive the key's creation here.
      () => this.forgetAll(),
    );
    return { apiKey, secret };
  }

  list(): Promise<ApiKey[]> {
    return this.store.list();
  }

  /** Revokes a key: it stops working on this replica at once, on the others within a second. */
  async revoke(id: string, actor: string): Promise<ApiKey> {
    if (!isUuid(id)) throw new NotFound('no such API key');
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          const revoked = await this.store.revoke(tx, id);
          if (!revoked) {
            const existing = await this.store.find(id, tx);
            if (existing) return existing; // already revoked: nothing changes, nothing to audit
            throw new NotFound('no such API key');
          }
          await appendAudit(tx, { kind: 'api_key.revoked', actor, data: auditData(revoked) });
          return revoked;
        }),
      () => this.forgetAll(),
    );
  }

  /** Records a client assertion's jti; false on a replay. */
  recordAssertion(clientId: string, jti: string, expiresAtMs: number): Promise<boolean> {
    return this.store.recordAssertion(clientId, jti, expiresAtMs);
  }

  private async remembered(
    entries: ExpiringMap<string, Promise<ApiKey | undefined>>,
    key: string,
    load: () => Promise<ApiKey | undefined>,
  ): Promise<ApiKey | undefined> {
    const now = this.clock.now();
    let pending = entries.get(key, now);
    if (!pending) {
      pending = load();
      entries.set(key, pending, now + this.ttlMs, now);
      // A failed lookup (the database away) is not remembered: the next request asks again.
      pending.catch(() => entries.delete(key));
    }
    return pending;
  }

  private forgetAll(): void {
    this.byHash.clear();
    this.byId.clear();
  }
}

const BOOTSTRAP_KEY: ApiKey = {
  id: BOOTSTRAP_KEY_ID,
  role: 'admin',
  audience: null,
  label: 'TOLLGATE_ADMIN_KEY',
  jwks: null,
  createdAt: new Date(0),
  revokedAt: null,
};

export function bootstrapHashOf(key: string | undefined): string | undefined {
  return key === undefined ? undefined : hashKey(key);
}

/** What the audit log keeps of a key: never the key, nor its hash. */
function auditData(key: ApiKey): Record<string, unknown> {
  return {
    api_key_id: key.id,
    role: key.role,
    audience: key.audience,
    label: key.label,
    jwks_kids: key.jwks?.keys.map((jwk) => jwk.kid ?? null) ?? null,
  };
}
