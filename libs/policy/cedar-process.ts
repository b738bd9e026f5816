import { fork, type ChildProcess } from 'node:child_process';
import { PolicyUnavailable } from '../errors/index.js';
import type { CedarEngine, DecideInput, DecideOutput, ReplayBatch } from './cedar-engine.js';
import type { PolicyProblem } from './cedar.js';
import type { ParamsSchemas } from './boundary.js';

export type CedarCall = { id: number; op: 'decide' | 'validate' | 'conditionProblems' | 'replay'; args: unknown[] };
export type CedarReply =
  { ready: true } | { id: number; ok: true; value: unknown } | { id: number; ok: false; trap: boolean; message: string };

export interface CedarProcessOptions {
  /** Compiled sets the child keeps. */
  maxSets?: number;
  /** A call not answered in this time fails closed, and the child (stuck or dead) is replaced. */
  timeoutMs?: number;
  /** Told each time a child died and is replaced. */
  onRestart?: () => void;
}

interface Pending {
  call: CedarCall;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer?: NodeJS.Timeout;
}

const HERE = import.meta.url;
/** From source (tests), the child loads TypeScript through the loader; built, it is plain JS. */
const FROM_SOURCE = HERE.endsWith('.ts');
const ENTRY = new URL(FROM_SOURCE ? './cedar-child.ts' : './cedar-child.js', HERE);
const EXEC_ARGV = [
  // Node 20's TurboFan inlines JS→WASM calls; deoptimizing such a frame hits "unreachable code"
  // in Deoptimizer::DoComputeBuiltinContinuation under Cedar-heavy load (a fatal V8 error).
  '--no-turbo-inline-js-wasm-calls',
  ...(FROM_SOURCE ? ['--import', new URL('../../scripts/ts-loader.mjs', HERE).href] : []),
];
const STARTUP_MS = 30_000;

/**
 * Cedar in a child process, so that a fault in Cedar-WASM or V8 cannot take the broker down. Calls
 * go in order over IPC; a child that dies, traps or does not answer in time fails every call it
 * holds with PolicyUnavailable (fail closed) and is replaced by a fresh one.
 */
export class CedarProcess implements CedarEngine {
  private child: ChildProcess | undefined;
  private ready = false;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** Set keys the current child has been sent the sources of. */
  private readonly sent = new Set<string>();
  private closed = false;

  constructor(
    readonly name: string,
    private readonly options: CedarProcessOptions = {},
  ) {}

  /** The current child's pid (for tests and operators), starting one if none runs. */
  get pid(): number | undefined {
    return this.start().pid;
  }

  async decide(input: DecideInput): Promise<DecideOutput> {
    const set = input.set;
    if (!set || !set.sources || !this.sent.has(set.key)) {
      if (set && set.sources) this.remember(set.key);
      return (await this.call('decide', [input])) as DecideOutput;
    }
    const answer = (await this.call('decide', [{ ...input, set: { key: set.key, tool: set.tool } }])) as DecideOutput;
    if (!('unknown' in answer)) return answer;
    // The child evicted the set (or is a new child): send the sources once more.
    return (await this.call('decide', [input])) as DecideOutput;
  }

  async validate(text: string, actions: readonly string[], paramsSchemas?: ParamsSchemas | null): Promise<PolicyProblem[]> {
    // The schemas travel with the call: the child holds no boundary state.
    return (await this.call('validate', [text, [...actions], paramsSchemas ?? null])) as PolicyProblem[];
  }

  async conditionProblems(when: string): Promise<PolicyProblem[]> {
    return (await this.call('conditionProblems', [when])) as PolicyProblem[];
  }

  async replay(batch: ReplayBatch): Promise<boolean[]> {
    return (await this.call('replay', [batch])) as boolean[];
  }

  /** Stops the child; later calls fail closed. */
  close(): void {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    this.fail(new PolicyUnavailable('the policy evaluator is shut down'));
    child?.kill('SIGKILL');
  }

  private remember(key: string): void {
    // A bound on what the broker remembers; forgetting only costs sending sources again.
    if (this.sent.size >= 10_000) this.sent.clear();
    this.sent.add(key);
  }

  private call(op: CedarCall['op'], args: unknown[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new PolicyUnavailable('the policy evaluator is shut down'));
    const child = this.start();
    const call: CedarCall = { id: ++this.nextId, op, args };
    return new Promise((resolve, reject) => {
      const pending: Pending = { call, resolve, reject };
      this.pending.set(call.id, pending);
      (child.channel as unknown as { ref?: () => void } | null | undefined)?.ref?.();
      if (this.ready) this.dispatch(child, pending);
    });
  }

  private dispatch(child: ChildProcess, pending: Pending): void {
    pending.timer = setTimeout(
      () => this.replace(child, `the policy evaluator did not answer within ${this.timeoutMs} ms`),
      this.timeoutMs,
    );
    child.send(pending.call, (error) => {
      if (error) this.replace(child, 'the policy evaluator could not be reached');
    });
  }

  private get timeoutMs(): number {
    return this.options.timeoutMs ?? 5000;
  }

  private start(): ChildProcess {
    if (this.child) return this.child;
    const child = fork(ENTRY, [String(this.options.maxSets ?? 1000)], {
      execArgv: EXEC_ARGV,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child = child;
    this.ready = false;
    this.sent.clear();
    const startup = setTimeout(() => this.replace(child, 'the policy evaluator did not start'), STARTUP_MS);
    startup.unref();
    child.on('message', (reply: CedarReply) => {
      if ('ready' in reply) {
        clearTimeout(startup);
        if (this.child !== child) return;
        this.ready = true;
        for (const pending of this.pending.values()) this.dispatch(child, pending);
        return;
      }
      const pending = this.pending.get(reply.id);
      if (!pending || this.child !== child) return;
      this.pending.delete(reply.id);
      clearTimeout(pending.timer);
      if (reply.ok) pending.resolve(reply.value);
      else pending.reject(reply.trap ? new PolicyUnavailable('policies could not be evaluated; try again') : new Error(reply.message));
      // A child that trapped is exiting: nothing more goes to it.
      if (!reply.ok && reply.trap) this.replace(child, 'policies could not be evaluated');
      else this.idle(child);
    });
    child.on('exit', () => {
      clearTimeout(startup);
      this.died(child, 'the policy evaluator stopped');
    });
    child.on('error', () => this.replace(child, 'the policy evaluator failed'));
    child.unref();
    this.idle(child);
    return child;
  }

  /** An idle child does not keep the broker's event loop alive. */
  private idle(child: ChildProcess): void {
    if (this.pending.size === 0) (child.channel as unknown as { unref?: () => void } | null | undefined)?.unref?.();
  }

  /** Kills a child that cannot be trusted to answer; its exit fails what it held and starts another. */
  private replace(child: ChildProcess, why: string): void {
    if (this.child !== child) return;
    this.died(child, why);
    child.kill('SIGKILL');
  }

  private died(child: ChildProcess, why: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.ready = false;
    this.fail(new PolicyUnavailable(`${why}; try again`));
    if (this.closed) return;
    this.options.onRestart?.();
    // A fresh child now, so the next request does not wait for it to start.
    setImmediate(() => {
      if (!this.closed && !this.child) this.start();
    });
  }

  private fail(error: PolicyUnavailable): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.pending.clear();
  }
}
