/**
 * Where a replica is in its life: serving, or leaving. Readiness (GET /readyz) and every response
 * read it: a leaving replica answers 503 `draining` to its load balancer's checks and tells every
 * client to close its connection, while it still serves what arrives (app.ts, drain()).
 */
export class ServingState {
  private leaving = false;

  /** True from SIGTERM (or App.drain) on: the replica no longer wants new work. */
  get draining(): boolean {
    return this.leaving;
  }

  beginDraining(): void {
    this.leaving = true;
  }
}

/**
 * Settles with `work`, or with 'timeout' once `ms` have passed (the work runs on: the caller decides
 * what to cut). The timer never holds the process open.
 */
export async function within<T>(work: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
