// Several Tollgate broker replicas, each its own process, on one database, behind an HAProxy front:
// the deployment a team runs when it outgrows one box, on loopback ports. The HA tests (faults 2-6
// of issue 16) kill, restart and partition these replicas and measure what clients see through the
// front.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as connectSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../../support/broker.js';

const ROOT = resolve(import.meta.dirname, '../../..');
export const BROKER_MAIN = join(ROOT, 'dist/apps/broker/main.js');

export interface ReplicaSetOptions {
  /** The database every replica uses (a PostgreSQL URL: replicas never share an embedded PGlite). */
  databaseUrl: string;
  /** How many replicas (default 3). */
  count?: number;
  /** TOLLGATE_* settings every replica gets (periods shortened for a test, say). */
  env?: Record<string, string>;
  /** Settings for one replica only, over `env` (fault 4 points one replica at a proxy). */
  replicaEnv?: (index: number) => Record<string, string>;
  /** HAProxy health checks of GET /readyz: period and how many failures/successes flip a server. */
  check?: { interMs?: number; fall?: number; rise?: number; timeoutMs?: number };
  /** Broker log level (default warn: errors and warnings reach the tail kept for failure messages). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'silent';
}

export type ServerState = 'UP' | 'DOWN' | 'MAINT' | 'NOLB' | 'DRAIN' | string;

export interface Replica {
  /** 0-based; HAProxy names it `r<index>`. */
  readonly index: number;
  /** The replica's own URL (bypassing the front). */
  readonly url: string;
  readonly port: number;
  /** The running process's id, or undefined while it is stopped. */
  pid(): number | undefined;
  /** True while its process runs. */
  running(): boolean;
  /**
   * Sends `signal` and waits for the process to exit: the exit code, or null when a signal ended
   * it (SIGKILL). Resolves at once with null when it is not running.
   */
  kill(signal: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** The exit of the current process without signalling it (after a kill sent elsewhere). */
  exited(): Promise<number | null>;
  /**
   * Starts the process (again) on the same port and waits until /readyz answers 200 and HAProxy
   * sees it UP. `env` is added over the replica's settings for this start and the ones after.
   */
  start(env?: Record<string, string>): Promise<void>;
  /** The last lines the process wrote (stdout and stderr), for failure messages. */
  log(): string;
}

export interface ReplicaSet {
  /** The HAProxy front: what clients use. Also every replica's TOLLGATE_ISSUER. */
  readonly lbUrl: string;
  readonly adminKey: string;
  /** The KEK (base64) every replica seals and opens signing keys with. */
  readonly kek: string;
  readonly replicas: readonly Replica[];
  /** HAProxy's view of each replica (`show stat`), by index. */
  serverStates(): Promise<ServerState[]>;
  /** Waits until HAProxy sees replica `index` in `state` (UP, DOWN). */
  waitServerState(index: number, state: ServerState, timeoutMs?: number): Promise<void>;
  /** HAProxy's last lines (it logs server state changes), for failure messages. */
  lbLog(): string;
  /** Stops every replica (SIGKILL after a grace period) and HAProxy; removes the temp folder. */
  stop(): Promise<void>;
}

/** Installs Debian's haproxy when it is missing (as .ci/run does for chromium); returns its path. */
export function haproxyBinary(): string {
  for (const candidate of ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy']) {
    if (existsSync(candidate)) return candidate;
  }
  const root = process.getuid?.() === 0;
  const run = (args: string[]) =>
    spawnSync(root ? args[0]! : 'sudo', root ? args.slice(1) : args, {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  run(['apt-get', 'update']);
  run(['apt-get', 'install', '-y', 'haproxy']);
  if (existsSync('/usr/sbin/haproxy')) return '/usr/sbin/haproxy';
  throw new Error('haproxy is not installed and could not be installed with apt-get');
}

// Everything started here is ended when the test process exits, however it exits: a crashed test
// must not leave replicas holding ports and database connections for the next file.
const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const TAIL_LINES = 60;

class ReplicaProcess implements Replica {
  private child: ChildProcess | undefined;
  private exit: Promise<number | null> = Promise.resolve(null);
  private tail: string[] = [];
  private extraEnv: Record<string, string> = {};

  constructor(
    readonly index: number,
    readonly port: number,
    private readonly baseEnv: Record<string, string>,
    private readonly set: { waitServerState(index: number, state: ServerState, timeoutMs?: number): Promise<void> },
    private readonly lbReady: () => boolean,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  pid(): number | undefined {
    return this.running() ? this.child?.pid : undefined;
  }

  running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    return this.tail.join('\n');
  }

  exited(): Promise<number | null> {
    return this.exit;
  }

  async kill(signal: NodeJS.Signals, timeoutMs = 30_000): Promise<number | null> {
    const child = this.child;
    if (!child || !this.running()) return this.exit;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`replica r${this.index} did not exit within ${timeoutMs} ms of ${signal}:\n${this.log()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exit, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async start(env: Record<string, string> = {}): Promise<void> {
    if (this.running()) throw new Error(`replica r${this.index} is already running`);
    Object.assign(this.extraEnv, env);
    const child = spawn(process.execPath, [BROKER_MAIN], {
      cwd: ROOT,
      env: { ...this.baseEnv, ...this.extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    live.add(child);
    this.exit = new Promise((done) =>
      child.once('exit', (code) => {
        live.delete(child);
        this.tail.push(`[r${this.index} exited: code ${code}, signal ${child.signalCode}]`);
        done(code);
      }),
    );
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() === '') continue;
        this.tail.push(line);
        if (this.tail.length > TAIL_LINES) this.tail.shift();
      }
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    await this.waitReady(90_000);
    if (this.lbReady()) await this.set.waitServerState(this.index, 'UP', 30_000);
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running()) throw new Error(`replica r${this.index} exited while starting:\n${this.log()}`);
      try {
        const response = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await response.arrayBuffer();
        if (response.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`replica r${this.index} not ready within ${timeoutMs} ms:\n${this.log()}`);
  }
}

/**
 * HAProxy's configuration: HTTP, round robin over the replicas, each health-checked on GET /readyz.
 *
 * - A request whose connection to a replica fails (refused: the replica is gone) is sent to another
 *   replica (`retries` + `option redispatch 1`): no client sees a killed replica's closed port.
 * - `retry-on conn-failure empty-response response-timeout` would also replay a request a replica
 *   accepted and then died on; that is safe for GET/HEAD only. A POST (a credential, a completion)
 *   may have committed before the replica died: replaying it could issue twice, so for the other
 *   methods only connection failures are retried (`http-request disable-l7-retry`).
 * - Event streams (GET /v1/events) stay open: `timeout server` is longer than the broker's
 *   keep-alive comments, so an idle stream is not cut by the front.
 */
function haproxyConfig(options: {
  frontPort: number;
  replicaPorts: readonly number[];
  socket: string;
  interMs: number;
  fall: number;
  rise: number;
  timeoutMs: number;
}): string {
  return [
    'global',
    '  maxconn 4096',
    `  stats socket ${options.socket} mode 600 level admin`,
    // Server state changes (UP/DOWN) go to stderr, kept for failure messages.
    '  log stderr format short local0 notice',
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  timeout connect 1s',
    '  timeout client 300s',
    '  timeout server 300s',
    '  timeout http-request 30s',
    '  timeout http-keep-alive 10s',
    `  timeout check ${options.timeoutMs}ms`,
    '  retries 3',
    '  option redispatch 1',
    '  retry-on conn-failure empty-response response-timeout',
    '',
    'frontend front',
    `  bind 127.0.0.1:${options.frontPort}`,
    '  default_backend replicas',
    '',
    'backend replicas',
    '  balance roundrobin',
    '  option httpchk',
    '  http-check send meth GET uri /readyz',
    '  http-check expect status 200',
    '  http-request disable-l7-retry unless METH_GET || METH_HEAD',
    `  default-server check inter ${options.interMs}ms fastinter ${options.interMs}ms downinter ${options.interMs}ms fall ${options.fall} rise ${options.rise}`,
    ...options.replicaPorts.map((port, index) => `  server r${index} 127.0.0.1:${port}`),
    '',
  ].join('\n');
}

/** One command on HAProxy's admin socket; resolves with its answer. */
function haproxyCommand(socket: string, command: string): Promise<string> {
  return new Promise((done, fail) => {
    const connection = connectSocket(socket);
    let answer = '';
    connection.setEncoding('utf8');
    connection.on('data', (chunk: string) => (answer += chunk));
    connection.on('end', () => done(answer));
    connection.on('error', fail);
    connection.end(`${command}\n`);
  });
}

/**
 * Starts `count` broker replicas on `databaseUrl` (one after the other the first time: the first
 * applies the migrations, the others find them applied) and an HAProxy front over them; resolves
 * when every replica answers /readyz and HAProxy sees each one UP.
 */
export async function startReplicaSet(options: ReplicaSetOptions): Promise<ReplicaSet> {
  const count = options.count ?? 3;
  const haproxy = haproxyBinary();
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-ha-'));
  tempDirs.add(dir);
  const adminKey = `ha-admin-${randomBytes(24).toString('hex')}`;
  const kek = randomBytes(32).toString('base64');
  const frontPort = await freePort();
  const lbUrl = `http://127.0.0.1:${frontPort}`;
  const ports: number[] = [];
  while (ports.length < count) {
    const port = await freePort();
    if (port !== frontPort && !ports.includes(port)) ports.push(port);
  }
  const socket = join(dir, 'haproxy.sock');

  // Only what the broker needs: no TOLLGATE_* or DATABASE_URL of the test's own environment leaks in.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] => entry[1] !== undefined && !entry[0].startsWith('TOLLGATE_') && entry[0] !== 'DATABASE_URL',
    ),
  );
  let lbStarted = false;
  const lbTail: string[] = [];
  const serverStates = async (): Promise<ServerState[]> => {
    const csv = await haproxyCommand(socket, 'show stat');
    const states: ServerState[] = new Array<ServerState>(count).fill('UNKNOWN');
    const header = csv.split('\n')[0]?.replace(/^# /, '').split(',') ?? [];
    const statusColumn = header.indexOf('status');
    for (const line of csv.split('\n').slice(1)) {
      const fields = line.split(',');
      const match = /^r(\d+)$/.exec(fields[1] ?? '');
      if (fields[0] === 'replicas' && match) states[Number(match[1])] = (fields[statusColumn] ?? 'UNKNOWN').split(' ')[0]!;
    }
    return states;
  };
  const waitServerState = async (index: number, state: ServerState, timeoutMs = 30_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let seen: ServerState = 'UNKNOWN';
    while (Date.now() < deadline) {
      seen = (await serverStates())[index] ?? 'UNKNOWN';
      if (seen === state) return;
      await sleep(50);
    }
    throw new Error(`HAProxy saw r${index} ${seen}, not ${state}, within ${timeoutMs} ms:\n${lbTail.join('\n')}`);
  };

  const replicas = ports.map((port, index) => {
    const env: Record<string, string> = {
      ...inherited,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: options.databaseUrl,
      TOLLGATE_ADMIN_KEY: adminKey,
      TOLLGATE_KEK: kek,
      // Every replica is the same issuer: tokens, workload assertions' audience and DPoP proofs
      // name the front, not the replica that happens to answer.
      TOLLGATE_ISSUER: lbUrl,
      TOLLGATE_DATA_DIR: join(dir, `r${index}`),
      TOLLGATE_LOG_LEVEL: options.logLevel ?? 'warn',
      ...options.env,
      ...options.replicaEnv?.(index),
    };
    return new ReplicaProcess(index, port, env, { waitServerState }, () => lbStarted);
  });

  let lb: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    await Promise.all(
      replicas.map(async (replica) => {
        await replica.kill('SIGTERM', 15_000).catch(() => replica.kill('SIGKILL'));
      }),
    );
    if (lb && lb.exitCode === null && lb.signalCode === null) {
      const exited = new Promise((done) => lb!.once('exit', done));
      lb.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  };

  try {
    await replicas[0]!.start();
    await Promise.all(replicas.slice(1).map((replica) => replica.start()));

    const config = join(dir, 'haproxy.cfg');
    writeFileSync(
      config,
      haproxyConfig({
        frontPort,
        replicaPorts: ports,
        socket,
        interMs: options.check?.interMs ?? 200,
        fall: options.check?.fall ?? 1,
        rise: options.check?.rise ?? 1,
        timeoutMs: options.check?.timeoutMs ?? 2_000,
      }),
    );
    const check = spawnSync(haproxy, ['-c', '-q', '-f', config], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`haproxy refused its configuration:\n${check.stdout}${check.stderr}`);
    const child = spawn(haproxy, ['-db', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    lb = child;
    live.add(child);
    child.once('exit', () => live.delete(child));
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() === '') continue;
        lbTail.push(line);
        if (lbTail.length > TAIL_LINES) lbTail.shift();
      }
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${lbTail.join('\n')}`);
      if (existsSync(socket)) {
        try {
          await serverStates();
          break;
        } catch {
          // the socket file exists before HAProxy accepts on it
        }
      }
      if (Date.now() > deadline) throw new Error(`haproxy did not open its admin socket:\n${lbTail.join('\n')}`);
      await sleep(50);
    }
    lbStarted = true;
    for (const replica of replicas) await waitServerState(replica.index, 'UP', 30_000);
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }

  return {
    lbUrl,
    adminKey,
    kek,
    replicas,
    serverStates,
    waitServerState,
    lbLog: () => lbTail.join('\n'),
    stop,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
