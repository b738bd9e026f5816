import { createHash } from 'node:crypto';

/** A short, stable name for a token in the transcript: never the token itself. */
export function fingerprint(token: string): string {
  return `#${createHash('sha256').update(token).digest('hex').slice(0, 8)}`;
}
