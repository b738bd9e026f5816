import { describe, expect, it } from 'vitest';
import { leaseTtl } from './ttl.js';

describe('leaseTtl', () => {
  const base = { defaultTtl: 300, maxTtl: 900, taskSecondsLeft: 1800 };

  it('uses the boundary default when nothing is requested', () => {
    expect(leaseTtl({ ...base, requested: undefined })).toBe(300);
  });

  it('honours a request below the maximum, even above the default', () => {
    expect(leaseTtl({ ...base, requested: 600 })).toBe(600);
    expect(leaseTtl({ ...base, requested: 5 })).toBe(5);
  });

  it('caps a request at the boundary maximum', () => {
    expect(leaseTtl({ ...base, requested: 3600 })).toBe(900);
  });

  it('caps at the time left on the task, in whole seconds', () => {
    expect(leaseTtl({ ...base, requested: undefined, taskSecondsLeft: 42.9 })).toBe(42);
    expect(leaseTtl({ ...base, requested: 600, taskSecondsLeft: 100 })).toBe(100);
  });

  it('gives zero when the task has less than a second left or is past its time', () => {
    expect(leaseTtl({ ...base, requested: undefined, taskSecondsLeft: 0.5 })).toBe(0);
    expect(leaseTtl({ ...base, requested: undefined, taskSecondsLeft: -10 })).toBe(0);
  });

  it('caps at the ttl a reviewer approved, whatever the repeat asks for', () => {
    expect(leaseTtl({ ...base, requested: 900, approvedTtl: 60 })).toBe(60);
    expect(leaseTtl({ ...base, requested: undefined, approvedTtl: 60 })).toBe(60);
    expect(leaseTtl({ ...base, requested: 30, approvedTtl: 60 })).toBe(30);
    expect(leaseTtl({ ...base, requested: 600, approvedTtl: 60, taskSecondsLeft: 20 })).toBe(20);
  });
});
