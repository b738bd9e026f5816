import { loadBrokerConfig } from './config.js';
import { ApprovalStore } from '../../libs/approvals/index.js';
import { AuditRetention } from '../../libs/audit/index.js';
import { migrateDatabase, openDatabase } from '../../libs/db/index.js';
import { ConfigurationError, TollgateError } from '../../libs/errors/index.js';
import { checkFirstMonthKept, HistoryRetention } from '../../libs/leases/index.js';
import { handOverAdminKey } from './admin-key-handover.js';
import { createApp } from './app.js';

/**
 * `npm start`: validate configuration, open the database, serve, and tell the operator what next.
 * `migrate` (npm run migrate): apply the database migrations and exit, for a deployment whose
 * service runs with TOLLGATE_MIGRATE=off as a user without DDL rights.
 * `history prune --before YYYY-MM`: drop the months of leases, decisions and audit events before
 * that month (docs/operations.md#history-retention); it needs the same rights as `migrate`.
 */
async function main(args: readonly string[]): Promise<void> {
  const [command, ...rest] = args;
  if (command === 'migrate' && rest.length === 0) return migrate();
  if (command === 'history') return history(rest);
  if (command !== undefined) {
    process.stderr.write(`tollgate-broker: unknown command ${JSON.stringify(command)}\n${USAGE}`);
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

const USAGE = 'usage: tollgate-broker [migrate | history prune --before YYYY-MM]\n';

async function history(args: readonly string[]): Promise<void> {
  const [action, flag, before, ...extra] = args;
  if (action !== 'prune' || flag !== '--before' || before === undefined || extra.length > 0) {
    process.stderr.write(`tollgate-broker history: expected "prune --before YYYY-MM"\n${USAGE}`);
    process.exit(2);
  }
  try {
    // Bad input is refused before the database is opened: it needs none.
    checkFirstMonthKept(before);
  } catch (error) {
    refusePrune(error);
  }
  const config = loadBrokerConfig(process.env, { command: 'migrate' });
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, migrate: false, poolSize: 1 });
  try {
    const report = await new HistoryRetention(db, new AuditRetention(), new ApprovalStore(db)).prune(before, 'operator:history-prune');
    process.stdout.write(
      report.partitions.length === 0
        ? `tollgate-broker history prune: nothing before ${report.before}\n`
        : `tollgate-broker history prune: dropped ${report.partitions.length} partitions before ${report.before} ` +
            `(${report.leases} leases, ${report.decisions} decisions, ${report.auditEvents} audit events, ${report.approvals} closed approvals)` +
            (report.anchor ? `; the audit chain now starts after seq ${report.anchor.seq} (hash ${report.anchor.hash})` : '') +
            '\n',
    );
  } catch (error) {
    refusePrune(error);
  } finally {
    await db.close();
  }
}

/** A refusal or bad input says why and changes nothing (its description is safe to print); anything else is thrown on. */
function refusePrune(error: unknown): never {
  if (!(error instanceof TollgateError)) throw error;
  process.stderr.write(`tollgate-broker history prune: refused: ${error.description}\n`);
  process.exit(error.status === 400 ? 2 : 1);
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
