#!/usr/bin/env node
// Runs the compiled CLI (npm run build puts it in dist/apps/cli; npm install and npm ci run the
// build through `prepare`): a workspace of the Tollgate repository, so `npx tollgate` works in a clone.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const main = fileURLToPath(new URL('../../../dist/apps/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write('tollgate: the CLI is not built yet: run `npm install` (or `npm run build`) in the Tollgate repository first\n');
  process.exit(2);
}
const { run } = await import(pathToFileURL(main).href);
process.exitCode = await run(process.argv.slice(2), { env: process.env, stdout: process.stdout, stderr: process.stderr });
