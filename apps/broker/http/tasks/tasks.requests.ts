import { z } from 'zod';
import { jsonText } from '../../../../libs/db/index.js';
import { MAX_TASK_TTL_S } from '../../../../libs/tasks/index.js';
import { action, cleanText, id, intent, ttl } from '../common/requests.js';

export const openTaskBody = z.strictObject({
  intent,
  subject: cleanText(256),
  ttl: ttl(MAX_TASK_TTL_S).optional(),
  context: z
    .record(z.string().max(128), z.unknown())
    .refine((value) => jsonText(value).length <= 4096, 'must serialise to at most 4 KiB')
    .optional(),
});

export const intentBody = z.strictObject({ intent });

export const credentialBody = z.strictObject({
  boundary: id,
  action,
  resource: cleanText(1024).optional(),
  params: z
    .record(z.string().max(128), z.unknown())
    .refine((value) => jsonText(value).length <= 16_384, 'must serialise to at most 16 KiB')
    .optional(),
  purpose: cleanText(512).optional(),
  ttl: ttl(3600).optional(),
  /** Repeats a request that needed approval: the id from the 202 answer. */
  approval_id: z
    .string()
    .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a UUID')
    .optional(),
});
