import { z } from 'zod';
import type { PublishedKey } from '../../../../libs/keys/index.js';
import { nullableTime, time } from '../common/responses.js';

const signingKey = z.strictObject({
  kid: z.string(),
  alg: z.enum(['EdDSA', 'ES256']),
  state: z
    .enum(['next', 'active', 'retired'])
    .describe('next: published, not yet signing; retired: published until everything it signed has expired'),
  created_at: time,
  activated_at: nullableTime,
  retired_at: nullableTime,
  publish_until: nullableTime,
});
export const signingKeyList = z.strictObject({ active_kid: z.string(), keys: z.array(signingKey) });
export const signingKeyRotation = z.strictObject({
  active_kid: z.string(),
  retired_kid: z.string().nullable(),
  next_kid: z.string(),
  keys: z.array(signingKey),
});

export function keyView(key: PublishedKey): z.infer<typeof signingKeyList>['keys'][number] {
  return {
    kid: key.kid,
    alg: key.alg,
    state: key.state,
    created_at: key.createdAt.toISOString(),
    activated_at: key.activatedAt?.toISOString() ?? null,
    retired_at: key.retiredAt?.toISOString() ?? null,
    publish_until: key.publishUntil?.toISOString() ?? null,
  };
}
