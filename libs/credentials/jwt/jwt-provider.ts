import { z } from 'zod';
import type { SigningKey } from '../../keys/index.js';
import type { CredentialKind, CredentialProvider, Issued, IssueRequest } from '../provider.js';
import { signCompact } from '../../keys/index.js';
import { canonicalParams, type CanonicalParams } from '../../audit/index.js';

/**
 * The most canonical JSON (in bytes) a token carries as `params`: larger params travel as their
 * digest only, so a token stays small enough for a header (the tool recomputes the digest).
 */
export const MAX_TOKEN_PARAMS_BYTES = 1024;

/** Boundary settings: `{kind: "jwt"}` has nothing to configure. */
export const jwtSettings = z.strictObject({ kind: z.literal('jwt') });
export type JwtSettings = z.infer<typeof jwtSettings>;

export const jwtCredential: CredentialKind<JwtSettings> = {
  kind: 'jwt',
  settings: jwtSettings,
  create: ({ issuer, signingKey }) => new JwtCredentialProvider(issuer, signingKey),
};

/**
 * Tollgate's own access tokens: RFC 9068 JWTs, verifiable offline with the JWKS. jti is the lease
 * id, so introspection and revocation find the lease that decides the token's fate.
 */
export class JwtCredentialProvider implements CredentialProvider<JwtSettings> {
  readonly kind = 'jwt';
  /** The lease row is the credential's only state: revoking the row revokes the token. */
  readonly external = false;

  constructor(
    private readonly issuer: string,
    /** Synchronous on the hot path; a promise only when this replica must re-read its keys first. */
    private readonly signingKey: () => SigningKey | Promise<SigningKey>,
  ) {}

  async issue({
    lease,
    task,
    workloadId,
    boundary,
    params,
    canonicalParams: canonical,
    confirmation,
  }: IssueRequest<JwtSettings>): Promise<Issued> {
    const current = this.signingKey();
    const key = current instanceof Promise ? await current : current;
    const iat = Math.floor(lease.issuedAt / 1000);
    const toolCall = toolCallDetails({
      tool: boundary.tool,
      boundary: boundary.id,
      action: lease.action,
      resource: lease.resource,
      params,
      canonical,
    });
    const claims: Record<string, unknown> = {
      client_id: workloadId,
      act: { sub: workloadId },
      scope: lease.action,
      task_id: task.id,
      intent: task.intent,
      authorization_details: [toolCall],
      iss: this.issuer,
      sub: task.subject,
      aud: boundary.tool,
      iat,
      nbf: iat,
      exp: Math.floor(lease.expiresAt / 1000),
      jti: lease.id,
    };
    // RFC 9449 §6: a DPoP-bound token names the proof key's thumbprint; only its holder may use it.
    if (confirmation) claims.cnf = { jkt: confirmation.jkt };
    const accessToken = signCompact({ alg: key.alg, typ: 'at+jwt', kid: key.kid }, claims, key.privateKeyObject);
    return { credential: { kind: 'jwt', access_token: accessToken, token_type: confirmation ? 'DPoP' : 'Bearer' } };
  }

  async revoke(): Promise<void> {
    // Nothing lives at a source: the lease row is the only state, and it is already revoked.
  }
}

/**
 * The `tool_call` authorization detail (RFC 9396): the exact call the credential is for. The
 * digest is always there (absent params digest as `null`, as an approval binds them); the params
 * themselves only while their canonical form is at most MAX_TOKEN_PARAMS_BYTES.
 */
export function toolCallDetails(call: {
  tool: string;
  boundary: string;
  action: string;
  resource: string | null;
  params: Record<string, unknown> | null | undefined;
  /** The params' digest and size if already computed (the hot path serializes them once). */
  canonical?: CanonicalParams | undefined;
}): Record<string, unknown> {
  const detail: Record<string, unknown> = { type: 'tool_call', tool: call.tool, boundary: call.boundary, action: call.action };
  if (call.resource !== null) detail.resource = call.resource;
  const canonical = call.canonical ?? canonicalParams(call.params);
  if (call.params != null && canonical.bytes <= MAX_TOKEN_PARAMS_BYTES) detail.params = call.params;
  detail.params_digest = canonical.digest;
  return detail;
}
