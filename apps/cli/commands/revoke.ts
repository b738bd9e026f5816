import { Command, type Io } from '../context.js';
import { UsageError } from '../errors.js';
import { shortTime } from '../time.js';

/** `tollgate revoke lease|task|workload ID [--reason TEXT]`. */
export async function revoke(io: Io, args: string[]): Promise<number> {
  const command = new Command({ name: 'revoke', io, args, options: { reason: { type: 'string' } } });
  const [what, id] = command.expectPositionals('lease|task|workload', 'id');
  const reason = command.option('reason');
  const body = reason === undefined ? {} : { reason };
  const api = command.api();
  const path = encodeURIComponent(id!);
  switch (what) {
    case 'lease': {
      const lease = await api.post<{
        lease_id: string;
        state: string;
        revoke_reason: string | null;
        revoked_at: string | null;
        revoked_now: boolean;
      }>(`/v1/admin/leases/${path}/revoke`, body);
      if (command.json) command.printJson(lease);
      else if (lease.revoked_now) command.print(`Revoked lease ${lease.lease_id} (${lease.revoke_reason}).`);
      else
        command.print(
          `Lease ${lease.lease_id} was not live (${lease.state}${lease.revoke_reason ? `, ${lease.revoke_reason}` : ''}${lease.revoked_at ? ` at ${shortTime(lease.revoked_at)}` : ''}): nothing changed.`,
        );
      return 0;
    }
    case 'task': {
      const task = await api.post<{ task_id: string; state: string; end_reason: string | null; revoked_leases: string[] }>(
        `/v1/admin/tasks/${path}/revoke`,
        body,
      );
      if (command.json) command.printJson(task);
      else if (task.state === 'revoked' && task.end_reason === 'revoked_by_admin' && task.revoked_leases.length > 0) {
        command.print(
          `Revoked task ${task.task_id}: ${task.revoked_leases.length} live lease(s) revoked (${task.revoked_leases.join(', ')}).`,
        );
      } else
        command.print(
          `Task ${task.task_id} is ${task.state}${task.end_reason ? ` (${task.end_reason})` : ''}; ${task.revoked_leases.length} live lease(s) revoked now.`,
        );
      return 0;
    }
    case 'workload': {
      // The kill switch takes no body: its reason is the switch itself (workload_revoked).
      if (reason !== undefined)
        throw new UsageError('revoke workload: the kill switch takes no --reason (its leases read workload_revoked)');
      const result = await api.post<{ workload_id: string; revoked_tasks: number; revoked_leases: number }>(
        `/v1/admin/workloads/${path}/revoke`,
        {},
      );
      if (command.json) command.printJson(result);
      else
        command.print(
          `Workload ${result.workload_id} disabled: ${result.revoked_tasks} task(s) and ${result.revoked_leases} lease(s) revoked.`,
        );
      return 0;
    }
    default:
      throw new UsageError(`revoke: expected lease, task or workload, got "${what}"`);
  }
}
