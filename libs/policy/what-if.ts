import type { Clock } from '../clock/index.js';
import type { Sql } from '../db/index.js';
import { NotFound } from '../errors/index.js';
import { uuidv7 } from '../ids/index.js';
import { buildCedarContext, type PolicySource } from './cedar.js';
import type { CedarEngine, ReplayBatch } from './cedar-engine.js';
import { invalidPolicy } from './policies.js';
import { boundaryPolicyId } from './policy.js';
import { replayPage, type PolicyStore, type ReplayRow } from './policy-store.js';

export const WHAT_IF_DEFAULT_WINDOW_MS = 7 * 24 * 3600 * 1000;
export const WHAT_IF_MAX_DECISIONS = 100_000;
// Pages stay small: parsing a page of rows runs on the broker's event loop too.
const PAGE = 2000;
/**
 * Rows per call to the Cedar process: the replay runs there, and between slices the broker's event
 * loop is free (a 95k-row replay in the broker stalled every request for seconds at a time).
 */
const SLICE = 1000;
const EXAMPLES = 10;

export interface WhatIfInput {
  /** A global policy set (new or existing) or a boundary's own policy. */
  target: { kind: 'global'; id: string } | { kind: 'boundary'; id: string };
  policy: string;
  since?: Date | undefined;
  until?: Date | undefined;
  limit?: number | undefined;
}

export interface WhatIfResult {
  since: Date;
  until: Date;
  replayed: number;
  /** True when the window held more decisions than `limit`: the newest were not replayed. */
  truncated: boolean;
  permitsNowDenied: { count: number; examples: string[] };
  denialsNowPermitted: { count: number; examples: string[] };
  elapsedMs: number;
  decisionsPerSecond: number;
}

/**
 * Replays recorded decisions against a proposed policy: every other policy as it is now, the
 * proposal in place of its current version, each decision's request and task as recorded. Pages
 * of decisions are read in turn and replayed in slices by a Cedar process; each boundary's set is
 * parsed once there; Cedar runs once per row.
 */
export class WhatIf {
  constructor(
    private readonly sql: Sql,
    private readonly store: PolicyStore,
    /** Cedar for replays and validation, apart from the hot path's. */
    private readonly cedar: CedarEngine,
    private readonly clock: Clock,
  ) {}

  async run(input: WhatIfInput): Promise<WhatIfResult> {
    const boundaries = await this.store.boundaryPolicies();
    if (input.target.kind === 'boundary') {
      const boundary = boundaries.get(input.target.id);
      if (!boundary) throw new NotFound('no such tool boundary');
    }
    const actions = input.target.kind === 'boundary' ? await this.store.knownActions(input.target.id) : await this.store.knownActions();
    // A boundary's policy may read the arguments its actions declare, as on write.
    const schemas = input.target.kind === 'boundary' ? boundaries.get(input.target.id)?.paramsSchemas : null;
    const problems = await this.cedar.validate(input.policy, actions, schemas);
    if (problems.length > 0) throw invalidPolicy(problems);

    const until = input.until ?? new Date(this.clock.now());
    const since = input.since ?? new Date(until.getTime() - WHAT_IF_DEFAULT_WINDOW_MS);
    const limit = Math.min(input.limit ?? WHAT_IF_MAX_DECISIONS, WHAT_IF_MAX_DECISIONS);
    const target = input.target;
    const globals = (await this.store.active()).sources.filter((source) => !(target.kind === 'global' && source.id === target.id));
    if (target.kind === 'global') globals.push({ id: target.id, version: 0, text: input.policy, scope: 'global' });

    const run = uuidv7();
    // Per boundary: the key of its replay set and the sources (null: nothing Cedar applies).
    const sets = new Map<string, { key: string; tool: string; sources: PolicySource[] } | null>();
    const setFor = (row: ReplayRow): { key: string; tool: string; sources: PolicySource[] } | null => {
      const known = sets.get(row.boundary_id);
      if (known !== undefined) return known;
      const sources: PolicySource[] = [...globals];
      const own =
        target.kind === 'boundary' && target.id === row.boundary_id ? input.policy : (boundaries.get(row.boundary_id)?.policy ?? null);
      if (own !== null) {
        const version = target.kind === 'boundary' && target.id === row.boundary_id ? 0 : boundaries.get(row.boundary_id)!.version;
        sources.push({ id: boundaryPolicyId(row.boundary_id), version, text: own, scope: 'boundary' });
      }
      const set = sources.length === 0 ? null : { key: `what-if:${run}:${row.boundary_id}:${row.tool}`, tool: row.tool, sources };
      sets.set(row.boundary_id, set);
      return set;
    };

    const result: WhatIfResult = {
      since,
      until,
      replayed: 0,
      truncated: false,
      permitsNowDenied: { count: 0, examples: [] },
      denialsNowPermitted: { count: 0, examples: [] },
      elapsedMs: 0,
      decisionsPerSecond: 0,
    };
    const started = performance.now();
    let after: string | undefined;
    for (;;) {
      const page = await replayPage(this.sql, {
        since,
        until,
        boundaryId: target.kind === 'boundary' ? target.id : undefined,
        after,
        limit: Math.min(PAGE, limit - result.replayed + 1),
      });
      const rows = page.slice(0, limit - result.replayed);
      if (rows.length < page.length) result.truncated = true;
      for (let from = 0; from < rows.length; from += SLICE) {
        const slice = rows.slice(from, from + SLICE);
        const batch: ReplayBatch = { sets: {}, rows: [] };
        for (const row of slice) {
          const set = setFor(row);
          if (set) batch.sets[set.key] = { tool: set.tool, sources: set.sources };
          batch.rows.push({
            set: set?.key ?? null,
            request: buildCedarContext({
              workloadId: row.workload_id,
              task: { intent: row.intent, subject: row.subject, ageSeconds: row.task_age_s ?? 0, denials: row.denials_in_task ?? 0 },
              boundary: { id: row.boundary_id, tool: row.tool, sensitivity: row.sensitivity, actions: row.actions, intents: row.intents },
              action: row.action,
              resource: row.resource,
              params: row.params,
              purpose: row.purpose,
              approved: row.approved,
              at: Number(row.at_ms),
            }),
          });
        }
        const allowed = await this.cedar.replay(batch);
        slice.forEach((row, i) => {
          const flip =
            row.outcome === 'permit' && !allowed[i]
              ? result.permitsNowDenied
              : row.outcome === 'deny' && allowed[i]
                ? result.denialsNowPermitted
                : undefined;
          if (flip) {
            flip.count++;
            if (flip.examples.length < EXAMPLES) flip.examples.push(row.id);
          }
        });
        result.replayed += slice.length;
      }
      if (result.truncated || page.length === 0 || result.replayed === limit) break;
      after = page[page.length - 1]!.id;
    }
    result.elapsedMs = performance.now() - started;
    result.decisionsPerSecond = result.elapsedMs > 0 ? Math.round((result.replayed / result.elapsedMs) * 1000) : result.replayed;
    return result;
  }
}
