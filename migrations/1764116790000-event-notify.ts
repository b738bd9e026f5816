import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Revocations reach event streams at once instead of at the feed's next poll (issue 14: a kept token
 * refused by a tool within a second). Any statement that writes revocation events says so on the
 * `tollgate_events` channel; every replica's feed LISTENs and reads at once (the poll stays, for a
 * replica whose listening connection is down). The notification carries nothing: readers learn what
 * happened from the log, in order, as before.
 *
 * A statement trigger with a transition table, so only a statement that wrote rows notifies: the
 * credential path's statements (a permit writes no event; a denial writes one only when it ends a
 * drifting task) neither notify nor take the commit-time lock NOTIFY needs. One notification per
 * statement, however many leases it revoked.
 */
export class EventNotify1764116790000 implements MigrationInterface {
  name = 'EventNotify1764116790000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION tollgate_events_written() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF EXISTS (SELECT 1 FROM written) THEN
          PERFORM pg_notify('tollgate_events', '');
        END IF;
        RETURN NULL;
      END
      $$`);
    await q.query(`
      CREATE TRIGGER revocation_events_notify AFTER INSERT ON revocation_events
        REFERENCING NEW TABLE AS written
        FOR EACH STATEMENT EXECUTE FUNCTION tollgate_events_written()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER revocation_events_notify ON revocation_events');
    await q.query('DROP FUNCTION tollgate_events_written()');
  }
}
