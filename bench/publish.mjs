// `npm run bench:publish`: makes the last bench run the published one. Copies
// bench/results/latest.json to bench/results/published.json (committed) and rewrites the tables
// between the `<!-- bench:table:start -->` / `<!-- bench:table:end -->` markers of
// docs/performance.md and README.md from it (bench/lib/tables.mjs). Nobody copies numbers by hand;
// test/bench-table.spec.ts fails when the docs differ from what published.json renders.
//
// `npm run bench:publish -- --render-only` re-renders the tables from the committed published.json
// without copying (after a change to the tables' layout).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MARKERS, renderTables } from './lib/tables.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const LATEST = 'bench/results/latest.json';
const PUBLISHED = 'bench/results/published.json';
const DOCS = { performance: 'docs/performance.md', readme: 'README.md' };

const args = process.argv.slice(2);
const renderOnly = args.includes('--render-only');
for (const arg of args) {
  if (arg !== '--render-only') fail(`unknown argument ${arg}\nusage: npm run bench:publish [-- --render-only]`);
}

const source = renderOnly ? PUBLISHED : LATEST;
if (!existsSync(join(ROOT, source))) {
  fail(renderOnly ? `${PUBLISHED} is missing: run npm run bench:publish first` : `${LATEST} is missing: run npm run bench first`);
}
const text = readFileSync(join(ROOT, source), 'utf8');
const results = parseResults(text, source);

const tables = renderTables(results);
// Every file is checked before any is written: a missing marker leaves all of them as they were.
const rewritten = Object.entries(DOCS).map(([which, file]) => [
  file,
  replaceBetween(readFileSync(join(ROOT, file), 'utf8'), file, MARKERS[which], tables[which]),
]);
if (!renderOnly) writeFileSync(join(ROOT, PUBLISHED), text);
for (const [file, content] of rewritten) writeFileSync(join(ROOT, file), content);

process.stdout.write(
  `${renderOnly ? 're-rendered from' : `published ${LATEST} as`} ${PUBLISHED} (${results.machine.mode} run of ${results.machine.date}); ` +
    `rewrote the tables in ${Object.values(DOCS).join(' and ')}\n`,
);

/** The results of a complete run: scenarios, peers and the machine it ran on. */
function parseResults(json, file) {
  let parsed;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    fail(`${file} is not JSON: ${error.message}`);
  }
  for (const key of ['scenarios', 'peers', 'machine']) {
    if (typeof parsed?.[key] !== 'object' || parsed[key] === null) fail(`${file} has no "${key}" object: is it a bench results file?`);
  }
  return parsed;
}

/** `text` with what lies between its one pair of markers replaced by `block` (on lines of its own). */
function replaceBetween(text, file, [start, end], block) {
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < 0 || to < from || text.indexOf(start, from + 1) >= 0) {
    fail(`${file} must hold exactly one ${start} … ${end} pair, in that order`);
  }
  return `${text.slice(0, from)}${start}\n${block}\n${text.slice(to)}`;
}

function fail(message) {
  process.stderr.write(`bench:publish: ${message}\n`);
  process.exit(2);
}
