import { loadConfig } from '../../libs/config/config.js';
import { ConfigurationError } from '../../libs/errors/errors.js';
import { handOverAdminKey } from './admin-key-handover.js';
import { createApp } from './app.js';

/** `npm start`: validate configuration, open the database, serve, and tell the operator what next. */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const { app, broker, close } = await createApp(config);
  // Shown before listening: if the port is taken, the operator still has the key that was stored.
  if (broker.generatedAdminKey) {
    process.stdout.write(handOverAdminKey(broker.generatedAdminKey, { dataDir: config.dataDir, terminal: process.stdout.isTTY === true }));
  }
  await app.listen({ port: config.port, host: config.host });

  const lines = [
    '',
    `Tollgate is serving on http://${config.host}:${config.port} (issuer ${config.issuer})`,
    `  database: ${broker.db.kind === 'pglite' ? `embedded PGlite in ${config.dataDir}` : 'PostgreSQL (DATABASE_URL)'}`,
    `  review console: http://${config.host}:${config.port}/console (sign in with a reviewer or admin key)`,
  ];
  lines.push(
    '',
    '  Next: define a tool boundary and a workload, open a task, ask for a credential.',
    '  The README\'s walkthrough does it with curl; try:',
    `      curl -s http://${config.host}:${config.port}/.well-known/oauth-authorization-server`,
    '',
  );
  process.stdout.write(lines.join('\n') + '\n');

  const stop = async () => {
    await close().catch(() => {});
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigurationError) {
    process.stderr.write(`tollgate: ${error.message}\n`);
  } else {
    process.stderr.write(`tollgate: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  }
  process.exit(1);
});
