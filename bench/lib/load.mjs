// The orchestrator's handle on the load-generator process (bench/lib/load-worker.mjs).
import { fileURLToPath } from 'node:url';
import { forkNode, within } from './procs.mjs';

const WORKER = fileURLToPath(new URL('./load-worker.mjs', import.meta.url));

export class LoadGenerator {
  constructor() {
    this.child = forkNode('load generator', WORKER);
    this.pending = new Map();
    this.nextId = 1;
    this.child.proc.on('message', (message) => {
      const waiter = this.pending.get(message?.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.type === 'result') waiter.resolve(message.result);
      else waiter.reject(new Error(`load generator: ${message.message}`));
    });
    this.child.exitPromise.then(() => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`the load generator exited:\n${this.child.describe()}`));
      this.pending.clear();
    });
  }

  /**
   * Runs one job (see load-worker.mjs) and returns its summary. Bounded: the job's duration plus
   * a margin for autocannon to drain its last requests.
   */
  run(job) {
    const id = this.nextId++;
    const promise = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.child.proc.send({ type: 'run', id, job });
    return within((job.duration + 30) * 1000, `load job of ${job.duration} s`, promise);
  }

  /** Ends the running job early (its summary still arrives through run()). */
  stopCurrent() {
    if (!this.child.exited) this.child.proc.send({ type: 'stop' });
  }
}
