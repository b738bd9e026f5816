/** One user journey the bot serves. */
export interface Task {
  id: string;
  workloadId: string;
  intent: string;
  subject: string;
  /** What the bot said about the journey when it opened the task (free-form JSON, at most 4 KiB). */
  context: Record<string, unknown>;
  /** As of the database clock: an active task past expires_at reads `expired` before the sweeper runs. */
  state: TaskState;
  createdAt: Date;
  expiresAt: Date;
  endedAt: Date | null;
  endReason: string | null;
}

export type TaskState = 'active' | 'completed' | 'revoked' | 'expired';

export interface TaskEvent {
  id: string;
  kind: 'opened' | 'intent_changed' | 'completed' | 'revoked' | 'expired';
  intent: string | null;
  reason: string | null;
  at: Date;
}

export const DEFAULT_TASK_TTL_S = 1800;
export const MAX_TASK_TTL_S = 86_400;
