import { describe, expect, it } from 'vitest';
import type { PutSchemas } from '../apply/manifest.js';
import type { JsonSchema } from '../apply/schema.js';
import { planImport } from './boundary.js';

const ACTION: JsonSchema = { type: 'string', pattern: '^[a-z0-9][a-zA-Z0-9._:/-]{0,127}$' };

/** A broker's boundary PUT schema, with or without per-action params schemas. */
function schemas(withParamsSchemas: boolean): PutSchemas {
  const properties: Record<string, JsonSchema> = {
    tool: { type: 'string' },
    actions: { type: 'array', items: ACTION, minItems: 1 },
    intents: { type: 'array', items: ACTION, minItems: 1 },
    default_ttl: { type: 'integer' },
    max_ttl: { type: 'integer' },
    credential: { type: 'object' },
    sensitivity: { type: 'string', enum: ['low', 'medium', 'high'] },
    approval: { type: 'object' },
  };
  if (withParamsSchemas) properties.params_schemas = { type: 'object', additionalProperties: { type: 'object' } };
  const boundary: JsonSchema = {
    type: 'object',
    properties,
    required: ['tool', 'actions', 'intents', 'default_ttl', 'max_ttl', 'credential'],
    additionalProperties: false,
  };
  const other: JsonSchema = { type: 'object' };
  return {
    byKind: { boundary, issuer: other, workload: other, policy: other },
    resolve: () => {
      throw new Error('no references here');
    },
  };
}

const URL = 'https://mcp.acme.test/mcp';
const LOOKUP = { name: 'orders.lookup', inputSchema: { type: 'object', properties: { order_id: { type: 'string' } } } };
const REFUND = {
  name: 'refund.create',
  inputSchema: { type: 'object', properties: { amount: { type: 'number' } }, required: ['amount'] },
};
const request = { boundaryId: 'acme', serverUrl: URL, tools: [LOOKUP, REFUND], intents: ['refund_request'] };

describe('planImport', () => {
  it('creates a boundary with the tools as actions and, where the broker takes them, their input schemas', () => {
    const planned = planImport(request, undefined, schemas(true));
    expect(planned.schemasApplied).toBe(true);
    expect(planned.change).toEqual({
      action: 'create',
      kind: 'boundary',
      id: 'acme',
      body: {
        tool: URL,
        actions: ['orders.lookup', 'refund.create'],
        intents: ['refund_request'],
        params_schemas: { 'orders.lookup': LOOKUP.inputSchema, 'refund.create': REFUND.inputSchema },
        default_ttl: 60,
        max_ttl: 300,
        credential: { kind: 'jwt' },
      },
    });
    expect(planned.actions.map((a) => `${a.action} ${a.name}`)).toEqual(['+ orders.lookup', '+ refund.create']);
  });

  it('leaves the schemas out of the body of a broker whose boundaries take none, but keeps them in the plan', () => {
    const planned = planImport(request, undefined, schemas(false));
    expect(planned.schemasApplied).toBe(false);
    expect(planned.change?.body).not.toHaveProperty('params_schemas');
    expect(planned.actions[1]?.paramsSchema).toEqual(REFUND.inputSchema);
  });

  it('changes only the fields the import owns, keeping what an admin set, and marks a changed input schema', () => {
    const stored = {
      id: 'acme',
      version: 2,
      tool: URL,
      actions: ['orders.lookup', 'refund.create'],
      intents: ['refund_request', 'order_status'],
      default_ttl: 30,
      max_ttl: 90,
      credential: { kind: 'jwt', audience_suffix: null },
      sensitivity: 'high',
      approval: null,
      params_schemas: { 'orders.lookup': LOOKUP.inputSchema, 'refund.create': { type: 'object' } },
    };
    // Without --intent, the stored intents stay; member order in a schema does not count.
    const same = planImport(
      {
        ...request,
        intents: undefined,
        tools: [{ ...LOOKUP, inputSchema: { properties: LOOKUP.inputSchema.properties, type: 'object' } }, REFUND],
      },
      stored,
      schemas(true),
    );
    expect(same.change?.fields).toEqual([
      {
        field: 'params_schemas',
        from: stored.params_schemas,
        to: { 'orders.lookup': LOOKUP.inputSchema, 'refund.create': REFUND.inputSchema },
      },
    ]);
    expect(same.change?.body).toMatchObject({
      sensitivity: 'high',
      default_ttl: 30,
      max_ttl: 90,
      intents: ['refund_request', 'order_status'],
    });
    expect(same.change?.body).not.toHaveProperty('approval');
    expect(same.change?.body).not.toHaveProperty('version');
    expect(same.actions.map((a) => `${a.action} ${a.name}`)).toEqual(['= orders.lookup', '~ refund.create']);

    const unchanged = planImport(
      { ...request, intents: undefined },
      { ...stored, params_schemas: { 'orders.lookup': LOOKUP.inputSchema, 'refund.create': REFUND.inputSchema } },
      schemas(true),
    );
    expect(unchanged.change).toBeUndefined();
  });

  it('refuses a new boundary without intents, and a tool name that cannot be an action', () => {
    expect(() => planImport({ ...request, intents: [] }, undefined, schemas(true))).toThrow(/give its intents with --intent/);
    expect(() => planImport({ ...request, tools: [LOOKUP, { ...REFUND, name: 'Refund' }] }, undefined, schemas(true))).toThrow(
      /actions\.1 \(tool "Refund"\): must match/,
    );
  });
});
