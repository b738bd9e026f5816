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

function step5(text: string): string {
  return text.slice(text.indexOf('5. A large refund'), text.indexOf('6. A tampered bot'));
}

function expectNoSecrets(text: string, ...secrets: string[]): void {
  // No JWT (tokens, assertions) and no key ever reaches the transcript.
  expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\./);
  // Nor any API key the demo creates (the CRM's resource_server key, the reviewer's): they carry their role's prefix.
  expect(text).not.toMatch(/tg(adm|rev|rs)_[A-Za-z0-9_-]{20,}/);
  for (const secret of secrets) expect(text).not.toContain(secret);
}

describe('npm run demo', () => {
  it('tells the story on an embedded Tollgate, exits 0, and removes its data folder', { timeout: 90_000 }, async () => {
    const { status, lines, text } = await demo({});
    expect(status, text).toBe(0);
    const lease = '[0-9a-f-]{36}';
    const inOrder = [
      /Tollgate runs on http:\/\/127\.0\.0\.1:\d+, embedded PGlite database in (\S+),/,
      /tool +the CRM is an MCP server \(official SDK, Streamable HTTP\) at http:\/\/127\.0\.0\.1:\d+\/mcp$/,
      /admin +API key [0-9a-f-]{36} \(role resource_server, audience http:\/\/127\.0\.0\.1:\d+\/mcp\) for the CRM's verifier/,
      /tool +the verifier follows Tollgate's event stream \(GET \/v1\/events\)/,
      /admin +lists the CRM's tools \(tools\/list needs no credential\): get_order \{order_id: string\}, refund_order \{order_id: string, amount: integer\}$/,
      /admin +boundary crm-orders \(as tollgate mcp import writes it\): intent order_status or refund may call get_order, its input schema as params_schema/,
      /admin +boundary crm-refunds .*: intent refund may call refund_order,.*; a reviewer must approve when context\.params\.amount > 100$/,
      /admin +on both: a task is suspended at its 3rd drift denial \(drift_threshold 3\)/,
      /admin +API key [0-9a-f-]{36} \(role reviewer\) for the on-call reviewer/,
      /tool +tools\/call get_order \{"order_id":"1001"\} with no credential → 401 invalid_token/,
      /bot +a tools\/call without a credential is answered 401, its challenge naming resource_metadata http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp$/,
      /bot +that RFC 9728 document: resource http:\/\/127\.0\.0\.1:\d+\/mcp, authorization server \["http:\/\/127\.0\.0\.1:\d+"\]$/,
      /^1\. An order-status journey$/,
      /bot +calls the MCP tool get_order \{"order_id":"1001"\}$/,
      /bot +asks Tollgate for a credential: crm-orders \/ get_order on order\/1001$/,
      new RegExp(`Tollgate +PERMIT: lease ${lease}, Bearer token #[0-9a-f]{8}, expires in 120 s`),
      /bot +→ CRM tools\/call get_order with token #[0-9a-f]{8}$/,
      /tool +tools\/call get_order .* with token #[0-9a-f]{8}: signature and audience ok \(JWKS\), tool, order and params digest match, lease .* not revoked \(event stream\)$/,
      /tool +get_order runs: order 1001 is shipped/,
      new RegExp(`SDK +revoked lease ${lease} as soon as the response was read$`),
      /bot +Your order 1001 is shipped/,
      /^2\. The user steers the bot$/,
      /user +Forget that\. Just issue the refund/,
      /bot +calls the MCP tool refund_order \{"order_id":"1001","amount":49\}$/,
      new RegExp(`Tollgate +DENY, reasons \\[intent_mismatch\\] \\(decision ${lease}\\)`),
      /bot +the tool answered with an error \(what the model reads\): Tollgate refused this call: intent_mismatch \(/,
      /tool +\(no tools\/call arrived: 0 calls\)/,
      /^3\. The journey changes to a refund$/,
      /Tollgate +task intent is now refund/,
      /bot +asks Tollgate for a credential: crm-refunds \/ refund_order on order\/1001, amount 49 EUR$/,
      new RegExp(`Tollgate +PERMIT: lease ${lease}, Bearer token #[0-9a-f]{8}, expires in 60 s`),
      /tool +refund_order runs: refund R-1001-1 of 49 EUR issued for order 1001 \(customer customer-42\)/,
      /bot +keeps a credential for get_order on order 1001, to check on the refund later/,
      /^4\. The journey ends$/,
      new RegExp(`Tollgate +task completed \\(task_completed\\); leases revoked: ${lease}$`),
      /bot +uses the get_order token #[0-9a-f]{8} it kept, in a tools\/call of its own/,
      /tool +tools\/call get_order .* with token #[0-9a-f]{8} → 401 invalid_token: the credential was revoked$/,
      /tool +refused \d+ ms after the bot completed the task \(\d+ tries admitted before\); introspections by its verifier so far: 0$/,
      /replay +someone replays the refund token #[0-9a-f]{8} from step 3/,
      /tool +tools\/call refund_order .* → 401 invalid_token: the credential was revoked$/,
      /replay +and the order status token #[0-9a-f]{8} from step 1/,
      /tool +tools\/call get_order .* → 401 invalid_token: the credential was revoked$/,
      /Tollgate +task history: opened order_status → intent_changed refund → completed/,
      /^5\. A large refund waits for a reviewer$/,
      /bot +asks Tollgate for a credential: crm-refunds \/ refund_order on order\/1002, amount 349 EUR$/,
      new RegExp(`Tollgate +PENDING: the approval rule holds; approval (${lease}) waits for a reviewer, no credential yet`),
      new RegExp(
        `bot +the tool answered with an error \\(what the model reads\\): Tollgate refused this call: it awaits a reviewer's approval \\(approval ${lease}`,
      ),
      /reviewer +queue: support-bot asks refund_order on order\/1002, params \{"amount":349,"order_id":"1002"\}, intent refund/,
      /reviewer +approves: "photo of the broken machine checked"/,
      new RegExp(`Tollgate +approval ${lease}: approved by reviewer:${lease}`),
      new RegExp(`bot +asks Tollgate for a credential: crm-refunds / refund_order on order/1002, amount 349 EUR with approval ${lease}$`),
      new RegExp(`Tollgate +PERMIT: lease ${lease}, Bearer token #[0-9a-f]{8}, expires in 60 s`),
      /tool +refund_order runs: refund R-1002-2 of 349 EUR issued for order 1002/,
      new RegExp(`Tollgate +approval ${lease} is now used \\(by lease ${lease}\\)`),
      /bot +asks again with the same approval/,
      new RegExp(`Tollgate +DENY, reasons \\[approval_used\\] \\(decision ${lease}\\): the approval was already used`),
      /^6\. A tampered bot changes the approved amount$/,
      /reviewer +queue: support-bot asks refund_order on order\/1003, params \{"amount":150,"order_id":"1003"\}/,
      new RegExp(`Tollgate +PERMIT: lease ${lease}, Bearer token (#[0-9a-f]{8}), expires in 60 s`),
      /tampered +sends its own tools\/call refund_order \{"order_id":"1003","amount":899\} with the approved token #[0-9a-f]{8}$/,
      /tool +tools\/call refund_order \{"order_id":"1003","amount":899\} with token #[0-9a-f]{8} → 403 insufficient_scope: the params are not the ones the credential was issued for$/,
      /tool +\(refunds issued for order 1003: 0\)/,
      /^7\. A steered bot is suspended \(drift guard\)$/,
      /tool +get_order runs: order 1001 is shipped/,
      new RegExp(`Tollgate +PERMIT: lease (${lease}), Bearer token #[0-9a-f]{8}, expires in 120 s`),
      /Tollgate +DENY, reasons \[intent_mismatch\] \(decision [0-9a-f-]{36}\): the tool boundary does not serve the task's intent$/,
      /Tollgate +DENY, reasons \[action_not_allowed\] \(decision [0-9a-f-]{36}\)/,
      /Tollgate +DENY, reasons \[intent_mismatch\] \(decision [0-9a-f-]{36}\): .*; the task is suspended \(drift_detected\)$/,
      /bot +the tool answered with an error \(what the model reads\): Tollgate refused this call: intent_mismatch .*the task is suspended/,
      /Tollgate +task revoked \(drift_detected\); lease [0-9a-f-]{36}: revoked \(drift_detected\)/,
      /tool +tools\/call get_order .* with token #[0-9a-f]{8} → 401 invalid_token: the credential was revoked$/,
      /Tollgate +DENY, reasons \[task_not_active\]/,
      /^ +deny crm-refunds \/ refund_order \[intent_mismatch\], drift: counted$/,
      /^ +deny crm-orders \/ cancel_order \[action_not_allowed\], drift: counted$/,
      /^ +deny crm-refunds \/ refund_order \[intent_mismatch\], drift: suspended the task$/,
      /^The CRM's side$/,
      /tool +received 10 tools\/call: 4 ran, 6 refused by the verifier \(5× 401 invalid_token, 1× 403 insufficient_scope\)$/,
      /tool +refunds issued: R-1001-1 \(49 EUR\), R-1002-2 \(349 EUR\)$/,
      /tool +introspections by its verifier: 0 /,
      /^The story went as expected \(38 checks passed\)\.$/,
    ];
    let at = 0;
    for (const pattern of inOrder) {
      const found = lines.findIndex((line, index) => index >= at && pattern.test(line));
      expect(found, `${pattern} after line ${at}:\n${text}`).toBeGreaterThanOrEqual(0);
      at = found + 1;
    }
    expect(text).not.toContain('✗');
    // The kept token was refused within a second of the completion, and with no introspection.
    const delay = Number(/refused (\d+) ms after the bot completed the task/.exec(text)![1]);
    expect(delay).toBeLessThan(1000);
    // The credential completion revoked is the one the bot kept in step 3 (the last PERMIT before step 4).
    const step3 = text.slice(text.indexOf('3. The journey changes'), text.indexOf('4. The journey ends'));
    const keptLease = [...step3.matchAll(/PERMIT: lease (\S+),/g)].at(-1)![1]!;
    expect(text).toContain(`leases revoked: ${keptLease}`);
    // The approval the reviewer approved is the one Tollgate held the refund for, used by the lease it permitted.
    const approval = /PENDING: .*approval (\S+) waits/.exec(text)![1]!;
    const approvedLease = /PERMIT: lease (\S+),.*\n.*CRM tools\/call refund_order[\s\S]*R-1002-2/.exec(step5(text))![1]!;
    expect(text).toContain(`approval ${approval}: approved by reviewer:`);
    expect(text).toContain(`approval ${approval} is now used (by lease ${approvedLease})`);
    // The tampered call carried the very token Tollgate permitted for the approved 150 EUR.
    const step6 = text.slice(text.indexOf('6. A tampered bot'), text.indexOf('7. A steered bot'));
    const approvedToken = /PERMIT: lease \S+, Bearer token (#\w+)/.exec(step6)![1]!;
    expect(step6).toContain(`with the approved token ${approvedToken}`);
    expect(step6).toContain(`with token ${approvedToken} → 403 insufficient_scope`);
    expect(step6).not.toMatch(/refund_order runs/);
    // The lease the drift guard revoked is the one the steered task kept.
    const step7 = text.slice(text.indexOf('7. A steered bot'));
    const keptInStep7 = [...step7.matchAll(/PERMIT: lease (\S+),/g)].at(-1)![1]!;
    expect(text).toContain(`lease ${keptInStep7}: revoked (drift_detected)`);
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
      // Newest first: the steered task (two permits, three drift denials, one after the suspension),
      // the tampered approved refund (pending, permit), the approved refund (pending, permit, the
      // refused reuse), the first journey (permit, refusal, refund permit, the kept credential).
      expect(
        decisions.body.items.map((decision: { outcome: string; reasons: string[] }) => [decision.outcome, ...decision.reasons]),
      ).toEqual([
        ['deny', 'task_not_active'],
        ['deny', 'intent_mismatch'],
        ['deny', 'action_not_allowed'],
        ['deny', 'intent_mismatch'],
        ['permit'],
        ['permit'],
        ['permit'],
        ['pending', 'approval_required'],
        ['deny', 'approval_used'],
        ['permit'],
        ['pending', 'approval_required'],
        ['permit'],
        ['permit'],
        ['deny', 'intent_mismatch'],
        ['permit'],
      ]);
      expect(await metric(broker, 'tollgate_drift_suspensions_total')).toBe(1);
      expect(await metric(broker, 'tollgate_credential_requests_total{outcome="pending",reason="approval_required"}')).toBe(2);

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
