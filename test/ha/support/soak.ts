// The soak (issue 16, fault 5): three broker replicas behind the HAProxy front on one fresh
// PostgreSQL database, a mixed load at a fixed rate for a while, and every few seconds a sample of
// what must stay flat: each replica's RSS, the database's open connections, each replica's
// event-loop delay and the clients' p99 latency, with the errors. It writes the samples (CSV and
// JSON) and a PNG plot, and judges flatness: the median of the last third of the samples against
// the first third, after a warm-up. `npm run ha:soak` (scripts/ha-soak.ts) runs it for the note;
// test/ha/soak.e2e.spec.ts runs a short one.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freshDatabase, type TestDatabase } from '../../support/database.js';
import { readEvents } from '../../support/sse.js';
import { assertion, workloadKey, type WorkloadKey } from '../../support/workload.js';
import { plot, type Rgb } from './png.js';
import { startReplicaSet, type ReplicaSet } from './replicas.js';

export interface Tolerances {
  /** RSS of each replica: last third's median at most first third's × this, plus `rssSlackMb`. */
  rssRatio: number;
  rssSlackMb: number;
  /** Open database connections: last third's median at most max(first × ratio, first + slack). */
  connectionsRatio: number;
  connectionsSlack: number;
  /** Event-loop delay p99 and request p99: last at most max(first × ratio, first + slack ms). */
  latencyRatio: number;
  loopSlackMs: number;
  p99SlackMs: number;
  /** CPU per request: last at most first × this. */
  cpuRatio: number;
}

/** For the 30-minute run; the short test passes looser ones. */
export const SOAK_TOLERANCES: Tolerances = {
  rssRatio: 1.15,
  rssSlackMb: 10,
  connectionsRatio: 1.25,
  connectionsSlack: 4,
  latencyRatio: 1.5,
  loopSlackMs: 10,
  p99SlackMs: 25,
  cpuRatio: 1.25,
};

export interface SoakOptions {
  /** How long the load runs after setup (seconds). */
  seconds: number;
  /** Requests per second across the front; undefined: measure capacity first and use half of it. */
  rate?: number;
  /** How long the capacity measurement runs (seconds) when `rate` is not given. */
  capacitySeconds?: number;
  /** Sample period (seconds). */
  sampleSeconds?: number;
  /** Samples before this (seconds) are the warm-up: plotted, not judged. */
  warmupSeconds?: number;
  /** Long-lived event-stream clients (half resource server, half reviewer). */
  streams?: number;
  /** Where the CSV, JSON and PNG go. */
  outDir: string;
  /** The files' name without extension (default soak-<ISO time>). */
  name?: string;
  tolerances?: Partial<Tolerances>;
  log?: (line: string) => void;
}

export interface Sample {
  /** Seconds since the load started. */
  t: number;
  /** Each replica's RSS with its child processes (the Cedar evaluators), MB. */
  rssMb: number[];
  connections: number;
  loopP99Ms: number[];
  requests: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Requests that could not start on time: the client (this process) fell behind the rate. */
  late: number;
  events: number;
  /** CPU time of the three replicas (and their children) per request answered in the interval, ms. */
  cpuMsPerRequest: number;
  /** An idle node process's event-loop delay p99 in the interval (ms): the machine's own noise. */
  probeLoopP99Ms: number;
  /** The machine's 1-minute load average. */
  loadAverage: number;
}

export interface FlatnessCheck {
  what: string;
  first: number;
  last: number;
  limit: number;
  ok: boolean;
}

export interface SoakResult {
  rate: number;
  capacity: number | undefined;
  seconds: number;
  samples: Sample[];
  requests: number;
  errors: number;
  errorExamples: string[];
  byOperation: Record<string, { requests: number; errors: number }>;
  events: number;
  streamReconnects: number;
  checks: FlatnessCheck[];
  flat: boolean;
  files: { csv: string; json: string; png: string };
}

const CRM = 'https://crm.acme.test';
const PAY = 'https://pay.acme.test';
const CRM_BOUNDARY = {
  tool: CRM,
  actions: ['orders:read', 'orders:refund'],
  intents: ['order_status'],
  default_ttl: 60,
  max_ttl: 120,
  credential: { kind: 'jwt' },
};
const PAY_BOUNDARY = {
  tool: PAY,
  actions: ['refund:create'],
  intents: ['order_status'],
  default_ttl: 60,
  max_ttl: 120,
  credential: { kind: 'jwt' },
  approval: { when: 'context.params.amount > 100' },
};
const WORKLOAD = 'soak-bot';
const POOL_MIN = 8;
const POOL_MAX = 40;
const MAX_IN_FLIGHT = 64;

/**
 * The mix, by weight: each is one request except `approval` (request → 202, approve → 200,
 * redeem → 201). `deny` asks on a completed task (403 task_not_active: a denial the drift guard
 * does not count, so the soak never suspends its own tasks).
 */
const MIX: ReadonlyArray<[Operation, number]> = [
  ['issue', 45],
  ['introspect', 25],
  ['deny', 10],
  ['complete', 8],
  ['open', 7],
  ['approval', 5],
];
type Operation = 'issue' | 'introspect' | 'deny' | 'complete' | 'open' | 'approval';

interface Client {
  lbUrl: string;
  adminKey: string;
  workloadToken(): Promise<string>;
  resourceServerKey: string;
  reviewerKey: string;
}

interface Task {
  id: string;
  issued: number;
  completing: boolean;
  /** Requests on it in flight: it is completed only when none are (the load's own race is no error). */
  busy: number;
}

/** What the load did in one sample period. */
class Interval {
  latencies: number[] = [];
  errors = 0;
  late = 0;
  events = 0;
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const sampleMs = (options.sampleSeconds ?? 5) * 1000;
  const tolerances = { ...SOAK_TOLERANCES, ...options.tolerances };
  const name = options.name ?? `soak-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  mkdirSync(options.outDir, { recursive: true });
  const files = {
    csv: join(options.outDir, `${name}.csv`),
    json: join(options.outDir, `${name}.json`),
    png: join(options.outDir, `${name}.png`),
  };

  const db: TestDatabase = await freshDatabase('postgres');
  let set: ReplicaSet | undefined;
  const stops: Array<() => Promise<void>> = [];
  try {
    set = await startReplicaSet({ databaseUrl: db.databaseUrl! });
    const client = await setUp(set);
    log(`soak: 3 replicas behind ${set.lbUrl}, database ${db.name}`);

    const load = new Load(client);
    await load.fillPool();
    let capacity: number | undefined;
    let rate = options.rate;
    if (rate === undefined) {
      capacity = await load.capacity((options.capacitySeconds ?? 10) * 1000);
      rate = Math.max(5, Math.round(capacity / 2));
      log(
        `soak: capacity ${capacity.toFixed(0)} requests/s (closed loop, ${MAX_IN_FLIGHT / 4} clients, after a warm-up); soaking at half: ${rate}/s`,
      );
    } else {
      log(`soak: fixed rate ${rate} requests/s`);
    }

    const streams = new Streams(client, options.streams ?? 4, load);
    stops.push(() => streams.close());
    await streams.open();

    const pool = new pg.Pool({ connectionString: db.databaseUrl!, max: 1 });
    stops.push(() => pool.end());
    const probe = startProbe();
    stops.push(() => probe.stop());
    const cpu = new CpuMeter();
    cpu.since(processTrees(set).flat()); // the baseline: the first sample counts from here
    const samples: Sample[] = [];
    const started = performance.now();
    load.start(rate);
    for (let next = sampleMs; next <= options.seconds * 1000 + 1; next += sampleMs) {
      await sleep(Math.max(0, started + next - performance.now()));
      const interval = load.swap();
      const sample = await takeSample(set, pool, db.name, interval, (performance.now() - started) / 1000, cpu, probe);
      samples.push(sample);
      log(
        `soak t=${sample.t.toFixed(0)}s rss=${sample.rssMb.map((mb) => mb.toFixed(0)).join('/')}MB conns=${sample.connections} ` +
          `loop_p99=${sample.loopP99Ms.map((ms) => ms.toFixed(1)).join('/')}ms req=${sample.requests} p50=${sample.p50Ms.toFixed(1)}ms ` +
          `p99=${sample.p99Ms.toFixed(1)}ms cpu/req=${sample.cpuMsPerRequest.toFixed(2)}ms errors=${sample.errors} late=${sample.late} ` +
          `events=${sample.events} probe_loop_p99=${sample.probeLoopP99Ms.toFixed(1)}ms load=${sample.loadAverage.toFixed(1)}`,
      );
    }
    await load.stop();

    const warmup = options.warmupSeconds ?? Math.min(60, options.seconds / 5);
    const checks = flatness(
      samples.filter((sample) => sample.t > warmup),
      tolerances,
    );
    const errors = samples.reduce((sum, sample) => sum + sample.errors, 0);
    const result: SoakResult = {
      rate,
      capacity,
      seconds: options.seconds,
      samples,
      requests: load.total,
      errors,
      errorExamples: load.errorExamples,
      byOperation: load.byOperation,
      events: streams.events,
      streamReconnects: streams.reconnects,
      checks,
      flat: checks.every((check) => check.ok),
      files,
    };
    writeOutputs(result, name);
    log(
      `soak: ${result.requests} requests at ${rate}/s for ${options.seconds}s, ${errors} errors, ${result.events} events on ` +
        `${options.streams ?? 4} streams (${result.streamReconnects} reconnects); flat: ${result.flat}`,
    );
    for (const check of checks) {
      log(
        `soak check ${check.ok ? 'ok  ' : 'FAIL'} ${check.what}: first ${check.first.toFixed(1)}, last ${check.last.toFixed(1)}, limit ${check.limit.toFixed(1)}`,
      );
    }
    log(`soak: wrote ${files.csv}, ${files.json}, ${files.png}`);
    return result;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await set?.stop().catch(() => {});
    await db.drop().catch(() => {});
  }
}

async function setUp(set: ReplicaSet): Promise<Client> {
  const asAdmin = (method: string, path: string, json: unknown) => request(set.lbUrl, method, path, set.adminKey, json);
  for (const [id, body] of [
    ['crm-orders', CRM_BOUNDARY],
    ['payments', PAY_BOUNDARY],
  ] as const) {
    const put = await asAdmin('PUT', `/v1/admin/boundaries/${id}`, body);
    if (put.status >= 300) throw new Error(`PUT boundary ${id}: ${put.status} ${put.text}`);
  }
  const key: WorkloadKey = await workloadKey('EdDSA');
  const workload = await asAdmin('PUT', `/v1/admin/workloads/${WORKLOAD}`, { jwks: { keys: [key.publicJwk] } });
  if (workload.status >= 300) throw new Error(`PUT workload: ${workload.status} ${workload.text}`);
  const resourceServer = await asAdmin('POST', '/v1/admin/api-keys', { role: 'resource_server', audience: CRM, label: 'soak tool' });
  const reviewer = await asAdmin('POST', '/v1/admin/api-keys', { role: 'reviewer', label: 'soak reviewer' });
  if (resourceServer.status !== 201 || reviewer.status !== 201) throw new Error(`api keys: ${resourceServer.text} ${reviewer.text}`);
  // A workload assertion lives two minutes: a fresh one every minute.
  let token = { value: '', at: 0 };
  return {
    lbUrl: set.lbUrl,
    adminKey: set.adminKey,
    resourceServerKey: (JSON.parse(resourceServer.text) as { key: string }).key,
    reviewerKey: (JSON.parse(reviewer.text) as { key: string }).key,
    workloadToken: async () => {
      if (Date.now() - token.at > 60_000) token = { value: await assertion(WORKLOAD, key, set.lbUrl), at: Date.now() };
      return token.value;
    },
  };
}

interface Answer {
  status: number;
  text: string;
  ms: number;
}

async function request(
  base: string,
  method: string,
  path: string,
  token: string,
  json?: unknown,
  form?: Record<string, string>,
): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  let body: string | undefined;
  if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  } else if (json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(json);
  }
  const started = performance.now();
  const response = await fetch(`${base}${path}`, { method, headers, body, signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  return { status: response.status, text, ms: performance.now() - started };
}

/** The mixed load: a pool of open tasks, recent tokens to introspect, completed tasks to be refused on. */
class Load {
  private readonly pool: Task[] = [];
  private readonly tokens: string[] = [];
  private readonly completed: string[] = [];
  private interval = new Interval();
  private inFlight = new Set<Promise<void>>();
  private ticker: NodeJS.Timeout | undefined;
  private cursor = 0;
  total = 0;
  readonly errorExamples: string[] = [];
  readonly byOperation: Record<string, { requests: number; errors: number }> = {};

  constructor(private readonly client: Client) {}

  async fillPool(): Promise<void> {
    while (this.pool.length < POOL_MIN * 2) await this.run('open');
    while (this.completed.length < 2) await this.run('complete');
  }

  /**
   * Closed loop, `MAX_IN_FLIGHT / 4` clients: requests answered per second, measured after a
   * warm-up of a third as long (fresh processes compile their hot paths first).
   */
  async capacity(ms: number): Promise<number> {
    await this.closedLoop(ms / 3);
    return this.closedLoop(ms);
  }

  private async closedLoop(ms: number): Promise<number> {
    const until = performance.now() + ms;
    let done = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: MAX_IN_FLIGHT / 4 }, async () => {
        while (performance.now() < until) {
          const made = await this.run(this.pick());
          done += made;
        }
      }),
    );
    this.swap();
    return done / ((performance.now() - started) / 1000);
  }

  /** Open loop: `rate` requests per second whatever the answers' speed (a slow server gets no relief). */
  start(rate: number): void {
    const started = performance.now();
    let launched = 0;
    this.ticker = setInterval(() => {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      while (launched < due) {
        launched++;
        if (this.inFlight.size >= MAX_IN_FLIGHT) {
          this.interval.late++;
          continue;
        }
        const run = this.run(this.pick()).then(() => undefined);
        this.inFlight.add(run);
        void run.finally(() => this.inFlight.delete(run));
      }
    }, 10);
  }

  async stop(): Promise<void> {
    clearInterval(this.ticker);
    await Promise.all(this.inFlight);
  }

  swap(): Interval {
    const done = this.interval;
    this.interval = new Interval();
    return done;
  }

  countEvent(): void {
    this.interval.events++;
  }

  private pick(): Operation {
    const total = MIX.reduce((sum, [, weight]) => sum + weight, 0);
    let roll = Math.random() * total;
    for (const [operation, weight] of MIX) {
      roll -= weight;
      if (roll < 0) return operation;
    }
    return 'issue';
  }

  /** One operation; returns how many requests it made. */
  private async run(operation: Operation): Promise<number> {
    const counts = (this.byOperation[operation] ??= { requests: 0, errors: 0 });
    let made = 0;
    const expect = (answer: Answer, statuses: number[], what: string): boolean => {
      made++;
      this.total++;
      counts.requests++;
      this.interval.latencies.push(answer.ms);
      if (statuses.includes(answer.status)) return true;
      this.fail(counts, `${what}: ${answer.status} ${answer.text.slice(0, 200)}`);
      return false;
    };
    try {
      const token = await this.client.workloadToken();
      const { lbUrl } = this.client;
      switch (operation === 'open' && this.pool.length >= POOL_MAX ? 'issue' : operation) {
        case 'open': {
          const answer = await request(lbUrl, 'POST', '/v1/tasks', token, { intent: 'order_status', subject: 'user-soak' });
          if (expect(answer, [201], 'open task'))
            this.pool.push({ id: (JSON.parse(answer.text) as { task_id: string }).task_id, issued: 0, completing: false, busy: 0 });
          break;
        }
        case 'issue': {
          const task = this.nextTask();
          if (!task) return await this.run('open');
          task.issued++;
          task.busy++;
          const answer = await request(lbUrl, 'POST', `/v1/tasks/${task.id}/credentials`, token, {
            boundary: 'crm-orders',
            action: 'orders:read',
            resource: `order/${this.total}`,
          }).finally(() => task.busy--);
          if (expect(answer, [201], 'issue'))
            this.remember((JSON.parse(answer.text) as { credential: { access_token: string } }).credential.access_token);
          break;
        }
        case 'introspect': {
          const recent = this.tokens[Math.floor(Math.random() * this.tokens.length)];
          if (!recent) return await this.run('issue');
          const answer = await request(lbUrl, 'POST', '/oauth2/introspect', this.client.resourceServerKey, undefined, { token: recent });
          expect(answer, [200], 'introspect');
          break;
        }
        case 'deny': {
          const done = this.completed[Math.floor(Math.random() * this.completed.length)];
          if (!done) return await this.run('complete');
          const answer = await request(lbUrl, 'POST', `/v1/tasks/${done}/credentials`, token, {
            boundary: 'crm-orders',
            action: 'orders:read',
          });
          if (expect(answer, [403], 'deny') && !answer.text.includes('task_not_active'))
            this.fail(counts, `deny: ${answer.text.slice(0, 200)}`);
          break;
        }
        case 'complete': {
          // The open task with the most credentials, once the pool has more than its minimum.
          const candidates = this.pool.filter((candidate) => !candidate.completing && candidate.busy === 0);
          if (this.pool.length <= POOL_MIN || candidates.length === 0) return await this.run('open');
          const task = candidates.reduce((most, candidate) => (candidate.issued > most.issued ? candidate : most));
          task.completing = true;
          const answer = await request(lbUrl, 'POST', `/v1/tasks/${task.id}/complete`, token);
          this.pool.splice(this.pool.indexOf(task), 1);
          if (expect(answer, [200], 'complete')) {
            this.completed.push(task.id);
            if (this.completed.length > 200) this.completed.shift();
          }
          break;
        }
        case 'approval': {
          const task = this.nextTask();
          if (!task) return await this.run('open');
          const body = { boundary: 'payments', action: 'refund:create', resource: `order/${this.total}`, params: { amount: 150 } };
          task.busy++;
          try {
            const pending = await request(lbUrl, 'POST', `/v1/tasks/${task.id}/credentials`, token, body);
            if (!expect(pending, [202], 'approval request')) break;
            const approvalId = (JSON.parse(pending.text) as { approval_id: string }).approval_id;
            const approved = await request(lbUrl, 'POST', `/v1/approvals/${approvalId}/approve`, this.client.reviewerKey, {
              reason: 'soak',
            });
            if (!expect(approved, [200], 'approve')) break;
            const redeemed = await request(lbUrl, 'POST', `/v1/tasks/${task.id}/credentials`, token, { ...body, approval_id: approvalId });
            expect(redeemed, [201], 'redeem approval');
          } finally {
            task.busy--;
          }
          break;
        }
      }
    } catch (error) {
      made++;
      this.total++;
      counts.requests++;
      this.fail(counts, `${operation}: ${error instanceof Error ? error.message : String(error)}`);
    }
    return made;
  }

  private fail(counts: { errors: number }, example: string): void {
    counts.errors++;
    this.interval.errors++;
    if (this.errorExamples.length < 10) this.errorExamples.push(example);
  }

  /** Round robin over the open tasks that are not being completed. */
  private nextTask(): Task | undefined {
    for (let tries = 0; tries < this.pool.length; tries++) {
      const task = this.pool[this.cursor++ % this.pool.length];
      if (task && !task.completing) return task;
    }
    return undefined;
  }

  private remember(token: string): void {
    this.tokens.push(token);
    if (this.tokens.length > 200) this.tokens.shift();
  }
}

/**
 * Long-lived GET /v1/events clients through the front, as tools and reviewers run them: each
 * resumes with Last-Event-ID when its stream ends (a replica's keep-alive, the front's timeout).
 */
class Streams {
  events = 0;
  reconnects = 0;
  private readonly controller = new AbortController();
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly client: Client,
    private readonly count: number,
    private readonly load: Load,
  ) {}

  async open(): Promise<void> {
    const opened: Promise<void>[] = [];
    for (let index = 0; index < this.count; index++) {
      const key = index % 2 === 0 ? this.client.resourceServerKey : this.client.reviewerKey;
      let first: () => void = () => {};
      opened.push(new Promise((resolve) => (first = resolve)));
      this.loops.push(this.follow(key, first));
    }
    await Promise.all(opened);
  }

  private async follow(key: string, opened: () => void): Promise<void> {
    let lastEventId: string | undefined;
    let connections = 0;
    while (!this.controller.signal.aborted) {
      try {
        const response = await fetch(`${this.client.lbUrl}/v1/events`, {
          headers: { authorization: `Bearer ${key}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
          signal: this.controller.signal,
        });
        if (connections++ > 0) this.reconnects++;
        opened();
        if (response.status !== 200 || !response.body) {
          await response.body?.cancel();
          await sleep(500);
          continue;
        }
        await readEvents(response.body, (event) => {
          lastEventId = event.id;
          this.events++;
          this.load.countEvent();
        });
      } catch {
        if (!this.controller.signal.aborted) await sleep(500);
      }
    }
  }

  async close(): Promise<void> {
    this.controller.abort();
    await Promise.all(this.loops);
  }
}

async function takeSample(
  set: ReplicaSet,
  pool: pg.Pool,
  database: string,
  interval: Interval,
  t: number,
  cpu: CpuMeter,
  probe: Probe,
): Promise<Sample> {
  const trees = processTrees(set);
  const rssMb = trees.map((pids) => (pids.length === 0 ? Number.NaN : pids.reduce((sum, pid) => sum + rssKbOf(pid), 0) / 1024));
  const cpuMs = cpu.since(trees.flat());
  // This sampler's own connection is left out: it is the harness's, not the brokers'.
  const { rows } = await pool.query<{ n: string }>(
    'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [database],
  );
  // prom-client's event-loop delay percentiles cover the time since the previous scrape (the
  // histogram is reset on each collect): read from each replica directly, every sample.
  const loopP99Ms = await Promise.all(
    set.replicas.map(async (replica) => {
      try {
        const response = await fetch(`${replica.url}/metrics`, { signal: AbortSignal.timeout(5_000) });
        const text = await response.text();
        const value = /^nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text)?.[1];
        return value === undefined ? Number.NaN : Number(value) * 1000;
      } catch {
        return Number.NaN;
      }
    }),
  );
  const sorted = [...interval.latencies].sort((a, b) => a - b);
  return {
    cpuMsPerRequest: sorted.length > 0 ? cpuMs / sorted.length : Number.NaN,
    probeLoopP99Ms: await probe.p99(),
    loadAverage: loadavg()[0]!,
    t,
    rssMb,
    connections: Number(rows[0]!.n),
    loopP99Ms,
    requests: sorted.length,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    errors: interval.errors,
    late: interval.late,
    events: interval.events,
  };
}

/** Each replica's process and its children (the Cedar evaluators); empty for a stopped replica. */
function processTrees(set: ReplicaSet): number[][] {
  return set.replicas.map((replica) => {
    const pid = replica.pid();
    return pid === undefined ? [] : [pid, ...descendants(pid)];
  });
}

function rssKbOf(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0; // exited meanwhile
  }
}

/** Every process below `pid` (children, their children), from the ppid field of /proc/<pid>/stat. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** CPU time (utime + stime, /proc/<pid>/stat fields 14 and 15, 1/100 s ticks) used since the last call, ms. */
class CpuMeter {
  private last = new Map<number, number>();

  since(pids: readonly number[]): number {
    const now = new Map<number, number>();
    let used = 0;
    for (const pid of pids) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const ticks = Number(fields[11]) + Number(fields[12]);
        now.set(pid, ticks);
        used += ticks - (this.last.get(pid) ?? ticks);
      } catch {
        // exited meanwhile
      }
    }
    this.last = now;
    return used * 10;
  }
}

interface Probe {
  p99(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * An idle node process measuring its own event-loop delay: what the machine (other processes, a
 * shared CPU) does to any process's loop, to read the replicas' loop delay against. Each line on
 * its stdin answers the p99 since the previous one, in ms.
 */
function startProbe(): Probe {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const h = require('node:perf_hooks').monitorEventLoopDelay({ resolution: 10 }); h.enable();
       require('node:readline').createInterface({ input: process.stdin }).on('line', () => {
         process.stdout.write((h.percentile(99) / 1e6).toFixed(2) + '\\n'); h.reset();
       });`,
    ],
    { stdio: ['pipe', 'pipe', 'ignore'] },
  );
  const waiting: Array<(value: number) => void> = [];
  child.stdout.setEncoding('utf8');
  let buffer = '';
  child.stdout.on('data', (chunk: string) => {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf('\n')) >= 0) {
      waiting.shift()?.(Number(buffer.slice(0, end)));
      buffer = buffer.slice(end + 1);
    }
  });
  return {
    p99: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(Number.NaN);
        waiting.push(resolve);
        child.stdin.write('\n');
      }),
    stop: async () => {
      child.kill();
    },
  };
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

function median(values: readonly number[]): number {
  const finite = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const middle = Math.floor(finite.length / 2);
  return finite.length % 2 ? finite[middle]! : (finite[middle - 1]! + finite[middle]!) / 2;
}

/** The median of the last third of `judged` against the first third's, for each measure. */
export function flatness(judged: readonly Sample[], tolerances: Tolerances): FlatnessCheck[] {
  const third = Math.max(1, Math.floor(judged.length / 3));
  const first = judged.slice(0, third);
  const last = judged.slice(-third);
  const checks: FlatnessCheck[] = [];
  const check = (what: string, of: (sample: Sample) => number, limit: (first: number) => number) => {
    const a = median(first.map(of));
    const b = median(last.map(of));
    const bound = limit(a);
    checks.push({ what, first: a, last: b, limit: bound, ok: Number.isFinite(a) && Number.isFinite(b) && b <= bound });
  };
  const replicas = judged[0]?.rssMb.length ?? 0;
  for (let index = 0; index < replicas; index++) {
    check(
      `r${index} RSS (MB)`,
      (sample) => sample.rssMb[index]!,
      (a) => a * tolerances.rssRatio + tolerances.rssSlackMb,
    );
    check(
      `r${index} event-loop delay p99 (ms)`,
      (sample) => sample.loopP99Ms[index]!,
      (a) => Math.max(a * tolerances.latencyRatio, a + tolerances.loopSlackMs),
    );
  }
  check(
    'database connections',
    (sample) => sample.connections,
    (a) => Math.max(a * tolerances.connectionsRatio, a + tolerances.connectionsSlack),
  );
  check(
    'CPU per request (ms)',
    (sample) => sample.cpuMsPerRequest,
    (a) => a * tolerances.cpuRatio,
  );
  check(
    'request p99 (ms)',
    (sample) => sample.p99Ms,
    (a) => Math.max(a * tolerances.latencyRatio, a + tolerances.p99SlackMs),
  );
  return checks;
}

const REPLICA_COLORS: Rgb[] = [
  [214, 39, 40],
  [31, 119, 180],
  [44, 160, 44],
];

function writeOutputs(result: SoakResult, name: string): void {
  const { samples } = result;
  const replicas = samples[0]?.rssMb.length ?? 0;
  const header = [
    't_s',
    ...Array.from({ length: replicas }, (_, i) => `r${i}_rss_mb`),
    'db_connections',
    ...Array.from({ length: replicas }, (_, i) => `r${i}_loop_p99_ms`),
    'requests',
    'p50_ms',
    'p99_ms',
    'errors',
    'late',
    'events',
    'cpu_ms_per_request',
    'probe_loop_p99_ms',
    'load_average',
  ];
  const lines = samples.map((sample) =>
    [
      sample.t.toFixed(1),
      ...sample.rssMb.map((mb) => mb.toFixed(1)),
      sample.connections,
      ...sample.loopP99Ms.map((ms) => ms.toFixed(2)),
      sample.requests,
      sample.p50Ms.toFixed(2),
      sample.p99Ms.toFixed(2),
      sample.errors,
      sample.late,
      sample.events,
      sample.cpuMsPerRequest.toFixed(3),
      sample.probeLoopP99Ms.toFixed(2),
      sample.loadAverage.toFixed(2),
    ].join(','),
  );
  writeFileSync(result.files.csv, [header.join(','), ...lines].join('\n') + '\n');
  writeFileSync(result.files.json, JSON.stringify({ ...result, name }, null, 2) + '\n');
  const xs = samples.map((sample) => sample.t / 60);
  const perReplica = (of: (sample: Sample) => number[]) =>
    Array.from({ length: replicas }, (_, index) => ({
      label: `r${index}`,
      color: REPLICA_COLORS[index % REPLICA_COLORS.length]!,
      values: samples.map((sample) => of(sample)[index]!),
    }));
  writeFileSync(
    result.files.png,
    plot({
      title: `TOLLGATE SOAK ${name.replace(/^soak-/, '').slice(0, 16)}  ${result.rate}/S  ${result.requests} REQUESTS  ${result.errors} ERRORS  FLAT: ${result.flat ? 'YES' : 'NO'}`,
      xs,
      panels: [
        { title: 'RSS (MB)', series: perReplica((sample) => sample.rssMb) },
        {
          title: 'OPEN DATABASE CONNECTIONS',
          series: [{ label: 'all', color: [120, 60, 160], values: samples.map((sample) => sample.connections) }],
        },
        {
          title: 'EVENT-LOOP DELAY P99 (MS)',
          series: [
            ...perReplica((sample) => sample.loopP99Ms),
            { label: 'idle probe', color: [150, 150, 150], values: samples.map((sample) => sample.probeLoopP99Ms) },
          ],
        },
        {
          title: 'LATENCY (MS), ERRORS',
          series: [
            { label: 'p99', color: [0, 0, 0], values: samples.map((sample) => sample.p99Ms) },
            { label: 'p50', color: [127, 127, 127], values: samples.map((sample) => sample.p50Ms) },
            { label: 'errors', color: [220, 0, 0], values: samples.map((sample) => sample.errors) },
          ],
        },
        {
          title: 'CPU PER REQUEST (MS, 3 REPLICAS)',
          series: [{ label: 'cpu', color: [230, 120, 0], values: samples.map((sample) => sample.cpuMsPerRequest) }],
        },
        {
          title: 'MACHINE LOAD AVERAGE (1 MIN)',
          series: [{ label: 'load', color: [90, 90, 90], values: samples.map((sample) => sample.loadAverage) }],
        },
      ],
    }),
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
