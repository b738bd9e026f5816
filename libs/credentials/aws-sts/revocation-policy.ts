import { LEASE_TAG } from './session-request.js';

/** The role's inline policy Tollgate owns: every statement in it is Tollgate's. */
export const REVOKED_POLICY_NAME = 'tollgate-revoked-sessions';
/** IAM's limit for all of a role's inline policies together, whitespace not counted. */
export const ROLE_INLINE_POLICY_LIMIT = 10_240;
/** Revoked leases are grouped by when their sessions end anyway, rounded up to this step. */
export const BUCKET_MS = 15 * 60_000;
/** Kept this long past a session's end, for clock skew between AWS and the database. */
export const PRUNE_GRACE_MS = 5 * 60_000;

const LIST_SID = /^TollgateRevokedUntil(\d{1,12})$/;
const CUTOFF_SID = /^TollgateCutoffUntil(\d{1,12})$/;

/** One revoked session: its lease id (the `tollgate-lease` tag) and when STS ends it anyway. */
export interface RevokedSession {
  lease: string;
  /** The session's source expiry (STS Expiration), epoch ms. */
  expiresAt: number;
}

/**
 * What the deny policy says, as data: leases by the time their sessions end, and at most one
 * role-wide cut-off (every session issued before `issuedBefore` is denied until `until`).
 */
export interface RevocationState {
  /** Bucket end (epoch ms) → lease ids. */
  buckets: Map<number, Set<string>>;
  cutoff: { issuedBefore: number; until: number } | undefined;
}

export interface PolicyStatement {
  Sid: string;
  Effect: 'Deny';
  Action: '*';
  Resource: '*';
  Condition: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

export function emptyState(): RevocationState {
  return { buckets: new Map(), cutoff: undefined };
}

/**
 * Reads the policy as IAM returns it (JSON, possibly URL-encoded). Statements that are not
 * Tollgate's shape are refused: the policy is Tollgate's alone, and guessing over a hand edit
 * could drop a revocation.
 */
export function parseRevocationPolicy(document: string | undefined): RevocationState {
  const state = emptyState();
  if (document === undefined || document.trim() === '') return state;
  const text = document.trimStart().startsWith('{') ? document : decodeURIComponent(document);
  const parsed = JSON.parse(text) as { Statement?: unknown };
  const statements = Array.isArray(parsed.Statement) ? parsed.Statement : parsed.Statement === undefined ? [] : [parsed.Statement];
  for (const raw of statements as Partial<PolicyStatement>[]) {
    const sid = typeof raw.Sid === 'string' ? raw.Sid : '';
    const list = LIST_SID.exec(sid);
    const cut = CUTOFF_SID.exec(sid);
    if (list) {
      const values = raw.Condition?.StringEquals?.[`aws:PrincipalTag/${LEASE_TAG}`];
      const leases = Array.isArray(values) ? values : typeof values === 'string' ? [values] : [];
      const until = Number(list[1]) * 1000;
      const bucket = state.buckets.get(until) ?? new Set<string>();
      for (const lease of leases) bucket.add(String(lease));
      state.buckets.set(until, bucket);
    } else if (cut) {
      const before = raw.Condition?.DateLessThan?.['aws:TokenIssueTime'];
      const issuedBefore = typeof before === 'string' ? Date.parse(before) : Number.NaN;
      if (!Number.isFinite(issuedBefore)) throw new Error(`statement ${sid} has no aws:TokenIssueTime cut-off`);
      state.cutoff = mergeCutoff(state.cutoff, { issuedBefore, until: Number(cut[1]) * 1000 });
    } else {
      throw new Error(`policy ${REVOKED_POLICY_NAME} holds a statement Tollgate did not write (Sid "${sid}")`);
    }
  }
  return state;
}

/** Adds revoked sessions, each in the bucket of its source expiry. Sessions a cut-off already denies are not listed again. */
export function addRevoked(
  state: RevocationState,
  sessions: readonly RevokedSession[],
  issuedAt?: (lease: string) => number | undefined,
): RevocationState {
  const next = cloneState(state);
  for (const session of sessions) {
    const issued = issuedAt?.(session.lease);
    if (next.cutoff && issued !== undefined && issued < next.cutoff.issuedBefore && session.expiresAt <= next.cutoff.until) continue;
    const until = bucketEnd(session.expiresAt);
    const bucket = next.buckets.get(until) ?? new Set<string>();
    bucket.add(session.lease);
    next.buckets.set(until, bucket);
  }
  return next;
}

/** Drops what STS has ended anyway: buckets and a cut-off whose sessions are past their expiry (plus grace). */
export function pruneExpired(state: RevocationState, now: number): { state: RevocationState; pruned: number } {
  const next = cloneState(state);
  let pruned = 0;
  for (const [until, leases] of next.buckets) {
    if (until + PRUNE_GRACE_MS <= now) {
      pruned += leases.size;
      next.buckets.delete(until);
    }
  }
  if (next.cutoff && next.cutoff.until + PRUNE_GRACE_MS <= now) next.cutoff = undefined;
  return { state: next, pruned };
}

/**
 * Folds every listed lease into one role-wide cut-off at `now`: every session issued before now is
 * denied until the last of them would have ended. All revoked sessions were issued before now, so
 * none is let back in; sessions still live under other leases are denied too (the price of staying
 * within IAM's size limit, which is why the caller raises a warning).
 */
export function foldIntoCutoff(state: RevocationState, now: number): RevocationState {
  let until = 0;
  for (const bucket of state.buckets.keys()) until = Math.max(until, bucket);
  // aws:TokenIssueTime has whole seconds: rounded down, a session issued earlier in this second would slip through.
  const issuedBefore = Math.ceil(now / 1000) * 1000;
  const cutoff = mergeCutoff(state.cutoff, { issuedBefore, until: until || now });
  return { buckets: new Map(), cutoff };
}

export interface RevocationPlan {
  document: PolicyDocument | undefined;
  /** True when the listed leases no longer fit and were folded into a role-wide cut-off. */
  cutoffApplied: boolean;
  pruned: number;
  size: number;
}

/**
 * The whole read-modify-write decision, pure: current policy + newly revoked sessions → the
 * policy to write. Add, then prune; when the result exceeds `limit` characters (whitespace
 * not counted, as IAM counts), fold into a cut-off. `document` undefined means the policy is empty.
 */
export function planRevocationPolicy(input: {
  current: string | undefined;
  revoked: readonly RevokedSession[];
  now: number;
  limit?: number;
  forceCutoff?: boolean;
  issuedAt?: (lease: string) => number | undefined;
}): RevocationPlan {
  const limit = input.limit ?? ROLE_INLINE_POLICY_LIMIT;
  // Added before pruning, so a session STS has already ended is never written at all.
  const added = addRevoked(parseRevocationPolicy(input.current), input.revoked, input.issuedAt);
  const pruning = pruneExpired(added, input.now);
  let state = pruning.state;
  const count = pruning.pruned;
  let document = renderRevocationPolicy(state);
  let cutoffApplied = false;
  if (input.forceCutoff || (document && policySize(document) > limit)) {
    state = foldIntoCutoff(state, input.now);
    document = renderRevocationPolicy(state);
    cutoffApplied = true;
  }
  return { document, cutoffApplied, pruned: count, size: document ? policySize(document) : 0 };
}

/** The policy document for a state; undefined when there is nothing to deny. */
export function renderRevocationPolicy(state: RevocationState): PolicyDocument | undefined {
  const statements: PolicyStatement[] = [];
  if (state.cutoff) {
    statements.push({
      Sid: `TollgateCutoffUntil${Math.ceil(state.cutoff.until / 1000)}`,
      Effect: 'Deny',
      Action: '*',
      Resource: '*',
      Condition: { DateLessThan: { 'aws:TokenIssueTime': new Date(state.cutoff.issuedBefore).toISOString().replace(/\.\d{3}Z$/, 'Z') } },
    });
  }
  for (const until of [...state.buckets.keys()].sort((a, b) => a - b)) {
    const leases = [...state.buckets.get(until)!].sort();
    if (leases.length === 0) continue;
    statements.push({
      Sid: `TollgateRevokedUntil${Math.ceil(until / 1000)}`,
      Effect: 'Deny',
      Action: '*',
      Resource: '*',
      Condition: { StringEquals: { [`aws:PrincipalTag/${LEASE_TAG}`]: leases } },
    });
  }
  return statements.length === 0 ? undefined : { Version: '2012-10-17', Statement: statements };
}

/** The size IAM holds against its limit: the document's characters without whitespace. */
export function policySize(document: PolicyDocument | string): number {
  const text = typeof document === 'string' ? document : JSON.stringify(document);
  return text.replace(/\s/g, '').length;
}

/** The lease ids a policy denies by name (for tests and for operators reading it). */
export function revokedLeases(state: RevocationState): string[] {
  return [...state.buckets.values()].flatMap((bucket) => [...bucket]).sort();
}

function bucketEnd(expiresAt: number): number {
  return Math.ceil(expiresAt / BUCKET_MS) * BUCKET_MS;
}

function mergeCutoff(
  a: { issuedBefore: number; until: number } | undefined,
  b: { issuedBefore: number; until: number },
): { issuedBefore: number; until: number } {
  if (!a) return { ...b };
  return { issuedBefore: Math.max(a.issuedBefore, b.issuedBefore), until: Math.max(a.until, b.until) };
}

function cloneState(state: RevocationState): RevocationState {
  return {
    buckets: new Map([...state.buckets].map(([until, leases]) => [until, new Set(leases)])),
    cutoff: state.cutoff && { ...state.cutoff },
  };
}
