import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { checkProof, DPOP_ALGORITHMS, ReplayCache, type DpopOptions } from './dpop.js';
import { InsufficientScope, InvalidDpopProof, InvalidToken, MissingToken, VerifierError, VerifierUnavailable } from './errors.js';
import { paramsDigest } from './params-digest.js';
import { RevocationFeed, type RevocationOptions } from './revocation.js';

/** The algorithms the broker signs its credentials with (TOLLGATE_SIGNING_ALG: EdDSA or ES256). */
export const DEFAULT_ALGORITHMS = ['EdDSA', 'ES256'] as const;

export interface VerifierOptions {
  /** The broker's issuer (its public URL), exactly as in the tokens' `iss`. */
  issuer: string;
  /** This tool, as its boundary names it (`tool`): the tokens' `aud`. */
  audience: string;
  /** Where the broker's keys are (`<issuer>/.well-known/jwks.json` when neither this nor `jwks` is given). */
  jwksUri?: string;
  /** The keys themselves, for a tool that pins them. */
  jwks?: JSONWebKeySet;
  algorithms?: readonly string[];
  /** Clock skew allowed on `exp`, `nbf` and a proof's `iat`. */
  leewaySeconds?: number;
  dpop?: DpopOptions;
  /** Follow revocations (recommended); without it a token is good until it expires. */
  revocation?: RevocationOptions;
  /** Milliseconds since the epoch (tests). */
  now?: () => number;
}

/** The request a token is presented with. */
export interface RequestFacts {
  method: string;
  /** The full URL the client called (scheme, host, path): a DPoP proof's `htu` must name it. */
  url: string;
  /** The `DPoP` header, when there is one. */
  dpopProof?: string;
  /** The scheme of the Authorization header: a DPoP-bound token is refused under `Bearer`. */
  scheme?: 'Bearer' | 'DPoP';
}

/** `authorization_details[0]` of a Tollgate credential. */
export interface ToolCall {
  type: 'tool_call';
  boundary?: string;
  action: string;
  resource?: string;
  params_digest?: string;
  params?: unknown;
  [claim: string]: unknown;
}

export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  sub?: string;
  scope?: string;
  client_id?: string;
  task_id?: string;
  intent?: string;
  cnf?: { jkt?: string };
  authorization_details?: ToolCall[];
}

/** The call a tool is about to serve, as it will serve it. */
export interface CallFacts {
  action: string;
  resource?: string | null;
  params?: unknown;
}

/** A credential that passed every check: what it allows, and the check of the exact call. */
export interface VerifiedCall {
  token: string;
  claims: AccessTokenClaims;
  /** The call the credential names. */
  toolCall: ToolCall;
  /** The thumbprint of the key the token is bound to (DPoP), if any. */
  boundTo: string | undefined;
  /** Throws InsufficientScope unless the call served is the one the credential names. */
  checkCall(call: CallFacts): void;
}

export interface Verifier {
  verify(token: string, request: RequestFacts): Promise<VerifiedCall>;
  /** Reads `Authorization` (Bearer or DPoP) and `DPoP` from request headers, then verifies. */
  verifyRequest(request: { method: string; url: string; headers: Record<string, string | string[] | undefined> }): Promise<VerifiedCall>;
  /** Resolves once the revocation stream is connected (at once without revocation). */
  ready(): Promise<void>;
  readonly options: Readonly<VerifierOptions>;
  close(): Promise<void>;
}

/** Compares a call against the credential's `authorization_details[0]`; throws InsufficientScope. */
export function checkCall(toolCall: ToolCall, call: CallFacts): void {
  if (toolCall.action !== call.action) throw new InsufficientScope(`the credential is for ${toolCall.action}, not ${call.action}`);
  // A credential that names no resource allows none to be named: the broker judged it without one.
  if ((toolCall.resource ?? null) !== (call.resource ?? null)) {
    throw new InsufficientScope(`the credential is for resource ${toolCall.resource ?? '(none)'}, not ${call.resource ?? '(none)'}`);
  }
  if (typeof toolCall.params_digest !== 'string') throw new InsufficientScope('the credential does not name the call\u2019s params');
  let digest: string;
  try {
    digest = paramsDigest(call.params);
  } catch (error) {
    throw new InsufficientScope('the params have no canonical JSON form', { cause: error });
  }
  if (digest !== toolCall.params_digest) throw new InsufficientScope('the params are not the ones the credential was issued for');
}

export function createVerifier(options: VerifierOptions): Verifier {
  const issuer = options.issuer;
  const keys: JWTVerifyGetKey = options.jwks
    ? createLocalJWKSet(options.jwks)
    : // Cached; an unknown kid refetches (after a short cooldown): a rotated key is picked up.
      createRemoteJWKSet(new URL(options.jwksUri ?? `${issuer.replace(/\/+$/, '')}/.well-known/jwks.json`));
  const algorithms = [...(options.algorithms ?? DEFAULT_ALGORITHMS)];
  const leeway = options.leewaySeconds ?? 5;
  const now = options.now ?? Date.now;
  const dpop: Required<DpopOptions> = {
    algorithms: options.dpop?.algorithms ?? DPOP_ALGORITHMS,
    iatWindowSeconds: options.dpop?.iatWindowSeconds ?? 60,
    replayCacheSize: options.dpop?.replayCacheSize ?? 100_000,
  };
  const replay = new ReplayCache(dpop.replayCacheSize, dpop.iatWindowSeconds + leeway);
  const revocation = options.revocation
    ? new RevocationFeed({
        ...options.revocation,
        url: (options.revocation.url ?? issuer).replace(/\/+$/, ''),
        now: options.revocation.now ?? now,
      })
    : undefined;

  async function verify(token: string, request: RequestFacts): Promise<VerifiedCall> {
    const scheme = request.scheme ?? (request.dpopProof ? 'DPoP' : 'Bearer');
    const tagged = <E extends VerifierError>(error: E): E => {
      error.scheme = scheme;
      return error;
    };
    if (!token) throw tagged(new MissingToken('no credential'));
    let claims: AccessTokenClaims;
    try {
      const verified = await jwtVerify(token, keys, {
        issuer,
        audience: options.audience,
        algorithms,
        typ: 'at+jwt',
        clockTolerance: leeway,
        currentDate: new Date(now()),
        requiredClaims: ['exp', 'iat', 'jti'],
      });
      claims = verified.payload as AccessTokenClaims;
    } catch (error) {
      if (error instanceof errors.JWKSTimeout || !(error instanceof errors.JOSEError)) {
        throw tagged(new VerifierUnavailable("the broker's keys cannot be read", { cause: error }));
      }
      throw tagged(new InvalidToken(error.message, { cause: error }));
    }
    const toolCall = claims.authorization_details?.[0];
    if (!toolCall || toolCall.type !== 'tool_call' || typeof toolCall.action !== 'string') {
      throw tagged(new InvalidToken('the credential names no tool_call'));
    }
    const jkt = claims.cnf?.jkt;
    if (jkt !== undefined) {
      // RFC 9449 §7.2: a bound token is never a bearer token.
      if (scheme !== 'DPoP') throw tagged(new InvalidToken('a DPoP-bound credential must be presented with a DPoP proof'));
      if (!request.dpopProof) throw tagged(new InvalidDpopProof('DPoP proof: missing'));
      await checkProof(
        {
          proof: request.dpopProof,
          method: request.method,
          url: request.url,
          accessToken: token,
          jkt,
          nowSeconds: now() / 1000,
          leewaySeconds: leeway,
        },
        dpop,
        replay,
      ).catch((error: VerifierError) => {
        throw tagged(error);
      });
    } else if (scheme === 'DPoP') {
      throw tagged(new InvalidToken('the credential is not DPoP-bound: present it as a Bearer token'));
    }
    if (revocation) {
      await revocation
        .check({ token, jti: claims.jti, taskId: claims.task_id, iat: claims.iat, exp: claims.exp })
        .catch((error: VerifierError) => {
          throw tagged(error);
        });
    }
    return {
      token,
      claims,
      toolCall,
      boundTo: jkt,
      checkCall: (call) => {
        try {
          checkCall(toolCall, call);
        } catch (error) {
          throw tagged(error as VerifierError);
        }
      },
    };
  }

  return {
    options,
    verify,
    async verifyRequest(request) {
      const header = single(request.headers.authorization);
      const match = header ? /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header) : null;
      if (!match) {
        throw new (header ? InvalidToken : MissingToken)(header ? 'the Authorization header is not Bearer or DPoP' : 'no credential');
      }
      const scheme = match[1]!.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
      const proofs = request.headers.dpop;
      if (Array.isArray(proofs) && proofs.length > 1) throw new InvalidDpopProof('DPoP proof: more than one DPoP header');
      return verify(match[2]!, { method: request.method, url: request.url, dpopProof: single(proofs), scheme });
    },
    ready: () => revocation?.ready() ?? Promise.resolve(),
    close: async () => {
      await revocation?.close();
    },
  };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
