#!/usr/bin/env node
// Runs the compiled CLI, built into this package's own dist/ (`npm run build` in the repository, or
// `npm pack`, whose prepack builds it): the package reads nothing outside itself at runtime.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write('tollgate: the CLI is not built yet: run `npm run build` in the Tollgate repository first\n');
  process.exit(2);
}
const { run } = await import(pathToFileURL(main).href);
process.exitCode = await run(process.argv.slice(2), { env: process.env, stdout: process.stdout, stderr: process.stderr });
