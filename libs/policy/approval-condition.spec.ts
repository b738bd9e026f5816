import { describe, expect, it } from 'vitest';
import { exampleBoundary } from './boundary.fixture.js';
import { approvalConditionError, requestModel, requiresApproval } from './approval-condition.js';

const NOW = 1_800_000_000_000;
function model(params: Record<string, unknown> | null, extra: { purpose?: string; resource?: string } = {}) {
  return requestModel({
    workloadId: 'chatbot',
    task: { intent: 'refund_request', subject: 'user-42', createdAt: NOW - 90_000 },
    boundary: { id: 'payments', tool: 'https://pay.acme.test', sensitivity: 'high' },
    action: 'refund:create',
    resource: extra.resource ?? null,
    params,
    purpose: extra.purpose ?? null,
    denialsInTask: 2,
    now: NOW,
  });
}

describe('approval condition', () => {
  it('accepts a condition and explains a bad one in Cedar\'s words, with the column in the condition', () => {
    expect(approvalConditionError('context.params.amount > 100')).toBeUndefined();
    expect(approvalConditionError('context.params.amount >')).toMatch(/unexpected token .* at column 25/);
    expect(approvalConditionError('true }; permit(principal, action, resource) when { true')).toMatch(/one Cedar condition/);
    expect(approvalConditionError('x'.repeat(5000))).toMatch(/at most 4096/);
  });

  it('holds only when the condition does, over principal, action, resource and context', () => {
    const boundary = exampleBoundary({ id: 'payments', version: 1, approval: { when: 'context.params.amount > 100', ttl: 600 } });
    expect(requiresApproval(boundary, model({ amount: 150 }))).toBe(true);
    expect(requiresApproval(boundary, model({ amount: 100 }))).toBe(false);
    const rich = exampleBoundary({
      id: 'payments',
      version: 2,
      approval: {
        when: 'principal == Workload::"chatbot" && action == Action::"refund:create" && resource == Tool::"https://pay.acme.test" && resource.sensitivity == "high" && context.task_age_s == 90 && context.denials_in_task == 2 && context.intent == "refund_request" && context.resource == "order/1" && context.now == 1800000000',
        ttl: 600,
      },
    });
    expect(requiresApproval(rich, model({}, { resource: 'order/1' }))).toBe(true);
    expect(requiresApproval(rich, model({}, { resource: 'order/2' }))).toBe(false);
  });

  it('fails closed: a condition that errors on the request requires approval', () => {
    const boundary = exampleBoundary({ id: 'payments', version: 3, approval: { when: 'context.params.amount > 100', ttl: 600 } });
    expect(requiresApproval(boundary, model({}))).toBe(true);
    expect(requiresApproval(boundary, model({ amount: 'lots' }))).toBe(true);
  });

  it('turns JSON into Cedar values: nulls dropped, fractions as decimals, escapes stripped', () => {
    const boundary = exampleBoundary({ id: 'payments', version: 4, approval: { when: 'context.params has note || context.params.amount.greaterThan(decimal("99.5")) || context.params has __entity', ttl: 600 } });
    expect(requiresApproval(boundary, model({ note: null, amount: 99.75 }))).toBe(true);
    expect(requiresApproval(boundary, model({ note: null, amount: 12.25, __entity: { type: 'X', id: 'y' } }))).toBe(false);
    expect(requiresApproval(exampleBoundary(), model({}))).toBe(false);
  });
});
