import { runDemo } from './demo.js';

/** `npm run demo`: the scripted story; exit 0 when it went as expected, 1 when not, 2 when it could not start. */
runDemo({ env: process.env, print: (line) => process.stdout.write(`${line}\n`), handleSignals: true }).then(
  (status) => process.exit(status),
  (error: unknown) => {
    process.stderr.write(`demo: failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
