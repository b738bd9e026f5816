import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { trace as otel } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TollgateClient } from '../libs/sdk/index.js';
import { tracingOn } from '../libs/tracing/tracing.js';
import { TRACE_FLUSH_MS } from '../apps/broker/tracing.js';
import { EXPORT_WARNING_INTERVAL_MS } from '../apps/broker/trace-export.js';
import { freePort, startBroker, type TestBroker } from './support/broker.js';
import { freshDatabase, type TestDatabase } from './support/database.js';
import { call, type Response } from './support/http.js';
import { putBoundary, registerBot, type Bot } from './support/scenario.js';
import { captureOutput } from './support/output.js';

/**
 * OpenTelemetry traces: off unless OTEL_* name a collector; then one trace per request reaches an
 * OTLP/HTTP receiver (a small server here, taking the JSON protocol): the server span continuing
 * the caller's traceparent, the decision span with the decision's id, the database and signature
 * spans below it, and no token or params value in any attribute. Probes (/healthz, /readyz,
 * /metrics) make no spans, under any OTEL_TRACES_SAMPLER. A collector that is down costs requests
 * nothing, and says so: a rate-limited warning and tollgate_otlp_export_failures_total.
 */

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpValue[] };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: OtlpValue }>;
  status?: { code?: number };
}
interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  service: unknown;
  /** 0 unset, 1 ok, 2 error. */
  status: number;
}

/** An OTLP/HTTP receiver: POST /v1/traces with the JSON protocol; keeps the raw bodies and the spans. */
class Receiver {
  readonly bodies: string[] = [];
  readonly spans: Span[] = [];
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (
          request.method !== 'POST' ||
          request.url !== '/v1/traces' ||
          !String(request.headers['content-type']).startsWith('application/json')
        ) {
          response.writeHead(404).end();
          return;
        }
        this.bodies.push(body);
        this.collect(
          JSON.parse(body) as {
            resourceSpans?: Array<{ resource?: { attributes?: OtlpSpan['attributes'] }; scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>;
          },
        );
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private collect(payload: {
    resourceSpans?: Array<{ resource?: { attributes?: OtlpSpan['attributes'] }; scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>;
  }): void {
    for (const resourceSpans of payload.resourceSpans ?? []) {
      const service = attributesOf(resourceSpans.resource?.attributes)['service.name'];
      for (const scope of resourceSpans.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) {
          this.spans.push({
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId || undefined,
            name: span.name,
            kind: span.kind,
            attributes: attributesOf(span.attributes),
            service,
            status: span.status?.code ?? 0,
          });
        }
      }
    }
  }
}

function attributesOf(list: OtlpSpan['attributes']): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map(({ key, value }) => [key, valueOf(value)]));
}

function valueOf(value: OtlpValue): unknown {
  if (value.arrayValue) return (value.arrayValue.values ?? []).map(valueOf);
  if (value.intValue !== undefined) return Number(value.intValue);
  return value.stringValue ?? value.boolValue;
}

const receiver = new Receiver();
let db: TestDatabase;

beforeAll(async () => {
  await receiver.start();
  db = await freshDatabase();
});
afterAll(async () => {
  await receiver.stop();
  await db.drop();
});

/** A broker on this file's database, its boundary and bot ready; stopped (flushing its spans) by the caller. */
async function brokerWith(env: Record<string, string>): Promise<{
  broker: TestBroker;
  bot: Bot;
  taskId: string;
  credential: (body: Record<string, unknown>, headers?: Record<string, string>) => Promise<Response>;
}> {
  const broker = await startBroker({ db, env: { ...env, TOLLGATE_ADMIN_KEY: adminKey, TOLLGATE_KEK: kek } });
  await putBoundary(broker, 'crm-orders');
  const bot = await registerBot(broker);
  const taskId = await bot.openTask();
  const token = await bot.token();
  return {
    broker,
    bot,
    taskId,
    credential: async (body, headers = {}) => call(broker.url, 'POST', `/v1/tasks/${taskId}/credentials`, { token, json: body, headers }),
  };
}
const adminKey = `test-admin-${randomBytes(24).toString('hex')}`;
const kek = randomBytes(32).toString('base64');

describe('traces', () => {
  it('sends one trace per credential request to the OTLP receiver: server, decision, database and signature spans, no secrets', async () => {
    const { broker, bot, taskId, credential } = await brokerWith({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'tollgate-test',
    });
    expect(tracingOn()).toBe(true);
    const traceId = randomBytes(16).toString('hex');
    const callerSpanId = randomBytes(8).toString('hex');
    const secretParam = `param-value-${randomBytes(8).toString('hex')}`;
    const granted = await credential(
      { boundary: 'crm-orders', action: 'orders:read', params: { order: secretParam } },
      { traceparent: `00-${traceId}-${callerSpanId}-01`, 'x-request-id': 'trace-call-1' },
    );
    expect(granted.status).toBe(201);
    const { rows } = await broker.app.broker.db.query<{ decision_id: string }>('SELECT decision_id FROM leases WHERE id = $1', [
      granted.body.lease_id,
    ]);
    const permitId = rows[0]!.decision_id;

    const deniedTraceId = randomBytes(16).toString('hex');
    const denied = await credential(
      { boundary: 'crm-orders', action: 'orders:delete' },
      { traceparent: `00-${deniedTraceId}-${callerSpanId}-01` },
    );
    expect(denied.status).toBe(403);

    // The bot SDK inside a bot's span (here the same process's OpenTelemetry API): its traceparent joins the trace.
    const client = new TollgateClient({
      url: broker.url,
      tokenSource: { workloadId: bot.id, privateKey: bot.key.privateKey, kid: bot.key.kid, alg: bot.key.alg },
    });
    const botSpan = await otel.getTracer('bot').startActiveSpan('bot tool call', async (span) => {
      await client.task(taskId).credential({ boundary: 'crm-orders', action: 'orders:read' });
      span.end();
      return span.spanContext();
    });
    // Stopping flushes what the batch still holds.
    await broker.stop();

    const trace = receiver.spans.filter((span) => span.traceId === traceId);
    const server = trace.find((span) => span.kind === 2);
    expect(server).toMatchObject({
      name: 'POST /v1/tasks/:id/credentials',
      parentSpanId: callerSpanId,
      service: 'tollgate-test',
      attributes: {
        'http.request.method': 'POST',
        'http.route': '/v1/tasks/:id/credentials',
        'http.response.status_code': 201,
        'tollgate.request_id': 'trace-call-1',
      },
    });
    const decision = trace.find((span) => span.name === 'tollgate.decision');
    expect(decision).toMatchObject({
      parentSpanId: server!.spanId,
      attributes: {
        'tollgate.decision.id': permitId,
        'tollgate.decision.outcome': 'permit',
        'tollgate.decision.reasons': [],
        'tollgate.boundary.id': 'crm-orders',
        'tollgate.action': 'orders:read',
        'tollgate.workload.id': 'chatbot',
      },
    });
    const below = (parent: Span): Span[] =>
      trace.filter((span) => span.parentSpanId === parent.spanId).flatMap((span) => [span, ...below(span)]);
    const underDecision = below(decision!);
    const dbSpans = underDecision.filter((span) => span.attributes['db.system'] === 'postgresql');
    expect(dbSpans.length).toBeGreaterThan(0);
    for (const span of dbSpans) expect(span.attributes['db.operation.name']).toMatch(/^[A-Z]+$/);
    expect(underDecision.find((span) => span.name === 'tollgate.sign')).toMatchObject({
      attributes: { 'tollgate.sign.alg': 'EdDSA', 'tollgate.sign.kid': expect.any(String) },
    });
    expect(dbSpans.map((span) => span.name)).toContain('tollgate_record_permit');

    const deniedDecision = receiver.spans.find((span) => span.traceId === deniedTraceId && span.name === 'tollgate.decision');
    expect(deniedDecision?.attributes).toMatchObject({
      'tollgate.decision.id': denied.body.decision_id,
      'tollgate.decision.outcome': 'deny',
      'tollgate.decision.reasons': denied.body.reasons,
    });
    // A denial is an outcome, not a failure of the service.
    expect(receiver.spans.filter((span) => span.traceId === deniedTraceId).map((span) => span.status)).not.toContain(2);

    const viaSdk = receiver.spans.find((span) => span.traceId === botSpan.traceId && span.name === 'POST /v1/tasks/:id/credentials');
    expect(viaSdk).toMatchObject({ kind: 2, parentSpanId: botSpan.spanId });
    expect(receiver.spans.some((span) => span.traceId === botSpan.traceId && span.name === 'tollgate.decision')).toBe(true);

    // Background work (key maintenance, sweeps) leaves no trace of lone statements every second.
    const dbAnywhere = receiver.spans.filter((span) => span.attributes['db.system'] === 'postgresql');
    expect(dbAnywhere.filter((span) => span.parentSpanId === undefined)).toEqual([]);

    // Nothing secret in any span: not the params value, not the token, not the credential, not the admin key.
    const sent = receiver.bodies.join('\n');
    for (const secret of [secretParam, granted.body.credential.access_token as string, adminKey]) expect(sent).not.toContain(secret);
    for (const span of receiver.spans) expect(JSON.stringify(span.attributes)).not.toMatch(/SELECT |INSERT |UPDATE |\$1/);
  });

  it('creates no exporter and sends nothing when no OTEL_* variable names a collector', async () => {
    const before = receiver.bodies.length;
    const { broker, credential } = await brokerWith({ OTEL_SERVICE_NAME: 'tollgate-test' });
    expect(tracingOn()).toBe(false);
    const granted = await credential(
      { boundary: 'crm-orders', action: 'orders:read' },
      { traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` },
    );
    expect(granted.status).toBe(201);
    await broker.stop();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(receiver.bodies.length).toBe(before);
  });

  it('serves requests as usual while the collector is down, and stops within the flush bound', async () => {
    const { broker, credential } = await brokerWith({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await freePort()}` });
    expect(tracingOn()).toBe(true);
    const started = Date.now();
    for (let i = 0; i < 5; i++) expect((await credential({ boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);
    // Past the batch delay: exports are failing in the background meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    for (let i = 0; i < 5; i++) expect((await credential({ boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);
    expect(Date.now() - started).toBeLessThan(5_000);
    const stopping = Date.now();
    await broker.stop();
    expect(Date.now() - stopping).toBeLessThan(TRACE_FLUSH_MS + 2_000);
    expect(tracingOn()).toBe(false);
  });
});

/** A sampled W3C traceparent for a fresh trace, and that trace's id. */
function sampledParent(): { traceId: string; traceparent: string } {
  const traceId = randomBytes(16).toString('hex');
  return { traceId, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` };
}

describe('sampling', () => {
  it('makes no span for /healthz, /readyz or /metrics, even for a sampled caller under always_on, and keeps the rest', async () => {
    const { broker, credential } = await brokerWith({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_TRACES_SAMPLER: 'always_on' });
    const probes: string[] = [];
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const { traceId, traceparent } = sampledParent();
      probes.push(traceId);
      expect((await call(broker.url, 'GET', path, { headers: { traceparent } })).status).toBe(200);
      // And without a caller's trace: a root span under always_on, were it not for the probe rule.
      expect((await call(broker.url, 'GET', path)).status).toBe(200);
    }
    const { traceId, traceparent } = sampledParent();
    expect((await credential({ boundary: 'crm-orders', action: 'orders:read' }, { traceparent })).status).toBe(201);
    await broker.stop();

    const routes = receiver.spans.map((span) => span.attributes['http.route']);
    for (const probe of ['/healthz', '/readyz', '/metrics']) expect(routes).not.toContain(probe);
    // Nor the probes' children (the readiness check's database statement), as orphans.
    expect(receiver.spans.filter((span) => probes.includes(span.traceId))).toEqual([]);
    expect(receiver.spans.filter((span) => span.traceId === traceId).map((span) => span.name)).toEqual(
      expect.arrayContaining(['POST /v1/tasks/:id/credentials', 'tollgate.decision', 'tollgate.sign']),
    );
  });

  it('honours OTEL_TRACES_SAMPLER: parentbased_always_off keeps only the traces a caller sampled', async () => {
    const { broker, credential } = await brokerWith({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_TRACES_SAMPLER: 'parentbased_always_off',
    });
    const before = receiver.spans.length;
    expect((await credential({ boundary: 'crm-orders', action: 'orders:read' }, { 'x-request-id': 'unsampled-call' })).status).toBe(201);
    const { traceId, traceparent } = sampledParent();
    expect((await credential({ boundary: 'crm-orders', action: 'orders:read' }, { traceparent })).status).toBe(201);
    const unsampled = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-00`;
    expect((await credential({ boundary: 'crm-orders', action: 'orders:read' }, { traceparent: unsampled })).status).toBe(201);
    await broker.stop();

    const sent = receiver.spans.slice(before);
    expect(sent.length).toBeGreaterThan(0);
    expect(new Set(sent.map((span) => span.traceId))).toEqual(new Set([traceId]));
    expect(sent.some((span) => span.attributes['tollgate.request_id'] === 'unsampled-call')).toBe(false);
  });
});

describe('export failures', () => {
  it('warns (rate-limited, without headers, body or stack) and counts tollgate_otlp_export_failures_total when the collector answers 503, then is gone', async () => {
    // A collector that answers 503 (with a body that must not reach the log), then stops listening.
    const collectorBody = `overloaded-${randomBytes(8).toString('hex')}`;
    let posts = 0;
    const failing = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        posts++;
        response.writeHead(503, { 'content-type': 'text/plain' }).end(collectorBody);
      });
    });
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    const port = (failing.address() as AddressInfo).port;
    const headerSecret = `otlp-key-${randomBytes(12).toString('hex')}`;

    const output = captureOutput();
    const lines = output.lines;
    try {
      const { broker, credential } = await brokerWith({
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_EXPORTER_OTLP_HEADERS: `x-api-key=${headerSecret}`,
        TOLLGATE_LOG_LEVEL: 'warn',
      });
      const failures = async (): Promise<number> => {
        const text = (await call<string>(broker.url, 'GET', '/metrics')).body;
        const match = /^tollgate_otlp_export_failures_total (\d+)$/m.exec(text);
        expect(match, 'the metric is served').not.toBeNull();
        return Number(match![1]);
      };
      const until = async (condition: () => Promise<boolean>, what: string): Promise<void> => {
        for (const started = Date.now(); !(await condition());) {
          if (Date.now() - started > 15_000) throw new Error(`timed out waiting for ${what}`);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      };
      expect(await failures()).toBe(0);

      expect((await credential({ boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);
      await until(async () => (await failures()) >= 1, 'a failed export (503)');
      expect(posts).toBeGreaterThan(0);

      // The collector goes away: connection refused.
      failing.closeAllConnections();
      await new Promise<void>((resolve) => failing.close(() => resolve()));
      const afterFirst = await failures();
      expect((await credential({ boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);
      await until(async () => (await failures()) > afterFirst, 'a failed export (connection refused)');
      await broker.stop();

      const warnings = lines
        .map((line) => JSON.parse(line) as { level?: string; message?: Record<string, unknown> })
        .filter((entry) => typeof entry.message?.msg === 'string' && String(entry.message.msg).startsWith('OTLP trace export'));
      // Two failures or more within the interval: one warning, naming the status.
      expect(EXPORT_WARNING_INTERVAL_MS).toBeGreaterThanOrEqual(60_000);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({
        level: 'warn',
        message: { msg: 'OTLP trace export failed: spans are lost until the collector answers', failed_exports: 1 },
      });
      // The exporter reports a 503 (after its retries) as "retryable status", without the code.
      expect(String(warnings[0]!.message!.error)).toMatch(/503|retryable/);
      // Not any request's line, though the batch timer may have been armed inside one.
      expect(warnings[0]!.message).not.toHaveProperty('request_id');
      const logged = lines.join('\n');
      for (const secret of [headerSecret, collectorBody, adminKey]) expect(logged).not.toContain(secret);
      expect(logged).not.toMatch(/\n\s+at /);
    } finally {
      output.restore();
      failing.close();
    }
  });
});
