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
});
