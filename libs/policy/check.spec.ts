import { describe, expect, it } from 'vitest';
import { exampleBoundary } from './boundary.fixture.js';
import { checkCredentialRequest } from './check.js';

const boundary = exampleBoundary();
const task = { active: true, intent: 'order_status' };

function reasons(input: Parameters<typeof checkCredentialRequest>[0]): string[] {
  const verdict = checkCredentialRequest(input);
  return verdict.outcome === 'deny' ? verdict.reasons : [];
}

describe('checkCredentialRequest', () => {
  it('permits an allowed action under a boundary serving the intent', () => {
    expect(checkCredentialRequest({ task, boundary, action: 'orders:read' })).toEqual({ outcome: 'permit' });
  });

  it('refuses an inactive task before anything else', () => {
    expect(reasons({ task: { ...task, active: false }, boundary: undefined, action: 'x' })).toEqual(['task_not_active']);
  });

  it('refuses an unknown boundary', () => {
    expect(reasons({ task, boundary: undefined, action: 'orders:read' })).toEqual(['unknown_boundary']);
  });

  it("refuses an audience other than the boundary's tool, when one is named", () => {
    expect(reasons({ task, boundary, action: 'orders:read', audience: 'https://evil.test' })).toEqual(['audience_mismatch']);
    expect(reasons({ task, boundary, action: 'orders:read', audience: 'https://crm.acme.test' })).toEqual([]);
  });

  it('refuses a disabled boundary before comparing intent or action', () => {
    expect(reasons({ task: { ...task, intent: 'refund' }, boundary: { ...boundary, enabled: false }, action: 'nope' })).toEqual([
      'boundary_disabled',
    ]);
  });

  it('refuses an intent the boundary does not serve before checking the action', () => {
    expect(reasons({ task: { ...task, intent: 'refund' }, boundary, action: 'orders:delete' })).toEqual(['intent_mismatch']);
  });

  it('refuses an action the boundary does not allow', () => {
    expect(reasons({ task, boundary, action: 'orders:delete' })).toEqual(['action_not_allowed']);
  });

  it("refuses params that do not match the action's declared schema, naming the argument, not the value", () => {
    const schemas = { 'orders:read': { type: 'object', properties: { order: { type: 'string', maxLength: 8 } }, required: ['order'] } };
    const declared = { ...boundary, version: 7, paramsSchemas: schemas };
    expect(reasons({ task, boundary: declared, action: 'orders:read', params: { order: 'o1' } })).toEqual([]);
    const verdict = checkCredentialRequest({ task, boundary: declared, action: 'orders:read', params: { order: 'secret-value-too-long' } });
    expect(verdict).toMatchObject({ outcome: 'deny', reasons: ['invalid_params'] });
    const description = verdict.outcome === 'deny' ? verdict.description : '';
    expect(description).toContain('params/order');
    expect(description).not.toContain('secret-value');
    // Absent params are no arguments: a required one is missing.
    expect(reasons({ task, boundary: declared, action: 'orders:read' })).toEqual(['invalid_params']);
  });
});
