// Types for bench/lib/tables.mjs, for test/bench-table.spec.ts (the bench itself is plain JavaScript).

/** A bench results file (bench/results/latest.json or published.json), as far as the tables read it. */
export interface BenchResults {
  scenarios: Record<string, Record<string, unknown> | null | undefined>;
  peers: Record<string, Record<string, unknown> | null | undefined>;
  ratios?: Record<string, number | null | undefined>;
  machine: Record<string, unknown>;
  commit?: { sha: string; dirty: boolean } | null;
}

export const MARKERS: { performance: [string, string]; readme: [string, string] };

/** The markdown that goes between the markers of docs/performance.md and README.md. */
export function renderTables(results: BenchResults): { performance: string; readme: string };

/** "commit abc1234 (dirty), 2026-12-03, quick run, Node 20.20.2, 2 × …" */
export function runLine(results: BenchResults): string;
