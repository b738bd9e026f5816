import { createPublicKey } from 'node:crypto';
import type { JWK } from 'jose';
import { z } from 'zod';
import { InvalidRequest } from '../../../../libs/errors/index.js';
import { describeUnstorable, findUnstorable } from '../../../../libs/db/index.js';
import { PRIVATE_JWK_MEMBERS, algorithmsFor } from '../../../../libs/identity/index.js';

/**
 * HTTP input schemas, the part every resource shares: parse(), and the fragments (ids, text, ttls,
 * JWKs, timestamps, cursors, review filters) each `<resource>/<resource>.requests.ts` builds from.
 * Objects are strict (an unknown field is an error naming it), strings refuse
 * control characters and broken unicode, and every error names the offending field.
 */
export function parse<T extends z.ZodType>(
  schema: T,
  input: unknown,
  where = 'body',
  /** Fields decided and recorded whatever they hold (a credential request's params): not refused here. */
  options: { decided?: readonly (readonly (string | number)[])[] } = {},
): z.infer<T> {
  // Before the schema: its refinements (and everything after it) may recurse, and the database
  // cannot keep NUL or lone surrogates. The first such value anywhere, keys included, is a 400.
  const decided = options.decided ?? [];
  const problem = findUnstorable(input, { skip: (path) => decided.some((field) => samePath(field, path)) });
  if (problem) {
    const path = problem.path.length ? fieldName(problem.path) : where;
    throw new InvalidRequest(`${path}: ${describeUnstorable(problem)}`, { field: path });
  }
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.length ? issue.path.map(String).join('.') : where;
  if (issue.code === 'unrecognized_keys') {
    const field = [...issue.path.map(String), issue.keys[0]].join('.');
    throw new InvalidRequest(`unknown field "${field}"`, { field });
  }
  throw new InvalidRequest(`${path}: ${issue.message}`, { field: path });
}

function samePath(a: readonly (string | number)[], b: readonly (string | number)[]): boolean {
  return a.length === b.length && a.every((part, index) => String(part) === String(b[index]));
}

/** A field path for an error: dotted, and short enough to echo (a key may be a megabyte long). */
function fieldName(path: readonly (string | number)[]): string {
  const name = path.map(String).join('.');
  return name.length > 256 ? `${name.slice(0, 256)}…` : name;
}

export const cleanText = (max: number) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)
    .refine(
      (value) => value.isWellFormed() && !/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/.test(value),
      'must not contain control characters, bidi controls or broken unicode',
    );

export const ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const id = z.string().regex(ID, 'must match [a-z0-9][a-z0-9._-]{0,62}');
export const intent = z.string().regex(/^[a-z0-9][a-z0-9._:-]{0,127}$/, 'must match [a-z0-9][a-z0-9._:-]{0,127}');
export const action = z.string().regex(/^[a-z0-9][a-zA-Z0-9._:/-]{0,127}$/, 'must match [a-z0-9][a-zA-Z0-9._:/-]{0,127}');
export const ttl = (max: number) => z.number().int('must be an integer').min(1, 'must be at least 1').max(max, `must be at most ${max}`);

/** Cedar text: newlines and tabs are its whitespace; other control characters are refused. */
export const policyText = z
  .string()
  .min(1, 'must not be empty')
  .max(65_536, 'must be at most 65536 characters')
  .refine(
    (value) => value.isWellFormed() && !/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/.test(value),
    'must not contain control characters other than newlines and tabs, bidi controls or broken unicode',
  );

export const b64url = z
  .string()
  .regex(/^[A-Za-z0-9_-]+$/, 'must be base64url')
  .max(256);
export const publicJwk = z
  .looseObject({
    kty: z.enum(['OKP', 'EC']),
    crv: z.string(),
    x: b64url,
    y: b64url.optional(),
    kid: cleanText(128).optional(),
    alg: z.string().optional(),
    use: z.literal('sig').optional(),
    // A workload key only ever verifies assertions.
    key_ops: z.array(z.literal('verify')).length(1, 'must be ["verify"]').optional(),
  })
  .superRefine((jwk, ctx) => {
    let problems = 0;
    for (const member of PRIVATE_JWK_MEMBERS) {
      if (member in jwk) {
        problems++;
        ctx.addIssue({ code: 'custom', message: `private key material ("${member}") is not accepted; register public keys only` });
      }
    }
    const algorithms = algorithmsFor(jwk as JWK);
    if (algorithms.length === 0) ctx.addIssue({ code: 'custom', message: 'only Ed25519 (OKP) and P-256 (EC) keys are accepted' });
    else if (jwk.alg !== undefined && !algorithms.includes(jwk.alg))
      ctx.addIssue({ code: 'custom', message: `alg ${jwk.alg} does not fit the key` });
    if (jwk.kty === 'EC' && jwk.y === undefined) ctx.addIssue({ code: 'custom', message: 'an EC key needs "y"' });
    else if (problems === 0 && algorithms.length > 0 && !isPublicKey(jwk)) {
      // A point that is not on the curve, or an x of the wrong length, could never verify anything.
      ctx.addIssue({ code: 'custom', message: `is not a valid ${jwk.crv} public key` });
    }
    const known = new Set(['kty', 'crv', 'x', 'y', 'kid', 'alg', 'use', 'key_ops', ...PRIVATE_JWK_MEMBERS]);
    for (const member of Object.keys(jwk)) {
      if (!known.has(member)) ctx.addIssue({ code: 'custom', message: `unknown JWK member "${member}"` });
    }
  });

/** True when Node can build a public key from the JWK's public members (on the curve, right length). */
function isPublicKey(jwk: { kty: string; crv: string; x: string; y?: string | undefined }): boolean {
  try {
    const key = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, ...(jwk.y === undefined ? {} : { y: jwk.y }) };
    createPublicKey({ key, format: 'jwk' });
    return true;
  } catch {
    return false;
  }
}

/** Documents the DPoP request header (RFC 9449); the proof itself is checked in libs/identity/dpop. */
export const dpopHeader = z
  .string()
  .describe('an RFC 9449 DPoP proof (a JWT with typ dpop+jwt): binds the issued credential to the proof key (cnf.jkt)');

export const timestamp = z
  .string()
  .refine(isRfc3339, 'must be an RFC 3339 timestamp (e.g. 2025-01-31T12:00:00Z) or a date')
  .transform((value) => new Date(value));

/** A full RFC 3339 date-time with its offset, or a full-date (UTC midnight); no calendar overflow. */
function isRfc3339(value: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2})))?$/.exec(value);
  if (!match) return false;
  const [year, month, day, hour = 0, minute = 0, second = 0, offsetHour = 0, offsetMinute = 0] = match
    .slice(1)
    .map((part) => (part === undefined ? undefined : Number(part)));
  const daysInMonth = new Date(Date.UTC(year!, month!, 0)).getUTCDate();
  return (
    month! >= 1 &&
    month! <= 12 &&
    day! >= 1 &&
    day! <= daysInMonth &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59 &&
    offsetHour <= 23 &&
    offsetMinute <= 59 &&
    !Number.isNaN(Date.parse(value))
  );
}
export const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a UUID');
export const limit = z
  .string()
  .regex(/^\d{1,4}$/, 'must be an integer from 1 to 1000')
  .transform(Number)
  .refine((value) => value >= 1 && value <= 1000, 'must be an integer from 1 to 1000')
  .default(100);
export const cursor = z
  .string()
  .max(64)
  .transform((value, ctx) => {
    const decoded = Buffer.from(value, 'base64url').toString('utf8');
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(decoded)) {
      ctx.addIssue({ code: 'custom', message: 'is not a cursor this API returned' });
      return z.NEVER;
    }
    return decoded;
  });

export const reviewFilters = {
  task: uuid.optional(),
  workload: z.string().max(2048).optional(),
  boundary: id.optional(),
  since: timestamp.optional(),
  until: timestamp.optional(),
  limit,
  cursor: cursor.optional(),
};

/** Leases and decisions also answer "who could call this tool, for whom, to do what". */
export const callFilters = {
  subject: cleanText(256).optional().describe("the task's end-user subject"),
  tool: cleanText(512).optional().describe('the boundary tool (token audience)'),
  action: action.optional(),
};

/** A window that ends before it starts would only ever answer "nothing": say so instead of an empty page. */
export const sinceBeforeUntil = (filter: { since?: Date | undefined; until?: Date | undefined }) =>
  !filter.since || !filter.until || filter.since < filter.until;
export const SINCE_BEFORE_UNTIL = { message: 'must be before until', path: ['since'] };

export function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

/** Routes that take no input still refuse input they would ignore. */
export const emptyBody = z.strictObject({});
