import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-node';

/** At most one warning per this long while exports keep failing; the count says how many were not told. */
export const EXPORT_WARNING_INTERVAL_MS = 60_000;

type ExportResult = Parameters<Parameters<SpanExporter['export']>[1]>[0];
/** ExportResultCode.SUCCESS of @opentelemetry/core (not a dependency of ours: the value is the protocol's). */
const SUCCESS = 0;

/** Where a failed or recovered export is told: a warning line for people, a count for /metrics. */
export interface ExportHealth {
  failed(error: Error | undefined, spans: number): void;
  succeeded(): void;
}

/**
 * The OTLP exporter, reporting each batch's outcome. Without it a failed export is invisible: the
 * batch processor hands the error to OpenTelemetry's diag logger, which is silent unless someone
 * installs one, and a collector that is down or answers 503 loses every span with nobody told.
 */
export class ReportingExporter implements SpanExporter {
  constructor(
    private readonly exporter: SpanExporter,
    private readonly health: ExportHealth,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.exporter.export(spans, (result) => {
      if (result.code === SUCCESS) this.health.succeeded();
      else this.health.failed(result.error, spans.length);
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.exporter.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.exporter.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * Failed exports, counted (tollgate_otlp_export_failures_total) and told as warnings, rate-limited:
 * the first failure at once, then at most one line per interval with how many failed meanwhile,
 * and one line when exports succeed again. A line names the error by its message and status only:
 * never the collector's response body, the export headers (OTEL_EXPORTER_OTLP_HEADERS carries API
 * keys) or a stack.
 */
export class TraceExportFailures implements ExportHealth {
  /** Failed exports since start, for the metric. */
  total = 0;
  private untold = 0;
  private lostSpans = 0;
  private lastWarning: number | undefined;

  constructor(
    private readonly warn: (line: Record<string, unknown>) => void,
    private readonly now: () => number = Date.now,
    private readonly intervalMs = EXPORT_WARNING_INTERVAL_MS,
  ) {}

  failed(error: Error | undefined, spans: number): void {
    this.total++;
    this.untold++;
    this.lostSpans += spans;
    const now = this.now();
    if (this.lastWarning !== undefined && now - this.lastWarning < this.intervalMs) return;
    this.lastWarning = now;
    this.warn({
      msg: 'OTLP trace export failed: spans are lost until the collector answers',
      error: describe(error),
      failed_exports: this.untold,
      lost_spans: this.lostSpans,
    });
    this.untold = 0;
    this.lostSpans = 0;
  }

  succeeded(): void {
    if (this.lastWarning === undefined) return;
    this.warn({ msg: 'OTLP trace export recovered', failed_exports_since_last_warning: this.untold, lost_spans: this.lostSpans });
    this.lastWarning = undefined;
    this.untold = 0;
    this.lostSpans = 0;
  }
}

/** One short line: an OTLPExporterError's status code or a socket error's code, and the message's first line. */
function describe(error: Error | undefined): string {
  if (error === undefined) return 'unknown error';
  const code = (error as { code?: unknown }).code;
  const message = error.message.split('\n')[0]!.slice(0, 200);
  return typeof code === 'string' || typeof code === 'number' ? `${String(code)} ${message}`.trim() : message;
}
