import { z } from 'zod';
import type { ChainReport } from '../../../../libs/audit/index.js';
import type { AuditRecord } from '../../../../libs/audit/index.js';
import type { Checkpoint } from '../../../../libs/audit/index.js';
import { page, time, uuid } from '../common/responses.js';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const seq = z.string().regex(/^\d+$/).describe('the position the event was written in: a string of digits (a 64-bit integer)');

export const auditEventResponse = z.strictObject({
  id: uuid,
  seq,
  at: time.describe('to the microsecond, exactly as hashed'),
  kind: z.string(),
  actor: z.string().describe('workload:<id>, admin, <role>:<API key id>, or system:<job>'),
  task_id: uuid.nullable(),
  lease_id: uuid.nullable(),
  data: z.record(z.string(), z.unknown()).describe('what happened; tokens and secrets appear only as hashes'),
  prev_hash: hex64.nullable().describe('null until the chainer links the event (within about a second)'),
  hash: hex64.nullable().describe('SHA-256 of prev_hash followed by the canonical JSON of the event; null until linked'),
});

const chainHead = z.strictObject({ seq, hash: hex64 });

export const auditVerifyResponse = z.strictObject({
  ok: z.boolean(),
  verified: z.int().describe('linked events whose hashes and links were recomputed and held'),
  head: chainHead.nullable().describe('the last verified event; null when nothing is linked yet'),
  unchained: z.int().describe('events not linked yet: a normal tail while their transactions end'),
  anchor: chainHead
    .optional()
    .describe('set when older history was pruned: the last dropped event, whose hash the first kept event names; the walk starts there'),
  first_broken: z
    .strictObject({ seq, id: uuid, reason: z.enum(['altered', 'missing', 'reordered']) })
    .optional()
    .describe('altered: its content or hash changed; missing: the event before it is gone; reordered: the event before it is elsewhere'),
});

export const auditCheckpointResponse = z.strictObject({
  checkpoint: z
    .string()
    .describe('compact JWS (typ tollgate-audit-checkpoint+jwt) over {iss, seq, hash, iat}, verifiable with /.well-known/jwks.json'),
  seq: seq.describe('the head signed ("0" for an empty chain)'),
  hash: hex64,
  issued_at: time,
});

export const auditPage = page(auditEventResponse);

export function auditEventView(event: AuditRecord): z.infer<typeof auditEventResponse> {
  return {
    id: event.id,
    seq: event.seq,
    at: event.at,
    kind: event.kind,
    actor: event.actor,
    task_id: event.taskId,
    lease_id: event.leaseId,
    data: event.data,
    prev_hash: event.prevHash,
    hash: event.hash,
  };
}

export function chainReportView(report: ChainReport): z.infer<typeof auditVerifyResponse> {
  return {
    ok: report.ok,
    verified: report.verified,
    head: report.head,
    unchained: report.unchained,
    ...(report.anchor ? { anchor: report.anchor } : {}),
    ...(report.firstBroken ? { first_broken: report.firstBroken } : {}),
  };
}

export function checkpointView(checkpoint: Checkpoint): z.infer<typeof auditCheckpointResponse> {
  return {
    checkpoint: checkpoint.checkpoint,
    seq: checkpoint.seq,
    hash: checkpoint.hash,
    issued_at: new Date(checkpoint.issuedAt).toISOString(),
  };
}
