// `npm run ha:soak -- --minutes 30 [--rate N] [--sample-seconds 10] [--streams 4] [--out DIR]`:
// the soak of issue 16 (fault 5) for the note. Three replicas from dist/ behind HAProxy on a fresh
// database of the local PostgreSQL (TEST_DATABASE_URL to use another server), mixed load at half
// the capacity it measures first (or at --rate), samples every --sample-seconds, then the CSV, JSON
// and PNG in bench/results/ (git-ignored), whose paths it prints. Exits 1 on any error or when a
// measure is not flat (docs/operations.md#soak).
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runSoak } from '../test/ha/support/soak.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string' },
    'sample-seconds': { type: 'string', default: '10' },
    'warmup-seconds': { type: 'string' },
    streams: { type: 'string', default: '4' },
    out: { type: 'string', default: 'bench/results' },
  },
});

const number = (name: string, text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`ha:soak: --${name} must be a positive number, not ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return value;
};

const seconds = number('minutes', values.minutes)! * 60;
const result = await runSoak({
  seconds,
  rate: number('rate', values.rate),
  sampleSeconds: number('sample-seconds', values['sample-seconds']),
  warmupSeconds: number('warmup-seconds', values['warmup-seconds']),
  streams: number('streams', values.streams),
  outDir: resolve(values.out!),
});
for (const example of result.errorExamples) process.stderr.write(`ha:soak error: ${example}\n`);
console.log(`plot: ${result.files.png}`);
process.exit(result.errors === 0 && result.flat ? 0 : 1);
