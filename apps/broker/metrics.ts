import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics, in a registry of the broker's own (several brokers may share a process in tests). */
export class BrokerMetrics {
  readonly registry = new Registry();

  constructor() {
    // Node's own: CPU, memory, heap spaces, event-loop lag, GC, handles (process_*, nodejs_*).
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'tollgate_build_info',
      help: 'Always 1; labelled with the running version of Tollgate and of Node.',
      labelNames: ['version', 'node'] as const,
      registers: [this.registry],
    }).set({ version: TOLLGATE_VERSION, node: process.version }, 1);
  }

  readonly credentialRequests = new Counter({
    name: 'tollgate_credential_requests_total',
    help: 'Credential requests by outcome and deny reason.',
    labelNames: ['outcome', 'reason'] as const,
    registers: [this.registry],
  });

  /**
   * No workload label: /metrics is unauthenticated, and a label per workload would both list the
   * registered workloads to anyone who can reach the port and grow a series per workload. Which
   * limit refused is enough to alert on; the bot's own 429s say which workload it is.
   */
  readonly rateLimited = new Counter({
    name: 'tollgate_rate_limited_total',
    help: "Credential requests refused with 429 by the rate limit, by the limit that refused: the workload's own (workload) or the service's (default).",
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });

  readonly driftSuspensions = new Counter({
    name: 'tollgate_drift_suspensions_total',
    help: 'Tasks the drift guard suspended (revoked, reason drift_detected) after too many drift denials.',
    registers: [this.registry],
  });

  readonly leasesRevoked = new Counter({
    name: 'tollgate_leases_revoked_total',
    help: 'Leases revoked, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly policyEvaluatorRestarts = new Counter({
    name: 'tollgate_policy_evaluator_restarts_total',
    help: 'Cedar child processes that died (a trap, a fault, a kill, a timeout) and were replaced; their requests failed closed.',
    labelNames: ['evaluator'] as const,
    registers: [this.registry],
  });
  readonly policyEvaluation = new Histogram({
    name: 'tollgate_policy_evaluation_seconds',
    help: 'Cedar time of one credential request: its policies and approval rule (only requests Cedar applies to).',
    buckets: [
      0.00001, 0.00002, 0.00003, 0.00005, 0.000075, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.01,
      0.025, 0.1,
    ],
    registers: [this.registry],
  });

  readonly sourceRevocations = new Counter({
    name: 'tollgate_source_revocations_total',
    help: 'Revocations of credentials at their source (the outbox), by kind and outcome (revoked, retry, revoke_failed).',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: 'tollgate_http_request_duration_seconds',
    help: 'HTTP request latency by route and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly auditUnchained = new Gauge({
    name: 'tollgate_audit_unchained_events',
    help: 'Audit events not yet linked into the hash chain, as of the last chainer pass (a small tail is normal; a growing one is not).',
    registers: [this.registry],
  });

  readonly auditChained = new Counter({
    name: 'tollgate_audit_chained_events_total',
    help: 'Audit events this replica linked into the hash chain.',
    registers: [this.registry],
  });

  auditChainPass(linked: number, unlinked: number): void {
    this.auditChained.inc(linked);
    this.auditUnchained.set(unlinked);
  }

  /** Leases whose source revocation gave up (retried daily): someone should look at the source. */
  watchRevokeFailed(count: () => Promise<number>): void {
    new Gauge({
      name: 'tollgate_leases_revoke_failed',
      help: 'Leases whose credential could not be revoked at its source after every retry.',
      registers: [this.registry],
      async collect() {
        this.set(await count());
      },
    });
  }

  /** Open GET /v1/events streams on this replica (capped by TOLLGATE_EVENTS_MAX_STREAMS). */
  watchEventStreams(count: () => number): void {
    new Gauge({
      name: 'tollgate_event_streams',
      help: 'GET /v1/events streams open on this replica.',
      registers: [this.registry],
      collect() {
        this.set(count());
      },
    });
  }

  /**
   * Span batches the OTLP exporter could not deliver (the collector unreachable, or answering an
   * error after the exporter's retries): their spans are lost. Always present, 0 while traces are
   * off, so an alert on it needs no special case.
   */
  watchTraceExportFailures(count: () => number): void {
    new Counter({
      name: 'tollgate_otlp_export_failures_total',
      help: 'Span batches the OTLP trace exporter failed to deliver (collector unreachable or answering an error); their spans are lost.',
      registers: [this.registry],
      collect() {
        // The count lives with the exporter, which starts before this registry exists.
        this.reset();
        this.inc(count());
      },
    });
  }

  watchActiveLeases(count: () => Promise<number>): void {
    new Gauge({
      name: 'tollgate_active_leases',
      help: 'Leases active now (by the database clock).',
      registers: [this.registry],
      async collect() {
        this.set(await count());
      },
    });
  }
}

/** The version in Tollgate's package.json, found from here in the sources (tests) and in dist/. */
export const TOLLGATE_VERSION = ((): string => {
  for (let dir = import.meta.dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'tollgate' && pkg.version) return pkg.version;
  }
  return 'unknown';
})();
