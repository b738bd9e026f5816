import { UsageError } from './errors.js';

const UNITS_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A --since/--until value as the API takes it: a date (2026-11-24, a UTC day), an RFC 3339 time
 * (2026-11-24T09:00:00Z, 2026-11-24T10:00:00+01:00), `now`, or a time before now (`7d`, `12h`,
 * `30m`, `90s`, `2w`).
 */
export function parseTime(option: string, value: string, now: Date): string {
  const relative = /^(\d{1,6})([smhdw])$/.exec(value);
  if (relative) return new Date(now.getTime() - Number(relative[1]) * UNITS_MS[relative[2]!]!).toISOString();
  if (value === 'now') return now.toISOString();
  const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (date && validDay(Number(date[1]), Number(date[2]), Number(date[3]))) return value;
  const time = /^(\d{4})-(\d{2})-(\d{2})[Tt]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$/.exec(value);
  if (time && validDay(Number(time[1]), Number(time[2]), Number(time[3])) && !Number.isNaN(Date.parse(value))) return value;
  throw new UsageError(
    `--${option}: "${value}" is not a date (2026-11-24), an RFC 3339 time (2026-11-24T09:00:00Z) or a time ago (7d, 12h, 30m)`,
  );
}

function validDay(year: number, month: number, day: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** A time for a table: UTC to the second. */
export function shortTime(iso: string | null | undefined): string {
  if (!iso) return '-';
  return iso.replace(/\.\d+Z$/, 'Z');
}
