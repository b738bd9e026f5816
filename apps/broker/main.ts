import { loadBrokerConfig } from './config.js';
import { migrateDatabase } from '../../libs/db/index.js';
import { ConfigurationError } from '../../libs/errors/index.js';
import { handOverAdminKey } from './admin-key-handover.js';
import { createApp } from './app.js';

/**
 * `npm start`: validate configuration, open the database, serve, and tell the operator what next.
 * `migrate` (npm run migrate): apply the database migrations and exit, for a deployment whose
 * service runs with TOLLGATE_MIGRATE=off as a user without DDL rights.
 */
async function main(args: readonly string[]): Promise<void> {
  const [command, ...rest] = args;
  if (command === 'migrate' && rest.length === 0) return migrate();
  if (command !== undefined) {
    process.stderr.write(`tollgate-broker: unknown command ${JSON.stringify(command)}\nusage: tollgate-broker [migrate]\n`);
    process.exit(2);
  }
  const config = loadBrokerConfig(process.env);
  const { app, broker, drain } = await createApp(config);
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
    "  The README's walkthrough does it with curl; try:",
    `      curl -s http://${config.host}:${config.port}/.well-known/oauth-authorization-server`,
    '',
  );
  process.stdout.write(lines.join('\n') + '\n');

  // SIGTERM (Kubernetes, docker stop, systemd, a rolling restart): drain, then exit 0. SIGINT (Ctrl-C
  // in a terminal, no load balancer to wait for) drains without the delay. A second signal exits at
  // once, as an operator who presses Ctrl-C twice expects.
  let leaving = false;
  const stop = (signal: 'SIGINT' | 'SIGTERM') => {
    if (leaving) {
      process.stderr.write(`tollgate: ${signal} again, exiting without waiting\n`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    leaving = true;
    // Whatever hangs (a pool whose database vanished mid-close), the process still ends.
    const budget = (signal === 'SIGINT' ? 0 : config.shutdown.delayMs) + 2 * config.shutdown.timeoutMs + 5_000;
    setTimeout(() => {
      process.stderr.write(`tollgate: shutdown did not finish within ${budget} ms, exiting\n`);
      process.exit(1);
    }, budget).unref();
    drain({ delayMs: signal === 'SIGINT' ? 0 : config.shutdown.delayMs }).then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`tollgate: shutdown: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(0);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function migrate(): Promise<void> {
  const config = loadBrokerConfig(process.env, { command: 'migrate' });
  const applied = await migrateDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  process.stdout.write(
    applied.length === 0
      ? 'tollgate-broker migrate: the database is up to date\n'
      : `tollgate-broker migrate: applied ${applied.length}: ${applied.join(', ')}\n`,
  );
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigurationError) {
    process.stderr.write(`tollgate: ${error.message}\n`);
  } else {
    process.stderr.write(`tollgate: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  }
  process.exit(1);
});
