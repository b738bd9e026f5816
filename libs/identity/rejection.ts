import { errors } from 'jose';
import { InvalidClient } from '../errors/index.js';

/** Every way a workload token fails is one 401 invalid_client; the description says why, never the token. */
export function rejected(why: string): InvalidClient {
  return new InvalidClient(`workload authentication failed: ${why}`);
}

/** jose's error codes are stable and safe to show; anything else stays generic. */
export function describeJoseError(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the assertion has expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `claim "${error.claim}" is invalid (${error.reason})`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'signature verification failed';
  if (error instanceof errors.JWKSNoMatchingKey) return "no key of the issuer matches the token's header";
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the algorithm is not allowed';
  if (error instanceof errors.JOSENotSupported) return 'unsupported assertion (algorithm or critical header)';
  if (error instanceof errors.JOSEError) return error.code;
  return 'the assertion could not be verified';
}
