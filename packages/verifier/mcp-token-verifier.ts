import { InsufficientScope, VerifierError, VerifierUnavailable } from './errors.js';
import { authInfoOf, type McpAuthInfo } from './mcp.js';
import type { Verifier } from './verifier.js';

/** The SDK's OAuthTokenVerifier (`@modelcontextprotocol/sdk/server/auth/provider.js`). */
export interface McpTokenVerifier {
  verifyAccessToken(token: string): Promise<McpAuthInfo>;
}

type SdkErrorClass = new (message: string) => Error;
/** The SDK's error classes `requireBearerAuth` maps to 401, 403 and 500 (`…/server/auth/errors.js`). */
export interface SdkAuthErrors {
  InvalidTokenError: SdkErrorClass;
  InsufficientScopeError: SdkErrorClass;
  ServerError: SdkErrorClass;
}

/**
 * An OAuthTokenVerifier for `requireBearerAuth({ verifier: mcpTokenVerifier(verifier), resourceMetadataUrl })`.
 * requireBearerAuth never sees a DPoP proof, so a DPoP-bound credential is refused here (RFC 9449
 * §7.2: never a bearer token); use the guard for those. It checks the token, not the call: a tool
 * handler then checks its own call with `checkCall(extra.authInfo.extra.toolCall, …)`.
 *
 * requireBearerAuth answers by the class of the error (`instanceof`), so refusals are thrown as the
 * SDK's own classes: passed as `errors`, or imported from the installed SDK on the first refusal.
 */
export function mcpTokenVerifier(verifier: Verifier, options: { errors?: SdkAuthErrors } = {}): McpTokenVerifier {
  let errors: Promise<SdkAuthErrors | undefined> | undefined = options.errors && Promise.resolve(options.errors);
  return {
    async verifyAccessToken(token) {
      try {
        // The URL is read only for a DPoP proof, and a Bearer-presented bound token is refused before.
        const verified = await verifier.verify(token, { method: 'POST', url: verifier.options.audience, scheme: 'Bearer' });
        return authInfoOf(verified, verifier.options.audience);
      } catch (error) {
        throw asSdkError(error, await (errors ??= loadSdkErrors()));
      }
    },
  };
}

// A variable, not a literal: bundlers and type-checkers of this package must not require the SDK.
const SDK_ERRORS = '@modelcontextprotocol/sdk/server/auth/errors.js';

async function loadSdkErrors(): Promise<SdkAuthErrors | undefined> {
  try {
    return (await import(SDK_ERRORS)) as SdkAuthErrors;
  } catch {
    return undefined;
  }
}

function asSdkError(error: unknown, sdk: SdkAuthErrors | undefined): unknown {
  if (!sdk || !(error instanceof VerifierError)) return error;
  // requireBearerAuth has no 503: a verifier that cannot tell answers 500, still refusing.
  if (error instanceof VerifierUnavailable) return new sdk.ServerError(error.message);
  if (error instanceof InsufficientScope) return new sdk.InsufficientScopeError(error.message);
  return new sdk.InvalidTokenError(error.message);
}
