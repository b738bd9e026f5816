export interface TtlInput {
  /** What the bot asked for, in seconds; absent means "the boundary's default". */
  requested: number | undefined;
  defaultTtl: number;
  maxTtl: number;
  /** Seconds the task has left by the database clock (may be fractional or negative). */
  taskSecondsLeft: number;
  /** With an approval: the ttl the reviewer saw. The repeat gets at most that. */
  approvedTtl?: number | undefined;
}

/**
 * A lease's lifetime in whole seconds: the requested ttl (else the boundary default), capped by the
 * boundary maximum, by the ttl a reviewer approved (if any) and by the time the task has left. Zero means the task has no whole second left,
 * so no credential may be issued. All TTL capping lives here.
 */
export function leaseTtl({ requested, defaultTtl, maxTtl, taskSecondsLeft, approvedTtl }: TtlInput): number {
  const wanted = requested ?? defaultTtl;
  const left = Math.floor(taskSecondsLeft);
  return Math.max(0, Math.min(wanted, maxTtl, approvedTtl ?? Infinity, left));
}
