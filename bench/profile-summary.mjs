#!/usr/bin/env node
// Where a broker's CPU went, from the V8 profiles `--cpu-prof` writes (bench/embedded.mjs
// --cpu-prof DIR, bench/introspection.mjs --profile DIR): each sample's time is charged to the
// frame that was running (self time), and frames are grouped by what they belong to, so the
// percentages in docs/performance.md can be made again from a profile rather than read off a
// flame graph by eye.
//
//   node bench/profile-summary.mjs FILE.cpuprofile [--top 25] [--busy] [--stalls MS]
//
// --busy leaves the idle time out of the total (the share of the broker's busy time, as the docs
// quote it). Native frames without a script (writev, the signature, the digest) are named by
// their function; the rest by the package or the Node internal module their script is in.
// --stalls MS lists every stretch of at least MS in which the thread never went idle (what held
// the event loop: a late answer's cause), with the frames that ran most in it.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
if (!file) {
  console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N] [--busy]');
  process.exit(2);
}
const topIndex = args.indexOf('--top');
const TOP = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;
const BUSY = args.includes('--busy');
const stallsIndex = args.indexOf('--stalls');
const STALL_MS = stallsIndex >= 0 ? Number(args[stallsIndex + 1]) : undefined;

const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfMicros = new Map();
for (let i = 0; i < profile.samples.length; i += 1) {
  const id = profile.samples[i];
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}

/** npm packages by the group their frames are charged to; others are named as themselves. */
const PACKAGE_GROUPS = [
  [/^@nestjs\//, 'Nest'],
  [/^(fastify|@fastify\/.*|find-my-way|light-my-request|avvio|fast-json-stringify|fast-querystring)$/, 'Fastify'],
  [/^(pg|pg-protocol|pg-pool|pg-types|postgres-array|postgres-date|postgres-bytea|postgres-interval)$/, 'pg'],
  [/^typeorm$/, 'TypeORM'],
  [/^rxjs$/, 'rxjs (Nest)'],
  [/^zod$/, 'zod'],
  [/^jose$/, 'jose'],
  [/^pino(-.*)?$/, 'pino'],
];

/** A frame's script, short: from its package or from dist/. */
const shortUrl = (url) => url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/');

/** The group a frame's self time is charged to. */
function groupOf(frame) {
  const { functionName: name, url } = frame;
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'garbage collection';
  if (name === '(program)') return 'V8 and native, unattributed';
  if (/^(writev|writeBuffer|writeUtf8String|writeLatin1String)$/.test(name)) return 'socket writes';
  if (/^(sign|signOneShot|verify|verifyOneShot)$/.test(name) || (/Sign|Verify/.test(name) && url === '')) {
    return 'signatures (node:crypto)';
  }
  if (/^(digest|oneShotDigest|update|Hash|Hmac|randomUUID|getRandomValues|randomFillSync)$/.test(name) && url === '') {
    return 'hashes and random (node:crypto)';
  }
  if (url === '') return `native: ${name || '(anonymous)'}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return PACKAGE_GROUPS.find(([pattern]) => pattern.test(pkg[1]))?.[1] ?? `package: ${pkg[1]}`;
  if (url.startsWith('node:internal/crypto')) return 'node:crypto (JS side)';
  if (url.startsWith('node:internal/async_hooks') || url.startsWith('node:async_hooks')) return 'async_hooks';
  if (url.startsWith('node:')) return 'Node internals (HTTP, streams, timers, ...)';
  if (/\/dist\/(apps|libs)\//.test(url)) return 'Tollgate';
  return 'other script';
}

const groups = new Map();
const functions = new Map();
let total = 0;
for (const [id, micros] of selfMicros) {
  const node = byId.get(id);
  const group = groupOf(node.callFrame);
  if (BUSY && group === 'idle') continue;
  total += micros;
  groups.set(group, (groups.get(group) ?? 0) + micros);
  const where = shortUrl(node.callFrame.url);
  const key = `${node.callFrame.functionName || '(anonymous)'} ${where}:${node.callFrame.lineNumber + 1}`;
  functions.set(key, (functions.get(key) ?? 0) + micros);
}

const pct = (micros) => `${((100 * micros) / total).toFixed(1).padStart(5)}%`;
console.log(`${file}: ${(total / 1e6).toFixed(2)} s ${BUSY ? 'busy' : 'sampled'}`);
console.log('\nby group (self time)');
for (const [group, micros] of [...groups].sort((a, b) => b[1] - a[1])) console.log(`${pct(micros)}  ${group}`);
console.log(`\ntop ${TOP} functions (self time)`);
for (const [key, micros] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${pct(micros)}  ${key}`);

if (STALL_MS !== undefined) printStalls(STALL_MS);

/** Stretches without an idle sample, at least `ms` long, with what ran in them. */
function printStalls(ms) {
  const parentOf = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const stretches = [];
  let at = profile.startTime;
  let start;
  let ids = [];
  for (let i = 0; i < profile.samples.length; i += 1) {
    at += profile.timeDeltas[i] ?? 0;
    const idle = byId.get(profile.samples[i]).callFrame.functionName === '(idle)';
    if (!idle) {
      if (start === undefined) start = at;
      ids.push(profile.samples[i]);
    } else if (start !== undefined) {
      if ((at - start) / 1000 >= ms) stretches.push({ start, end: at, ids });
      start = undefined;
      ids = [];
    }
  }
  console.log(`\nstretches of ${ms} ms or more without idle time: ${stretches.length}`);
  for (const { start, end, ids } of stretches) {
    // Every frame on the stack of each sample counts once per sample: the callers that held it show.
    const onStack = new Map();
    for (const id of ids) {
      const seen = new Set();
      for (let n = id; n !== undefined; n = parentOf.get(n)) {
        const frame = byId.get(n).callFrame;
        if (!frame.url && !/^\(/.test(frame.functionName)) continue;
        const key = `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}`;
        if (seen.has(key)) continue;
        seen.add(key);
        onStack.set(key, (onStack.get(key) ?? 0) + 1);
      }
    }
    const leaves = new Map();
    for (const id of ids) leaves.set(groupOf(byId.get(id).callFrame), (leaves.get(groupOf(byId.get(id).callFrame)) ?? 0) + 1);
    const share = (n) => `${Math.round((100 * n) / ids.length)}%`;
    console.log(
      `at +${((start - profile.startTime) / 1e6).toFixed(3)} s: ${((end - start) / 1000).toFixed(1)} ms; self: ${[...leaves]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 4)
        .map(([g, n]) => `${g} ${share(n)}`)
        .join(', ')}`,
    );
    const frames = [...onStack]
      .filter(([key]) => key.includes('dist/'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6);
    for (const [key, n] of frames) console.log(`    ${share(n)} on the stack: ${key}`);
  }
}
