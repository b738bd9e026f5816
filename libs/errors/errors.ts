/**
 * Typed errors with a stable OAuth error code. One exception filter at the HTTP edge turns them
 * into `{error, error_description, reasons?}`; callers test the class or `code`, never the message.
 * `description` is always safe to show to a client: no secrets, no driver text.
 */
export const ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'invalid_target',
  'access_denied',
  'insufficient_scope',
  'authorization_pending',
  'unsupported_grant_type',
  'invalid_dpop_proof',
  'slow_down',
  'not_found',
  'payload_too_large',
  'temporarily_unavailable',
  'server_error',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export abstract class TollgateError extends Error {
  abstract readonly code: ErrorCode;
  abstract readonly status: number;
  /** Extra members of the public error body (for example `reasons`, `decision_id`). */
  readonly extra: Record<string, unknown>;

  constructor(
    readonly description: string,
    extra: Record<string, unknown> = {},
  ) {
    super(description);
    this.name = new.target.name;
    this.extra = extra;
  }
}

/** The request is malformed: bad JSON, a schema violation, an unknown field. */
export class InvalidRequest extends TollgateError {
  readonly code = 'invalid_request';
  readonly status = 400;
}

/** A DPoP proof that is missing a part, does not verify, does not fit the request, or was used before (RFC 9449 §7.1). */
export class InvalidDpopProof extends TollgateError {
  readonly code = 'invalid_dpop_proof';
  readonly status = 400;
}

/**
 * The caller could not be authenticated (workload assertion, API key, OAuth client credentials).
 * `challenge` is the scheme of the WWW-Authenticate answer: `Basic` when the client tried HTTP Basic
 * (RFC 6749 §5.2), `Bearer` otherwise.
 */
export class InvalidClient extends TollgateError {
  readonly code = 'invalid_client';
  readonly status = 401;
  constructor(
    description: string,
    readonly challenge: 'Bearer' | 'Basic' = 'Bearer',
  ) {
    super(description);
  }
}

/**
 * The caller is authenticated, but its API key's role does not allow this route (a reviewer on a
 * write route, a resource server on the admin API): 403 with RFC 6750 §3.1's code.
 */
export class InsufficientScope extends TollgateError {
  readonly code = 'insufficient_scope';
  readonly status = 403;
}

export class NotFound extends TollgateError {
  readonly code = 'not_found';
  readonly status = 404;
}

/** The change contradicts stored state (a subject already bound, an issuer URL already trusted). */
export class Conflict extends TollgateError {
  readonly code = 'invalid_request';
  readonly status = 409;
}

export class PayloadTooLarge extends TollgateError {
  readonly code = 'payload_too_large';
  readonly status = 413;
}

/** A credential request that was decided and refused. */
export class AccessDenied extends TollgateError {
  readonly code = 'access_denied';
  readonly status = 403;
  constructor(
    description: string,
    readonly reasons: readonly string[],
    decisionId?: string,
    /** The Cedar policy sets that decided a policy denial. */
    readonly policies?: readonly { id: string; version: number }[],
  ) {
    super(description, { reasons, ...(decisionId ? { decision_id: decisionId } : {}), ...(policies ? { policies } : {}) });
  }
}

/**
 * The request waits for a human's approval (step-up). Not a failure: the /v1 API answers 202
 * `{approval_id, status: "pending", expires_at}`, the token endpoint 400 authorization_pending
 * (RFC 8628 §3.5 style, so OAuth clients poll). Both carry the approval id to repeat the request with.
 */
export class ApprovalPending extends TollgateError {
  readonly code = 'authorization_pending';
  readonly status = 202;
  constructor(
    readonly approvalId: string,
    readonly expiresAt: Date,
    readonly decisionId: string,
  ) {
    super("the credential request awaits a reviewer's approval; repeat it with approval_id", {
      approval_id: approvalId,
      decision_id: decisionId,
    });
  }
}

/** The database (or another dependency we must not guess around) does not answer: fail closed. */
export class TemporarilyUnavailable extends TollgateError {
  readonly code = 'temporarily_unavailable';
  readonly status = 503;
}

/**
 * Cedar could not answer: its process died (a WASM trap, a V8 fault, a kill) or did not answer in
 * time. Nothing is guessed: a credential request is denied (`policy_unavailable`) and answered 503.
 */
export class PolicyUnavailable extends TemporarilyUnavailable {}

/**
 * The workload asked for credentials faster than its rate limit allows: 429 with Retry-After.
 * The code is RFC 8628 §3.5's (a client polling too quickly), the one an OAuth client already
 * knows means "wait, then ask again"; nothing was decided or written.
 */
export class RateLimited extends TollgateError {
  readonly code = 'slow_down';
  readonly status = 429;
  constructor(
    readonly retryAfterSeconds: number,
    /** What there were too many of: credential requests, or tasks opened. */
    what = 'credential requests',
  ) {
    super(`too many ${what} for this workload; retry after ${retryAfterSeconds} s`, { retry_after: retryAfterSeconds });
  }
}

/**
 * A new event stream would pass this replica's cap on open streams, in all or for the key: 429
 * slow_down with Retry-After, as for the rate limit. Nothing was opened.
 */
export class TooManyStreams extends TollgateError {
  readonly code = 'slow_down';
  readonly status = 429;
  constructor(
    description: string,
    readonly retryAfterSeconds: number,
  ) {
    super(description, { retry_after: retryAfterSeconds });
  }
}

/** Raised at start when configuration or stored state cannot be used; never reaches HTTP. */
export class ConfigurationError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigurationError';
  }
}

/** The task exists but has ended (completed, revoked or expired): it can no longer change. */
export class TaskNotActive extends TollgateError {
  readonly code = 'invalid_request';
  readonly status = 409;
  constructor(state: string) {
    super(`the task is ${state}, not active`, { reasons: ['task_not_active'] });
  }
}

/**
 * The requested resource (RFC 8707 `resource`, RFC 8693 `audience`) is not the tool the credential
 * would be for: RFC 8707 §2's answer, 400 invalid_target. Decided and recorded like any refusal.
 */
export class InvalidTarget extends TollgateError {
  readonly code = 'invalid_target';
  readonly status = 400;
}

/**
 * An RFC 6749 §5.2 token endpoint error: 400 with its code (the /v1 API's 403 and 404 become
 * access_denied and invalid_grant there, as OAuth clients expect; a wrong target is {@link InvalidTarget}).
 */
export class TokenEndpointError extends TollgateError {
  readonly status = 400;
  constructor(
    readonly code: 'invalid_request' | 'invalid_grant' | 'access_denied' | 'unsupported_grant_type' | 'authorization_pending',
    description: string,
    extra: Record<string, unknown> = {},
  ) {
    super(description, extra);
  }
}
