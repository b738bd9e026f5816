import { describe, expect, it } from 'vitest';
import { describe as describeSchema, findProblem, resolverFor, withDefaults, type JsonSchema } from './schema.js';

const document = { components: { schemas: { Ttl: { type: 'integer', minimum: 1, default: 60 }, 'a/b': { type: 'string' } } } };
const resolve = resolverFor(document);
const problem = (value: unknown, schema: JsonSchema) => findProblem(value, schema, resolve);

describe('findProblem', () => {
  it('follows $ref, including escaped names, and says which reference names nothing', () => {
    expect(problem(0, { $ref: '#/components/schemas/Ttl' })).toEqual({ path: [], message: 'must be at least 1' });
    expect(problem(1, { $ref: '#/components/schemas/a~1b' })).toEqual({ path: [], message: 'must be a string' });
    expect(() => problem(1, { $ref: '#/components/schemas/Nope' })).toThrow(
      '$ref #/components/schemas/Nope names nothing in /openapi.json',
    );
    expect(() => problem(1, { $ref: 'https://elsewhere.test/schema.json' })).toThrow(/only references inside \/openapi\.json/);
  });

  it('takes a list of types, exclusive bounds, maximum lengths and item counts', () => {
    expect(problem(null, { type: ['string', 'null'] })).toBeUndefined();
    expect(problem(1, { type: ['string', 'null'] })?.message).toBe('must be a string or null');
    expect(problem(0, { type: 'number', exclusiveMinimum: 0 })?.message).toBe('must be more than 0');
    expect(problem(5, { type: 'number', exclusiveMaximum: 5 })?.message).toBe('must be less than 5');
    expect(problem('abc', { type: 'string', maxLength: 2 })?.message).toBe('must be at most 2 characters long');
    expect(problem('a', { type: 'string', minLength: 2 })?.message).toBe('must be at least 2 characters long');
    expect(problem([1, 2], { type: 'array', maxItems: 1 })?.message).toBe('must list at most 1 item(s)');
    expect(problem('x', { const: 'sig' })?.message).toBe('must be "sig"');
    expect(problem(Number.NaN, { type: 'number' })?.message).toBe('must be a number');
  });

  it('checks member names (propertyNames) and members an open map allows (additionalProperties)', () => {
    const data: JsonSchema = {
      type: 'object',
      propertyNames: { type: 'string', pattern: '^[a-z_]+$' },
      additionalProperties: { type: 'string' },
    };
    expect(problem({ ok_name: 'x' }, data)).toBeUndefined();
    expect(problem({ 'Bad-Name': 'x' }, data)).toEqual({ path: ['Bad-Name'], message: 'the name must match ^[a-z_]+$' });
    expect(problem({ ok: 1 }, data)).toEqual({ path: ['ok'], message: 'must be a string' });
  });

  it('needs exactly one alternative for oneOf, any for anyOf; allOf needs every part', () => {
    const overlapping = [{ type: 'integer' }, { type: 'number' }];
    expect(problem(1, { anyOf: overlapping })).toBeUndefined();
    expect(problem(1.5, { oneOf: overlapping })).toBeUndefined();
    expect(problem(1, { oneOf: overlapping })?.message).toBe('fits more than one of its forms (an integer; a number)');
    expect(problem('x', { anyOf: overlapping })?.message).toBe('must be an integer or a number');
    expect(problem(5, { allOf: [{ type: 'integer' }, { maximum: 3 }] })?.message).toBe('must be at most 3');
  });
});

describe('withDefaults', () => {
  it('fills defaults at every depth the value reaches, inside lists and the alternative that fits, and keeps what it does not know', () => {
    const schema: JsonSchema = {
      type: 'object',
      properties: {
        level: { type: 'string', default: 'low' },
        steps: { type: 'array', items: { type: 'object', properties: { ttl: { $ref: '#/components/schemas/Ttl' } } } },
        limit: { anyOf: [{ type: 'object', properties: { burst: { type: 'integer', default: 2 } } }, { type: 'null' }] },
      },
    };
    expect(withDefaults({ steps: [{}, { ttl: 5 }], limit: {}, extra: 1 }, schema, resolve)).toEqual({
      level: 'low',
      steps: [{ ttl: 60 }, { ttl: 5 }],
      limit: { burst: 2 },
      extra: 1,
    });
    expect(withDefaults({ limit: null }, schema, resolve)).toEqual({ level: 'low', limit: null });
    expect(withDefaults('not a map', schema, resolve)).toBe('not a map');
  });
});

describe('describe', () => {
  it('says what a value must be in words', () => {
    expect(describeSchema({ type: 'array', items: { type: 'string' } }, resolve)).toBe('a list of strings');
    expect(describeSchema({ type: 'array', items: { type: 'string', enum: ['a'] } }, resolve)).toBe('a list');
    expect(describeSchema({ type: 'array', items: { $ref: '#/components/schemas/Ttl' } }, resolve)).toBe('a list of integers');
    expect(describeSchema({ anyOf: [{ type: 'object' }, { type: 'null' }] }, resolve)).toBe('a map or null');
    expect(describeSchema({ enum: ['low', 1] }, resolve)).toBe('one of low, 1');
    expect(describeSchema({}, resolve)).toBe('any value');
    expect(describeSchema({ type: 'boolean' }, resolve)).toBe('true or false');
  });
});
