import { KINDS, SCHEMAS, type Body, type Kind, type Manifest } from './manifest.js';

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
}

/** Left out of the body, the field keeps the object's current value (the kill switch stays on). */
const KEEP = Symbol('keep');

/**
 * What the broker stores for a field the body leaves out. A field not named here is simply absent
 * (null) when left out. These mirror the PUT schemas' defaults, so that a file relying on a default
 * does not read as a change after it was applied.
 */
function defaults(kind: Kind, context: PlanContext): Record<string, unknown> {
  switch (kind) {
    case 'issuer':
      return { audiences: [context.issuer], enabled: KEEP };
    case 'workload':
      // A PUT replaces the rate limit: left out, the service's limit applies again (none shown).
      return { enabled: KEEP, rate_limit: null };
    case 'boundary':
      return { sensitivity: 'low', drift_threshold: null, enabled: true, approval: null, policy: null };
    case 'policy':
      // A PUT always enables the policy set (DELETE disables it).
      return { description: null, enabled: true };
  }
}

/** Nested defaults the broker fills inside a field. */
function filled(kind: Kind, field: string, value: unknown): unknown {
  if (kind === 'boundary' && field === 'approval' && isMap(value) && value.ttl === undefined) return { ...value, ttl: 600 };
  return value;
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
  const implied = defaults(kind, context);
  const fields = new Set([...Object.keys(SCHEMAS[kind].fields), ...Object.keys(implied)]);
  const out: FieldChange[] = [];
  for (const field of fields) {
    const wanted = field in body ? filled(kind, field, body[field]) : field in implied ? implied[field] : null;
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
  if (Array.isArray(wanted)) return Array.isArray(stored) && stored.length === wanted.length && wanted.every((item, i) => matches(item, stored[i]));
  if (isMap(wanted)) return isMap(stored) && Object.entries(wanted).every(([key, value]) => matches(value, stored[key]));
  return wanted === stored;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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
