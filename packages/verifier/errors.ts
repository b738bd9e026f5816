/**
 * Why a call was refused, as a class per OAuth error code (RFC 6750 §3.1, RFC 9449 §7.1), so a tool
 * can tell them apart with `instanceof` and answer with the status and challenge the RFCs name.
 */
export abstract class VerifierError extends Error {
  /** The OAuth error code for the `WWW-Authenticate` challenge. */
  abstract readonly code: string;
  /** The HTTP status a tool answers with. */
  abstract readonly status: 401 | 403 | 503;
  /** The scheme the refused credential was presented with: the challenge names it. */
  scheme: 'Bearer' | 'DPoP' = 'Bearer';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No credential was presented at all: a bare challenge, no error code (RFC 6750 §3.1). */
export class MissingToken extends VerifierError {
  readonly code = 'invalid_request';
  readonly status = 401;
}

/** The token is not one this tool accepts: bad signature, issuer, audience, type, algorithm, time, or revoked. */
export class InvalidToken extends VerifierError {
  readonly code = 'invalid_token';
  readonly status = 401;
}

/** The token was revoked (its lease or its task ended). */
export class TokenRevoked extends InvalidToken {}

/** A DPoP-bound token came without a valid proof, or with a replayed one. */
export class InvalidDpopProof extends VerifierError {
  readonly code = 'invalid_dpop_proof';
  readonly status = 401;
  override scheme: 'Bearer' | 'DPoP' = 'DPoP';
}

/** The token is valid but does not name this call: another action, resource or params. */
export class InsufficientScope extends VerifierError {
  readonly code = 'insufficient_scope';
  readonly status = 403;
}

/**
 * The verifier cannot tell whether the token is still good (neither the event stream nor
 * introspection answers, or the JWKS cannot be read): it refuses rather than guess.
 */
export class VerifierUnavailable extends VerifierError {
  readonly code = 'temporarily_unavailable';
  readonly status = 503;
}
