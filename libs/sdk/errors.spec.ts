import { describe, expect, it } from 'vitest';
import {
  AccessDenied,
  ApprovalPending,
  errorFromResponse,
  InvalidClient,
  InvalidRequest,
  NotFound,
  TaskNotActive,
  TollgateError,
  TollgateUnavailable,
} from './errors.js';

describe('errorFromResponse', () => {
  it('maps a refusal to AccessDenied with its reasons and decision id', () => {
    const error = errorFromResponse(403, {
      error: 'access_denied',
      error_description: "the tool boundary does not serve the task's intent",
      reasons: ['intent_mismatch'],
      decision_id: 'd-1',
    });
    expect(error).toBeInstanceOf(AccessDenied);
    expect(error).toBeInstanceOf(TollgateError);
    expect(error).toMatchObject({
      code: 'access_denied',
      status: 403,
      reasons: ['intent_mismatch'],
      decisionId: 'd-1',
      description: "the tool boundary does not serve the task's intent",
      name: 'AccessDenied',
    });
  });

  it('maps a 202 pending approval to ApprovalPending carrying the approval id', () => {
    const error = errorFromResponse(202, { approval_id: 'ap-1', status: 'pending' });
    expect(error).toBeInstanceOf(ApprovalPending);
    expect(error).toMatchObject({ approvalId: 'ap-1', status: 202, code: 'authorization_pending' });
  });

  it('maps task_not_active to TaskNotActive, from a 409 change and from a 403 refusal alike', () => {
    const changed = errorFromResponse(409, {
      error: 'invalid_request',
      error_description: 'the task is completed, not active',
      reasons: ['task_not_active'],
    });
    expect(changed).toBeInstanceOf(TaskNotActive);
    expect(changed).toMatchObject({ status: 409, reasons: ['task_not_active'], decisionId: undefined });
    const refused = errorFromResponse(403, {
      error: 'access_denied',
      error_description: 'the task is not active',
      reasons: ['task_not_active'],
      decision_id: 'd-2',
    });
    expect(refused).toBeInstanceOf(TaskNotActive);
    expect(refused).not.toBeInstanceOf(AccessDenied);
    expect(refused).toMatchObject({ status: 403, decisionId: 'd-2' });
  });

  it('maps 401, 404, 400, 413, 415', () => {
    expect(
      errorFromResponse(401, { error: 'invalid_client', error_description: 'workload authentication failed: the assertion has expired' }),
    ).toBeInstanceOf(InvalidClient);
    expect(errorFromResponse(404, { error: 'not_found', error_description: 'no such task' })).toBeInstanceOf(NotFound);
    const invalid = errorFromResponse(400, { error: 'invalid_request', error_description: 'unknown field "colour"', field: 'colour' });
    expect(invalid).toBeInstanceOf(InvalidRequest);
    expect(invalid).toMatchObject({ field: 'colour', status: 400 });
    expect(errorFromResponse(413, { error: 'invalid_request', error_description: 'too large' })).toBeInstanceOf(InvalidRequest);
    expect(errorFromResponse(415, undefined)).toMatchObject({ status: 415, description: 'HTTP 415' });
  });

  it('maps 503, 429 and other 5xx to TollgateUnavailable with the Retry-After delay', () => {
    const unavailable = errorFromResponse(
      503,
      { error: 'temporarily_unavailable', error_description: 'the database is not available; try again shortly' },
      1000,
    );
    expect(unavailable).toBeInstanceOf(TollgateUnavailable);
    expect(unavailable).toMatchObject({ code: 'temporarily_unavailable', retryAfterMs: 1000, outcomeUnknown: false });
    expect(errorFromResponse(429, undefined)).toMatchObject({ code: 'too_many_requests', status: 429 });
    expect(errorFromResponse(500, { error: 'server_error', error_description: 'internal error' })).toBeInstanceOf(TollgateUnavailable);
  });

  it('keeps an unknown 4xx code as a plain TollgateError, never a success', () => {
    const error = errorFromResponse(400, { error: 'use_dpop_nonce', error_description: 'a nonce is required' });
    expect(error.constructor).toBe(TollgateError);
    expect(error).toMatchObject({ code: 'use_dpop_nonce', status: 400 });
  });
});
