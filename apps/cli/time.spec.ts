import { describe, expect, it } from 'vitest';
import { parseTime } from './time.js';

const now = new Date('2026-11-27T12:00:00.000Z');

describe('parseTime', () => {
  it('takes dates and RFC 3339 times as they are, and times ago from now', () => {
    expect(parseTime('since', '2026-11-24', now)).toBe('2026-11-24');
    expect(parseTime('since', '2026-11-24T09:30:00Z', now)).toBe('2026-11-24T09:30:00Z');
    expect(parseTime('since', '2026-11-24T09:30:00.5+01:00', now)).toBe('2026-11-24T09:30:00.5+01:00');
    expect(parseTime('since', '7d', now)).toBe('2026-11-20T12:00:00.000Z');
    expect(parseTime('since', '12h', now)).toBe('2026-11-27T00:00:00.000Z');
    expect(parseTime('since', '30m', now)).toBe('2026-11-27T11:30:00.000Z');
    expect(parseTime('since', '2w', now)).toBe('2026-11-13T12:00:00.000Z');
    expect(parseTime('until', 'now', now)).toBe(now.toISOString());
  });

  it('refuses anything else, naming the option', () => {
    for (const value of [
      'yesterday',
      '2026-02-30',
      '2026-11-24T09:30:00',
      '2026-11-24 09:30:00Z',
      '7',
      '7y',
      '-7d',
      '2026-11-24T24:00:00Z',
    ]) {
      expect(() => parseTime('since', value, now), value).toThrow(/^--since: /);
    }
  });
});
