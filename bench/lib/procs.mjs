// Child processes and cleanup: every process the bench starts is registered here and ended on the
// way out (normal end, error, SIGINT/SIGTERM), and every cleanup step (drop the database, remove
// temp folders) runs once.
import { fork, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';

const children = new Set();
const cleanups = [];
let cleaning;

/** Registers a cleanup step; they run last-registered first. */
export function onCleanup(step) {
  cleanups.push(step);
}

/** Ends every child (SIGTERM, then SIGKILL after a grace period) and runs the cleanup steps once. */
export function cleanup() {
  cleaning ??= (async () => {
    await Promise.all([...children].map((child) => stop(child)));
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch (error) {
        process.stderr.write(`bench: cleanup step failed: ${error?.message ?? error}\n`);
      }
    }
  })();
  return cleaning;
}

export function installSignalHandlers() {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping children and dropping the database\n`);
      const force = setTimeout(() => process.exit(130), 20_000);
      force.unref();
      cleanup().finally(() => process.exit(130));
    });
  }
}

/** A started child with the tail of its output kept for error messages. */
export class Child {
  constructor(name, proc) {
    this.name = name;
    this.proc = proc;
    this.pid = proc.pid;
    this.tail = [];
    this.exited = false;
    this.exitCode = undefined;
    this.exitPromise = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code ?? signal;
        children.delete(this);
        resolve();
      }),
    );
    const keep = (chunk) => {
      for (const line of String(chunk).split('\n')) {
        if (!line.trim()) continue;
        this.tail.push(line);
        if (this.tail.length > 40) this.tail.shift();
      }
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    children.add(this);
  }

  describe() {
    return `${this.name} (pid ${this.pid}${this.exited ? `, exited ${this.exitCode}` : ''})\n  ${this.tail.slice(-15).join('\n  ')}`;
  }

  /**
   * Resident set size in MiB: VmRSS from /proc/<pid>/status, summed over the process and its
   * descendants (a broker that forks workers is measured whole; a single process is just itself).
   */
  rssMb() {
    let kb = 0;
    for (const pid of [this.pid, ...descendants(this.pid)]) {
      try {
        kb += Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      } catch {
        // exited meanwhile
      }
    }
    return Math.round((kb / 1024) * 10) / 10;
  }

  /** CPU seconds (user + system) used so far by this process and its descendants (the Cedar children). */
  cpuSeconds() {
    return cpuSecondsOf([this.pid, ...descendants(this.pid)]);
  }

  /** How many processes rssMb() adds up. */
  processCount() {
    return 1 + descendants(this.pid).length;
  }
}

/** utime + stime of these processes, in seconds (/proc/<pid>/stat fields 14 and 15, in clock ticks of 1/100 s). */
export function cpuSecondsOf(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited meanwhile
    }
  }
  return ticks / 100;
}

/** Every PostgreSQL server process on this machine (the bench's database is the only busy one). */
export function postgresPids() {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Every descendant of `root`, from the parent pid in /proc/<pid>/stat. */
function descendants(root) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name (2nd field) may hold spaces and parentheses: the ppid follows the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  const out = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** `node [...nodeArgs] script [...args]` (nodeArgs: Node's own flags, such as --cpu-prof). */
export function startNode(name, script, args = [], env = process.env, nodeArgs = []) {
  const proc = spawn(process.execPath, [...nodeArgs, script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Child(name, proc);
}

export function forkNode(name, script, env = process.env) {
  const proc = fork(script, [], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  return new Child(name, proc);
}

export async function stop(child, graceMs = 5000) {
  if (child.exited) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
  await child.exitPromise;
  clearTimeout(timer);
}

/** A free TCP port on loopback (released just before the child binds it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Waits until `url` answers 2xx, failing early if the child exits. */
export async function waitHttp(child, url, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exited) throw new Error(`${child.name} exited before it was ready:\n${child.describe()}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${child.name} did not answer ${url} within ${timeoutMs} ms:\n${child.describe()}`);
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with a clear message when `promise` takes longer than `ms`. */
export function within(ms, what, promise) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${Math.round(ms / 1000)} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
