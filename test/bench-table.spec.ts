import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type BenchResults, MARKERS, renderTables, runLine } from '../bench/lib/tables.mjs';

/**
 * The bench tables of docs/performance.md and README.md are generated (`npm run bench:publish`) from
 * the committed bench/results/published.json (issue 15, "Keep honest"). A number edited by hand, or
 * results published without their tables, fails the first case; the others pin down how a run is
 * judged against the targets, from a small quick run in test/fixtures/.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function readResults(file: string): BenchResults {
  return JSON.parse(readFileSync(join(ROOT, file), 'utf8')) as BenchResults;
}

/** What lies between the file's markers, without the newlines next to them. */
function between(file: string, [start, end]: [string, string]): string {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  expect(from, `${file} has no ${start}`).toBeGreaterThanOrEqual(0);
  expect(to, `${file} has no ${end} after ${start}`).toBeGreaterThan(from);
  return text.slice(from + start.length + 1, to - 1);
}

/** The cells of the markdown table row whose first cell is `label`. */
function row(markdown: string, label: string): string[] {
  const line = markdown.split('\n').find((l) => l.startsWith(`| ${label} |`));
  expect(line, `no row "${label}" in:\n${markdown}`).toBeDefined();
  return line!
    .slice(2, -2)
    .split(' | ')
    .map((cell) => cell.trim())
    .slice(1);
}

describe('the published bench tables', () => {
  it('are exactly what bench/results/published.json renders, in docs/performance.md and README.md', () => {
    const tables = renderTables(readResults('bench/results/published.json'));
    // On a difference: `npm run bench:publish -- --render-only` (or publish a new run).
    expect(between('docs/performance.md', MARKERS.performance)).toBe(tables.performance);
    expect(between('README.md', MARKERS.readme)).toBe(tables.readme);
  });

  it('name the commit measured and the run, from a published run', () => {
    const published = readResults('bench/results/published.json');
    expect(published.commit?.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(typeof published.commit?.dirty).toBe('boolean');
    expect(renderTables(published).readme).toContain(`commit ${published.commit!.sha.slice(0, 7)}`);
  });
});

describe('renderTables', () => {
  const quick = readResults('test/fixtures/bench-results-quick.json');
  const { performance, readme } = renderTables(quick);

  it('names the commit (dirty), the date, a quick run, Node and the machine', () => {
    const line = 'commit abc1234 (dirty), 2026-12-03, quick run, Node 20.20.2, 2 × AMD EPYC 7B13, 7.8 GB, PostgreSQL 15.8';
    expect(runLine(quick)).toBe(line);
    expect(performance).toContain(`Measured at ${line}.`);
    expect(readme).toContain(`${line}; the whole table`);
    expect(runLine({ ...quick, commit: { sha: quick.commit!.sha, dirty: false } })).toMatch(/^commit abc1234, 2026-12-03, quick run,/);
    expect(runLine({ ...quick, commit: null })).toMatch(/^commit unknown, /);
  });

  it('judges a target met and a target missed, naming the parts missed', () => {
    expect(row(readme, 'embedded PGlite issuance')).toEqual(['612/s, p99 150 ms', '≥ 500/s', 'met']);
    expect(row(readme, 'denial (decision recorded)')).toEqual(['812/s, p99 40 ms; 1.16× issuance', '≥ issuance', 'met']);
    expect(row(readme, 'issuance')).toEqual([
      '700/s, p99 45 ms; 0.50× node-oidc-provider (1,400/s)',
      '≥ 1.0× node-oidc-provider, p99 ≤ 20 ms',
      'not met: 0.50× the peer; p99 45 ms',
    ]);
    const faster = renderTables({ ...quick, ratios: { issuance_vs_oidc_provider: 1.2 } }).readme;
    expect(row(faster, 'issuance')[2]).toBe('not met: p99 45 ms');
  });

  it('says a quick run misses the scale a target names (the soak, the table size)', () => {
    expect(row(readme, 'memory')).toEqual([
      'RSS 200 MB → 205 MB (medians of the halves) over a 30 s soak',
      'flat over a 10-minute mixed soak',
      'not met: a 30 s soak, not 10 minutes',
    ]);
    const full = withScenario(quick, 'memory', { soak_s: 600, rss_samples_mb: [200, 240, 250] });
    expect(row(renderTables(full).readme, 'memory')[2]).toBe('not met: RSS grew 25%');
    // One high sample is a collection's sawtooth, not growth: the halves' medians decide.
    const sawtooth = withScenario(quick, 'memory', { soak_s: 600, rss_samples_mb: [370, 392, 440, 331, 389, 388, 370, 423, 428] });
    expect(row(renderTables(sawtooth).readme, 'memory')).toEqual([
      'RSS 381 MB → 406 MB (medians of the halves) over a 10-minute soak',
      'flat over a 10-minute mixed soak',
      'met',
    ]);
    const leak = withScenario(quick, 'memory', { soak_s: 600, rss_samples_mb: [300, 310, 305, 320, 340, 360, 380, 400] });
    expect(row(renderTables(leak).readme, 'memory')[2]).toBe('not met: RSS grew 20%');
    const flat = withScenario(quick, 'memory', { soak_s: 600, rss_samples_mb: [200, 215, 205] });
    expect(row(renderTables(flat).readme, 'memory')).toEqual([
      'RSS 200 MB → 205 MB (medians of the halves) over a 10-minute soak',
      'flat over a 10-minute mixed soak',
      'met',
    ]);

    const introspection = { rps: 9000, p50_ms: 3, p99_ms: 8, max_ms: 20, non2xx: 0, table_rows: 100_000 };
    expect(
      row(renderTables({ ...quick, scenarios: { ...quick.scenarios, introspection } }).readme, 'introspection over ≥ 1M leases')[2],
    ).toBe('not met: 100,000 leases, not 1M');
    const big = { ...introspection, table_rows: 1_000_052 };
    expect(
      row(renderTables({ ...quick, scenarios: { ...quick.scenarios, introspection: big } }).readme, 'introspection over ≥ 1M leases'),
    ).toEqual(['9,000/s, p99 8 ms, over 1,000,052 leases', '≥ 8,000/s, p99 ≤ 10 ms', 'met']);
  });

  it('shows a failed, skipped or missing scenario as not measured, with "—" for its figures', () => {
    // introspection failed, token_exchange was skipped, complete_1000 is not in the file at all.
    expect(row(readme, 'introspection over ≥ 1M leases')).toEqual(['not measured', '≥ 8,000/s, p99 ≤ 10 ms', 'not measured']);
    expect(row(readme, 'complete a task with 1,000 leases')).toEqual([
      'not measured',
      '≤ 50 ms until all 1,000 introspect inactive',
      'not measured',
    ]);
    expect(row(performance, 'introspection (`POST /oauth2/introspect`)')).toEqual([
      '—',
      '—',
      '—',
      'failed: the broker exited',
      '≥ 8,000/s, p99 ≤ 10 ms',
      'not measured',
    ]);
    expect(row(performance, 'token exchange (`POST /oauth2/token`)').slice(0, 4)).toEqual(['—', '—', '—', 'skipped: not implemented']);
    expect(row(performance, 'complete a task holding 1,000 leases')[3]).toBe('not measured');
    expect(row(performance, 'issuance (`POST /v1/tasks/{id}/credentials`)').slice(0, 3)).toEqual(['700/s', '30 ms', '45 ms']);
  });

  it('leaves a target not measured when the run lacks one of its fields, unless a part it has is already missed', () => {
    // sweep_1m from a run without the rewrite counts: the p99 part holds, the rewrites are unknown;
    // the quick run's 100k rows already miss the 1M of the target.
    expect(row(readme, '1M leases expiring under issuance load')[2]).toBe('not met: 100,000 leases, not 1M');
    const million = withScenario(quick, 'sweep_1m', { rows: 1_000_000 });
    expect(row(renderTables(million).readme, '1M leases expiring under issuance load')[2]).toBe('not measured');
    const none = withScenario(quick, 'sweep_1m', {
      rows: 1_000_000,
      expired_unrewritten: 1_000_000,
      rows_rewritten: 1000,
      external_rows: 1000,
    });
    expect(row(renderTables(none).readme, '1M leases expiring under issuance load')).toEqual([
      'issuance p99 50 ms during vs 45 ms plain (1.10×); 0 of 1,000,000 expired JWT leases rewritten (1,000 lease row updates in all, 1,000 leases held at a source included)',
      'issuance p99 ≤ 1.2× its baseline; no storm of row rewrites',
      'met',
    ]);
    // A run that measured its baseline next to the window is judged by that one, not the first run's.
    const adjacent = withScenario(quick, 'sweep_1m', {
      rows: 1_000_000,
      expired_unrewritten: 1_000_000,
      rows_rewritten: 1000,
      external_rows: 1000,
      issuance_p99_baseline_ms: 40,
      p99_during_vs_baseline: 1.25,
    });
    expect(row(renderTables(adjacent).readme, '1M leases expiring under issuance load')).toEqual([
      "issuance p99 50 ms during vs 40 ms just before, on the same tables (1.25×; 1.10× the first issuance run's 45 ms); 0 of 1,000,000 expired JWT leases rewritten (1,000 lease row updates in all, 1,000 leases held at a source included)",
      'issuance p99 ≤ 1.2× its baseline; no storm of row rewrites',
      'not met: p99 1.25× its baseline',
    ]);
    const storm = withScenario(quick, 'sweep_1m', {
      rows: 1_000_000,
      expired_unrewritten: 0,
      rows_rewritten: 1_001_000,
      external_rows: 1000,
    });
    expect(row(renderTables(storm).readme, '1M leases expiring under issuance load')[2]).toBe(
      'not met: 1,000,000 expired JWT leases rewritten',
    );
  });

  it('judges complete_1000 on the moment all 1,000 turn inactive, and on the old total for runs without it', () => {
    const old = withScenario(quick, 'complete_1000', { ms: 347, complete_ms: 29, verify_ms: 318 });
    expect(row(renderTables(old).readme, 'complete a task with 1,000 leases')).toEqual([
      '347 ms (the complete call 29 ms, then the 1,000 introspections 318 ms)',
      '≤ 50 ms until all 1,000 introspect inactive',
      'not met: 347 ms',
    ]);
    const visible = withScenario(quick, 'complete_1000', { visible_ms: 31.4, ms: 347, complete_ms: 33, verify_ms: 314 });
    expect(row(renderTables(visible).readme, 'complete a task with 1,000 leases')).toEqual([
      "31 ms (the complete call answered after 33 ms); the client's check of all 1,000 then took 314 ms",
      '≤ 50 ms until all 1,000 introspect inactive',
      'met',
    ]);
    const slow = withScenario(quick, 'complete_1000', { visible_ms: 61, ms: 400, complete_ms: 61, verify_ms: 339 });
    expect(row(renderTables(slow).readme, 'complete a task with 1,000 leases')[2]).toBe('not met: 61 ms');
  });

  it('shows issuance at a fixed rate beside the saturated run, for Tollgate and the peer, without judging it', () => {
    const paced = { rate: 1000, rps: 1000, p50_ms: 3, p99_ms: 9, max_ms: 30, non2xx: 0 };
    const withPaced = {
      ...withScenario(quick, 'issuance', { paced }),
      peers: { ...quick.peers, oidc_provider: { ...quick.peers.oidc_provider, paced: { ...paced, p99_ms: 12 } } },
    };
    const tables = renderTables(withPaced);
    expect(row(tables.readme, 'issuance')).toEqual([
      '700/s, p99 45 ms; 0.50× node-oidc-provider (1,400/s); at a fixed 1,000/s p99 9 ms (node-oidc-provider 12 ms)',
      '≥ 1.0× node-oidc-provider, p99 ≤ 20 ms',
      'not met: 0.50× the peer; p99 45 ms',
    ]);
    expect(row(tables.performance, 'issuance at a fixed rate (below saturation)')).toEqual(['1,000/s', '3 ms', '9 ms', '', '', '']);
    expect(row(tables.performance, 'peer: node-oidc-provider at the same fixed rate').slice(0, 3)).toEqual(['1,000/s', '3 ms', '12 ms']);
    // A run from before the paced runs existed says so.
    expect(row(performance, 'issuance at a fixed rate (below saturation)').slice(0, 4)).toEqual([
      '—',
      '—',
      '—',
      'skipped: not in this run',
    ]);
  });

  it('shows CPU per request for Tollgate and the peer with the ratio, and "—" where the run has no CPU field', () => {
    expect(row(performance, 'issuance (PostgreSQL)')).toEqual(['0.90', '0.60', '1.50', '3.00×']);
    expect(row(performance, 'denial (PostgreSQL)')).toEqual(['—', '—', '—', '—']);
    expect(row(performance, 'issuance (embedded PGlite)')).toEqual(['—', 'none of its own', '—', '—']);
    expect(row(performance, 'peer: node-oidc-provider')).toEqual(['0.50', 'none of its own (0.02 other work)', '0.50', '1.00×']);
    expect(row(readme, 'CPU per issuance (broker + PostgreSQL)')).toEqual([
      '1.50 (broker 0.90 + PostgreSQL 0.60) vs 0.50: 3.00×',
      "≤ 2× node-oidc-provider's CPU per token",
      'not met: 3.00× the peer',
    ]);
    const withoutPeerCpu = { ...quick, peers: { ...quick.peers, oidc_provider: { rps: 1400, p50_ms: 20, p99_ms: 60 } } };
    expect(row(renderTables(withoutPeerCpu).readme, 'CPU per issuance (broker + PostgreSQL)')[2]).toBe('not measured');
    const embeddedCpu = withScenario(quick, 'embedded_issuance', { broker_cpu_ms_per_request: 1.25, postgres_cpu_ms_per_request: 0.05 });
    expect(row(renderTables(embeddedCpu).performance, 'issuance (embedded PGlite)')).toEqual([
      '1.25',
      'none of its own (0.05 other work)',
      '1.25',
      '2.50×',
    ]);
  });
});

describe('npm run bench:publish', () => {
  /** A copy of bench/publish.mjs and its lib in a temp tree, with docs holding the markers. */
  function tree(docs: { readme: string; performance: string }, latest?: string): string {
    const root = mkdtempSync(join(tmpdir(), 'bench-publish-'));
    mkdirSync(join(root, 'bench/lib'), { recursive: true });
    mkdirSync(join(root, 'bench/results'));
    mkdirSync(join(root, 'docs'));
    copyFileSync(join(ROOT, 'bench/publish.mjs'), join(root, 'bench/publish.mjs'));
    copyFileSync(join(ROOT, 'bench/lib/tables.mjs'), join(root, 'bench/lib/tables.mjs'));
    writeFileSync(join(root, 'README.md'), docs.readme);
    writeFileSync(join(root, 'docs/performance.md'), docs.performance);
    if (latest !== undefined) writeFileSync(join(root, 'bench/results/latest.json'), latest);
    return root;
  }
  function publish(root: string, ...args: string[]) {
    return spawnSync(process.execPath, [join(root, 'bench/publish.mjs'), ...args], { encoding: 'utf8' });
  }
  const fixture = readFileSync(join(ROOT, 'test/fixtures/bench-results-quick.json'), 'utf8');
  const [start, end] = MARKERS.readme;
  const marked = (before: string, after: string) => `${before}\n${start}\nold numbers\n${end}\n${after}\n`;

  it('copies latest.json to published.json and replaces only what lies between the markers', () => {
    const root = tree({ readme: marked('# R', 'tail R'), performance: marked('# P', 'tail P') }, fixture);
    try {
      const run = publish(root);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(readFileSync(join(root, 'bench/results/published.json'), 'utf8')).toBe(fixture);
      const tables = renderTables(JSON.parse(fixture) as BenchResults);
      expect(readFileSync(join(root, 'README.md'), 'utf8')).toBe(`# R\n${start}\n${tables.readme}\n${end}\ntail R\n`);
      expect(readFileSync(join(root, 'docs/performance.md'), 'utf8')).toBe(`# P\n${start}\n${tables.performance}\n${end}\ntail P\n`);
      // Publishing again changes nothing.
      expect(publish(root).status).toBe(0);
      expect(readFileSync(join(root, 'README.md'), 'utf8')).toBe(`# R\n${start}\n${tables.readme}\n${end}\ntail R\n`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses, writing nothing, without latest.json, without the markers, or with a file that is not bench results', () => {
    const docs = { readme: marked('# R', ''), performance: marked('# P', '') };
    const cases: Array<[ReturnType<typeof tree>, RegExp]> = [
      [tree(docs), /latest\.json is missing: run npm run bench first/],
      [
        tree({ ...docs, performance: '# P without markers\n' }, fixture),
        /docs\/performance\.md must hold exactly one <!-- bench:table:start -->/,
      ],
      [tree(docs, '{"scenarios": {}}'), /latest\.json has no "peers" object/],
      [tree(docs, 'not json'), /latest\.json is not JSON/],
    ];
    for (const [root, message] of cases) {
      try {
        const run = publish(root);
        expect(run.status).toBe(2);
        expect(run.stderr).toMatch(message);
        expect(existsSync(join(root, 'bench/results/published.json'))).toBe(false);
        expect(readFileSync(join(root, 'README.md'), 'utf8')).toBe(docs.readme);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    }
  });
});

/** `results` with one scenario's fields changed (the fixture itself is left alone). */
function withScenario(results: BenchResults, key: string, fields: Record<string, unknown>): BenchResults {
  return { ...results, scenarios: { ...results.scenarios, [key]: { ...results.scenarios[key], ...fields } } };
}
