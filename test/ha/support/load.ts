// Load through the HAProxy front, as bots would send it: credential requests from a pool of open
// tasks, each answer recorded with its start, end, status and the replica that served it (HAProxy
// names it in x-tollgate-replica), so a fault test can say which requests failed and when.
import http from 'node:http';
import { call } from '../../support/http.js';
import { putBoundary } from '../../support/scenario.js';
import { assertion, workloadKey, type WorkloadKey } from '../../support/workload.js';

export interface Outcome {
  kind: string;
  /** Milliseconds (performance.now()) when the request was sent and when its answer (or error) came. */
  start: number;
  end: number;
  /** HTTP status; 0 when the connection failed (no answer at all). */
  status: number;
  /** The replica that answered (r0, r1…), when HAProxy reached one. */
  replica: string | undefined;
  error?: string;
}

/** A bot registered through the front, whose assertion is renewed well before it expires. */
export class FrontBot {
  private signed: { token: string; at: number } | undefined;

  private constructor(
    readonly id: string,
    private readonly key: WorkloadKey,
    private readonly lbUrl: string,
  ) {}

  static async register(front: { url: string; adminKey: string }, id: string): Promise<FrontBot> {
    const key = await workloadKey();
    const put = await call(front.url, 'PUT', `/v1/admin/workloads/${encodeURIComponent(id)}`, {
      token: front.adminKey,
      json: { jwks: { keys: [key.publicJwk] } },
    });
    if (put.status >= 300) throw new Error(`PUT workload ${id}: ${put.status} ${JSON.stringify(put.body)}`);
    return new FrontBot(id, key, front.url);
  }

  async token(): Promise<string> {
    if (!this.signed || performance.now() - this.signed.at > 60_000) {
      this.signed = { token: await assertion(this.id, this.key, this.lbUrl), at: performance.now() };
    }
    return this.signed.token;
  }
}

/** The crm-orders boundary and a bot with `tasks` open tasks, all through the front. */
export async function setUpIssuance(front: { url: string; adminKey: string }, tasks = 20): Promise<{ bot: FrontBot; taskIds: string[] }> {
  await putBoundary(front, 'crm-orders');
  const bot = await FrontBot.register(front, 'ha-bot');
  const taskIds: string[] = [];
  for (let i = 0; i < tasks; i++) {
    const opened = await call(front.url, 'POST', '/v1/tasks', {
      token: await bot.token(),
      json: { intent: 'order_status', subject: `user-${i}`, ttl: 3600 },
    });
    if (opened.status !== 201) throw new Error(`open task: ${opened.status} ${JSON.stringify(opened.body)}`);
    taskIds.push(opened.body.task_id as string);
  }
  return { bot, taskIds };
}

/** One HTTP request over a keep-alive agent; never rejects: failures are outcomes too. */
export function send(
  agent: http.Agent,
  base: string,
  kind: string,
  method: string,
  path: string,
  options: { token?: string; json?: unknown; timeoutMs?: number } = {},
): Promise<Outcome & { body: string }> {
  const url = new URL(path, base);
  const body = options.json === undefined ? undefined : JSON.stringify(options.json);
  const headers: Record<string, string | number> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(body);
  }
  const start = performance.now();
  return new Promise((resolve) => {
    const request = http.request(
      {
        agent,
        hostname: url.hostname,
        port: url.port,
        method,
        path: url.pathname + url.search,
        headers,
        timeout: options.timeoutMs ?? 30_000,
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          const replica = response.headers['x-tollgate-replica'];
          resolve({
            kind,
            start,
            end: performance.now(),
            status: response.statusCode ?? 0,
            replica: typeof replica === 'string' ? replica : undefined,
            body: text,
          });
        });
        response.on('error', (error) =>
          resolve({ kind, start, end: performance.now(), status: 0, replica: undefined, error: error.message, body: '' }),
        );
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', (error) =>
      resolve({ kind, start, end: performance.now(), status: 0, replica: undefined, error: error.message, body: '' }),
    );
    request.end(body);
  });
}

/**
 * A closed loop of `concurrency` workers, each sending credential requests one after the other
 * through the front, over its own keep-alive connections.
 */
export class IssuanceLoad {
  readonly outcomes: Outcome[] = [];
  private running = false;
  private workers: Promise<void>[] = [];
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private next = 0;

  constructor(
    private readonly lbUrl: string,
    private readonly bot: FrontBot,
    private readonly taskIds: readonly string[],
    private readonly concurrency = 6,
  ) {}

  start(): void {
    this.running = true;
    this.workers = Array.from({ length: this.concurrency }, () => this.worker());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
    this.agent.destroy();
  }

  /** Requests in flight at `at` (sent before, answered after). */
  inFlightAt(at: number): Outcome[] {
    return this.outcomes.filter((outcome) => outcome.start <= at && outcome.end >= at);
  }

  private async worker(): Promise<void> {
    while (this.running) {
      const task = this.taskIds[this.next++ % this.taskIds.length]!;
      const outcome = await send(this.agent, this.lbUrl, 'credential', 'POST', `/v1/tasks/${task}/credentials`, {
        token: await this.bot.token(),
        json: { boundary: 'crm-orders', action: 'orders:read', resource: `order/${this.next}` },
      });
      const { body, ...kept } = outcome;
      if (outcome.status !== 201) kept.error ??= body.slice(0, 200);
      this.outcomes.push(kept);
    }
  }
}

/** Failed: no answer, or an answer other than the one expected (201 for a credential). */
export function failed(outcome: Outcome, expected = 201): boolean {
  return outcome.status !== expected;
}

/** The q-quantile (0..1) of the latencies in milliseconds, nearest rank. */
export function quantile(outcomes: readonly Outcome[], q: number): number {
  const sorted = outcomes.map((outcome) => outcome.end - outcome.start).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 10) / 10;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
