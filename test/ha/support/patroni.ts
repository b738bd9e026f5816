// A highly available PostgreSQL built the standard way from Debian's packages, on loopback ports:
// etcd (the DCS), two PostgreSQL 15 nodes each run by its own Patroni, and an HAProxy that sends
// connections to whichever node Patroni's REST API calls the primary. Fault 1 of issue 16 kills the
// primary node under load; `npm run ha:up` starts the same topology for a person.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../../support/broker.js';

export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/**
 * The Patroni settings fault 1 depends on (docs/operations.md, "High availability with Patroni",
 * explains each). They live in the DCS (`bootstrap.dcs`), shared by both nodes.
 */
export const PATRONI_DCS = {
  // A leader that stops renewing its key loses it after `ttl` s; Patroni's loop runs every
  // `loop_wait` s; etcd and PostgreSQL calls are retried for `retry_timeout` s. Patroni requires
  // loop_wait + 2 * retry_timeout <= ttl. These give a failover of about 10 s.
  ttl: 10,
  loop_wait: 1,
  retry_timeout: 4,
  // A replica more than this many bytes behind the last known primary position is never promoted
  // (in asynchronous mode; in synchronous mode only the synchronous standby is a candidate).
  maximum_lag_on_failover: 1_048_576,
  synchronous_mode: true,
  // Not strict: with two nodes, strict mode would stop every write on the new primary until the
  // dead node is back (no standby can acknowledge), so the failover would restore nothing.
  synchronous_mode_strict: false,
} as const;

export interface PatroniPorts {
  etcdClient: number;
  etcdPeer: number;
  /** HAProxy's PostgreSQL front: connections go to the current primary. */
  primary: number;
  /** PostgreSQL and Patroni REST of each node. */
  postgres: [number, number];
  rest: [number, number];
}

export interface PatroniClusterOptions {
  /** Where data, configuration and logs live (created; default a fresh temp folder, removed by stop()). */
  dir?: string;
  /** Fixed ports (ha:up); default free loopback ports. */
  ports?: PatroniPorts;
  /** Synchronous replication (default true). */
  synchronous?: boolean;
  /** The Patroni scope: the cluster's name in etcd. */
  scope?: string;
  /**
   * Leave the processes running when this process exits (ha:up); default false: they are
   * SIGKILLed on exit, so a crashed test leaves nothing behind.
   */
  detached?: boolean;
}

export interface Member {
  name: string;
  role: 'leader' | 'sync_standby' | 'replica' | string;
  state: 'running' | 'streaming' | 'stopped' | 'starting' | string;
  timeline?: number;
  lag?: number | string;
}

/** What kill() ended: the processes of one node, all at once. */
export interface KilledNode {
  patroni: number;
  postmaster: number | undefined;
  /** The postmaster's children: backends, walsender, checkpointer, ... */
  children: number;
}

export interface PatroniNode {
  readonly name: string;
  readonly index: number;
  readonly pgPort: number;
  readonly restPort: number;
  /** A direct connection to this node (bypassing HAProxy). */
  readonly url: string;
  /** The running Patroni's pid, or undefined while the node is down. */
  pid(): number | undefined;
  /**
   * The node dies: SIGKILL to its Patroni, its postmaster and every child of the postmaster, in
   * that order and at once, as when the machine goes away. Killing only postgres would not do:
   * Patroni would restart it in place within a loop, still holding the leader key, and no
   * failover would happen.
   */
  kill(): Promise<KilledNode>;
  /** Starts this node's Patroni again; it rejoins (pg_rewind when it was the primary). */
  start(): Promise<void>;
  /** The node's own view (GET /patroni), or undefined when its REST API does not answer. */
  status(): Promise<Record<string, unknown> | undefined>;
  /** The last lines of its log (Patroni's and PostgreSQL's). */
  log(lines?: number): string;
}

export interface PatroniCluster {
  readonly dir: string;
  readonly ports: PatroniPorts;
  readonly scope: string;
  /** postgres://postgres@127.0.0.1:<HAProxy port>/<database>: always the current primary. */
  databaseUrl(database?: string): string;
  readonly nodes: readonly [PatroniNode, PatroniNode];
  /** The cluster as Patroni reports it (GET /cluster on any node that answers). */
  members(): Promise<Member[]>;
  /** The node holding the leader key and running, or undefined. */
  primary(): Promise<PatroniNode | undefined>;
  /**
   * Waits until there is a running primary reachable through HAProxy for writes and the other
   * node replicates from it with no lag (in synchronous mode: as the synchronous standby).
   */
  waitHealthy(timeoutMs?: number): Promise<PatroniNode>;
  /** Waits until a running primary takes writes through HAProxy (a standby or not). */
  waitWritable(timeoutMs?: number): Promise<PatroniNode>;
  /**
   * Switches synchronous replication on or off (PATCH /config) and waits until it holds;
   * `maximumLagOnFailover` (bytes) sets how far behind a standby may be and still be promoted.
   */
  setSynchronous(on: boolean, options?: { timeoutMs?: number; maximumLagOnFailover?: number }): Promise<void>;
  /** Pids of every process the topology runs, by name (for ha:down and failure messages). */
  pids(): Record<string, number | undefined>;
  log(name: 'etcd' | 'haproxy'): string;
  /** Stops everything (SIGKILL) and removes the folder unless it was given. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The binaries, installed from Debian when missing (as .ci/run installs PostgreSQL). */
export function ensureHaPackages(): { patroni: string; etcd: string; haproxy: string } {
  const find = () => ({
    patroni: ['/usr/bin/patroni'].find((path) => existsSync(path)),
    etcd: ['/usr/bin/etcd'].find((path) => existsSync(path)),
    haproxy: ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((path) => existsSync(path)),
  });
  let found = find();
  if (!found.patroni || !found.etcd || !found.haproxy || !existsSync(join(PG_BIN, 'postgres'))) {
    const asRoot = process.getuid?.() === 0;
    const sudo = asRoot ? [] : ['sudo'];
    const run = (args: string[]) => {
      const result = spawnSync(sudo[0] ?? args[0]!, sudo.length > 0 ? args : args.slice(1), {
        stdio: 'inherit',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      if (result.status !== 0) throw new Error(`${args.join(' ')} failed (${result.status ?? result.signal})`);
    };
    run(['apt-get', 'update']);
    // python3-etcd: Patroni's etcd3 support imports it; Debian's patroni only suggests it.
    run(['apt-get', 'install', '-y', 'patroni', 'etcd-server', 'haproxy', 'python3-etcd', 'postgresql-15']);
    found = find();
  }
  if (!found.patroni || !found.etcd || !found.haproxy) throw new Error('patroni, etcd or haproxy still missing after apt-get install');
  return { patroni: found.patroni, etcd: found.etcd, haproxy: found.haproxy };
}

/** PostgreSQL refuses to run as root: as root, Patroni (which starts it) runs as the postgres OS user. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function tail(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killQuietly(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function childrenOf(pid: number): number[] {
  const result = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return result.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(Number);
}

async function json(url: string, init?: RequestInit): Promise<unknown> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(2_000) });
  if (!response.ok && response.status !== 503) throw new Error(`${init?.method ?? 'GET'} ${url}: ${response.status}`);
  return response.json();
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  detail: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${detail()}`);
    await sleep(100);
  }
}

export async function defaultPorts(): Promise<PatroniPorts> {
  const taken = new Set<number>();
  const next = async () => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  };
  return {
    etcdClient: await next(),
    etcdPeer: await next(),
    primary: await next(),
    postgres: [await next(), await next()],
    rest: [await next(), await next()],
  };
}

function patroniYaml(options: {
  scope: string;
  name: string;
  dir: string;
  ports: PatroniPorts;
  index: number;
  synchronous: boolean;
}): string {
  const { scope, name, dir, ports, index } = options;
  const dcs = { ...PATRONI_DCS, synchronous_mode: options.synchronous };
  // JSON is YAML: no YAML writer needed, and no quoting surprises.
  return JSON.stringify(
    {
      scope,
      namespace: '/tollgate/',
      name,
      log: { level: 'INFO' },
      restapi: { listen: `127.0.0.1:${ports.rest[index]}`, connect_address: `127.0.0.1:${ports.rest[index]}` },
      etcd3: { hosts: `127.0.0.1:${ports.etcdClient}` },
      bootstrap: {
        dcs: {
          ...dcs,
          postgresql: {
            // A primary that died is rewound to the new timeline and rejoins as a replica, instead
            // of needing a new base backup. pg_rewind needs hint bits WAL-logged: wal_log_hints (the
            // data checksums chosen at initdb would do too).
            use_pg_rewind: true,
            use_slots: true,
            parameters: {
              wal_log_hints: 'on',
              max_connections: 100,
              max_wal_senders: 5,
              max_replication_slots: 5,
              // The default: a commit waits until the synchronous standby has flushed its WAL.
              synchronous_commit: 'on',
            },
          },
        },
        initdb: [{ encoding: 'UTF8' }, 'data-checksums', { auth: 'trust' }],
      },
      postgresql: {
        listen: `127.0.0.1:${ports.postgres[index]}`,
        connect_address: `127.0.0.1:${ports.postgres[index]}`,
        data_dir: join(dir, name, 'data'),
        bin_dir: PG_BIN,
        pgpass: join(dir, name, 'pgpass'),
        // Loopback only, trust: a test topology. A real one uses passwords or certificates here.
        authentication: {
          superuser: { username: 'postgres' },
          replication: { username: 'postgres' },
          rewind: { username: 'postgres' },
        },
        parameters: { unix_socket_directories: join(dir, name) },
        pg_hba: ['local all all trust', 'host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust'],
      },
    },
    null,
    2,
  );
}

function haproxyConfig(ports: PatroniPorts): string {
  return [
    'global',
    '  maxconn 1000',
    'defaults',
    '  mode tcp',
    '  timeout connect 1s',
    // Database sessions stay open for as long as the pool keeps them.
    '  timeout client 30m',
    '  timeout server 30m',
    '  timeout check 1s',
    'listen postgres_primary',
    `  bind 127.0.0.1:${ports.primary}`,
    // Patroni answers 200 on /primary only on the node that holds the leader key and runs as primary.
    '  option httpchk GET /primary',
    '  http-check expect status 200',
    // A node that stops being primary loses its sessions at once (they would write to a replica or
    // hang on a dead one); checks every 500 ms, down after 2 failures, up after 1 success.
    '  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions',
    `  server pg0 127.0.0.1:${ports.postgres[0]} check port ${ports.rest[0]}`,
    `  server pg1 127.0.0.1:${ports.postgres[1]} check port ${ports.rest[1]}`,
    '',
  ].join('\n');
}

/** Starts etcd, two Patroni nodes and HAProxy; resolves once a primary and its standby are healthy. */
export async function startPatroniCluster(options: PatroniClusterOptions = {}): Promise<PatroniCluster> {
  const binaries = ensureHaPackages();
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tollgate-patroni-'));
  mkdirSync(dir, { recursive: true });
  const ports = options.ports ?? (await defaultPorts());
  const scope = options.scope ?? `tollgate-${ports.primary}`;
  const synchronous = options.synchronous ?? true;
  let synchronousNow = synchronous;
  const user = postgresUser();
  chmodSync(dir, 0o755);
  const processes = new Map<string, ChildProcess>();

  const launch = (name: string, command: string, args: string[], asPostgres = false): ChildProcess => {
    const logPath = join(dir, `${name}.log`);
    const fd = openSync(logPath, 'a');
    if (asPostgres && user) chownSync(logPath, user.uid, user.gid);
    const child = spawn(command, args, {
      cwd: dir,
      // Its own process group: a Ctrl-C meant for this process does not reach the cluster.
      detached: true,
      stdio: ['ignore', fd, fd],
      env: asPostgres ? { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8' } : process.env,
      ...(asPostgres && user ? { uid: user.uid, gid: user.gid } : {}),
    });
    closeSync(fd);
    child.on('error', () => {}); // a spawn failure shows as the process not answering
    if (options.detached) child.unref();
    processes.set(name, child);
    return child;
  };

  const killAll = () => {
    for (const node of ['pg0', 'pg1']) killNode(node);
    killQuietly(processes.get('haproxy')?.pid, 'SIGKILL');
    killQuietly(processes.get('etcd')?.pid, 'SIGKILL');
  };
  const onExit = () => killAll();
  if (!options.detached) process.on('exit', onExit);

  /**
   * SIGKILL to a node's Patroni with its process group (a pg_rewind or a single-user postgres it
   * runs), its postmaster and each of the postmaster's children: they are not in the postmaster's
   * group (every PostgreSQL child calls setsid), so each gets its own signal. Pids are read first,
   * then killed back to back: no process gets to react to another's death.
   */
  const killNode = (node: string): KilledNode | undefined => {
    const patroni = processes.get(node)?.pid;
    const postmaster = postmasterPid(node);
    const running = postmaster !== undefined && alive(postmaster) ? postmaster : undefined;
    const children = running !== undefined ? childrenOf(running) : [];
    if (patroni !== undefined) killQuietly(-patroni, 'SIGKILL');
    killQuietly(running, 'SIGKILL');
    for (const child of children) killQuietly(child, 'SIGKILL');
    return patroni === undefined ? undefined : { patroni, postmaster: running, children: children.length };
  };

  const postmasterPid = (node: string): number | undefined => {
    try {
      const pid = Number(readFileSync(join(dir, node, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };

  // etcd 3.4 speaks the v3 API (Patroni's `etcd3:` section); v2 would need --enable-v2.
  launch('etcd', binaries.etcd, [
    '--name',
    'etcd0',
    '--data-dir',
    join(dir, 'etcd'),
    '--listen-client-urls',
    `http://127.0.0.1:${ports.etcdClient}`,
    '--advertise-client-urls',
    `http://127.0.0.1:${ports.etcdClient}`,
    '--listen-peer-urls',
    `http://127.0.0.1:${ports.etcdPeer}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${ports.etcdPeer}`,
    '--initial-cluster',
    `etcd0=http://127.0.0.1:${ports.etcdPeer}`,
    '--log-level',
    'warn',
  ]);
  await until(
    'etcd answers',
    async () => (await fetch(`http://127.0.0.1:${ports.etcdClient}/version`)).ok || undefined,
    15_000,
    () => tail(join(dir, 'etcd.log'), 20),
  );

  const nodes = [0, 1].map((index): PatroniNode => {
    const name = `pg${index}`;
    const nodeDir = join(dir, name);
    const config = join(nodeDir, 'patroni.yml');
    if (!existsSync(config)) {
      mkdirSync(nodeDir, { recursive: true });
      writeFileSync(config, patroniYaml({ scope, name, dir, ports, index, synchronous }));
      if (user) chownSync(nodeDir, user.uid, user.gid);
      if (user) chownSync(config, user.uid, user.gid);
    }
    const rest = `http://127.0.0.1:${ports.rest[index]}`;
    return {
      name,
      index,
      pgPort: ports.postgres[index],
      restPort: ports.rest[index],
      url: `postgres://postgres@127.0.0.1:${ports.postgres[index]}/postgres`,
      pid: () => {
        const pid = processes.get(name)?.pid;
        return alive(pid) ? pid : undefined;
      },
      kill: async () => {
        if (!alive(processes.get(name)?.pid)) throw new Error(`${name} is not running`);
        const killed = killNode(name)!;
        await until(`${name} dead`, async () => (!alive(killed.patroni) && !alive(killed.postmaster) ? true : undefined), 5_000);
        return killed;
      },
      start: async () => {
        if (alive(processes.get(name)?.pid)) return;
        launch(name, binaries.patroni, [config], true);
        await until(
          `${name} REST answers`,
          async () => ((await fetch(`${rest}/liveness`)).ok ? true : undefined),
          30_000,
          () => tail(join(dir, `${name}.log`), 30),
        );
      },
      status: async () => {
        try {
          return (await json(`${rest}/patroni`)) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      },
      log: (lines = 40) => tail(join(dir, `${name}.log`), lines),
    };
  }) as [PatroniNode, PatroniNode];

  const databaseUrl = (database = 'postgres') => `postgres://postgres@127.0.0.1:${ports.primary}/${database}`;

  const members = async (): Promise<Member[]> => {
    for (const node of nodes) {
      try {
        const body = (await json(`http://127.0.0.1:${node.restPort}/cluster`)) as { members?: Member[] };
        if (body.members) return body.members;
      } catch {
        // try the other node
      }
    }
    return [];
  };

  const primary = async () => {
    const leader = (await members()).find((member) => member.role === 'leader' && member.state === 'running');
    return leader ? nodes.find((node) => node.name === leader.name) : undefined;
  };

  const describe = () =>
    [
      `etcd:\n${tail(join(dir, 'etcd.log'), 10)}`,
      ...nodes.map((node) => `${node.name}:\n${node.log(25)}`),
      `haproxy:\n${tail(join(dir, 'haproxy.log'), 10)}`,
    ].join('\n');

  /**
   * Whether the primary behind HAProxy takes writes and, when `streamingTo` is given, streams WAL
   * to that standby now (its WAL sender, by the member name Patroni gives as application_name).
   */
  const writable = async (streamingTo?: string): Promise<boolean> => {
    const client = new pg.Client({ connectionString: databaseUrl(), connectionTimeoutMillis: 1_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      const { rows } = await client.query<{ recovery: boolean; streaming: boolean }>(
        `SELECT pg_is_in_recovery() AS recovery,
                EXISTS (SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming') AS streaming`,
        [streamingTo ?? ''],
      );
      return rows[0]?.recovery === false && (streamingTo === undefined || rows[0].streaming);
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  };

  const cluster: PatroniCluster = {
    dir,
    ports,
    scope,
    databaseUrl,
    nodes,
    members,
    primary,
    waitHealthy: async (timeoutMs = 60_000) => {
      const standbyRole = synchronousNow ? 'sync_standby' : 'replica';
      const leader = await until(
        `a primary with a ${standbyRole} at lag 0`,
        async () => {
          const list = await members();
          const lead = list.find((member) => member.role === 'leader' && member.state === 'running');
          const standby = list.find(
            (member) => member.role === standbyRole && (member.state === 'running' || member.state === 'streaming'),
          );
          if (!lead || !standby || Number(standby.lag ?? 1) !== 0) return undefined;
          // Patroni's lag is 0 for an old primary that rejoined ahead of the new one's WAL, on a
          // timeline of its own, before it streams (or when it never can, without pg_rewind): a
          // failover then finds no standby to promote (seen in CI). Only a streaming one counts.
          return (await writable(standby.name)) ? lead : undefined;
        },
        timeoutMs,
        describe,
      );
      return nodes.find((node) => node.name === leader.name)!;
    },
    waitWritable: async (timeoutMs = 60_000) => {
      const leader = await until(
        'a writable primary behind HAProxy',
        async () => {
          const lead = await primary();
          return lead && (await writable()) ? lead : undefined;
        },
        timeoutMs,
        describe,
      );
      return leader;
    },
    setSynchronous: async (on, { timeoutMs = 30_000, maximumLagOnFailover } = {}) => {
      const leader = await primary();
      if (!leader) throw new Error('no primary to configure');
      await json(`http://127.0.0.1:${leader.restPort}/config`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          synchronous_mode: on,
          ...(maximumLagOnFailover === undefined ? {} : { maximum_lag_on_failover: maximumLagOnFailover }),
        }),
      });
      synchronousNow = on;
      // The primary's synchronous_standby_names says whether a commit waits for the standby.
      await until(
        `synchronous replication ${on ? 'on' : 'off'}`,
        async () => {
          const client = new pg.Client({ connectionString: databaseUrl(), connectionTimeoutMillis: 1_000 });
          client.on('error', () => {});
          try {
            await client.connect();
            const { rows } = await client.query<{ names: string }>('SELECT current_setting($1) AS names', ['synchronous_standby_names']);
            return (rows[0]?.names !== '') === on || undefined;
          } finally {
            await client.end().catch(() => {});
          }
        },
        timeoutMs,
        describe,
      );
      await cluster.waitHealthy(timeoutMs);
    },
    pids: () => ({
      etcd: processes.get('etcd')?.pid,
      haproxy: processes.get('haproxy')?.pid,
      pg0: nodes[0].pid(),
      pg1: nodes[1].pid(),
      postmaster0: postmasterPid('pg0'),
      postmaster1: postmasterPid('pg1'),
    }),
    log: (name) => tail(join(dir, `${name}.log`), 40),
    stop: async () => {
      killAll();
      process.off('exit', onExit);
      const gone = [...processes.values()].map((child) =>
        child.exitCode !== null || child.signalCode !== null
          ? Promise.resolve()
          : new Promise<void>((resolve) => child.once('exit', () => resolve())),
      );
      await Promise.race([Promise.all(gone), sleep(5_000)]);
      // SIGKILLed PostgreSQL processes take a moment to be gone; until then a folder may not empty.
      if (ownDir) rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };

  try {
    // The first node bootstraps (initdb) and takes the leader key; the second then clones it.
    await nodes[0].start();
    await until('pg0 bootstrapped as primary', async () => ((await primary())?.name === 'pg0' ? true : undefined), 60_000, describe);
    await nodes[1].start();
    writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(ports));
    // -db: stay in the foreground, so the pid this process holds is HAProxy's own.
    launch('haproxy', binaries.haproxy, ['-db', '-f', join(dir, 'haproxy.cfg')]);
    await cluster.waitHealthy(90_000);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
