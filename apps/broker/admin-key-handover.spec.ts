import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { handOverAdminKey } from './admin-key-handover.js';

const KEY = `tgadm_${'k'.repeat(43)}`;
let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('handOverAdminKey', () => {
  it('shows the key on a terminal and writes no file', () => {
    dir = mkdtempSync(join(tmpdir(), 'handover-'));
    expect(handOverAdminKey(KEY, { dataDir: dir, terminal: true })).toContain(KEY);
    expect(() => statSync(join(dir, 'admin-key'))).toThrow();
  });

  it('elsewhere writes it to a 0600 file, even over an older file with looser mode, and says only where', () => {
    dir = mkdtempSync(join(tmpdir(), 'handover-'));
    writeFileSync(join(dir, 'admin-key'), 'old\n', { mode: 0o644 });
    const said = handOverAdminKey(KEY, { dataDir: dir, terminal: false });
    expect(said).not.toContain(KEY);
    expect(said).toContain(join(dir, 'admin-key'));
    expect(readFileSync(join(dir, 'admin-key'), 'utf8')).toBe(`${KEY}\n`);
    expect(statSync(join(dir, 'admin-key')).mode & 0o777).toBe(0o600);
  });
});
