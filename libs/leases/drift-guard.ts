import type { Database } from '../db/index.js';
import type { ToolBoundary } from '../policy/index.js';
import type { LeaseRevocation } from './revocation.js';

/**
 * Refusals that say the bot asked for something its task was never meant to do: the drift signal.
 * Not the refusals of a task that has already ended, of an unknown task or boundary, or of a
 * disabled boundary: those say nothing about the conversation being steered somewhere else.
 */
export const DRIFT_REASONS: ReadonlySet<string> = new Set([
  'intent_mismatch',
  'action_not_allowed',
  'audience_mismatch',
  'policy_forbid',
  'policy_no_permit',
  // Params the database cannot keep: a probe, never a bot's honest mistake.
  'invalid_params',
]);

const ACTOR = 'system:drift_guard';

/**
 * The drift guard: a task that collects `threshold` drift denials is suspended. The counting, the
 * suspension and the revocation of the task's live leases happen in the denial's own statement
 * (DecisionLedger.recordDenial); this says which threshold applies, and sweeps up after it.
 */
export interface DriftGuardOptions {
  db: Database;
  revocation: LeaseRevocation;
  /** TOLLGATE_DRIFT_THRESHOLD. */
  threshold: number;
  /** Told when a task was suspended, so caches of this replica drop it. */
  changed?: ((taskId: string) => void) | undefined;
  /** Told once per suspension, for metrics. */
  counted?: (() => void) | undefined;
}

export class DriftGuard {
  private readonly db: Database;
  private readonly revocation: LeaseRevocation;
  private readonly threshold: number;
  private readonly changed: (taskId: string) => void;
  private readonly counted: () => void;

  constructor(options: DriftGuardOptions) {
    this.db = options.db;
    this.revocation = options.revocation;
    this.threshold = options.threshold;
    this.changed = options.changed ?? (() => {});
    this.counted = options.counted ?? (() => {});
  }

  /**
   * The threshold a denial counts towards, or undefined when it does not count. The denials are
   * the task's, on any boundary; the boundary that refuses decides how many the task may have had
   * (with its own one included): a sensitive boundary can set 1 and suspend on its first refusal.
   */
  thresholdFor(reason: string, boundary: ToolBoundary | undefined): number | undefined {
    if (!DRIFT_REASONS.has(reason)) return undefined;
    return boundary?.driftThreshold ?? this.threshold;
  }

  /**
   * The task was suspended by a denial. A permit that committed while the denial's statement waited
   * for the task's row lock left a lease that statement could not see: revoke whatever is still live.
   */
  async suspended(taskId: string): Promise<string[]> {
    // Called once per suspension: only the denial whose statement suspended the task says so.
    this.counted();
    this.changed(taskId);
    return this.db.transaction((tx) => this.revocation.revokeTaskLeases(tx, taskId, 'drift_detected', ACTOR));
  }
}
