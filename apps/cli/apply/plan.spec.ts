import { describe, expect, it } from 'vitest';
import { WORKLOAD_ID as BROKER_WORKLOAD_ID } from '../../../libs/identity/workload.js';
import { parseManifest, WORKLOAD_ID } from './manifest.js';
import { describeChange, differences, matches, plan } from './plan.js';

const context = { issuer: 'https://tollgate.acme.test' };
const boundary = { tool: 'https://crm.acme.test', actions: ['orders:read'], intents: ['order_status'], default_ttl: 120, max_ttl: 300, credential: { kind: 'jwt' } };
/** What GET /v1/admin/boundaries/{id} answers for `boundary` after a PUT: defaults filled, extra fields. */
const stored = { id: 'crm-orders', version: 3, ...boundary, sensitivity: 'low', enabled: true, created_at: '2026-11-24T10:00:00.000Z' };

describe('plan', () => {
  it('does not read the defaults the broker filled, or its own fields, as changes', () => {
    expect(differences('boundary', boundary, stored, context)).toEqual([]);
    expect(differences('boundary', { ...boundary, approval: { when: 'true' } }, { ...stored, approval: { when: 'true', ttl: 600 } }, context)).toEqual([]);
    expect(differences('issuer', { issuer: 'https://spire.acme.test', kind: 'oidc', jwks_uri: 'https://spire.acme.test/keys' }, {
      id: 'spire', issuer: 'https://spire.acme.test', kind: 'oidc', jwks_uri: 'https://spire.acme.test/keys', audiences: [context.issuer], enabled: true, revision: 1,
    }, context)).toEqual([]);
  });

  it('names the fields that differ, including a default the file went back to', () => {
    expect(differences('boundary', { ...boundary, default_ttl: 90 }, stored, context)).toEqual([{ field: 'default_ttl', from: 120, to: 90 }]);
    expect(differences('boundary', boundary, { ...stored, sensitivity: 'high', drift_threshold: 3 }, context)).toEqual([
      { field: 'sensitivity', from: 'high', to: 'low' },
      { field: 'drift_threshold', from: 3, to: null },
    ]);
    expect(differences('boundary', { ...boundary, approval: { when: 'true' } }, { ...stored, approval: { when: 'true', ttl: 900 } }, context)).toEqual([
      { field: 'approval', from: { when: 'true', ttl: 900 }, to: { when: 'true', ttl: 600 } },
    ]);
    expect(differences('boundary', { ...boundary, actions: ['orders:read', 'orders:refund'] }, stored, context)).toHaveLength(1);
    // A disabled policy set comes back with a PUT; a workload's kill switch stays on unless the file says enabled.
    expect(differences('policy', { policy: 'p' }, { id: 'p', policy: 'p', description: null, enabled: false }, context)).toEqual([{ field: 'enabled', from: false, to: true }]);
    expect(differences('workload', { jwks: { keys: [{ kty: 'OKP', x: 'a' }] } }, { id: 'w', jwks: { keys: [{ kty: 'OKP', x: 'a' }] }, enabled: false }, context)).toEqual([]);
    expect(differences('workload', { jwks: { keys: [] }, rate_limit: { per_second: 5 } }, { id: 'w', jwks: { keys: [] }, rate_limit: { per_second: 5, burst: 10 } }, context)).toEqual([]);
    expect(differences('workload', { jwks: { keys: [] } }, { id: 'w', jwks: { keys: [] }, rate_limit: { per_second: 5, burst: 10 } }, context)).toEqual([
      { field: 'rate_limit', from: { per_second: 5, burst: 10 }, to: null },
    ]);
    expect(differences('workload', { issuer: 'spire', subject: 's' }, { id: 'w', jwks: { keys: [{ kty: 'OKP', x: 'a' }] }, enabled: true }, context).map((c) => c.field)).toEqual(['jwks', 'issuer', 'subject']);
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

describe('parseManifest', () => {
  it('names the path of the first bad field', () => {
    const bad = (text: string) => {
      try {
        parseManifest(text, 'f.yaml');
      } catch (error) {
        return (error as Error).message;
      }
      return 'no error';
    };
    expect(bad('boundaries:\n  crm-x:\n    tool: x\n    colour: red\n')).toMatch(/^f\.yaml: boundaries\.crm-x\.colour: unknown field/);
    expect(bad('boundaries:\n  crm-x:\n    tool: x\n    actions: read\n')).toBe('f.yaml: boundaries.crm-x.actions: must be a list of strings');
    expect(bad(`boundaries:\n  crm-x: ${JSON.stringify({ ...boundary, default_ttl: 1.5 })}\n`)).toBe('f.yaml: boundaries.crm-x.default_ttl: must be an integer');
    expect(bad('boundaries:\n  crm-x:\n    tool: x\n')).toBe('f.yaml: boundaries.crm-x.actions: is required');
    expect(bad('boundaries:\n  CRM:\n    tool: x\n')).toMatch(/^f\.yaml: boundaries\.CRM: the id must match/);
    expect(bad('widgets: {}\n')).toMatch(/^f\.yaml: widgets: unknown section/);
    expect(bad('boundaries:\n  a: 1\n  a: 2\n')).toMatch(/^f\.yaml: not valid YAML: .*line 3/);
    expect(bad('')).toMatch(/empty/);
    expect(bad('- a\n')).toMatch(/must be a map/);
  });
});

describe('the CLI package', () => {
  it("checks workload ids with the broker's own rule (its copy, since the package imports nothing of the broker)", () => {
    expect(WORKLOAD_ID.source).toBe(BROKER_WORKLOAD_ID.source);
    expect(WORKLOAD_ID.flags).toBe(BROKER_WORKLOAD_ID.flags);
  });
});
