import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runDemo } from '../apps/demo/demo.js';
import { startBroker } from './support/broker.js';
import { asAdmin, metric } from './support/scenario.js';

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
      /admin +boundary crm-refunds: intent refund may use action orders:refund.*; a reviewer must approve when context\.params\.amount > 100$/,
      /admin +on both: a task is suspended at its 3rd drift denial \(drift_threshold 3\)/,
      /admin +API key [0-9a-f-]{36} \(role reviewer\) for the on-call reviewer/,
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
      /bot +asks Tollgate for a credential: crm-refunds \/ orders:refund on order\/1001, amount 49 EUR/,
      /Tollgate +PERMIT: lease [0-9a-f-]{36}, Bearer token #[0-9a-f]{8}, expires in 60 s/,
      /tool +201: refund R-1001-1 of 49 EUR issued/,
      /^4\. The journey ends$/,
      /Tollgate +task completed \(task_completed\); leases revoked: [0-9a-f-]{36}/,
      /tool +token #[0-9a-f]{8}: .*but introspection says inactive \(revoked\) → 401/,
      /tool +token #[0-9a-f]{8}: .*but introspection says inactive \(revoked\) → 401/,
      /Tollgate +task history: opened order_status → intent_changed refund → completed/,
      /^5\. A large refund waits for a reviewer$/,
      /bot +asks Tollgate for a credential: crm-refunds \/ orders:refund on order\/1002, amount 349 EUR/,
      /Tollgate +PENDING: context\.params\.amount > 100 holds; approval ([0-9a-f-]{36}) waits for a reviewer, no credential yet/,
      /reviewer +queue: support-bot asks orders:refund on order\/1002, params \{"amount":349\}, intent refund/,
      /reviewer +approves: "photo of the broken machine checked"/,
      /Tollgate +approval [0-9a-f-]{36}: approved by reviewer:[0-9a-f-]{36}/,
      /bot +repeats the very same request with approval [0-9a-f-]{36}/,
      /Tollgate +PERMIT: lease [0-9a-f-]{36}, Bearer token #[0-9a-f]{8}, expires in 60 s/,
      /tool +token #[0-9a-f]{8}: signature, audience and scope orders:refund ok \(JWKS\); introspection: active/,
      /tool +201: refund R-1002-2 of 349 EUR issued for order 1002/,
      /Tollgate +approval [0-9a-f-]{36} is now used \(by lease [0-9a-f-]{36}\)/,
      /bot +asks again with the same approval/,
      /Tollgate +DENY, reasons \[approval_used\] \(decision [0-9a-f-]{36}\): the approval was already used/,
      /^6\. A steered bot is suspended \(drift guard\)$/,
      /Tollgate +PERMIT: lease ([0-9a-f-]{36}), Bearer token #[0-9a-f]{8}, expires in 120 s/,
      /tool +200: order 1001 is shipped/,
      /Tollgate +DENY, reasons \[intent_mismatch\] \(decision [0-9a-f-]{36}\): the tool boundary does not serve the task's intent$/,
      /Tollgate +DENY, reasons \[action_not_allowed\] \(decision [0-9a-f-]{36}\)/,
      /Tollgate +DENY, reasons \[intent_mismatch\] \(decision [0-9a-f-]{36}\): .*; the task is suspended \(drift_detected\)$/,
      /Tollgate +task revoked \(drift_detected\); lease [0-9a-f-]{36}: revoked \(drift_detected\)/,
      /tool +token #[0-9a-f]{8}: .*but introspection says inactive \(revoked\) → 401/,
      /Tollgate +DENY, reasons \[task_not_active\]/,
      /^ +deny crm-refunds \/ orders:refund \[intent_mismatch\], drift: counted$/,
      /^ +deny crm-orders \/ orders:cancel \[action_not_allowed\], drift: counted$/,
      /^ +deny crm-refunds \/ orders:refund \[intent_mismatch\], drift: suspended the task$/,
      /^The story went as expected \(22 checks passed\)\.$/,
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
    // The approval the reviewer approved is the one Tollgate held the refund for, used by the lease it permitted.
    const approval = /PENDING: .*approval (\S+) waits/.exec(text)![1]!;
    const approvedLease = /PERMIT: lease (\S+),.*\n.*CRM POST \/orders\/1002\/refund/.exec(text)![1]!;
    expect(text).toContain(`approval ${approval}: approved by reviewer:`);
    expect(text).toContain(`approval ${approval} is now used (by lease ${approvedLease})`);
    // The lease the drift guard revoked is the one the steered task held.
    const keptLease = /PERMIT: lease (\S+),.*expires in 120 s(?![\s\S]*PERMIT: lease)/.exec(text)![1]!;
    expect(text).toContain(`lease ${keptLease}: revoked (drift_detected)`);
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
      // Newest first: the steered task (a permit, three drift denials, one after the suspension),
      // the approved refund (pending, permit, the refused reuse), the first journey.
      expect(
        decisions.body.items.map((decision: { outcome: string; reasons: string[] }) => [decision.outcome, ...decision.reasons]),
      ).toEqual([
        ['deny', 'task_not_active'],
        ['deny', 'intent_mismatch'],
        ['deny', 'action_not_allowed'],
        ['deny', 'intent_mismatch'],
        ['permit'],
        ['deny', 'approval_used'],
        ['permit'],
        ['pending', 'approval_required'],
        ['permit'],
        ['deny', 'intent_mismatch'],
        ['permit'],
      ]);
      expect(await metric(broker, 'tollgate_drift_suspensions_total')).toBe(1);
      expect(await metric(broker, 'tollgate_credential_requests_total{outcome="pending",reason="approval_required"}')).toBe(1);

      // The kill switch stays on when the demo re-registers its workload: the bot is refused.
      expect((await asAdmin(broker)('POST', '/v1/admin/workloads/support-bot/revoke')).status).toBe(200);
      const second = await demo(env);
      expect(second.status).toBe(1);
      expect(second.text).toMatch(
        /✗ +the story stopped: InvalidClient \(invalid_client, HTTP 401\): workload authentication failed: unknown or disabled workload/,
      );
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
