import type { JWTPayload } from 'jose';
import { isUuid } from '../ids/index.js';
import type { LeaseLookup } from './lease-reads.js';
import type { Lease } from './lease.js';

export type TokenVerifier = (token: string) => Promise<JWTPayload | undefined>;

/**
 * RFC 7662 introspection. The signature says the token is ours; the lease row says whether it is
 * still good. A revoked or expired lease never reads active again, whatever the token's exp claims.
 */
export class Introspection {
  constructor(
    private readonly leases: LeaseLookup,
    private readonly verify: TokenVerifier,
  ) {}

  /**
   * With `audience` (a resource server asking), a token for another tool answers inactive, as RFC
   * 7662 §4 allows: a resource server learns nothing about credentials that are not for it.
   */
  async introspect(token: string, audience?: string): Promise<Record<string, unknown>> {
    const { claims, lease } = await this.read(token, audience);
    if (!claims || !lease || lease.state !== 'active') return { active: false };
    const answer: Record<string, unknown> = {
      active: true,
      iss: claims.iss,
      sub: claims.sub,
      aud: claims.aud,
      exp: claims.exp,
      iat: claims.iat,
      nbf: claims.nbf,
      jti: claims.jti,
      client_id: claims.client_id,
      scope: claims.scope,
      // RFC 9449 §6.2: a DPoP-bound token says so, with the key it is bound to.
      token_type: claims.cnf ? 'DPoP' : 'Bearer',
      act: claims.act,
      task_id: lease.taskId,
      lease_state: lease.state,
    };
    if (claims.cnf) answer.cnf = claims.cnf;
    answer.authorization_details = [toolCallOf(claims, lease)];
    return answer;
  }

  /**
   * The lease a valid token of ours names, if any (for RFC 7009 revocation); with `audience`, only
   * if the token is for that tool.
   */
  async leaseOf(token: string, audience?: string): Promise<{ id: string; workloadId: string } | undefined> {
    const { lease } = await this.read(token, audience);
    return lease && { id: lease.id, workloadId: lease.workloadId };
  }

  /** The token's claims if it is one of ours (for `audience`, when given), and the lease its jti names. */
  private async read(token: string, audience?: string): Promise<{ claims?: JWTPayload; lease?: Lease }> {
    const claims = token.length <= 16_384 ? await this.verify(token) : undefined;
    if (!claims || typeof claims.jti !== 'string' || !isUuid(claims.jti)) return {};
    if (audience !== undefined && !hasAudience(claims, audience)) return {};
    return { claims, lease: await this.leases.find(claims.jti) };
  }
}

function hasAudience(claims: JWTPayload, audience: string): boolean {
  return Array.isArray(claims.aud) ? claims.aud.includes(audience) : claims.aud === audience;
}

/**
 * The token's `tool_call` detail as the lease row states it: the lease decides the action,
 * resource and digest. A lease issued before digests were kept has none, and the answer leaves
 * `params_digest` (and the params, which nothing here could vouch for) out rather than guess.
 */
function toolCallOf(claims: JWTPayload, lease: Lease): Record<string, unknown> {
  const detail: Record<string, unknown> = { type: 'tool_call', tool: claims.aud, boundary: lease.boundaryId, action: lease.action };
  if (lease.resource !== null) detail.resource = lease.resource;
  if (lease.paramsDigest === null) return detail;
  const signed = Array.isArray(claims.authorization_details)
    ? (claims.authorization_details[0] as Record<string, unknown> | undefined)
    : undefined;
  // The token's params are ours (its signature was checked) and the ones the lease's digest names.
  if (signed && signed.params_digest === lease.paramsDigest && signed.params !== undefined) detail.params = signed.params;
  detail.params_digest = lease.paramsDigest;
  return detail;
}
