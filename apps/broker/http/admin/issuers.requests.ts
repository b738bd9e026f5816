import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { z } from 'zod';
import { TRUST_DOMAIN, type IssuerDefinition } from '../../../../libs/identity/index.js';
import { PRIVATE_JWK_MEMBERS } from '../../../../libs/identity/index.js';
import { cleanText } from '../common/requests.js';

/** Hosts a development JWKS may be served from over plain http. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** An http(s) URL without credentials or fragment; plain http only where `httpAllowed` says so. */
const url = (httpAllowed: (url: URL) => boolean, rule: string) =>
  cleanText(2048)
    .refine((value) => !/\s/.test(value), 'must not contain spaces')
    .superRefine((value, ctx) => {
      let parsed: URL;
      try {
        parsed = new URL(value);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be an absolute URL' });
        return;
      }
      if (parsed.username !== '' || parsed.password !== '') ctx.addIssue({ code: 'custom', message: 'must not carry credentials' });
      else if (parsed.hash !== '') ctx.addIssue({ code: 'custom', message: 'must not carry a fragment' });
      else if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && httpAllowed(parsed)))
        ctx.addIssue({ code: 'custom', message: rule });
    });

/** The signature algorithms an issuer key may serve, decided by the key. */
function issuerAlgorithmsFor(jwk: { kty: string; crv?: string | undefined }): readonly string[] {
  if (jwk.kty === 'RSA') return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
  if (jwk.kty === 'EC') return { 'P-256': ['ES256'], 'P-384': ['ES384'], 'P-521': ['ES512'] }[jwk.crv ?? ''] ?? [];
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return ['EdDSA', 'Ed25519'];
  return [];
}

/** Public JWK members an issuer's published key set may carry (x5c/x5t describe the key; x5u would fetch). */
const ISSUER_JWK_MEMBERS = new Set(['kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'alg', 'use', 'key_ops', 'x5c', 'x5t', 'x5t#S256']);

const issuerJwk = z
  .looseObject({
    kty: z.enum(['RSA', 'EC', 'OKP'], 'must be RSA, EC or OKP (asymmetric keys only)'),
    kid: cleanText(256).optional(),
    alg: z.string().max(16).optional(),
    use: z.literal('sig').optional(),
    key_ops: z.array(z.literal('verify')).length(1, 'must be ["verify"]').optional(),
  })
  .superRefine((jwk, ctx) => {
    const privateMembers = PRIVATE_JWK_MEMBERS.filter((member) => member in jwk);
    for (const member of privateMembers) {
      ctx.addIssue({ code: 'custom', message: `private key material ("${member}") is not accepted; give the issuer's public keys only` });
    }
    for (const member of Object.keys(jwk)) {
      if (!ISSUER_JWK_MEMBERS.has(member) && !(PRIVATE_JWK_MEMBERS as readonly string[]).includes(member)) {
        ctx.addIssue({ code: 'custom', message: `unknown JWK member "${member}"` });
      }
    }
    if (privateMembers.length > 0) return;
    const algorithms = issuerAlgorithmsFor(jwk as { kty: string; crv?: string });
    if (algorithms.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'only RSA, EC P-256/P-384/P-521 and Ed25519 keys are accepted' });
      return;
    }
    if (jwk.alg !== undefined && !algorithms.includes(jwk.alg))
      ctx.addIssue({ code: 'custom', message: `alg ${jwk.alg} does not fit the key` });
    const key = issuerPublicKey(jwk);
    if (!key) ctx.addIssue({ code: 'custom', message: 'is not a valid public key' });
    else if (jwk.kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
      ctx.addIssue({ code: 'custom', message: 'an RSA key needs at least 2048 bits' });
    }
  });

/** The Node public key for an issuer JWK's public members, or undefined when they do not make one. */
function issuerPublicKey(jwk: Record<string, unknown>): KeyObject | undefined {
  const members = jwk.kty === 'RSA' ? ['kty', 'n', 'e'] : jwk.kty === 'EC' ? ['kty', 'crv', 'x', 'y'] : ['kty', 'crv', 'x'];
  if (members.some((member) => typeof jwk[member] !== 'string' || (jwk[member] as string).length > 2048)) return undefined;
  try {
    return createPublicKey({ key: Object.fromEntries(members.map((member) => [member, jwk[member]])) as JsonWebKey, format: 'jwk' });
  } catch {
    return undefined;
  }
}

export const issuerBody = z
  .strictObject({
    /** The exact `iss` of the issuer's tokens; never fetched. */
    issuer: url(() => true, 'must be an http(s) URL'),
    kind: z.enum(['spiffe', 'kubernetes', 'oidc'], 'must be "spiffe", "kubernetes" or "oidc"'),
    trust_domain: z.string().regex(TRUST_DOMAIN, 'must be a SPIFFE trust domain name ([a-z0-9._-], at most 255 characters)').optional(),
    jwks_uri: url(
      (parsed) => LOOPBACK_HOSTS.has(parsed.hostname),
      'must be https (plain http only on a loopback host: 127.0.0.1, ::1, localhost)',
    ).optional(),
    jwks: z.strictObject({ keys: z.array(issuerJwk).min(1, 'must hold at least one key').max(20, 'must hold at most 20 keys') }).optional(),
    /** A token's aud must contain one of these; absent: Tollgate's issuer URL. */
    audiences: z
      .array(cleanText(512).refine((value) => !/\s/.test(value), 'must not contain spaces'))
      .min(1, 'must list at least one audience')
      .max(10, 'must list at most 10 audiences')
      .optional(),
    /** Absent: a new issuer is trusted, an existing one keeps its state (a DELETE stays in force). */
    enabled: z.boolean().optional(),
  })
  .superRefine((body, ctx) => {
    if ((body.jwks_uri === undefined) === (body.jwks === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['jwks_uri'], message: 'exactly one of jwks_uri and jwks is required' });
    }
    if (body.kind === 'spiffe' && body.trust_domain === undefined)
      ctx.addIssue({ code: 'custom', path: ['trust_domain'], message: 'is required for a spiffe issuer' });
    if (body.kind !== 'spiffe' && body.trust_domain !== undefined)
      ctx.addIssue({ code: 'custom', path: ['trust_domain'], message: 'is only for a spiffe issuer' });
  });

export function toIssuerDefinition(body: z.infer<typeof issuerBody>, defaultAudience: string): IssuerDefinition {
  return {
    issuer: body.issuer,
    kind: body.kind,
    trustDomain: body.trust_domain ?? null,
    jwksUri: body.jwks_uri ?? null,
    jwks: body.jwks === undefined ? null : { keys: body.jwks.keys as JWK[] },
    audiences: body.audiences ?? [defaultAudience],
  };
}
