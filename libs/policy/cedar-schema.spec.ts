import { describe, expect, it } from 'vitest';
import { validatePolicyText } from './cedar.js';
import { CEDAR_SCHEMA, paramsRecordType, schemaFor } from './cedar-schema.js';

const refund = {
  type: 'object',
  properties: {
    amount: { type: 'integer' },
    region: { type: 'string' },
    express: { type: 'boolean' },
    tags: { type: 'array', items: { type: 'string' } },
    address: { type: 'object', properties: { country: { type: 'string' } }, required: ['country'] },
    ratio: { type: 'number' },
    __entity: { type: 'string' },
  },
  required: ['amount'],
};
const schemas = { 'refund:create': refund };
const actions = ['refund:create', 'orders:read'];

describe('Cedar schema generated from params schemas', () => {
  it('maps string, integer, boolean, object and array; required is non-optional; the rest is left out', () => {
    expect(paramsRecordType(refund, 0)).toBe(
      '{ "amount": Long, "region"?: String, "express"?: Bool, "tags"?: Set<String>, "address"?: { "country": String } }',
    );
  });

  it('without schemas the schema is as before', () => {
    expect(schemaFor(actions)).toBe(
      `${CEDAR_SCHEMA}\naction "orders:read", "refund:create" appliesTo { principal: Workload, resource: Tool, context: RequestContext };\n`,
    );
  });

  it('a policy may use any declared argument, under strict validation', () => {
    const policy = `permit(principal, action == Action::"refund:create", resource) when {
      context.params.amount <= 100 && (context.params has region && context.params.region == "eu") &&
      (context.params has address && context.params.address.country == "DE")
    };`;
    expect(validatePolicyText(policy, actions, schemas)).toEqual([]);
    // Without the schemas, `region` is not a name Cedar knows.
    expect(validatePolicyText(policy, actions)).not.toEqual([]);
  });

  it('an undeclared argument, a wrong type or an optional one read without `has` is refused', () => {
    const bad = [
      'context.params.currency == "EUR"',
      'context.params.amount == "5"',
      'context.params.region == "eu"',
      'context.params.ratio == "1"',
    ];
    for (const when of bad) {
      expect(
        validatePolicyText(`permit(principal, action == Action::"refund:create", resource) when { ${when} };`, actions, schemas),
        when,
      ).not.toEqual([]);
    }
  });

  it('the seven global names keep working for actions without a schema', () => {
    const policy = `forbid(principal, action == Action::"orders:read", resource) when { context.params has owner && context.params.owner == "x" };`;
    expect(validatePolicyText(policy, actions, schemas)).toEqual([]);
  });
});
