// The audit chain at scale: fills a fresh PostgreSQL database with n audit events (default
// 100,000; bulk INSERT ... SELECT generate_series, 10,000 per statement, as many writer
// transactions), links them with the chainer (libs/audit/chainer.ts, 1,000 per batch transaction)
// and verifies the chain (libs/audit/audit-log.ts, pages of 5,000), reporting both rates.
// Usage: npm run build && node bench/audit-verify.mjs [n]   (DATABASE_URL: a server it may create a database on)
import { tmpdir } from 'node:os';
import { AuditLog } from '../dist/libs/audit/audit-log.js';
import { AuditStore } from '../dist/libs/audit/audit-store.js';
import { AuditChainer } from '../dist/libs/audit/chainer.js';
import { systemClock } from '../dist/libs/clock/clock.js';
import { openDatabase } from '../dist/libs/db/typeorm-database.js';
import { connect, freshDatabase } from './lib/database.mjs';
import { cleanup, installSignalHandlers } from './lib/procs.mjs';

const n = Number(process.argv[2] ?? 100_000);
if (!Number.isInteger(n) || n < 1) throw new Error('usage: node bench/audit-verify.mjs [n], n a positive integer');
installSignalHandlers();

try {
  const { url } = await freshDatabase();
  const db = await openDatabase({ databaseUrl: url, dataDir: tmpdir() });
  try {
    const seed = await connect(url);
    const started = performance.now();
    for (let from = 1; from <= n; from += 10_000) {
      // Shaped like credential.permit events: a task, a lease, a few fields of data.
      await seed.query(
        `INSERT INTO audit_events (id, kind, actor, task_id, lease_id, data)
         SELECT gen_random_uuid(), 'credential.permit', 'workload:chatbot', gen_random_uuid(), gen_random_uuid(),
                jsonb_build_object('boundary', 'crm-orders', 'boundary_version', 1, 'action', 'orders:read',
                                   'resource', 'order/' || g, 'ttl', 120, 'policies', jsonb_build_array(jsonb_build_object('id', 'global', 'version', 3)))
           FROM generate_series($1::int, $2::int) g`,
        [from, Math.min(n, from + 9_999)],
      );
    }
    await seed.query('ANALYZE audit_events');
    await seed.end();
    console.log(`seeded ${n} events in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    const store = new AuditStore(db);
    const chainer = new AuditChainer(db, store);
    let linked = 0;
    const chainStarted = performance.now();
    let idleSince = performance.now();
    for (;;) {
      const pass = await chainer.runOnce();
      linked += pass.linked;
      if (pass.unlinked === 0) break;
      // A transaction in flight anywhere on the server holds linking back while it lasts.
      if (pass.linked > 0) idleSince = performance.now();
      else if (performance.now() - idleSince > 30_000)
        throw new Error(`the chainer has linked nothing for 30 s; ${pass.unlinked} events unlinked`);
      else await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const chainS = (performance.now() - chainStarted) / 1000;
    console.log(`chain:  ${linked} events in ${chainS.toFixed(2)} s, ${Math.round(linked / chainS)} events/s`);

    const log = new AuditLog(
      store,
      () => {
        throw new Error('the bench signs nothing');
      },
      'http://bench.invalid',
      systemClock,
    );
    const verifyStarted = performance.now();
    const report = await log.verify();
    const verifyS = (performance.now() - verifyStarted) / 1000;
    if (!report.ok || report.verified !== n) throw new Error(`verify: ${JSON.stringify(report)}`);
    console.log(
      `verify: ${report.verified} events in ${verifyS.toFixed(2)} s, ${Math.round(report.verified / verifyS)} events/s (head seq ${report.head.seq})`,
    );
  } finally {
    await db.close();
  }
} finally {
  await cleanup();
}
