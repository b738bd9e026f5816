import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runDemo } from '../apps/demo/demo.js';
import { startBroker } from './support/broker.js';
import { asAdmin } from './support/scenario.js';

async function demo(env: Record<string, string>): Promise<{ status: number; lines: string[]; text: string }> {
  const lines: string[] = [];
  const status = await runDemo({ env, print: (line) => lines.push(line) });
  return { status, lines, text: lines.join('\n') };
}

function expectNoSecrets(text: string, ...secrets: string[]): void {
  // No JWT (tokens, assertions) and no key ever reaches the transcript.
  expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\./);
  for (const secret of secrets) expect(text).not.toContain(secret);
}

describe('npm run demo', () => {
  it('tells the story on an embedded Tollgate, exits 0, and removes its data folder', { timeout: 90_000 }, async () => {
    const { status, lines, text } = await demo({});
    expect(status).toBe(0);
    const inOrder = [
      /Tollgate runs on http:\/\/127\.0\.0\.1:\d+, embedded PGlite database in (\S+),/,
      /admin +boundary crm-orders: intent order_status may use action orders:read/,
      /admin +boundary crm-refunds: intent refund may use action orders:refund/,
      /^1\. An order-status journey$/,
      /Tollgate +PERMIT: lease [0-9a-f-]{36}, Bearer token #[0-9a-f]{8}, expires in 120 s/,
      /tool +token #[0-9a-f]{8}: signature, audience and scope orders:read ok \(JWKS\); introspection: active/,
      /tool +200: order 1001 is shipped/,
      /SDK +revoked lease [0-9a-f-]{36} as soon as the call returned/,
      /^2\. The user steers the bot$/,
      /user +Forget that\. Just issue the refund/,
      /Tollgate +DENY, reasons \[intent_mismatch\] \(decision [0-9a-f-]{36}\)/,
      /tool +\(no refund request arrived: 0 calls\)/,
      /^3\. The journey changes to a refund$/,
      /Tollgate +task intent is now refund/,
      /Tollgate +PERMIT: lease [0-9a-f-]{36}, Bearer token #[0-9a-f]{8}, expires in 60 s/,
      /tool +201: refund R-1001-1 of 49\.90 EUR issued/,
      /^4\. The journey ends$/,
      /Tollgate +task completed \(task_completed\); leases revoked: [0-9a-f-]{36}/,
      /tool +token #[0-9a-f]{8}: .*but introspection says inactive \(revoked\) → 401/,
      /tool +token #[0-9a-f]{8}: .*but introspection says inactive \(revoked\) → 401/,
      /Tollgate +task history: opened order_status → intent_changed refund → completed/,
      /^The story went as expected \(\d+ checks passed\)\.$/,
    ];
    let at = 0;
    for (const pattern of inOrder) {
      const found = lines.findIndex((line, index) => index >= at && pattern.test(line));
      expect(found, `${pattern} after line ${at}:\n${text}`).toBeGreaterThanOrEqual(0);
      at = found + 1;
    }
    expect(text).not.toContain('✗');
    // The refund lease completed the task revoked is the one Tollgate permitted in step 3.
    const refundLease = /PERMIT: lease (\S+), Bearer token #\w+, expires in 60 s/.exec(text)![1]!;
    expect(text).toContain(`leases revoked: ${refundLease}`);
    const dataDir = /embedded PGlite database in (\S+),/.exec(text)![1]!;
    expect(existsSync(dataDir)).toBe(false);
    expectNoSecrets(text);
  });

  it('uses TOLLGATE_URL and TOLLGATE_ADMIN_KEY when set, and exits non-zero when the story breaks', { timeout: 90_000 }, async () => {
    const broker = await startBroker();
    try {
      const env = { TOLLGATE_URL: broker.url, TOLLGATE_ADMIN_KEY: broker.adminKey };
      const first = await demo(env);
      expect(first.status, first.text).toBe(0);
      expect(first.text).toContain(`against ${broker.url}`);
      expectNoSecrets(first.text, broker.adminKey);
      const decisions = await asAdmin(broker)('GET', '/v1/decisions?workload=support-bot');
      expect(decisions.body.items.map((decision: { outcome: string }) => decision.outcome)).toEqual(['permit', 'deny', 'permit']);

      // The kill switch stays on when the demo re-registers its workload: the bot is refused.
      expect((await asAdmin(broker)('POST', '/v1/admin/workloads/support-bot/revoke')).status).toBe(200);
      const second = await demo(env);
      expect(second.status).toBe(1);
      expect(second.text).toMatch(/✗ +the story stopped: InvalidClient \(invalid_client, HTTP 401\): workload authentication failed: unknown or disabled workload/);
      expect(second.text).toMatch(/The story did NOT go as expected/);
      expectNoSecrets(second.text, broker.adminKey);

      const missingKey = await demo({ TOLLGATE_URL: broker.url });
      expect(missingKey.status).toBe(2);
      expect(missingKey.text).toContain('TOLLGATE_ADMIN_KEY must name');
    } finally {
      await broker.close();
    }
  });
});
