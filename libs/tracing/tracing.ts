import { SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import { TollgateError } from '../errors/index.js';

/**
 * The one place domain code meets tracing. It uses only @opentelemetry/api, never the SDK: the
 * composition root (apps/broker/tracing.ts) registers an SDK and hands its tracer here when the
 * OTEL_* variables turn traces on. Until then (the default) every helper runs its work directly,
 * allocating nothing, so the hot path costs what it did without tracing.
 *
 * Attributes are chosen by the caller from ids and names only: never a token, a secret, a request
 * parameter's value or an SQL parameter. A failed span records the error's class, not its message
 * (a driver's message can quote the row it refused).
 */
export type SpanAttributes = Record<string, string | number | boolean | string[]>;

let tracer: Tracer | undefined;

/** Set by the composition root when it registers an SDK; undefined again when it shuts it down. */
export function useTracer(next: Tracer | undefined): void {
  tracer = next;
}

export function tracingOn(): boolean {
  return tracer !== undefined;
}

export interface SpanOptions {
  /**
   * Only as a child of an active span (a request's): a step that background work also takes (a
   * sweep's statements every second) would otherwise fill the collector with lone-span traces.
   */
  childOnly?: boolean;
}

/** Runs `work` in a span that is the active one for everything `work` awaits (its children). */
export function inSpan<T>(name: string, attributes: SpanAttributes, work: () => Promise<T>, options: SpanOptions = {}): Promise<T> {
  if (tracer === undefined || (options.childOnly && trace.getActiveSpan() === undefined)) return work();
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work();
    } catch (error) {
      failed(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The synchronous form, for a step that awaits nothing (a signature). */
export function inSpanSync<T>(name: string, attributes: SpanAttributes, work: () => T, options: SpanOptions = {}): T {
  if (tracer === undefined || (options.childOnly && trace.getActiveSpan() === undefined)) return work();
  const span = tracer.startSpan(name, { attributes });
  try {
    return work();
  } catch (error) {
    failed(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** Adds attributes to the active span (learnt after it started: a decision's id and outcome). */
export function annotate(attributes: SpanAttributes): void {
  if (tracer === undefined) return;
  trace.getActiveSpan()?.setAttributes(attributes);
}

/** A refusal answered as designed (a deny, a 404, an approval pending) is an outcome, not a failure. */
function failed(span: Span, error: unknown): void {
  if (error instanceof TollgateError && error.status < 500) return;
  const type = error instanceof Error ? error.name : 'error';
  span.setAttribute('error.type', type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}
