import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TracingConfig } from '../../libs/config/index.js';
import { useTracer } from '../../libs/tracing/index.js';
import { TOLLGATE_VERSION } from './metrics.js';
import { ReportingExporter, type ExportHealth } from './trace-export.js';
import { brokerSampler } from './trace-sampler.js';

/** How long a stop waits for the last spans to reach the collector. */
export const TRACE_FLUSH_MS = 3_000;

export interface Tracing {
  tracer: Tracer;
  /** Flushes what is queued (at most TRACE_FLUSH_MS) and unregisters the SDK. */
  shutdown(): Promise<void>;
}

/**
 * The OpenTelemetry SDK, wired here and only here (the composition root): spans are batched and
 * sent in the background as OTLP/HTTP JSON, so a slow or unreachable collector never delays or
 * fails a request: a full queue drops spans, a failed export is dropped after its timeout and
 * told to `health` (a rate-limited warning and a metric). The exporter also reads OTel's own
 * OTEL_EXPORTER_OTLP_HEADERS. The sampler is the one OTEL_TRACES_SAMPLER names, behind the probe
 * rule (health, readiness and metrics requests make no spans). Registering sets the W3C trace-context propagator and the AsyncLocalStorage context manager,
 * process-wide (one broker per process).
 */
export function startTracing(config: TracingConfig, health: ExportHealth): Tracing {
  const exporter = new ReportingExporter(new OTLPTraceExporter({ url: config.url, timeoutMillis: TRACE_FLUSH_MS }), health);
  const provider = new NodeTracerProvider({
    sampler: brokerSampler(config.sampler),
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName, [ATTR_SERVICE_VERSION]: TOLLGATE_VERSION }),
    spanProcessors: [
      new BatchSpanProcessor(exporter, { maxQueueSize: 4096, scheduledDelayMillis: 1_000, exportTimeoutMillis: TRACE_FLUSH_MS }),
    ],
  });
  provider.register();
  const tracer = provider.getTracer('tollgate', TOLLGATE_VERSION);
  useTracer(tracer);
  return {
    tracer,
    async shutdown() {
      useTracer(undefined);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, TRACE_FLUSH_MS + 500);
        timer.unref();
      });
      await Promise.race([provider.shutdown().catch(() => {}), deadline]);
      clearTimeout(timer);
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/**
 * One server span per HTTP request, named by its route template (never the URL: paths carry ids,
 * a query string could carry anything), continuing the caller's W3C `traceparent`. It becomes the
 * active span where the request scope is entered (just before the handler: the returned function),
 * so the decision, database and signature spans the handler causes are its children.
 */
export function traceRequests(fastify: FastifyInstance, tracer: Tracer): (request: FastifyRequest, handler: () => void) => void {
  const spans = new WeakMap<FastifyRequest, { span: Span; context: Context }>();
  fastify.addHook('onRequest', (request, _reply, done) => {
    const route = request.routeOptions.url;
    const parent = propagation.extract(ROOT_CONTEXT, request.headers);
    const span = tracer.startSpan(
      route === undefined ? request.method : `${request.method} ${route}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': request.method,
          'url.scheme': request.protocol,
          'tollgate.request_id': request.id,
          ...(route === undefined ? {} : { 'http.route': route }),
        },
      },
      parent,
    );
    spans.set(request, { span, context: trace.setSpan(parent, span) });
    done();
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    end(request, reply.statusCode);
    done();
  });
  fastify.addHook('onRequestAbort', (request, done) => {
    end(request, undefined);
    done();
  });

  return (request, handler) => {
    const traced = spans.get(request);
    if (traced) context.with(traced.context, handler);
    else handler();
  };

  function end(request: FastifyRequest, status: number | undefined): void {
    const traced = spans.get(request);
    if (!traced) return;
    spans.delete(request);
    if (status === undefined) {
      traced.span.setStatus({ code: SpanStatusCode.ERROR, message: 'aborted by the client' });
    } else {
      traced.span.setAttribute('http.response.status_code', status);
      // A server span fails on 5xx only: a 4xx is the caller's mistake, answered as designed.
      if (status >= 500) traced.span.setStatus({ code: SpanStatusCode.ERROR });
    }
    traced.span.end();
  }
}
