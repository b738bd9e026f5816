// The load generator: a separate process (forked by bench/lib/load.mjs) that drives HTTP load over
// loopback with autocannon's programmatic API. It receives one job at a time over IPC and answers
// with a summary; it never touches the database and never sees the broker's internals.
//
// A job is a weighted mix of request kinds. Every request carries the status it must get
// (201 for a permit, 403 for a denial, 200 for introspection...); any other answer is counted as
// unexpected and a few samples (status and body) are kept for the report.
//
// Bots hold their Ed25519 workload key here, as a real bot would: the assertion is signed once and
// reused, and re-signed before it expires (assertions may live at most 300 s).
import { importJWK, SignJWT } from 'jose';
import autocannon from 'autocannon';
import http from 'node:http';

const ASSERTION_LIFETIME_S = 240;
const ASSERTION_REFRESH_MS = 60_000;
const MAX_SAMPLES = 5;

let current; // { instance, stopRequested }

process.on('message', (message) => {
  if (message?.type === 'run') {
    run(message.job).then(
      (result) => process.send({ type: 'result', id: message.id, result }),
      (error) => process.send({ type: 'error', id: message.id, message: error?.stack ?? String(error) }),
    );
  } else if (message?.type === 'stop') {
    if (current) {
      current.stopRequested = true;
      current.instance?.stop();
    }
  } else if (message?.type === 'exit') {
    process.exit(0);
  }
});
// The orchestrator going away (crash, SIGKILL) closes the IPC channel: never outlive it.
process.on('disconnect', () => process.exit(0));

async function run(job) {
  const assertions = new Map();
  const keys = new Map();
  for (const bot of job.bots ?? []) keys.set(bot.id, { kid: bot.kid, key: await importJWK(bot.privateJwk, 'EdDSA') });
  const sign = async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const [id, { kid, key }] of keys) {
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
        .setIssuer(id)
        .setSubject(id)
        .setAudience(job.audience)
        .setIssuedAt(now)
        .setExpirationTime(now + ASSERTION_LIFETIME_S)
        .setJti(crypto.randomUUID())
        .sign(key);
      assertions.set(id, token);
    }
  };
  await sign();
  const refresh = setInterval(() => sign().catch(() => {}), ASSERTION_REFRESH_MS);

  const kinds = job.mix.map((spec) => makeKind(spec, assertions));
  const schedule = weightedSchedule(job.mix.map((spec) => spec.weight ?? 1));
  let seq = 0;
  const byKind = job.mix.map((spec) => ({ name: spec.name ?? spec.kind, sent: 0, expected: 0, unexpected: 0, unexpected_non2xx: 0 }));
  const samples = [];
  /** The next request of the mix: its kind's index `k` and what to send. */
  const nextRequest = () => {
    const k = schedule[seq++ % schedule.length];
    byKind[k].sent++;
    return { k, ...kinds[k]() };
  };
  /** Counts an answer against the status its request expected; keeps a few unexpected ones. */
  const answered = (k, expect, status, body) => {
    const stats = byKind[k];
    if (!stats) return;
    if (status === expect) stats.expected++;
    else {
      stats.unexpected++;
      if (status < 200 || status >= 300) stats.unexpected_non2xx++;
      if (samples.length < MAX_SAMPLES) samples.push({ kind: stats.name, expected: expect, status, body: String(body).slice(0, 500) });
    }
  };

  const url = new URL(job.url);
  const options = {
    url: url.origin,
    connections: job.connections ?? 50,
    pipelining: 1,
    duration: job.duration,
    timeout: job.timeoutS ?? 10,
    requests: [
      {
        setupRequest(request, context) {
          const next = nextRequest();
          context.k = next.k;
          context.expect = next.expect;
          return { ...request, method: next.method, path: next.path, headers: next.headers, body: next.body };
        },
        onResponse(status, body, context) {
          answered(context.k, context.expect, status, body);
        },
      },
    ],
  };

  current = { instance: undefined, stopRequested: false };
  if (job.rate) {
    try {
      return await paced(job, nextRequest, (request, status, body) => answered(request.k, request.expect, status, body)).then((result) => ({
        ...result,
        unexpected: byKind.reduce((n, k) => n + k.unexpected, 0),
        unexpected_non2xx: byKind.reduce((n, k) => n + k.unexpected_non2xx, 0),
        by_kind: byKind,
        samples,
      }));
    } finally {
      clearInterval(refresh);
      current = undefined;
    }
  }
  try {
    const result = await new Promise((resolve, reject) => {
      const instance = autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
      current.instance = instance;
      if (current.stopRequested) instance.stop();
    });
    const unexpected = byKind.reduce((n, k) => n + k.unexpected, 0);
    const unexpectedNon2xx = byKind.reduce((n, k) => n + k.unexpected_non2xx, 0);
    return {
      rps: result.duration > 0 ? Math.round((result.requests.total ?? 0) / result.duration) : 0,
      rps_avg: result.requests.average,
      p50_ms: result.latency.p50,
      p90_ms: result.latency.p90,
      p99_ms: result.latency.p99,
      max_ms: result.latency.max,
      mean_ms: result.latency.mean,
      non2xx: result.non2xx,
      requests: result.requests.total,
      duration_s: result.duration,
      errors: result.errors,
      timeouts: result.timeouts,
      status_codes: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => [code, count])),
      unexpected,
      unexpected_non2xx: unexpectedNon2xx,
      by_kind: byKind,
      samples,
    };
  } finally {
    clearInterval(refresh);
    current = undefined;
  }
}

/**
 * Open-loop load at `job.rate` requests per second, evenly spaced (autocannon's own rate limit sends
 * each connection's share in a burst at the start of every second, which queues them): a request is
 * sent at its scheduled time on a free keep-alive connection of `job.connections` (or waits for
 * one), and its latency runs from its scheduled time, so time spent waiting for a connection counts
 * (no coordinated omission). `next()` gives the next request, `answered` is told each answer.
 */
async function paced(job, next, answered) {
  const url = new URL(job.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections ?? 50 });
  const interval = 1000 / job.rate;
  const timeoutMs = (job.timeoutS ?? 10) * 1000;
  const latencies = [];
  // With job.timeline: [scheduled ms since start, latency ms] of every answer, to see when the slow
  // ones happen (a periodic pass shows as a stripe).
  const timeline = job.timeline ? [] : undefined;
  const statusCodes = {};
  let errors = 0;
  let timeouts = 0;
  let non2xx = 0;
  let sent = 0;
  const inflight = new Set();
  const start = performance.now();
  const end = start + job.duration * 1000;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      while (start + sent * interval <= Math.min(now, end) && !current?.stopRequested) {
        const scheduled = start + sent * interval;
        sent++;
        const request = next();
        const done = send(agent, url, request, timeoutMs).then(
          ({ status, body }) => {
            const latency = performance.now() - scheduled;
            latencies.push(latency);
            timeline?.push([Math.round(scheduled - start), Math.round(latency * 10) / 10]);
            statusCodes[status] = (statusCodes[status] ?? 0) + 1;
            if (status < 200 || status >= 300) non2xx++;
            answered(request, status, body);
          },
          (error) => {
            if (error?.timeout) timeouts++;
            else errors++;
          },
        );
        inflight.add(done);
        done.finally(() => inflight.delete(done));
      }
      if (now >= end || current?.stopRequested) {
        clearInterval(timer);
        Promise.allSettled([...inflight]).then(resolve);
      }
    }, 1);
  });
  agent.destroy();
  const duration = Math.max(0.001, (performance.now() - start) / 1000);
  latencies.sort((a, b) => a - b);
  const at = (q) =>
    latencies.length === 0 ? null : Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]);
  return {
    rps: Math.round(latencies.length / job.duration),
    rps_avg: latencies.length / duration,
    p50_ms: at(0.5),
    p90_ms: at(0.9),
    p99_ms: at(0.99),
    max_ms: latencies.length === 0 ? null : Math.round(latencies.at(-1)),
    mean_ms: latencies.length === 0 ? null : latencies.reduce((a, b) => a + b, 0) / latencies.length,
    non2xx,
    requests: latencies.length,
    duration_s: job.duration,
    errors,
    timeouts,
    status_codes: statusCodes,
    ...(timeline ? { timeline, started_at: performance.timeOrigin + start } : {}),
  };
}

/** One request over the agent: {status, body}; rejects on a connection error or after timeoutMs ({timeout: true}). */
function send(agent, url, request, timeoutMs) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        hostname: url.hostname,
        port: url.port,
        method: request.method,
        path: request.path,
        headers: request.headers,
        timeout: timeoutMs,
      },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { timeout: true })));
    req.on('error', reject);
    req.end(request.body);
  });
}

/** Turns a kind's spec into a function returning the next request of that kind, round robin. */
function makeKind(spec, assertions) {
  switch (spec.kind) {
    case 'credential': {
      // POST /v1/tasks/{id}/credentials, spread over many tasks; the resource varies per call.
      let i = 0;
      const bodies = [];
      const resources = spec.resources ?? 1000;
      for (let r = 0; r < resources; r++) {
        bodies.push(
          JSON.stringify({ boundary: spec.boundary, action: spec.action, resource: `${spec.resourcePrefix ?? 'order/'}${r + 1}` }),
        );
      }
      return () => {
        const task = spec.tasks[i % spec.tasks.length];
        const body = bodies[i % bodies.length];
        i++;
        return {
          method: 'POST',
          path: `/v1/tasks/${task.taskId}/credentials`,
          headers: { authorization: `Bearer ${assertions.get(task.bot)}`, 'content-type': 'application/json' },
          body,
          expect: spec.expect,
        };
      };
    }
    case 'exchange': {
      // RFC 8693 token exchange: the same tool call through the standards door.
      let i = 0;
      return () => {
        const task = spec.tasks[i % spec.tasks.length];
        i++;
        const details = [
          { type: 'tool_call', task_id: task.taskId, boundary: spec.boundary, action: spec.action, resource: `order/${(i % 1000) + 1}` },
        ];
        const body = new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: assertions.get(task.bot),
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
          audience: spec.audience,
          scope: spec.action,
          authorization_details: JSON.stringify(details),
        }).toString();
        return {
          method: 'POST',
          path: '/oauth2/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body,
          expect: spec.expect,
        };
      };
    }
    case 'introspect': {
      let i = 0;
      const bodies = spec.tokens.map((token) => `token=${encodeURIComponent(token)}`);
      const headers = { authorization: `Bearer ${spec.adminKey}`, 'content-type': 'application/x-www-form-urlencoded' };
      return () => ({ method: 'POST', path: '/oauth2/introspect', headers, body: bodies[i++ % bodies.length], expect: spec.expect ?? 200 });
    }
    case 'static':
      return () => ({ method: spec.method, path: spec.path, headers: spec.headers ?? {}, body: spec.body, expect: spec.expect });
    default:
      throw new Error(`unknown request kind ${spec.kind}`);
  }
}

/** Weights [7, 1, 2] become an interleaved schedule of ten kind indices. */
function weightedSchedule(weights) {
  const total = weights.reduce((a, b) => a + b, 0);
  const schedule = [];
  const credit = weights.map(() => 0);
  for (let n = 0; n < total; n++) {
    for (let k = 0; k < weights.length; k++) credit[k] += weights[k];
    let best = 0;
    for (let k = 1; k < weights.length; k++) if (credit[k] > credit[best]) best = k;
    credit[best] -= total;
    schedule.push(best);
  }
  return schedule;
}
