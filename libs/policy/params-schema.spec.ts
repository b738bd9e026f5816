import { describe, expect, it } from 'vitest';
import { exampleBoundary } from './boundary.fixture.js';
import { MAX_PARAMS_SCHEMA_BYTES, MAX_PARAMS_SCHEMA_DEPTH, paramsMismatch, paramsSchemaProblem } from './params-schema.js';

const refund = {
  type: 'object',
  properties: { amount: { type: 'integer', minimum: 1 }, region: { type: 'string', enum: ['eu', 'us'] } },
  required: ['amount'],
  additionalProperties: false,
};

describe('paramsSchemaProblem', () => {
  it('accepts an object schema ajv compiles in strict mode', () => {
    expect(paramsSchemaProblem(refund)).toBeUndefined();
  });

  it('refuses what is not a schema, an unknown keyword (strict), a non-object schema, an unresolvable $ref', () => {
    expect(paramsSchemaProblem([])).toBe('must be a JSON Schema object');
    expect(paramsSchemaProblem({ type: 'object', properties: { a: { type: 'strin' } } })).toMatch(/not a valid JSON Schema/);
    expect(paramsSchemaProblem({ type: 'object', maxAmount: 3 })).toMatch(/not a valid JSON Schema: strict mode: unknown keyword/);
    expect(paramsSchemaProblem({ type: 'string' })).toMatch(/"type": "object"/);
    expect(paramsSchemaProblem({ type: 'object', properties: { a: { $ref: 'https://evil.test/s.json' } } })).toMatch(/not a valid/);
  });

  it('bounds size, depth and pattern length before compiling (admin input is hostile)', () => {
    const big = { type: 'object', description: 'x'.repeat(MAX_PARAMS_SCHEMA_BYTES) };
    expect(paramsSchemaProblem(big)).toBe(`must be at most ${MAX_PARAMS_SCHEMA_BYTES} bytes`);
    let deep: Record<string, unknown> = { type: 'object' };
    for (let i = 0; i < MAX_PARAMS_SCHEMA_DEPTH; i++) deep = { type: 'object', properties: { a: deep } };
    expect(paramsSchemaProblem(deep)).toMatch(/nest at most/);
    expect(paramsSchemaProblem({ type: 'object', properties: { a: { type: 'string', pattern: 'a'.repeat(257) } } })).toMatch(/pattern/);
  });
});

describe('paramsMismatch', () => {
  const boundary = exampleBoundary({
    id: 'refunds',
    version: 3,
    actions: ['refund:create', 'orders:read'],
    paramsSchemas: { 'refund:create': refund },
  });

  it('passes matching params, and any params for an action without a schema', () => {
    expect(paramsMismatch(boundary, 'refund:create', { amount: 49, region: 'eu' })).toBeUndefined();
    expect(paramsMismatch(boundary, 'orders:read', { anything: [1, 2] })).toBeUndefined();
  });

  it('names the argument and the rule, never the value', () => {
    expect(paramsMismatch(boundary, 'refund:create', { amount: 'five thousand' })).toBe('params/amount: must be integer');
    expect(paramsMismatch(boundary, 'refund:create', {})).toBe('params/amount: is required');
    expect(paramsMismatch(boundary, 'refund:create', { amount: 1, sneaky: 'x' })).toBe('params/sneaky: is not an argument of the action');
    expect(paramsMismatch(boundary, 'refund:create', { amount: 1, region: 'mars' })).not.toContain('mars');
  });

  it('runs patterns in linear time (RE2): a catastrophic pattern cannot stall the broker', () => {
    const hostile = exampleBoundary({
      id: 'redos',
      version: 1,
      actions: ['lookup'],
      paramsSchemas: {
        lookup: {
          type: 'object',
          properties: { q: { type: 'string', pattern: '^(a+)+$' } },
          patternProperties: { '^(x+x+)+y$': { type: 'integer' } },
        },
      },
    });
    // On JavaScript's backtracking engine, each of these takes longer than the universe has left:
    // the test would never reach its timeout's end.
    const attack = 'a'.repeat(40_000) + '!';
    expect(paramsMismatch(hostile, 'lookup', { q: attack })).toBe('params/q: must match pattern "^(a+)+$"');
    expect(paramsMismatch(hostile, 'lookup', { ['x'.repeat(40_000)]: 'not checked: the key does not match' })).toBeUndefined();
    expect(paramsMismatch(hostile, 'lookup', { q: 'aaaa', xxy: 'text' })).toBe('params/xxy: must be integer');
  });

  it('refuses patterns RE2 cannot run in linear time (backreferences, lookaround) when the boundary is written', () => {
    expect(paramsSchemaProblem({ type: 'object', properties: { a: { type: 'string', pattern: '^(a)\\1$' } } })).toMatch(/not a valid/);
    expect(paramsSchemaProblem({ type: 'object', properties: { a: { type: 'string', pattern: '^(?=a)a$' } } })).toMatch(/not a valid/);
    expect(paramsSchemaProblem({ type: 'object', properties: { a: { type: 'string', pattern: '^[a-z]{2,8}$' } } })).toBeUndefined();
  });

  it('compiles once per boundary version', () => {
    const first = exampleBoundary({
      id: 'cache',
      version: 1,
      actions: ['a'],
      paramsSchemas: { a: { type: 'object', required: ['x'], properties: { x: {} } } },
    });
    expect(paramsMismatch(first, 'a', {})).toBe('params/x: is required');
    // Same id and version: the compiled schema is reused (a version never changes).
    const same = { ...first, paramsSchemas: { a: { type: 'object' } } };
    expect(paramsMismatch(same, 'a', {})).toBe('params/x: is required');
    expect(paramsMismatch({ ...same, version: 2 }, 'a', {})).toBeUndefined();
  });
});
