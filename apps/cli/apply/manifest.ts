import { parseDocument } from 'yaml';
import { UsageError } from '../errors.js';

/** The four kinds a tollgate.yaml declares, in the order they are applied (a workload binds to an issuer). */
export const KINDS = ['issuer', 'workload', 'boundary', 'policy'] as const;
export type Kind = (typeof KINDS)[number];

type FieldType = 'string' | 'integer' | 'boolean' | 'string[]' | 'object' | 'object|null' | 'string|null' | 'integer|null';

/** What the file may say about one kind: the fields of its admin PUT body, and which are required. */
interface KindSchema {
  key: string;
  path: string;
  id: RegExp;
  idRule: string;
  fields: Record<string, FieldType>;
  required: readonly string[];
}

const SLUG = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/**
 * A copy of libs/identity's WORKLOAD_ID (a slug or a SPIFFE ID): the CLI is a package of its own and
 * imports nothing of the broker; plan.spec.ts checks the two stay the same. The broker decides anyway.
 */
export const WORKLOAD_ID = /^(?:[a-z0-9][a-z0-9._-]{0,62}|(?=.{1,2048}$)spiffe:\/\/[a-z0-9._-]{1,255}(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9._-]+)+)$/;
const SLUG_RULE = 'must match [a-z0-9][a-z0-9._-]{0,62}';

export const SCHEMAS: Record<Kind, KindSchema> = {
  issuer: {
    key: 'issuers',
    path: '/v1/admin/issuers',
    id: SLUG,
    idRule: SLUG_RULE,
    fields: { issuer: 'string', kind: 'string', trust_domain: 'string', jwks_uri: 'string', jwks: 'object', audiences: 'string[]', enabled: 'boolean' },
    required: ['issuer', 'kind'],
  },
  workload: {
    key: 'workloads',
    path: '/v1/admin/workloads',
    id: WORKLOAD_ID,
    idRule: 'must be a slug [a-z0-9][a-z0-9._-]{0,62} or a SPIFFE ID',
    fields: { jwks: 'object', issuer: 'string', subject: 'string', enabled: 'boolean', rate_limit: 'object|null' },
    required: [],
  },
  boundary: {
    key: 'boundaries',
    path: '/v1/admin/boundaries',
    id: SLUG,
    idRule: SLUG_RULE,
    fields: {
      tool: 'string',
      actions: 'string[]',
      intents: 'string[]',
      default_ttl: 'integer',
      max_ttl: 'integer',
      credential: 'object',
      sensitivity: 'string',
      drift_threshold: 'integer|null',
      enabled: 'boolean',
      approval: 'object',
      policy: 'string|null',
    },
    required: ['tool', 'actions', 'intents', 'default_ttl', 'max_ttl', 'credential'],
  },
  policy: {
    key: 'policies',
    path: '/v1/admin/policies',
    id: SLUG,
    idRule: SLUG_RULE,
    fields: { policy: 'string', description: 'string|null' },
    required: ['policy'],
  },
};

export type Body = Record<string, unknown>;

/** A parsed tollgate.yaml: for each kind it mentions, the declared objects by id. */
export type Manifest = Partial<Record<Kind, Map<string, Body>>>;

/**
 * Reads a tollgate.yaml: top-level maps `issuers`, `workloads`, `boundaries`, `policies`, each
 * id → the body of that admin API's PUT. Checks the shape (kinds, ids, field names and types) and
 * names the path of the first bad field; the broker checks the values when they are applied.
 */
export function parseManifest(text: string, file: string): Manifest {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const problem = document.errors[0];
  // prettyErrors puts "at line L, column C" in the message's first line.
  if (problem) bad(`${file}: not valid YAML: ${problem.message.split('\n')[0]}`);
  const root: unknown = document.toJS();
  if (root === null || root === undefined) bad(`${file}: the file is empty: declare issuers, workloads, boundaries or policies`);
  if (!isMap(root)) bad(`${file}: must be a map with issuers, workloads, boundaries and/or policies`);
  const manifest: Manifest = {};
  const keys = new Map(KINDS.map((kind) => [SCHEMAS[kind].key, kind]));
  for (const [key, value] of Object.entries(root)) {
    const kind = keys.get(key);
    if (!kind) bad(`${file}: ${key}: unknown section (expected one of ${[...keys.keys()].join(', ')})`);
    const schema = SCHEMAS[kind];
    const objects = new Map<string, Body>();
    if (value !== null && !isMap(value)) bad(`${file}: ${key}: must be a map of id → definition`);
    for (const [id, body] of Object.entries(value ?? {})) {
      const at = `${key}.${id}`;
      if (!schema.id.test(id)) bad(`${file}: ${at}: the id ${schema.idRule}`);
      if (!isMap(body)) bad(`${file}: ${at}: must be a map of fields`);
      for (const [field, fieldValue] of Object.entries(body)) {
        const type = schema.fields[field];
        if (!type) bad(`${file}: ${at}.${field}: unknown field (a ${kind} takes ${Object.keys(schema.fields).join(', ')})`);
        if (!hasType(fieldValue, type)) bad(`${file}: ${at}.${field}: must be ${describe(type)}`);
      }
      for (const field of schema.required) {
        if (!(field in body)) bad(`${file}: ${at}.${field}: is required`);
      }
      objects.set(id, body);
    }
    manifest[kind] = objects;
  }
  return manifest;
}

function bad(message: string): never {
  throw new UsageError(message, false);
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasType(value: unknown, type: FieldType): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'string|null':
      return value === null || typeof value === 'string';
    case 'integer':
      return Number.isInteger(value);
    case 'integer|null':
      return value === null || Number.isInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'string[]':
      return Array.isArray(value) && value.every((item) => typeof item === 'string');
    case 'object':
      return isMap(value);
    case 'object|null':
      return value === null || isMap(value);
  }
}

function describe(type: FieldType): string {
  return {
    string: 'a string',
    'string|null': 'a string or null',
    integer: 'an integer',
    'integer|null': 'an integer or null',
    boolean: 'true or false',
    'string[]': 'a list of strings',
    object: 'a map',
    'object|null': 'a map or null',
  }[type];
}
