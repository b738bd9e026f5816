import { KINDS, type Body, type Kind, type Manifest, type PutSchemas } from './manifest.js';
import { isMap, withDefaults } from './schema.js';

/** One line of the plan. */
export interface Change {
  action: 'create' | 'change' | 'disable';
  kind: Kind;
  id: string;
  /** The PUT body (create, change). */
  body?: Body;
  /** What differs (change): the server's value and the file's. */
  fields?: FieldChange[];
}

export interface FieldChange {
  field: string;
  from: unknown;
  to: unknown;
}

/** What the plan needs to know about the broker beyond its objects. */
export interface PlanContext {
  /** The broker's issuer URL: an issuer without `audiences` gets it. */
  issuer: string;
  /** The PUT body schemas from its /openapi.json: the fields a PUT sets, and their defaults. */
  schemas: PutSchemas;
}

/** Left out of the body, the field keeps the object's current value (the kill switch stays on). */
const KEEP = Symbol('keep');

/**
 * What a PUT stores for a field it is not given, where its schema cannot say so: a JSON Schema
 * `default` is a fixed value, and "what is stored stays" or "the broker's own issuer URL" are not.
 * Every other field left out gets its schema `default`, or is absent (null).
 */
function omitted(kind: Kind, context: PlanContext): Record<string, unknown> {
  switch (kind) {
    case 'issuer':
      return { audiences: [context.issuer], enabled: KEEP };
    case 'workload':
      return { enabled: KEEP };
    case 'boundary':
      return {};
    case 'policy':
      // A PUT always enables the policy set (DELETE disables it); `enabled` is not a field of its body.
      return { enabled: true };
  }
}

/**
 * The changes that make the broker hold what the file declares: objects to create, objects whose
 * PUT-able fields differ (only those fields are compared: versions, revisions and timestamps are
 * the broker's), and, for each kind the file mentions, enabled objects it no longer declares.
 * Creates and changes come in apply order (issuers, workloads, boundaries, policies); disables after
 * them, in reverse.
 */
export function plan(manifest: Manifest, current: Partial<Record<Kind, readonly Body[]>>, context: PlanContext): Change[] {
  const changes: Change[] = [];
  for (const kind of KINDS) {
    const declared = manifest[kind];
    if (!declared) continue;
    const existing = new Map((current[kind] ?? []).map((object) => [String(object.id), object]));
    for (const [id, body] of declared) {
      const now = existing.get(id);
      if (!now) {
        changes.push({ action: 'create', kind, id, body });
        continue;
      }
      const fields = differences(kind, body, now, context);
      if (fields.length > 0) changes.push({ action: 'change', kind, id, body, fields });
    }
  }
  for (const kind of [...KINDS].reverse()) {
    const declared = manifest[kind];
    if (!declared) continue;
    for (const object of current[kind] ?? []) {
      const id = String(object.id);
      if (!declared.has(id) && object.enabled !== false) changes.push({ action: 'disable', kind, id });
    }
  }
  return changes;
}

/** The PUT-able fields whose stored value is not what the body would store. */
export function differences(kind: Kind, body: Body, current: Body, context: PlanContext): FieldChange[] {
  const { byKind, resolve } = context.schemas;
  const schema = byKind[kind];
  const implied = omitted(kind, context);
  const filled = withDefaults(body, schema, resolve) as Body;
  const fields = new Set([...Object.keys(schema.properties ?? {}), ...Object.keys(implied)]);
  const out: FieldChange[] = [];
  for (const field of fields) {
    const wanted = field in filled ? filled[field] : field in implied ? implied[field] : null;
    if (wanted === KEEP) continue;
    const stored = current[field] ?? null;
    if (!matches(wanted, stored)) out.push({ field, from: stored, to: wanted });
  }
  return out;
}

/**
 * The stored value says what the wanted one says. Inside a nested map, members the file leaves out
 * are not compared: the broker fills their defaults (a credential kind's settings, a JWK's alg).
 */
export function matches(wanted: unknown, stored: unknown): boolean {
  if (wanted === null || wanted === undefined) return stored === null || stored === undefined;
  if (Array.isArray(wanted))
    return Array.isArray(stored) && stored.length === wanted.length && wanted.every((item, i) => matches(item, stored[i]));
  if (isMap(wanted)) return isMap(stored) && Object.entries(wanted).every(([key, value]) => matches(value, stored[key]));
  return wanted === stored;
}

/** `+ create boundary/crm-orders`, `~ change boundary/crm-refunds (default_ttl: 60 → 90)`, `- disable workload/old-bot`. */
export function describeChange(change: Change): string {
  const name = `${change.kind}/${change.id}`;
  if (change.action === 'create') return `+ create ${name}`;
  if (change.action === 'disable') return `- disable ${name}`;
  const fields = (change.fields ?? []).map(({ field, from, to }) => `${field}: ${brief(from)} → ${brief(to)}`);
  return `~ change ${name} (${fields.join('; ')})`;
}

function brief(value: unknown): string {
  const text = value === null || value === undefined ? 'none' : JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
