import { describe, expect, it } from 'vitest';
import { checkBodies, parseManifest, putSchemas, type PutSchemas } from './manifest.js';
import { describeChange, differences, matches, plan, type PlanContext } from './plan.js';

/**
 * The admin PUT paths of an /openapi.json, shaped as the broker serves them (JSON Schema 2020-12, as
 * zod writes it) but trimmed to what these tests need. The CLI reads the real document from the
 * broker it talks to: test/cli.e2e.spec.ts runs it against one.
 */
const body = (schema: Record<string, unknown>) => ({
  put: { requestBody: { required: true, content: { 'application/json': { schema } } } },
});
const nullable = (schema: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  ...extra,
  anyOf: [schema, { type: 'null' }],
});
const strings = { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[a-z0-9][a-zA-Z0-9._:/-]{0,127}$' } };
const ttl = { type: 'integer', minimum: 1, maximum: 3600 };
const jwks = {
  type: 'object',
  properties: {
    keys: {
      type: 'array',
      items: { type: 'object', properties: { kty: { type: 'string' } }, required: ['kty'], additionalProperties: {} },
    },
  },
  required: ['keys'],
  additionalProperties: false,
};
const DOCUMENT = {
  openapi: '3.1.1',
  paths: {
    '/v1/admin/issuers/{id}': body({
      type: 'object',
      properties: {
        issuer: { type: 'string', minLength: 1 },
        kind: { type: 'string', enum: ['spiffe', 'kubernetes', 'oidc'] },
        trust_domain: { type: 'string' },
        jwks_uri: { type: 'string' },
        jwks,
        audiences: { type: 'array', items: { type: 'string' } },
        enabled: { type: 'boolean' },
      },
      required: ['issuer', 'kind'],
      additionalProperties: false,
    }),
    '/v1/admin/workloads/{id}': body({
      type: 'object',
      properties: {
        jwks,
        issuer: { type: 'string' },
        subject: { type: 'string' },
        enabled: { type: 'boolean' },
        rate_limit: nullable({
          type: 'object',
          properties: { per_second: { type: 'number', minimum: 0.001 }, burst: { type: 'integer', minimum: 1 } },
          additionalProperties: false,
        }),
      },
      additionalProperties: false,
    }),
    '/v1/admin/boundaries/{id}': body({ $ref: '#/components/schemas/BoundaryBody' }),
    '/v1/admin/policies/{id}': body({
      type: 'object',
      properties: { policy: { type: 'string', minLength: 1 }, description: nullable({ type: 'string' }, { default: null }) },
      required: ['policy'],
      additionalProperties: false,
    }),
  },
  components: {
    schemas: {
      BoundaryBody: {
        type: 'object',
        properties: {
          tool: { type: 'string', minLength: 1 },
          actions: strings,
          intents: strings,
          default_ttl: ttl,
          max_ttl: ttl,
          credential: {
            oneOf: [
              { type: 'object', properties: { kind: { type: 'string', const: 'jwt' } }, required: ['kind'], additionalProperties: false },
              {
                type: 'object',
                properties: { kind: { type: 'string', const: 'vault' }, path: { type: 'string' }, wrap_ttl: ttl },
                required: ['kind', 'path'],
                additionalProperties: false,
              },
            ],
          },
          sensitivity: { default: 'low', type: 'string', enum: ['low', 'medium', 'high'] },
          drift_threshold: nullable({ type: 'integer', minimum: 1, maximum: 1000 }, { default: null }),
          enabled: { default: true, type: 'boolean' },
          approval: {
            type: 'object',
            properties: { when: { type: 'string', minLength: 1 }, ttl: { default: 600, type: 'integer', minimum: 1 } },
            required: ['when'],
            additionalProperties: false,
          },
          policy: nullable({ type: 'string', minLength: 1 }, { default: null }),
        },
        required: ['tool', 'actions', 'intents', 'default_ttl', 'max_ttl', 'credential'],
        additionalProperties: false,
      },
    },
  },
};
const schemas: PutSchemas = putSchemas(DOCUMENT);
const context: PlanContext = { issuer: 'https://tollgate.acme.test', schemas };
const boundary = {
  tool: 'https://crm.acme.test',
  actions: ['orders:read'],
  intents: ['order_status'],
  default_ttl: 120,
  max_ttl: 300,
  credential: { kind: 'jwt' },
};
/** What GET /v1/admin/boundaries/{id} answers for `boundary` after a PUT: defaults filled, extra fields. */
const stored = { id: 'crm-orders', version: 3, ...boundary, sensitivity: 'low', enabled: true, created_at: '2026-11-24T10:00:00.000Z' };

describe('plan', () => {
  it('does not read the defaults the broker filled, or its own fields, as changes', () => {
    expect(differences('boundary', boundary, stored, context)).toEqual([]);
    expect(
      differences('boundary', { ...boundary, approval: { when: 'true' } }, { ...stored, approval: { when: 'true', ttl: 600 } }, context),
    ).toEqual([]);
    expect(
      differences(
        'issuer',
        { issuer: 'https://spire.acme.test', kind: 'oidc', jwks_uri: 'https://spire.acme.test/keys' },
        {
          id: 'spire',
          issuer: 'https://spire.acme.test',
          kind: 'oidc',
          jwks_uri: 'https://spire.acme.test/keys',
          audiences: [context.issuer],
          enabled: true,
          revision: 1,
        },
        context,
      ),
    ).toEqual([]);
  });

  it('names the fields that differ, including a default the file went back to', () => {
    expect(differences('boundary', { ...boundary, default_ttl: 90 }, stored, context)).toEqual([
      { field: 'default_ttl', from: 120, to: 90 },
    ]);
    expect(differences('boundary', boundary, { ...stored, sensitivity: 'high', drift_threshold: 3 }, context)).toEqual([
      { field: 'sensitivity', from: 'high', to: 'low' },
      { field: 'drift_threshold', from: 3, to: null },
    ]);
    expect(
      differences('boundary', { ...boundary, approval: { when: 'true' } }, { ...stored, approval: { when: 'true', ttl: 900 } }, context),
    ).toEqual([{ field: 'approval', from: { when: 'true', ttl: 900 }, to: { when: 'true', ttl: 600 } }]);
    expect(differences('boundary', { ...boundary, actions: ['orders:read', 'orders:refund'] }, stored, context)).toHaveLength(1);
    // A disabled policy set comes back with a PUT; a workload's kill switch stays on unless the file says enabled.
    expect(differences('policy', { policy: 'p' }, { id: 'p', policy: 'p', description: null, enabled: false }, context)).toEqual([
      { field: 'enabled', from: false, to: true },
    ]);
    expect(
      differences(
        'workload',
        { jwks: { keys: [{ kty: 'OKP', x: 'a' }] } },
        { id: 'w', jwks: { keys: [{ kty: 'OKP', x: 'a' }] }, enabled: false },
        context,
      ),
    ).toEqual([]);
    expect(
      differences(
        'workload',
        { jwks: { keys: [] }, rate_limit: { per_second: 5 } },
        { id: 'w', jwks: { keys: [] }, rate_limit: { per_second: 5, burst: 10 } },
        context,
      ),
    ).toEqual([]);
    expect(
      differences('workload', { jwks: { keys: [] } }, { id: 'w', jwks: { keys: [] }, rate_limit: { per_second: 5, burst: 10 } }, context),
    ).toEqual([{ field: 'rate_limit', from: { per_second: 5, burst: 10 }, to: null }]);
    expect(
      differences(
        'workload',
        { issuer: 'spire', subject: 's' },
        { id: 'w', jwks: { keys: [{ kty: 'OKP', x: 'a' }] }, enabled: true },
        context,
      ).map((c) => c.field),
    ).toEqual(['jwks', 'issuer', 'subject']);
  });

  it('creates, changes and disables, in apply order, only for kinds the file mentions', () => {
    const manifest = parseManifest(
      `boundaries:\n  crm-orders: ${JSON.stringify({ ...boundary, max_ttl: 600 })}\n  crm-new: ${JSON.stringify(boundary)}\nworkloads:\n  bot: { issuer: spire, subject: spiffe://acme.test/bot }\n`,
      'f.yaml',
    );
    const changes = plan(
      manifest,
      {
        boundary: [stored, { ...stored, id: 'crm-old' }, { ...stored, id: 'crm-gone', enabled: false }],
        workload: [],
        policy: [{ id: 'untouched', policy: 'p', enabled: true }],
      },
      context,
    );
    expect(changes.map(describeChange)).toEqual([
      '+ create workload/bot',
      '~ change boundary/crm-orders (max_ttl: 300 → 600)',
      '+ create boundary/crm-new',
      '- disable boundary/crm-old',
    ]);
  });

  it('matches nested maps by the members the file gives, lists exactly', () => {
    expect(matches({ kind: 'vault' }, { kind: 'vault', wrap_ttl: 60 })).toBe(true);
    expect(matches({ kind: 'vault', wrap_ttl: 30 }, { kind: 'vault', wrap_ttl: 60 })).toBe(false);
    expect(matches(['a', 'b'], ['b', 'a'])).toBe(false);
    expect(matches(['a'], ['a', 'b'])).toBe(false);
    expect(matches(null, undefined)).toBe(true);
    expect(matches(1, '1')).toBe(false);
  });
});

describe('parseManifest and checkBodies', () => {
  const bad = (text: string) => {
    try {
      checkBodies(parseManifest(text, 'f.yaml'), schemas, 'f.yaml');
    } catch (error) {
      return (error as Error).message;
    }
    return 'no error';
  };

  it('names the path of the first bad field', () => {
    expect(bad('boundaries:\n  crm-x:\n    tool: x\n    colour: red\n')).toMatch(/^f\.yaml: boundaries\.crm-x\.colour: unknown field/);
    expect(bad('boundaries:\n  crm-x:\n    tool: x\n    actions: read\n')).toBe(
      'f.yaml: boundaries.crm-x.actions: must be a list of strings',
    );
    expect(bad(`boundaries:\n  crm-x: ${JSON.stringify({ ...boundary, default_ttl: 1.5 })}\n`)).toBe(
      'f.yaml: boundaries.crm-x.default_ttl: must be an integer',
    );
    expect(bad('boundaries:\n  crm-x:\n    tool: x\n')).toBe('f.yaml: boundaries.crm-x.actions: is required');
    expect(bad('widgets: {}\n')).toMatch(/^f\.yaml: widgets: unknown section/);
    expect(bad('boundaries:\n  a: 1\n  a: 2\n')).toMatch(/^f\.yaml: not valid YAML: .*line 3/);
    expect(bad('')).toMatch(/empty/);
    expect(bad('- a\n')).toMatch(/must be a map/);
  });

  it("checks values by the broker's schema, not only shapes, inside nested maps and lists too", () => {
    const boundaryWith = (fields: Record<string, unknown>) => `boundaries:\n  crm-x: ${JSON.stringify({ ...boundary, ...fields })}\n`;
    expect(bad(boundaryWith({}))).toBe('no error');
    expect(bad(boundaryWith({ sensitivity: 'extreme' }))).toBe('f.yaml: boundaries.crm-x.sensitivity: must be one of low, medium, high');
    expect(bad(boundaryWith({ default_ttl: 0 }))).toBe('f.yaml: boundaries.crm-x.default_ttl: must be at least 1');
    expect(bad(boundaryWith({ actions: [] }))).toBe('f.yaml: boundaries.crm-x.actions: must list at least 1 item(s)');
    expect(bad(boundaryWith({ actions: ['orders:read', 'Orders'] }))).toBe(
      'f.yaml: boundaries.crm-x.actions.1: must match ^[a-z0-9][a-zA-Z0-9._:/-]{0,127}$',
    );
    expect(bad(boundaryWith({ tool: '' }))).toBe('f.yaml: boundaries.crm-x.tool: must not be empty');
    expect(bad(boundaryWith({ drift_threshold: 'lots' }))).toBe('f.yaml: boundaries.crm-x.drift_threshold: must be an integer or null');
    expect(bad(boundaryWith({ drift_threshold: 0 }))).toBe('f.yaml: boundaries.crm-x.drift_threshold: must be at least 1');
    expect(bad(boundaryWith({ drift_threshold: null }))).toBe('no error');
    // A credential is one of several forms: the one its kind names judges it.
    expect(bad(boundaryWith({ credential: { kind: 'vault' } }))).toBe('f.yaml: boundaries.crm-x.credential.path: is required');
    expect(bad(boundaryWith({ credential: { kind: 'jwt', path: 'x' } }))).toMatch(
      /^f\.yaml: boundaries\.crm-x\.credential\.path: unknown field \(it takes kind\)$/,
    );
    expect(bad(boundaryWith({ credential: { kind: 'ldap' } }))).toBe('f.yaml: boundaries.crm-x.credential.kind: must be one of jwt, vault');
    expect(bad(boundaryWith({ credential: {} }))).toBe('f.yaml: boundaries.crm-x.credential.kind: is required (one of jwt, vault)');
    expect(bad(boundaryWith({ credential: 'jwt' }))).toBe('f.yaml: boundaries.crm-x.credential: must be a map');
    expect(bad(boundaryWith({ approval: { when: 'true', ttl: 'soon' } }))).toBe(
      'f.yaml: boundaries.crm-x.approval.ttl: must be an integer',
    );
    expect(bad('workloads:\n  bot: { rate_limit: { per_second: 0 } }\n')).toBe(
      'f.yaml: workloads.bot.rate_limit.per_second: must be at least 0.001',
    );
    expect(bad('workloads:\n  bot: { jwks: { keys: [{ x: a }] } }\n')).toBe('f.yaml: workloads.bot.jwks.keys.0.kty: is required');
    expect(bad('issuers:\n  spire: { issuer: x, kind: ldap }\n')).toBe(
      'f.yaml: issuers.spire.kind: must be one of spiffe, kubernetes, oidc',
    );
    expect(bad('policies:\n  p: { policy: x, colour: red }\n')).toBe(
      'f.yaml: policies.p.colour: unknown field (a policy takes policy, description)',
    );
    expect(bad('policies:\n  p: 1\n')).toBe('f.yaml: policies.p: must be a map of fields');
  });

  it('refuses a broker whose /openapi.json lacks a PUT schema it needs, naming it', () => {
    const { '/v1/admin/policies/{id}': _policies, ...paths } = DOCUMENT.paths;
    expect(() => putSchemas({ ...DOCUMENT, paths })).toThrow('its /openapi.json has no JSON body schema for PUT /v1/admin/policies/{id}');
    expect(() =>
      putSchemas({ ...DOCUMENT, paths: { ...DOCUMENT.paths, '/v1/admin/policies/{id}': body({ $ref: '#/components/schemas/Nope' }) } }),
    ).toThrow('$ref #/components/schemas/Nope names nothing in /openapi.json');
  });
});
