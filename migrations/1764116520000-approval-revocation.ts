import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An approval's revocation is stored, not derived (issue 12, finding 7). Deriving `revoked` from
 * `tasks.intent <> approvals.intent` on every read let an approval killed by an intent change come
 * back when the intent changed back. Now the change that kills an open approval (its task ends,
 * its task changes intent, its boundary is disabled) sets `status = 'revoked'`, `revoked_at` and
 * `revoke_reason` (intent_changed, boundary_disabled, or the task's end reason, as leases have it)
 * in its own transaction, by trigger, so every path that ends a task (complete,
 * the kill switch, the drift guard, the expiry sweeper) or disables a boundary is covered, and
 * nothing later can undo it. An approval past its own time is left alone: it reads `expired`.
 *
 * Backfill: open approvals whose task has ended, whose task changed intent since they were asked
 * for (even if it changed back), or whose boundary has had a disabled version since.
 */
export class ApprovalRevocation1764116520000 implements MigrationInterface {
  name = 'ApprovalRevocation1764116520000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE approvals ADD COLUMN revoked_at timestamptz, ADD COLUMN revoke_reason text');
    await q.query('ALTER TABLE approvals DROP CONSTRAINT approvals_status_check');
    await q.query(`ALTER TABLE approvals ADD CONSTRAINT approvals_status_check
      CHECK (status IN ('pending', 'approved', 'denied', 'used', 'revoked'))`);
    await q.query(`ALTER TABLE approvals ADD CONSTRAINT approvals_revoked_whole
      CHECK ((status = 'revoked') = (revoked_at IS NOT NULL AND revoke_reason IS NOT NULL))`);

    await q.query(`
      UPDATE approvals a SET status = 'revoked', revoked_at = now(),
             revoke_reason = CASE WHEN t.state <> 'active' THEN coalesce(t.end_reason, 'task_' || t.state) ELSE 'intent_changed' END
        FROM tasks t
       WHERE t.id = a.task_id AND a.status IN ('pending', 'approved') AND a.expires_at > now()
         AND (t.state <> 'active' OR t.intent <> a.intent
              OR EXISTS (SELECT 1 FROM task_events e WHERE e.task_id = a.task_id AND e.kind = 'intent_changed' AND e.at >= a.requested_at))`);
    await q.query(`
      UPDATE approvals a SET status = 'revoked', revoked_at = now(), revoke_reason = 'boundary_disabled'
       WHERE a.status IN ('pending', 'approved') AND a.expires_at > now()
         AND EXISTS (SELECT 1 FROM boundaries b WHERE b.id = a.boundary_id AND b.version > a.boundary_version AND NOT b.enabled)`);

    // A task that ends or changes intent revokes its open approvals, in the same transaction.
    await q.query(`
      CREATE FUNCTION approvals_revoke_for_task() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE approvals SET status = 'revoked', revoked_at = now(),
               revoke_reason = CASE WHEN NEW.state <> 'active' THEN coalesce(NEW.end_reason, 'task_' || NEW.state) ELSE 'intent_changed' END
         WHERE task_id = NEW.id AND status IN ('pending', 'approved') AND expires_at > now()
           AND (NEW.state <> 'active' OR intent <> NEW.intent);
        RETURN NULL;
      END
      $$`);
    await q.query(`
      CREATE TRIGGER tasks_revoke_approvals AFTER UPDATE OF state, intent ON tasks FOR EACH ROW
      WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.intent IS DISTINCT FROM NEW.intent)
      EXECUTE FUNCTION approvals_revoke_for_task()`);
    // A boundary version written disabled (PUT with enabled: false, or DELETE) revokes the
    // boundary's open approvals: enabling it again does not bring them back.
    await q.query(`
      CREATE FUNCTION approvals_revoke_for_boundary() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE approvals SET status = 'revoked', revoked_at = now(), revoke_reason = 'boundary_disabled'
         WHERE boundary_id = NEW.id AND status IN ('pending', 'approved') AND expires_at > now();
        RETURN NULL;
      END
      $$`);
    await q.query(`
      CREATE TRIGGER boundaries_revoke_approvals AFTER INSERT ON boundaries FOR EACH ROW
      WHEN (NOT NEW.enabled) EXECUTE FUNCTION approvals_revoke_for_boundary()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER boundaries_revoke_approvals ON boundaries');
    await q.query('DROP FUNCTION approvals_revoke_for_boundary()');
    await q.query('DROP TRIGGER tasks_revoke_approvals ON tasks');
    await q.query('DROP FUNCTION approvals_revoke_for_task()');
    await q.query('ALTER TABLE approvals DROP CONSTRAINT approvals_revoked_whole');
    // Reads derived `revoked` before: a stored revocation goes back to what it was decided as.
    await q.query(`UPDATE approvals SET status = 'approved' WHERE status = 'revoked' AND decided_at IS NOT NULL`);
    await q.query(`UPDATE approvals SET status = 'pending' WHERE status = 'revoked'`);
    await q.query('ALTER TABLE approvals DROP CONSTRAINT approvals_status_check');
    await q.query(`ALTER TABLE approvals ADD CONSTRAINT approvals_status_check
      CHECK (status IN ('pending', 'approved', 'denied', 'used'))`);
    await q.query('ALTER TABLE approvals DROP COLUMN revoke_reason, DROP COLUMN revoked_at');
  }
}
