import { describe, expect, it } from 'vitest';
import { TraceExportFailures } from './trace-export.js';

describe('TraceExportFailures', () => {
  function watch(): { failures: TraceExportFailures; lines: Array<Record<string, unknown>>; advance(ms: number): void } {
    let now = 1_000_000;
    const lines: Array<Record<string, unknown>> = [];
    const failures = new TraceExportFailures(
      (line) => lines.push(line),
      () => now,
      60_000,
    );
    return { failures, lines, advance: (ms) => (now += ms) };
  }

  it('warns at the first failure, then at most once per interval with what failed meanwhile, and once on recovery', () => {
    const { failures, lines, advance } = watch();
    failures.failed(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4318'), { code: 'ECONNREFUSED' }), 10);
    expect(lines).toEqual([
      expect.objectContaining({ error: 'ECONNREFUSED connect ECONNREFUSED 127.0.0.1:4318', failed_exports: 1, lost_spans: 10 }),
    ]);
    advance(30_000);
    failures.failed(new Error('Service Unavailable'), 5);
    failures.failed(undefined, 5);
    expect(lines).toHaveLength(1);
    advance(30_000);
    failures.failed(Object.assign(new Error('Service Unavailable\nbody: secret'), { code: 503 }), 1);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ error: '503 Service Unavailable', failed_exports: 3, lost_spans: 11 });
    expect(failures.total).toBe(4);

    failures.succeeded();
    failures.succeeded();
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ msg: 'OTLP trace export recovered', failed_exports_since_last_warning: 0 });
    // A new outage is told at once again.
    failures.failed(undefined, 1);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatchObject({ error: 'unknown error', failed_exports: 1 });
  });

  it('says nothing while exports succeed', () => {
    const { failures, lines } = watch();
    failures.succeeded();
    expect(lines).toEqual([]);
    expect(failures.total).toBe(0);
  });
});
