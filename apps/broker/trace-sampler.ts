import { SpanKind, TraceFlags, isSpanContextValid, trace, type Attributes, type Context, type Link } from '@opentelemetry/api';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SamplingResult,
} from '@opentelemetry/sdk-trace-node';
import type { TraceSampler } from '../../libs/config/index.js';

/**
 * The routes a kubelet, a load balancer or Prometheus calls every few seconds. A trace each would
 * drown the traces that matter (a probe every 10 s per replica is 8,640 traces a day) and pay the
 * collector for nothing: a probe's answer is in its status code and in /metrics.
 */
export const PROBE_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/** The operator's sampler (OTEL_TRACES_SAMPLER), with the broker's probe rule in front of it. */
export function brokerSampler(setting: TraceSampler): Sampler {
  return new ProbeRule(configured(setting));
}

/**
 * Drops a probe's server span, and every span started under a span this process did not record
 * (the probe's database statements): a sampler that is not parent-based (always_on, traceidratio)
 * would otherwise keep the children of a dropped probe as orphans. Everything else is the
 * operator's sampler's to decide, a caller's `traceparent` included.
 */
class ProbeRule implements Sampler {
  constructor(private readonly operators: Sampler) {}

  shouldSample(context: Context, traceId: string, name: string, kind: SpanKind, attributes: Attributes, links: Link[]): SamplingResult {
    const route = attributes['http.route'];
    if (kind === SpanKind.SERVER && typeof route === 'string' && PROBE_ROUTES.has(route)) return { decision: SamplingDecision.NOT_RECORD };
    const parent = trace.getSpanContext(context);
    if (parent !== undefined && isSpanContextValid(parent) && parent.isRemote !== true && (parent.traceFlags & TraceFlags.SAMPLED) === 0)
      return { decision: SamplingDecision.NOT_RECORD };
    return this.operators.shouldSample(context, traceId, name, kind, attributes, links);
  }

  toString(): string {
    return `ProbeRule{${this.operators.toString()}}`;
  }
}

/** OTEL_TRACES_SAMPLER's names, as the OpenTelemetry specification defines them. */
function configured({ name, ratio }: TraceSampler): Sampler {
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}
