import 'reflect-metadata';
import { Module, type DynamicModule, type LogLevel as NestLogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Duplex } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { Clock } from '../../libs/clock/index.js';
import type { Config } from '../../libs/config/index.js';
import { InvalidRequest } from '../../libs/errors/index.js';
import { RequestLogger, requestIdOf } from './request-log.js';
import { startTracing, traceRequests } from './tracing.js';
import { TraceExportFailures } from './trace-export.js';
import { Approvals } from '../../libs/approvals/index.js';
import { requestScope } from '../../libs/audit/index.js';
import { AuditLog } from '../../libs/audit/index.js';
import { CHAIN_INTERVAL_MS } from '../../libs/audit/index.js';
import { PARTITION_INTERVAL_MS } from '../../libs/leases/index.js';
import { ApiKeys } from '../../libs/identity/index.js';
import { ClientAuthentication } from '../../libs/identity/index.js';
import { DpopVerifier } from '../../libs/identity/index.js';
import { SigningKeyRing, type KeyTimings } from '../../libs/keys/index.js';
import type { OutboxTimings } from '../../libs/leases/index.js';
import { WorkloadAuthenticator } from '../../libs/identity/index.js';
import { Issuers } from '../../libs/identity/index.js';
import { Workloads } from '../../libs/identity/index.js';
import { Introspection } from '../../libs/leases/index.js';
import { LeaseStore } from '../../libs/leases/index.js';
import { CredentialIssuance } from '../../libs/leases/index.js';
import { LeaseRevocation } from '../../libs/leases/index.js';
import { TokenRevocation } from '../../libs/leases/index.js';
import { EVENT_CHANNEL, RevocationEventLog } from '../../libs/audit/index.js';
import { EVENT_POLL_MS, EventFeed } from '../../libs/leases/index.js';
import { Boundaries } from '../../libs/policy/index.js';
import { Policies } from '../../libs/policy/index.js';
import { Simulator } from '../../libs/policy/index.js';
import { WhatIf } from '../../libs/policy/index.js';
import { DecisionLedger } from '../../libs/leases/index.js';
import { TaskHistory } from '../../libs/review/index.js';
import { Tasks } from '../../libs/tasks/index.js';
import type { BrokerConfig } from './config.js';
import { createBroker, type Broker } from './broker.js';
import { AdminController } from './http/admin/admin.controller.js';
import { PoliciesController } from './http/admin/policies.controller.js';
import { ApiKeysController } from './http/admin/api-keys.controller.js';
import { ApprovalsController } from './http/approvals/approvals.controller.js';
import { AuditController } from './http/audit/audit.controller.js';
import { AdminGuard, ApproverGuard, EventsGuard, ReviewerGuard, WorkloadGuard } from './http/auth.js';
import { DiscoveryController } from './http/discovery/discovery.controller.js';
import { ErrorFilter } from './http/error-filter.js';
import { OAuthController } from './http/oauth/oauth.controller.js';
import { ReviewController, RevocationController } from './http/review/review.controller.js';
import { TasksController } from './http/tasks/tasks.controller.js';
import { TokenController } from './http/token/token.controller.js';
import { EventsController } from './http/events/events.controller.js';
import { IssuersController } from './http/admin/issuers.controller.js';
import { KeysController } from './http/admin/keys.controller.js';
import { OpenApiController } from './http/discovery/openapi.controller.js';
import { buildOpenApi } from './http/openapi.js';
import { BROKER, CONSOLE_ASSETS, OPENAPI, SERVING_STATE } from './tokens.js';
import { ServingState, sleep, within } from './shutdown.js';
import { ConsoleController } from './http/console/console.controller.js';
import { loadConsoleAssets } from './http/console/console-assets.js';

export const BODY_LIMIT = 1024 * 1024;

/** Every controller the app serves; GET /openapi.json is generated from their route metadata. */
export const CONTROLLERS = [
  DiscoveryController,
  OpenApiController,
  TasksController,
  AdminController,
  PoliciesController,
  ApiKeysController,
  KeysController,
  ReviewController,
  RevocationController,
  AuditController,
  ApprovalsController,
  OAuthController,
  TokenController,
  EventsController,
  IssuersController,
  ConsoleController,
];

/** Binds the broker's services to Nest: controllers receive exactly the services they use. */
function brokerModule(
  broker: Broker,
  openapi: Record<string, unknown>,
  consoleAssets: ReturnType<typeof loadConsoleAssets>,
  serving: ServingState,
): DynamicModule {
  @Module({})
  class BrokerModule {}
  return {
    module: BrokerModule,
    controllers: CONTROLLERS,
    providers: [
      { provide: BROKER, useValue: broker },
      { provide: OPENAPI, useValue: openapi },
      { provide: CONSOLE_ASSETS, useValue: consoleAssets },
      { provide: SERVING_STATE, useValue: serving },
      { provide: ApiKeys, useValue: broker.apiKeys },
      { provide: ClientAuthentication, useValue: broker.clients },
      { provide: WorkloadAuthenticator, useValue: broker.authenticator },
      { provide: Workloads, useValue: broker.workloads },
      { provide: Issuers, useValue: broker.issuers },
      { provide: Boundaries, useValue: broker.boundaries },
      { provide: Policies, useValue: broker.policies },
      { provide: Simulator, useValue: broker.simulator },
      { provide: WhatIf, useValue: broker.whatIf },
      { provide: Tasks, useValue: broker.tasks },
      { provide: TaskHistory, useValue: broker.history },
      { provide: CredentialIssuance, useValue: broker.issuance },
      { provide: Approvals, useValue: broker.approvals },
      { provide: AuditLog, useValue: broker.audit },
      { provide: Introspection, useValue: broker.introspection },
      { provide: LeaseRevocation, useValue: broker.revocation },
      { provide: TokenRevocation, useValue: broker.tokenRevocation },
      { provide: LeaseStore, useValue: broker.leases },
      { provide: DecisionLedger, useValue: broker.decisions },
      { provide: RevocationEventLog, useValue: broker.events },
      { provide: EventFeed, useValue: broker.eventFeed },
      { provide: SigningKeyRing, useValue: broker.keys },
      { provide: DpopVerifier, useValue: broker.dpop },
      WorkloadGuard,
      AdminGuard,
      ReviewerGuard,
      ApproverGuard,
      EventsGuard,
    ],
  };
}

export interface App {
  app: NestFastifyApplication;
  broker: Broker;
  /**
   * Leaves gracefully, as on SIGTERM: readiness turns 503 `draining` and every response says
   * `Connection: close` while the replica still serves for `delayMs` (default
   * TOLLGATE_SHUTDOWN_DELAY_MS: its load balancer stops sending meanwhile); then it stops accepting,
   * ends its event streams (clients resume elsewhere with Last-Event-ID), lets requests in flight
   * finish (cut after TOLLGATE_SHUTDOWN_TIMEOUT_MS), stops its background duties and waits for a
   * pass in progress, and closes the database and the trace exporter. Called again, the same drain.
   */
  drain(options?: { delayMs?: number }): Promise<void>;
  /** drain() without the delay: for tests and tools that own the process. */
  close(): Promise<void>;
}

/**
 * Builds the broker and its HTTP app (not yet listening). The sweeper, the outbox and the audit
 * chainer run when `sweep` is on; tests that drive expiry themselves turn it off. Key maintenance (reading the signing keys other replicas
 * rotated, automatic rotation, ending retired keys' publication) always runs.
 */
export async function createApp(
  config: BrokerConfig,
  options: {
    clock?: Clock;
    sweep?: boolean;
    keyTimings?: Partial<KeyTimings>;
    outboxTimings?: Partial<OutboxTimings>;
    /** The event feed's poll period (tests stretch it to show that notifications wake the feed). */
    eventPollMs?: number;
  } = {},
): Promise<App> {
  // Before the database opens: a build that lost the console's files fails here, having opened nothing.
  const consoleAssets = loadConsoleAssets();
  const logger = new RequestLogger({ json: true, logLevels: nestLevels(config.logLevel) });
  // Traces (off unless OTEL_* name a collector) start first: the SDK must be registered before any span.
  // An export runs on the batch timer, which may have been armed inside a request: the warning is
  // not that request's, so it leaves the request scope (no request_id on it).
  const exportFailures = new TraceExportFailures((line) => requestScope.exit(() => logger.warn(line)));
  const tracing = config.tracing ? startTracing(config.tracing, exportFailures) : undefined;
  let broker: Broker;
  try {
    broker = await createBroker(config, options.clock, options.keyTimings, options.outboxTimings);
  } catch (error) {
    await tracing?.shutdown();
    throw error;
  }
  broker.metrics.watchTraceExportFailures(() => exportFailures.total);
  const adapter = new FastifyAdapter({
    bodyLimit: BODY_LIMIT,
    logger: false,
    // Once the listener closes, a request that still arrives on an open connection gets 503 (the
    // load balancer has stopped sending here by then: see drain()).
    return503OnClosing: true,
    // Requests in flight finish on shutdown; drain() ends the event streams (they never finish by
    // themselves) and cuts what is left after TOLLGATE_SHUTDOWN_TIMEOUT_MS.
    forceCloseConnections: false,
    requestIdHeader: false,
    genReqId: requestIdOf,
    // SPIFFE IDs, percent-encoded in a path, may be up to 2048 characters.
    routerOptions: { maxParamLength: 2100 },
    // Node's HTTP parser refuses some requests before Fastify sees them (headers over 16 KiB, a
    // malformed request line or header): answer those in the documented shape too.
    clientErrorHandler: answerClientError,
    // The router answers a malformed URL or an over-long parameter before Nest sees the request:
    // answer in the documented shape, never echoing the URL back.
    frameworkErrors: (error: { code?: string }, _request: unknown, reply: FastifyReply) => {
      const tooLong = error.code === 'FST_ERR_MAX_PARAM_LENGTH';
      reply
        .code(tooLong ? 414 : 400)
        .header('cache-control', 'no-store')
        .send({ error: 'invalid_request', error_description: tooLong ? 'a path parameter is too long' : 'the URL is malformed' });
    },
  });
  const fastify = adapter.getInstance();
  const serving = new ServingState();

  // JSON and forms only: a text/plain body is a 415, not a string handed to a handler.
  fastify.removeContentTypeParser(['text/plain']);
  // RFC 7662 / 7009 bodies are form-encoded. A repeated parameter is ambiguous: refuse it.
  fastify.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: BODY_LIMIT },
    (_request, body, done) => {
      const form: Record<string, string> = {};
      for (const [key, value] of new URLSearchParams(body as string)) {
        if (key in form) return done(new InvalidRequest(`parameter "${key}" is repeated`, { field: key }), undefined);
        form[key] = value;
      }
      done(null, form);
    },
  );
  // Every answer names its request; everything the request causes (audit events, log lines) is
  // recorded under that id. The scope is entered just before the handler: Fastify parses the body
  // on the socket's own async context, which would lose a scope entered earlier.
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  // A draining replica still answers, but asks every client (a load balancer's pooled connection
  // included) to close its connection, so the next request opens one to another replica.
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (serving.draining) reply.header('connection', 'close');
    done(null, payload);
  });
  const inRequestSpan = tracing ? traceRequests(fastify, tracing.tracer) : undefined;
  fastify.addHook('preHandler', (request, _reply, done) =>
    requestScope.run({ requestId: request.id }, inRequestSpan ? () => inRequestSpan(request, done) : done),
  );
  // The access log: one JSON line per request at info. The route template, never the URL, headers
  // or body (they can hold tokens, DPoP proofs, client secrets).
  const accessLog = config.logLevel === 'debug' || config.logLevel === 'info';
  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    broker.metrics.requestDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    if (accessLog) {
      logger.log({
        msg: 'request',
        request_id: request.id,
        method: request.method,
        route,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      });
    }
  });

  const openapi = buildOpenApi(CONTROLLERS, { issuer: config.issuer });
  // A route without its documentation is a developer's slip, not a reason to refuse to start:
  // say so here, and let test/openapi.e2e.spec.ts fail on it.
  for (const problem of openapi.problems) logger.warn({ msg: 'openapi: route not fully documented', problem });

  const app = await NestFactory.create<NestFastifyApplication>(brokerModule(broker, openapi.document, consoleAssets, serving), adapter, {
    logger,
    bodyParser: false,
  });
  app.useGlobalFilters(new ErrorFilter(logger));
  await app.init();

  // Background work: each job runs on its own timer, never overlapping itself; a failure is logged
  // and the next tick tries again. A pass in progress is kept, so a shutdown waits for it before it
  // closes the pool under it.
  const passes = new Set<Promise<unknown>>();
  const background = (everyMs: number, name: string, job: () => Promise<unknown>): NodeJS.Timeout => {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      const pass = job()
        .catch((error: unknown) => logger.warn({ msg: `${name} failed`, error: error instanceof Error ? error.message : String(error) }))
        .finally(() => {
          running = false;
          passes.delete(pass);
        });
      passes.add(pass);
    }, everyMs);
    timer.unref();
    return timer;
  };
  const timers = [background(broker.keys.timings.pollMs, 'signing-key maintenance', () => broker.keys.tick())];
  // The one reader of every event stream (it reads nothing while no stream is open): woken by the
  // notification a revocation's statement sends, on every replica, and polling besides.
  const feedFailed = (error: unknown): void =>
    logger.warn({ msg: 'event feed failed', error: error instanceof Error ? error.message : String(error) });
  const pollFeed = (): void => broker.eventFeed.poll(feedFailed);
  const feedTimer = setInterval(pollFeed, options.eventPollMs ?? EVENT_POLL_MS);
  feedTimer.unref();
  timers.push(feedTimer);
  const unlisten = await broker.db.listen(EVENT_CHANNEL, pollFeed).catch((error: unknown) => {
    logger.warn({
      msg: 'cannot listen for event notifications: streams get revocations at the next poll',
      error: error instanceof Error ? error.message : String(error),
    });
    return undefined;
  });
  if (options.sweep ?? true) timers.push(background(config.sweepIntervalMs, 'sweep', () => broker.sweeper.sweepOnce()));
  // The outbox runs beside the sweeper, on its own timer: a slow source never delays expiry.
  if (options.sweep ?? true) timers.push(background(config.sweepIntervalMs, 'outbox pass', () => broker.outbox.runOnce()));

  // The audit chainer, gated with the sweeper (tests that want a pass call auditChainer.runOnce()).
  // Every replica runs it; the advisory lock lets one link at a time.
  if (options.sweep ?? true) timers.push(background(CHAIN_INTERVAL_MS, 'audit chain', () => broker.auditChainer.runOnce()));

  // Next months' partitions of leases, decisions and audit events, made well ahead (two months);
  // once at start and hourly. Every replica asks; the SQL function makes each once, under a lock.
  if (options.sweep ?? true) {
    const partitions = (): Promise<number> => broker.retention.ensurePartitions();
    partitions().catch((error: unknown) =>
      logger.warn({ msg: 'history partitions failed', error: error instanceof Error ? error.message : String(error) }),
    );
    timers.push(background(PARTITION_INTERVAL_MS, 'history partitions', partitions));
  }

  let draining: Promise<void> | undefined;
  const drain = async (delayMs: number): Promise<void> => {
    serving.beginDraining();
    if (config.logLevel === 'debug' || config.logLevel === 'info') {
      logger.log({ msg: 'draining: readiness answers 503, the listener closes after the delay', delay_ms: delayMs });
    }
    if (delayMs > 0) await sleep(delayMs);
    const { timeoutMs } = config.shutdown;
    // Streams first: an open stream would hold the listener's close until the timeout. Each ends
    // after the last event it wrote; its client resumes on another replica with Last-Event-ID.
    const streams = broker.eventFeed.close();
    // Stops accepting; requests in flight run to their end (each answered with Connection: close).
    const closed = app.close();
    if ((await within(closed, timeoutMs)) === 'timeout') {
      logger.warn({ msg: 'shutdown timeout: cutting the connections of requests still in flight', timeout_ms: timeoutMs });
      fastify.server.closeAllConnections();
      await closed;
    }
    for (const timer of timers) clearInterval(timer);
    broker.eventFeed.stop();
    // A sweep, outbox or chain pass in progress finishes (its transaction commits or rolls back)
    // before the pool closes; one stuck on a dead database is left to the pool's close.
    if ((await within(Promise.allSettled([...passes]), timeoutMs)) === 'timeout') {
      logger.warn({ msg: 'shutdown timeout: a background pass did not finish', timeout_ms: timeoutMs });
    }
    await unlisten?.();
    broker.cedar.live.close();
    broker.cedar.replay.close();
    await broker.db.close();
    // Last: the spans of the requests app.close() let finish are flushed too.
    await tracing?.shutdown();
    if (config.logLevel === 'debug' || config.logLevel === 'info') logger.log({ msg: 'drained', event_streams_ended: streams });
  };

  return {
    app,
    broker,
    drain: (options = {}) => (draining ??= drain(options.delayMs ?? config.shutdown.delayMs)),
    close: () => (draining ??= drain(0)),
  };
}

/**
 * A request Node's HTTP parser refused: `{error, error_description}` like every other error, then
 * the connection is closed (the parser cannot find the next request). A HEAD request gets no body.
 */
function answerClientError(error: Error & { code?: string; rawPacket?: unknown }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, description] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'the request headers are larger than 16 KiB']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request was not received in time']
        : [400, 'Bad Request', 'the request is not valid HTTP'];
  const body = JSON.stringify({ error: 'invalid_request', error_description: description });
  const head = Buffer.isBuffer(error.rawPacket) && error.rawPacket.subarray(0, 5).toString('latin1') === 'HEAD ';
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `cache-control: no-store\r\nconnection: close\r\n\r\n${head ? '' : body}`,
    );
  }
  socket.destroy();
}

function nestLevels(level: Config['logLevel']): NestLogLevel[] {
  const order: NestLogLevel[] = ['debug', 'log', 'warn', 'error', 'fatal'];
  const from = { debug: 0, info: 1, warn: 2, error: 3, silent: 5 }[level];
  return order.slice(from);
}
