import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exampleBoundary } from './boundary.fixture.js';
import { CEDAR_SCHEMA } from './cedar-schema.js';
import { buildCedarContext, CedarEvaluator, validatePolicyText, type RequestFacts } from './cedar.js';

const facts = (overrides: Partial<RequestFacts> = {}): RequestFacts => ({
  workloadId: 'chatbot',
  task: { intent: 'order_status', subject: 'user-42', ageSeconds: 12.7, denials: 1 },
  boundary: exampleBoundary({ id: 'crm', sensitivity: 'high' }),
  action: 'orders:read',
  resource: 'order/7',
  params: { amount: 40 },
  purpose: null,
  at: Date.UTC(2026, 10, 25, 10, 30), // a Wednesday
  ...overrides,
});

describe('buildCedarContext', () => {
  it('spells the request in the schema\'s model, with now as UTC integers', () => {
    const request = buildCedarContext(facts());
    expect(request.principal).toEqual({ type: 'Workload', id: 'chatbot' });
    expect(request.resource).toEqual({ type: 'Tool', id: 'https://crm.acme.test' });
    expect(request.context).toEqual({
      intent: 'order_status',
      subject: 'user-42',
      boundary: 'crm',
      resource: 'order/7',
      params: { amount: 40 },
      sensitivity: 'high',
      task_age_s: 12,
      denials_in_task: 1,
      now: { hour: 10, minute: 30, weekday: 3, unix: Date.UTC(2026, 10, 25, 10, 30) / 1000 },
    });
    expect(request.entities[0]).toMatchObject({ uid: { type: 'Tool', id: 'https://crm.acme.test' }, attrs: { boundary: 'crm', sensitivity: 'high' } });
  });

  it('keeps params Cedar can hold and drops what would forge an entity or an extension value', () => {
    const { context } = buildCedarContext(facts({ params: { amount: 1.5, owner: { __entity: { type: 'Workload', id: 'x' } }, n: null, list: [1, 'a', null], ok: true } }));
    expect(context.params).toEqual({ amount: '1.5', owner: {}, list: [1, 'a'], ok: true });
  });
});

describe('validatePolicyText', () => {
  it('accepts a policy of the model and locates Cedar\'s errors by line and column', () => {
    expect(validatePolicyText('permit(principal, action == Action::"orders:read", resource) when { context.now.hour >= 9 };', ['orders:read'])).toEqual([]);
    const [problem] = validatePolicyText('permit(principal, action, resource)\nwhen { resource.owner == "x" };', ['orders:read']);
    expect(problem).toMatchObject({ line: 2, column: 8, message: expect.stringContaining('owner') });
    expect(validatePolicyText('permit(principal, action == Action::"nope", resource);', ['orders:read'])).not.toEqual([]);
    expect(validatePolicyText('// nothing', ['orders:read'])).toEqual([{ message: 'the policy set has no policies' }]);
  });

  it('ships the schema file the code validates against', () => {
    expect(readFileSync(new URL('./tollgate.cedarschema', import.meta.url), 'utf8')).toBe(CEDAR_SCHEMA);
  });
});

describe('CedarEvaluator', () => {
  const limit = { id: 'limit', version: 2, text: 'permit(principal, action, resource) when { context.params has amount && context.params.amount <= 100 };' };
  const guard = { id: 'guard', version: 1, text: 'forbid(principal == Workload::"intern", action, resource) when { resource.sensitivity == "high" };' };
  const elsewhere = { id: 'elsewhere', version: 1, text: 'forbid(principal, action, resource == Tool::"https://other.test");' };

  it('lets forbid win, denies without a permit, and names the deciding policy sets', () => {
    const evaluator = new CedarEvaluator();
    const set = evaluator.compile('k1', [limit, guard], 'https://crm.acme.test');
    expect(evaluator.evaluate(set, buildCedarContext(facts()))).toEqual({ decision: 'allow', reasons: [], determiningPolicies: [{ id: 'limit', version: 2 }], errors: [] });
    expect(evaluator.evaluate(set, buildCedarContext(facts({ params: { amount: 101 } })))).toMatchObject({ decision: 'deny', reasons: ['policy_no_permit'] });
    expect(evaluator.evaluate(set, buildCedarContext(facts({ workloadId: 'intern' })))).toMatchObject({
      decision: 'deny',
      reasons: ['policy_forbid'],
      determiningPolicies: [{ id: 'guard', version: 1 }],
    });
  });

  it('treats a set of forbids only as a guardrail, and leaves out policies scoped to another tool', () => {
    const evaluator = new CedarEvaluator();
    const set = evaluator.compile('k2', [guard, elsewhere], 'https://crm.acme.test');
    expect(Object.keys(set.policies)).toHaveLength(1);
    expect(evaluator.evaluate(set, buildCedarContext(facts())).decision).toBe('allow');
  });

  it('fails closed when a forbid cannot be evaluated', () => {
    const evaluator = new CedarEvaluator();
    const broken = { id: 'broken', version: 1, text: 'permit(principal, action, resource);\nforbid(principal, action, resource) when { context.params.amount > 100 };' };
    const set = evaluator.compile('k3', [broken], 'https://crm.acme.test');
    expect(evaluator.evaluate(set, buildCedarContext(facts({ params: {} })))).toMatchObject({ decision: 'deny', reasons: ['policy_forbid'], determiningPolicies: [{ id: 'broken', version: 1 }] });
  });

  it('parses each key once, reuses slots beyond its bound, and re-parses an evicted set still in use', () => {
    const evaluator = new CedarEvaluator(2);
    const first = evaluator.compile('a', [limit]);
    expect(evaluator.compile('a', [guard])).toBe(first);
    evaluator.compile('b', [guard]);
    evaluator.compile('c', [guard]);
    expect(evaluator.evaluate(first, buildCedarContext(facts())).decision).toBe('allow');
  });

  it('decides many requests in a row', () => {
    const evaluator = new CedarEvaluator();
    const set = evaluator.compile('many', [limit, guard], 'https://crm.acme.test');
    let allowed = 0;
    for (let i = 0; i < 5000; i++) if (evaluator.evaluate(set, buildCedarContext(facts({ params: { amount: i % 200 } }))).decision === 'allow') allowed++;
    expect(allowed).toBe(5000 * (101 / 200));
  });
});
