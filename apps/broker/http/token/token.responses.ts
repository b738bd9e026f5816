import { z } from 'zod';
import { uuid } from '../common/responses.js';

/** RFC 8693 §2.2.1, plus the lease the token is bound to. */
export const tokenResponse = z.strictObject({
  access_token: z.string(),
  issued_token_type: z.literal('urn:ietf:params:oauth:token-type:access_token'),
  token_type: z.enum(['Bearer', 'DPoP']).describe('DPoP when the request carried a DPoP proof'),
  expires_in: z.int(),
  scope: z.string(),
  lease_id: uuid,
});
