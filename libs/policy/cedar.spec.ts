import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exampleBoundary } from './boundary.fixture.js';
import { CEDAR_SCHEMA } from './cedar-schema.js';
import { preparsePolicySet } from '@cedar-policy/cedar-wasm/nodejs';
import {
  approvalConditionProblems,
  buildCedarContext,
  CedarEvaluator,
  validatePolicyText,
  type PolicySource,
  type RequestFacts,
} from './cedar.js';

const facts = (overrides: Partial<RequestFacts> = {}): RequestFacts => ({
  workloadId: 'chatbot',
  task: { intent: 'order_status', subject: 'user-42', ageSeconds: 12.7, denials: 1 },
  boundary: exampleBoundary({ id: 'crm', sensitivity: 'high' }),
  action: 'orders:read',
  resource: 'order/7',
  params: { amount: 40 },
  purpose: null,
  approved: false,
  at: Date.UTC(2026, 10, 25, 10, 30), // a Wednesday
  ...overrides,
});

describe('buildCedarContext', () => {
  it("spells the request in the schema's model, with now as UTC integers", () => {
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
      approved: false,
      now: { hour: 10, minute: 30, weekday: 3, unix: Date.UTC(2026, 10, 25, 10, 30) / 1000 },
    });
    expect(request.entities[0]).toMatchObject({
      uid: { type: 'Tool', id: 'https://crm.acme.test' },
      attrs: { boundary: 'crm', sensitivity: 'high' },
    });
  });

  it('keeps params Cedar can hold and drops what would forge an entity or an extension value', () => {
    const { context } = buildCedarContext(
      facts({ params: { amount: 1.5, owner: { __entity: { type: 'Workload', id: 'x' } }, n: null, list: [1, 'a', null], ok: true } }),
    );
    expect(context.params).toEqual({ amount: '1.5', owner: {}, list: [1, 'a'], ok: true });
  });
});

describe('validatePolicyText', () => {
  it("accepts a policy of the model and locates Cedar's errors by line and column", () => {
    expect(
      validatePolicyText('permit(principal, action == Action::"orders:read", resource) when { context.now.hour >= 9 };', ['orders:read']),
    ).toEqual([]);
    const [problem] = validatePolicyText('permit(principal, action, resource)\nwhen { resource.owner == "x" };', ['orders:read']);
    expect(problem).toMatchObject({ line: 2, column: 8, message: expect.stringContaining('owner') });
    expect(validatePolicyText('permit(principal, action == Action::"nope", resource);', ['orders:read'])).not.toEqual([]);
    expect(validatePolicyText('// nothing', ['orders:read'])).toEqual([{ message: 'the policy set has no policies' }]);
    expect(validatePolicyText('permit(principal, action, resource) when { !context.approved };', ['orders:read'])).toEqual([]);
  });

  it('accepts @approval("required") on a permit only', () => {
    expect(validatePolicyText('@approval("required") permit(principal, action, resource);', ['orders:read'])).toEqual([]);
    expect(validatePolicyText('@approval("maybe") permit(principal, action, resource);', ['orders:read'])[0]?.message).toMatch(
      /only approval annotation/,
    );
    expect(validatePolicyText('@approval("required") forbid(principal, action, resource);', ['orders:read'])[0]?.message).toMatch(
      /only on a permit/,
    );
  });

  it('ships the schema file the code validates against', () => {
    expect(readFileSync(new URL('./tollgate.cedarschema', import.meta.url), 'utf8')).toBe(CEDAR_SCHEMA);
  });
});

describe('CedarEvaluator', () => {
  const global = (id: string, version: number, text: string): PolicySource => ({ id, version, text, scope: 'global' });
  const limit = global(
    'limit',
    2,
    'permit(principal, action, resource) when { context.params has amount && context.params.amount <= 100 };',
  );
  const guard = global('guard', 1, 'forbid(principal == Workload::"intern", action, resource) when { resource.sensitivity == "high" };');
  const elsewhere = global('elsewhere', 1, 'forbid(principal, action, resource == Tool::"https://other.test");');

  it('lets forbid win, denies without a permit, and names the deciding policy sets', () => {
    const evaluator = new CedarEvaluator();
    const set = evaluator.compile('k1', [limit, guard], 'https://crm.acme.test');
    expect(evaluator.evaluate(set, buildCedarContext(facts()))).toEqual({
      decision: 'allow',
      reasons: [],
      determiningPolicies: [{ id: 'limit', version: 2 }],
      errors: [],
      approvalRequired: false,
    });
    expect(evaluator.evaluate(set, buildCedarContext(facts({ params: { amount: 101 } })))).toMatchObject({
      decision: 'deny',
      reasons: ['policy_no_permit'],
    });
    expect(evaluator.evaluate(set, buildCedarContext(facts({ workloadId: 'intern' })))).toMatchObject({
      decision: 'deny',
      reasons: ['policy_forbid'],
      determiningPolicies: [{ id: 'guard', version: 1 }],
    });
  });

  it('keeps two evaluators apart and notices a set replaced behind its back (issue 12, finding 1)', () => {
    const live = new CedarEvaluator();
    const replay = new CedarEvaluator();
    const set = live.compile('k-live', [limit], 'https://crm.acme.test');
    const other = replay.compile('k-replay', [global('all', 1, 'permit(principal, action, resource);')], 'https://crm.acme.test');
    expect(other.slot).not.toBe(set.slot);
    const big = buildCedarContext(facts({ params: { amount: 500 } }));
    expect(live.evaluate(set, big).decision).toBe('deny');
    // Anything else preparing into the live slot: the live evaluator must not decide on it.
    expect(preparsePolicySet(set.slot, { staticPolicies: { p: 'permit(principal, action, resource);' } }).type).toBe('success');
    expect(live.evaluate(set, big)).toMatchObject({ decision: 'deny', reasons: ['policy_no_permit'], errors: [] });
    expect(live.evaluate(set, buildCedarContext(facts())).decision).toBe('allow');
  });

  it('treats global forbids only as a guardrail, and leaves out policies scoped to another tool', () => {
    const evaluator = new CedarEvaluator();
    const set = evaluator.compile('k2', [guard, elsewhere], 'https://crm.acme.test');
    expect(Object.keys(set.policies)).toHaveLength(1);
    expect(evaluator.evaluate(set, buildCedarContext(facts())).decision).toBe('allow');
    expect(evaluator.evaluate(set, buildCedarContext(facts({ workloadId: 'intern' }))).reasons).toEqual(['policy_forbid']);
    const none = evaluator.compile('k2-none', [elsewhere], 'https://crm.acme.test');
    expect(evaluator.evaluate(none, buildCedarContext(facts())).decision).toBe('allow');
  });

  it("follows Cedar's default deny with a boundary's own policy, even one of forbids only", () => {
    const evaluator = new CedarEvaluator();
    const own: PolicySource = { ...guard, id: 'boundary:crm', scope: 'boundary' };
    const set = evaluator.compile('k2-own', [own], 'https://crm.acme.test');
    expect(evaluator.evaluate(set, buildCedarContext(facts()))).toMatchObject({
      decision: 'deny',
      reasons: ['policy_no_permit'],
      determiningPolicies: [],
    });
    expect(evaluator.evaluate(set, buildCedarContext(facts({ workloadId: 'intern' })))).toMatchObject({
      decision: 'deny',
      reasons: ['policy_forbid'],
    });
    // Scoped to another tool, the boundary's policy still attaches: nothing permits.
    const elsewhereOwn = evaluator.compile(
      'k2-elsewhere',
      [{ ...elsewhere, id: 'boundary:crm', scope: 'boundary' }],
      'https://crm.acme.test',
    );
    expect(Object.keys(elsewhereOwn.policies)).toHaveLength(0);
    expect(evaluator.evaluate(elsewhereOwn, buildCedarContext(facts())).reasons).toEqual(['policy_no_permit']);
  });

  it('marks an allow a permit annotated @approval("required") decided, and reads context.approved', () => {
    const evaluator = new CedarEvaluator();
    const refunds = global(
      'refunds',
      1,
      `permit(principal, action, resource) when { context.params has amount && (context.params.amount <= 100 || context.approved) };
       @approval("required")
       permit(principal, action, resource) when { context.params has amount && context.params.amount > 100 && !context.approved };`,
    );
    const set = evaluator.compile('k-approval', [refunds], 'https://crm.acme.test');
    expect(evaluator.evaluate(set, buildCedarContext(facts({ params: { amount: 50 } })))).toMatchObject({
      decision: 'allow',
      approvalRequired: false,
    });
    expect(evaluator.evaluate(set, buildCedarContext(facts({ params: { amount: 500 } })))).toMatchObject({
      decision: 'allow',
      approvalRequired: true,
    });
    expect(evaluator.evaluate(set, buildCedarContext(facts({ params: { amount: 500 }, approved: true })))).toMatchObject({
      decision: 'allow',
      approvalRequired: false,
    });
    expect(evaluator.evaluate(set, buildCedarContext(facts({ params: {} })))).toMatchObject({
      decision: 'deny',
      reasons: ['policy_no_permit'],
    });
  });

  it('fails closed when a forbid cannot be evaluated', () => {
    const evaluator = new CedarEvaluator();
    const broken = global(
      'broken',
      1,
      'permit(principal, action, resource);\nforbid(principal, action, resource) when { context.params.amount > 100 };',
    );
    const set = evaluator.compile('k3', [broken], 'https://crm.acme.test');
    expect(evaluator.evaluate(set, buildCedarContext(facts({ params: {} })))).toMatchObject({
      decision: 'deny',
      reasons: ['policy_forbid'],
      determiningPolicies: [{ id: 'broken', version: 1 }],
    });
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
    for (let i = 0; i < 5000; i++)
      if (evaluator.evaluate(set, buildCedarContext(facts({ params: { amount: i % 200 } }))).decision === 'allow') allowed++;
    expect(allowed).toBe(5000 * (101 / 200));
  });
});

describe('approval conditions', () => {
  const holds = (evaluator: CedarEvaluator, key: string, when: string, overrides: Partial<RequestFacts> = {}) =>
    evaluator.conditionHolds(key, when, buildCedarContext(facts(overrides)));

  it("accepts a condition and explains a bad one in Cedar's words, with the line and column in the condition", () => {
    expect(approvalConditionProblems('context.params.amount > 100')).toEqual([]);
    expect(approvalConditionProblems('context.params.amount >')[0]).toMatchObject({
      message: expect.stringMatching(/^unexpected token/),
      line: 1,
      column: 25,
    });
    expect(approvalConditionProblems('context.params.amount > 100 &&\n  context.intent ==')[0]).toMatchObject({ line: 2, column: 21 });
    expect(approvalConditionProblems('true }; permit(principal, action, resource) when { true')[0]?.message).toMatch(/one Cedar condition/);
    expect(approvalConditionProblems('x'.repeat(5000))[0]?.message).toMatch(/at most 4096/);
  });

  it('sees exactly the context policies see: principal, action, resource, context.now as a record, context.approved', () => {
    const evaluator = new CedarEvaluator();
    expect(holds(evaluator, 'c1', 'context.params.amount > 100', { params: { amount: 150 } })).toBe(true);
    expect(holds(evaluator, 'c1', 'context.params.amount > 100', { params: { amount: 100 } })).toBe(false);
    const rich =
      'principal == Workload::"chatbot" && action == Action::"orders:read" && resource == Tool::"https://crm.acme.test" && resource.sensitivity == "high" ' +
      '&& context.task_age_s == 12 && context.denials_in_task == 1 && context.intent == "order_status" && context.resource == "order/7" ' +
      '&& context.now.weekday == 3 && context.now.hour == 10 && !context.approved';
    expect(holds(evaluator, 'c2', rich)).toBe(true);
    expect(holds(evaluator, 'c2', rich, { resource: 'order/8' })).toBe(false);
    expect(holds(evaluator, 'c2', rich, { approved: true })).toBe(false);
  });

  it('fails closed: a condition that errors on the request, or does not compile, requires approval', () => {
    const evaluator = new CedarEvaluator();
    expect(holds(evaluator, 'c3', 'context.params.amount > 100', { params: {} })).toBe(true);
    expect(holds(evaluator, 'c3', 'context.params.amount > 100', { params: { amount: 'lots' } })).toBe(true);
    expect(holds(evaluator, 'c4', 'context.params.amount >')).toBe(true);
  });

  it('reads params as policies do: nulls dropped, fractions as strings, escapes stripped', () => {
    const evaluator = new CedarEvaluator();
    const when = 'context.params has note || context.params has __entity || context.params.amount == "99.75"';
    expect(holds(evaluator, 'c5', when, { params: { note: null, amount: 99.75 } })).toBe(true);
    expect(holds(evaluator, 'c5', when, { params: { note: null, amount: 12.25, __entity: { type: 'X', id: 'y' } } })).toBe(false);
  });
});
