import { z } from 'zod';

/** An event's position, as its `id:` line sent it: resume after it. */
export const position = z.string().regex(/^\d{1,18}$/, 'must be an event id this stream sent');
export const eventsQuery = z.strictObject({ last_event_id: position.optional() });
