import pg from 'pg';
import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { appendEvents, EVENT_CHANNEL, RevocationEventLog } from './event-log.js';

/**
 * The event log's wake-up (migration 1764116790000-event-notify) and its sequencer's `waiting`, on
 * PostgreSQL and on PGlite: a statement that writes events notifies once, one that writes none
 * (a denial's CTE that ended no task) does not.
 */
const write = (rows: number) =>
  `WITH w AS (${appendEvents({ type: "'task.ended'", reason: "'task_completed'" }, `FROM generate_series(1, ${rows})`)} RETURNING id)
   SELECT count(*)::int AS n FROM w`;

describeOnBothBackends('revocation event log (contract)', ({ db, kind, test }) => {
  let log: RevocationEventLog;
  let notified = 0;

  beforeAll(async () => {
    log = new RevocationEventLog(db());
    await db().listen(EVENT_CHANNEL, () => notified++);
  });

  /** Notifications arrive after the commit, on their own time: wait a little for them. */
  async function notificationsAfter(work: () => Promise<unknown>): Promise<number> {
    const before = notified;
    await work();
    // PGlite hands a notification over after the next statement on its session.
    await db().query('SELECT 1');
    await new Promise((resolve) => setTimeout(resolve, 150));
    return notified - before;
  }

  it('a statement that writes events notifies once, however many it wrote', async () => {
    expect(await notificationsAfter(() => db().query(write(3)))).toBe(1);
    expect(await notificationsAfter(() => db().query(write(1)))).toBe(1);
  });

  it('a statement that writes no event does not notify, nor does a rolled-back one', async () => {
    expect(await notificationsAfter(() => db().query(write(0)))).toBe(0);
    expect(await notificationsAfter(() => db().query('SELECT count(*) FROM revocation_events'))).toBe(0);
    const rolledBack = db().transaction(async (tx) => {
      await tx.query(write(2));
      throw new Error('changed my mind');
    });
    expect(await notificationsAfter(() => rolledBack.catch(() => {}))).toBe(0);
  });

  it.skipIf(kind !== 'postgres')(
    'positions committed events while an older transaction runs; one that commits late comes after them',
    async () => {
      const positions = async () => {
        const { rows } = await db().query<{ reason: string; seq: string | null }>(
          `SELECT reason, seq::text AS seq FROM revocation_events WHERE reason IN ('late', 'early') ORDER BY id`,
        );
        return rows;
      };
      await log.sequence(); // the earlier tests' events
      const older = new pg.Client({ connectionString: test().databaseUrl });
      await older.connect();
      try {
        await older.query('BEGIN');
        await older.query(`INSERT INTO revocation_events (type, reason) VALUES ('task.ended', 'late')`);
        await db().query(`INSERT INTO revocation_events (type, reason) VALUES ('task.ended', 'early')`);
        // Whatever else runs on the server (other test files, a pg_dump), the committed event goes now.
        expect(await log.sequence()).toMatchObject({ sequenced: 1, waiting: false });
        const [early] = await positions();
        expect(early).toMatchObject({ reason: 'early', seq: expect.any(String) });
        await older.query('COMMIT');
        expect(await log.sequence()).toMatchObject({ sequenced: 1, waiting: false });
        const after = await positions();
        expect(after.map((row) => row.reason)).toEqual(['late', 'early']); // written first...
        expect(BigInt(after[0]!.seq!)).toBeGreaterThan(BigInt(after[1]!.seq!)); // ...positioned after
      } finally {
        await older.end();
      }
    },
  );
});
