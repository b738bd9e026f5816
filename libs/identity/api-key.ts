import { createHash, randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import { InsufficientScope } from '../errors/index.js';

export type ApiKeyRole = 'admin' | 'reviewer' | 'resource_server';
export const API_KEY_ROLES: readonly ApiKeyRole[] = ['admin', 'reviewer', 'resource_server'];

/** A stored API key: never the key itself, which is shown once at creation and kept only as a hash. */
export interface ApiKey {
  /** Also the OAuth client_id of the key (client_secret_basic, client_secret_post, private_key_jwt). */
  id: string;
  role: ApiKeyRole;
  /** A resource server's tool (the boundary `tool`, the token `aud`); null for the other roles. */
  audience: string | null;
  label: string | null;
  /** Public keys a resource server signs private_key_jwt client assertions with. */
  jwks: { keys: JWK[] } | null;
  createdAt: Date;
  revokedAt: Date | null;
}

/** The id of the key from TOLLGATE_ADMIN_KEY, which is held in memory only. */
export const BOOTSTRAP_KEY_ID = 'bootstrap';

/**
 * A prefix per role, so a leaked key says what it is and secret scanners can match it. The 256-bit
 * random part makes a plain SHA-256 enough to store: there is nothing to brute-force.
 */
const PREFIXES: Record<ApiKeyRole, string> = { admin: 'tgadm_', reviewer: 'tgrev_', resource_server: 'tgrs_' };

export function newApiKeySecret(role: ApiKeyRole): string {
  return `${PREFIXES[role]}${randomBytes(32).toString('base64url')}`;
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * What a caller may do. `read` and `write` are the admin and review API (GET is a read, anything
 * else a write); `approve` is the one write a reviewer may make: approving or denying a credential
 * request that waits for a human; `introspect`, `revoke` and `events` are the resource-server
 * endpoints, where a resource server is further held to its own audience.
 */
export type Access = 'read' | 'write' | 'approve' | 'introspect' | 'revoke' | 'events';

const GRANTS: Record<ApiKeyRole, ReadonlySet<Access>> = {
  admin: new Set(['read', 'write', 'approve', 'introspect', 'revoke', 'events']),
  reviewer: new Set(['read', 'approve', 'introspect', 'events']),
  resource_server: new Set(['introspect', 'revoke', 'events']),
};

export function permits(role: ApiKeyRole, access: Access): boolean {
  return GRANTS[role].has(access);
}

/** 403 insufficient_scope unless the key's role allows `access`. */
export function requireAccess(key: Pick<ApiKey, 'role'>, access: Access): void {
  if (!permits(key.role, access)) throw new InsufficientScope(`a ${key.role} key may not ${DESCRIPTIONS[access]}`);
}

const DESCRIPTIONS: Record<Access, string> = {
  read: 'read the admin or review API',
  write: 'change anything',
  approve: 'approve or deny credential requests',
  introspect: 'introspect tokens',
  revoke: 'revoke tokens',
  events: 'follow revocation events',
};

/** Only a resource server is held to an audience; admins and reviewers see every tool. */
export function audienceScope(key: Pick<ApiKey, 'role' | 'audience'>): string | undefined {
  return key.role === 'resource_server' ? key.audience! : undefined;
}
