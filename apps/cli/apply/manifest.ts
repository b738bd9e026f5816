import { parseDocument } from 'yaml';
import { UsageError } from '../errors.js';
import { findProblem, isMap, resolverFor, type JsonSchema, type Resolve } from './schema.js';

/** The four kinds a tollgate.yaml declares, in the order they are applied (a workload binds to an issuer). */
export const KINDS = ['issuer', 'workload', 'boundary', 'policy'] as const;
export type Kind = (typeof KINDS)[number];

/**
 * Where each kind is: its section in the file and its collection in the admin API. What a body may
 * hold is not here: that is the broker's PUT schema, read from its /openapi.json ({@link putSchemas}).
 */
export const SECTIONS: Record<Kind, { key: string; path: string }> = {
  issuer: { key: 'issuers', path: '/v1/admin/issuers' },
  workload: { key: 'workloads', path: '/v1/admin/workloads' },
  boundary: { key: 'boundaries', path: '/v1/admin/boundaries' },
  policy: { key: 'policies', path: '/v1/admin/policies' },
};

export type Body = Record<string, unknown>;

/** A parsed tollgate.yaml: for each kind it mentions, the declared objects by id. */
export type Manifest = Partial<Record<Kind, Map<string, Body>>>;

/** The broker's admin PUT body schema of each kind, and how to follow their references. */
export interface PutSchemas {
  byKind: Record<Kind, JsonSchema>;
  resolve: Resolve;
}

/**
 * Reads a tollgate.yaml: top-level maps `issuers`, `workloads`, `boundaries`, `policies`, each
 * id → the body of that admin API's PUT. Checks the file's own shape (YAML, sections, a map per
 * object); {@link checkBodies} checks the bodies against the broker's schemas.
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
  const keys = new Map(KINDS.map((kind) => [SECTIONS[kind].key, kind]));
  for (const [key, value] of Object.entries(root)) {
    const kind = keys.get(key);
    if (!kind) bad(`${file}: ${key}: unknown section (expected one of ${[...keys.keys()].join(', ')})`);
    const objects = new Map<string, Body>();
    if (value !== null && !isMap(value)) bad(`${file}: ${key}: must be a map of id → definition`);
    for (const [id, body] of Object.entries(value ?? {})) {
      if (!isMap(body)) bad(`${file}: ${key}.${id}: must be a map of fields`);
      objects.set(id, body);
    }
    manifest[kind] = objects;
  }
  return manifest;
}

/**
 * The PUT body schemas from the broker's /openapi.json (its `paths./v1/admin/{kind}/{id}.put`).
 * Throws naming what is missing: a broker that does not document them is not one this CLI can apply to.
 */
export function putSchemas(document: unknown): PutSchemas {
  const resolve = resolverFor(document);
  const byKind = {} as Record<Kind, JsonSchema>;
  for (const kind of KINDS) {
    const path = `${SECTIONS[kind].path}/{id}`;
    let schema = member(document, 'paths', path, 'put', 'requestBody', 'content', 'application/json', 'schema');
    if (!isMap(schema)) throw new Error(`its /openapi.json has no JSON body schema for PUT ${path}`);
    if (typeof schema.$ref === 'string') schema = resolve(schema.$ref);
    byKind[kind] = schema as JsonSchema;
  }
  return { byKind, resolve };
}

/**
 * Checks every body against its kind's PUT schema, before anything is sent: a bad field is a
 * UsageError naming the file, the kind's section, the id and the field
 * (`f.yaml: boundaries.crm-x.default_ttl: must be an integer`).
 */
export function checkBodies(manifest: Manifest, schemas: PutSchemas, file: string): void {
  for (const kind of KINDS) {
    for (const [id, body] of manifest[kind] ?? []) {
      const problem = findProblem(body, schemas.byKind[kind], schemas.resolve, [], `a ${kind}`);
      if (problem) bad(`${file}: ${[SECTIONS[kind].key, id, ...problem.path].join('.')}: ${problem.message}`);
    }
  }
}

function member(value: unknown, ...path: string[]): unknown {
  let node = value;
  for (const name of path) node = isMap(node) ? node[name] : undefined;
  return node;
}

function bad(message: string): never {
  throw new UsageError(message, false);
}
