// `npm run ha:up` / `npm run ha:down`: the whole highly available topology for a person to try on
// one machine: etcd, two PostgreSQL nodes under Patroni, HAProxy in front of them, and three
// Tollgate replicas behind an HAProxy HTTP front (the replica harness). `up` starts a detached
// process that owns everything (`serve`), waits until it is ready and prints the URLs; `down`
// stops that process, which stops everything it started. The state is in one known folder.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { startPatroniCluster, type PatroniPorts } from './patroni.js';
import { BROKER_MAIN, startReplicaSet } from './replicas.js';

const ROOT = resolve(import.meta.dirname, '../../..');
/** Where `up` keeps the topology's data, logs and state, and `down` finds them. */
export const STATE_DIR = join(tmpdir(), 'tollgate-ha');
const STATE_FILE = join(STATE_DIR, 'state.json');
const SERVE_LOG = join(STATE_DIR, 'serve.log');
const DATABASE = 'tollgate';

/** Fixed loopback ports, clear of 5432 and of the ports the tests pick (20000-32000). */
export const HA_UP_PORTS: PatroniPorts = {
  etcdClient: 52379,
  etcdPeer: 52380,
  primary: 55430,
  postgres: [55432, 55433],
  rest: [58008, 58009],
};

interface State {
  pid: number;
  lbUrl: string;
  adminKey: string;
  databaseUrl: string;
  replicas: string[];
  patroni: string[];
  etcd: string;
  dir: string;
  /** Every process of the topology, for a `down` whose SIGTERM to `pid` was not enough. */
  pids: number[];
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readState(): State | undefined {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

function print(state: State): void {
  process.stdout.write(
    [
      `Tollgate (HTTP front over ${state.replicas.length} replicas): ${state.lbUrl}`,
      `  replicas:            ${state.replicas.join('  ')}`,
      `  admin key:           ${state.adminKey}`,
      `PostgreSQL primary (HAProxy): ${state.databaseUrl}`,
      `  Patroni REST:        ${state.patroni.join('  ')}   (GET /cluster, /primary)`,
      `  etcd:                ${state.etcd}`,
      `State and logs: ${state.dir}   Stop with: npm run ha:down`,
      '',
    ].join('\n'),
  );
}

async function up(): Promise<void> {
  const running = readState();
  if (running && alive(running.pid)) {
    process.stdout.write('already up\n');
    print(running);
    return;
  }
  rmSync(STATE_DIR, { recursive: true, force: true });
  mkdirSync(STATE_DIR, { recursive: true });
  if (!existsSync(BROKER_MAIN)) {
    process.stdout.write('building dist/ first (npm run build)\n');
    await new Promise<void>((done, fail) =>
      spawn('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' }).once('exit', (code) =>
        code === 0 ? done() : fail(new Error(`npm run build: ${code}`)),
      ),
    );
  }
  const log = openSync(SERVE_LOG, 'a');
  const server = spawn(process.execPath, [join(ROOT, 'scripts/ha.mjs'), 'serve'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  server.unref();
  process.stdout.write(`starting etcd, Patroni x2, HAProxy and three Tollgate replicas (log: ${SERVE_LOG})\n`);
  const deadline = Date.now() + 240_000;
  while (Date.now() < deadline) {
    const state = readState();
    if (state) {
      print(state);
      return;
    }
    if (server.exitCode !== null || !alive(server.pid!)) break;
    await sleep(500);
  }
  process.stderr.write(`the topology did not come up:\n${readFileSync(SERVE_LOG, 'utf8').split('\n').slice(-30).join('\n')}\n`);
  process.exitCode = 1;
}

/** The detached owner of the topology: starts it, writes the state file, stops it all on SIGTERM. */
async function serve(): Promise<void> {
  const cluster = await startPatroniCluster({ dir: join(STATE_DIR, 'patroni'), ports: HA_UP_PORTS, scope: 'tollgate-ha' });
  const client = new pg.Client({ connectionString: cluster.databaseUrl() });
  await client.connect();
  await client.query(`CREATE DATABASE ${DATABASE}`);
  await client.end();
  const set = await startReplicaSet({ databaseUrl: cluster.databaseUrl(DATABASE), logLevel: 'info' });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await set.stop().catch(() => {});
    await cluster.stop().catch(() => {});
    rmSync(STATE_FILE, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  const state: State = {
    pid: process.pid,
    lbUrl: set.lbUrl,
    adminKey: set.adminKey,
    databaseUrl: cluster.databaseUrl(DATABASE),
    replicas: set.replicas.map((replica) => replica.url),
    patroni: cluster.nodes.map((node) => `http://127.0.0.1:${node.restPort}`),
    etcd: `http://127.0.0.1:${cluster.ports.etcdClient}`,
    dir: STATE_DIR,
    pids: [
      ...Object.values(cluster.pids()).filter((pid): pid is number => pid !== undefined),
      ...set.replicas.flatMap((replica) => replica.pid() ?? []),
    ],
  };
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2), { mode: 0o600 });
  process.stdout.write(`up: ${JSON.stringify({ ...state, adminKey: '(in state.json)' })}\n`);
  // Stay alive: the replicas and the cluster are this process's children.
  setInterval(() => {}, 60_000);
}

async function down(): Promise<void> {
  const state = readState();
  if (!state || !alive(state.pid)) {
    process.stdout.write('not up\n');
    rmSync(STATE_DIR, { recursive: true, force: true });
    return;
  }
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + 60_000;
  while (alive(state.pid) && Date.now() < deadline) await sleep(200);
  if (alive(state.pid)) {
    for (const pid of [state.pid, ...state.pids]) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(STATE_DIR, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  process.stdout.write('down\n');
}

export async function main(command: string | undefined): Promise<void> {
  if (command === 'up') return up();
  if (command === 'serve') return serve();
  if (command === 'down') return down();
  process.stderr.write('usage: node scripts/ha.mjs up|down\n');
  process.exitCode = 2;
}
