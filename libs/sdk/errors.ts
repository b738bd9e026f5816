/**
 * What a bot can catch. Every error the SDK throws is a `TollgateError` with the broker's OAuth
 * `code`, the HTTP `status` (0 when no answer came) and the broker's `description`, which never holds
 * a secret. Test the class (`instanceof AccessDenied`) or `code`, never the message.
 */
export class TollgateError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    readonly description: string,
    options?: { cause?: unknown },
  ) {
    super(description, options);
    this.name = new.target.name;
  }
}

/** The credential request was decided and refused: `reasons` say why, `decisionId` finds it in review. */
export class AccessDenied extends TollgateError {
  constructor(
    description: string,
    readonly reasons: readonly string[],
    readonly decisionId: string | undefined,
    status = 403,
  ) {
    super('access_denied', status, description);
  }
}

/**
 * The call needs a human's approval first (202): repeat the same request with `{ approvalId }` once
 * a reviewer approved it (before `expiresAt`); repeating earlier throws this again, with the same id.
 */
export class ApprovalPending extends TollgateError {
  constructor(
    readonly approvalId: string,
    readonly expiresAt?: Date,
  ) {
    super('authorization_pending', 202, 'the credential request awaits approval');
  }
}

/** The workload assertion was refused: unknown or disabled workload, wrong key, wrong audience, expired. */
export class InvalidClient extends TollgateError {
  constructor(description: string, status = 401) {
    super('invalid_client', status, description);
  }
}

/**
 * The task has ended (completed, revoked or expired). Raised both for a change to an ended task (409)
 * and for a credential request refused with `task_not_active` (403, then with `decisionId`): the
 * remedy is the same, a new task, so the bot catches one class.
 */
export class TaskNotActive extends TollgateError {
  readonly reasons: readonly string[] = ['task_not_active'];
  constructor(
    description: string,
    status: number,
    readonly decisionId?: string,
  ) {
    super('invalid_request', status, description);
  }
}

/** No such task, boundary or route, or a task of another workload. */
export class NotFound extends TollgateError {
  constructor(description: string) {
    super('not_found', 404, description);
  }
}

/** The broker refused the input (schema, unknown field, size, content type); `field` names the culprit. */
export class InvalidRequest extends TollgateError {
  constructor(
    description: string,
    status: number,
    readonly field?: string,
  ) {
    super('invalid_request', status, description);
  }
}

/**
 * No usable answer: the broker is down, overloaded (503, 429 after the retries), timed out or
 * unreachable. `outcomeUnknown` is true when a request that changes state may have been carried out
 * (the connection broke after it was sent): the SDK does not replay it, see README.
 */
export class TollgateUnavailable extends TollgateError {
  constructor(
    description: string,
    status: number,
    readonly retryAfterMs?: number,
    readonly outcomeUnknown = false,
    options?: { cause?: unknown },
  ) {
    super(status === 429 ? 'too_many_requests' : 'temporarily_unavailable', status, description, options);
  }
}

/** The broker's error body: `{error, error_description, reasons?, decision_id?, field?}`. */
export interface ErrorBody {
  error?: unknown;
  error_description?: unknown;
  reasons?: unknown;
  decision_id?: unknown;
  field?: unknown;
  approval_id?: unknown;
  status?: unknown;
  expires_at?: unknown;
}

/** Maps a broker answer that is not a success to its typed error. */
export function errorFromResponse(status: number, body: ErrorBody | undefined, retryAfterMs?: number): TollgateError {
  const code = typeof body?.error === 'string' ? body.error : undefined;
  const description = typeof body?.error_description === 'string' ? body.error_description : `HTTP ${status}`;
  const reasons = Array.isArray(body?.reasons) ? body.reasons.filter((reason): reason is string => typeof reason === 'string') : [];
  const decisionId = typeof body?.decision_id === 'string' ? body.decision_id : undefined;

  if (status === 202 && typeof body?.approval_id === 'string') {
    return new ApprovalPending(body.approval_id, typeof body.expires_at === 'string' ? new Date(body.expires_at) : undefined);
  }
  if (reasons.includes('task_not_active')) return new TaskNotActive(description, status, decisionId);
  if (status === 403 || code === 'access_denied') return new AccessDenied(description, reasons, decisionId, status);
  if (status === 401 || code === 'invalid_client') return new InvalidClient(description, status);
  if (status === 404 || code === 'not_found') return new NotFound(description);
  if (status === 429 || status >= 500) return new TollgateUnavailable(description, status, retryAfterMs);
  if (status >= 400 && status < 500) {
    if (code === undefined || code === 'invalid_request')
      return new InvalidRequest(description, status, typeof body?.field === 'string' ? body.field : undefined);
    return new TollgateError(code, status, description);
  }
  return new TollgateError(code ?? 'unexpected_response', status, `unexpected HTTP ${status} from Tollgate`);
}
