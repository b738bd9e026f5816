// The table on stdout (the same one bench/README.md and the project README show).

const EXTRAS = {
  denial: (r) => `403s ${r.status_403}, deny decisions recorded ${r.decisions_recorded}`,
  introspection: (r) => `${r.table_rows} lease rows, ${r.tokens} tokens (${Math.round(r.active_share * 100)}% active)`,
  complete_1000: (r) =>
    `all inactive after ${r.visible_ms} ms (complete ${r.complete_ms}); seen by the client after ${r.ms} (+ check ${r.verify_ms}), median of ${r.rounds}`,
  sweep_1m: (r) =>
    `seconds ${r.seconds ?? 'not done'} for ${r.rows} rows; issuance p99 ${r.issuance_p99_during_ms} ms during vs ${r.issuance_p99_baseline_ms ?? '—'} ms just before (${r.issuance_p99_plain_ms} ms in the first issuance run)`,
  memory: (r) => `rss_mb ${r.rss_mb} after ${r.soak_s} s soak (${r.rss_mb_after_issuance} after issuance)`,
};

export function printTable(results) {
  const rows = [['', 'rps', 'p50 ms', 'p99 ms', 'max ms', 'non2xx', '']];
  for (const [name, r] of Object.entries(results.scenarios)) {
    if (!r) continue;
    if (r.skipped || r.error) rows.push([name, '-', '-', '-', '-', '-', r.skipped ? `skipped: ${r.skipped}` : `error: ${r.error}`]);
    else rows.push([name, fmt(r.rps), fmt(r.p50_ms), fmt(r.p99_ms), fmt(r.max_ms), fmt(r.non2xx), EXTRAS[name]?.(r) ?? '']);
  }
  for (const [name, r] of Object.entries(results.peers)) {
    rows.push([`peer: ${name}`, fmt(r.rps), fmt(r.p50_ms), fmt(r.p99_ms), fmt(r.max_ms), fmt(r.non2xx), '']);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => String(row[c]).length)));
  const line = (row) =>
    row
      .map((cell, c) => (c === 0 || c === row.length - 1 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c])))
      .join('  ')
      .trimEnd();
  const out = ['', ...rows.map(line)];
  out.push(
    '',
    `ratios: issuance vs oidc-provider ${results.ratios.issuance_vs_oidc_provider}, issuance vs hello ${results.ratios.issuance_vs_hello}`,
  );
  const m = results.machine;
  out.push(
    `machine: ${m.cpus} × ${m.model}, ${m.total_mem_gb} GB, node ${m.node}, ${m.platform}, PostgreSQL ${m.postgres_version} (${m.mode} run)`,
  );
  process.stdout.write(out.join('\n') + '\n');
}

function fmt(x) {
  if (x === null || x === undefined) return '-';
  if (typeof x === 'number' && !Number.isInteger(x)) return x.toFixed(x < 10 ? 2 : 1);
  return String(x);
}
