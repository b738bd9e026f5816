import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, type AuditEvent } from '../libs/audit/audit.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { connect } from './support/database.js';
import { asAdmin, linkAuditChain, putBoundary, registerBot, type Bot } from './support/scenario.js';
import { SignJWT } from 'jose';
import { call } from './support/http.js';
import { workloadKey } from './support/workload.js';

/**
 * The real `tollgate` binary (apps/cli/bin/tollgate.mjs running the compiled CLI in apps/cli/dist/) against
 * a real broker: apply with its plan, the review lists, a task's timeline, revocation, approvals,
 * and the exit statuses (1 refused, 2 usage, 3 unreachable).
 */

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'apps/cli/bin/tollgate.mjs');
const EXAMPLE = join(ROOT, 'examples/tollgate.yaml');

let broker: TestBroker;
let admin: ReturnType<typeof asAdmin>;
let reviewerKey: string;
let dir: string;
/** A loopback port nothing listens on. */
let closedUrl: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the binary as a child process (never synchronously: the broker answers from this process). */
function tollgate(
  args: string[],
  options: { key?: string | null; url?: string | null; env?: Record<string, string>; input?: string } = {},
): Promise<Run> {
  // No profile file unless a test names one: the machine's own ~/.config/tollgate stays out of it.
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', TOLLGATE_CONFIG: join(dir, 'no-profiles.json') };
  if (options.url !== null) env.TOLLGATE_URL = options.url ?? broker.url;
  if (options.key !== null) env.TOLLGATE_KEY = options.key ?? broker.adminKey;
  Object.assign(env, options.env);
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: ROOT });
    child.stdin.end(options.input ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** A failure is one line on stderr (plus, for usage errors, the pointer to --help), never a stack. */
function expectFailure(run: Run, code: number, message: RegExp): void {
  expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(code);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
}

function expectOk(run: Run): string {
  expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
  return run.stdout;
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tollgate-cli-'));
  // Compile the CLI once (the same compiler and options as `npm run build`, only the CLI's files).
  const build = promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'apps/cli')], {
    cwd: ROOT,
  });
  broker = await startBroker();
  admin = asAdmin(broker);
  reviewerKey = (await admin('POST', '/v1/admin/api-keys', { role: 'reviewer', label: 'cli e2e' })).body.key;
  closedUrl = await new Promise<string>((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => done(`http://127.0.0.1:${port}`));
    });
  });
  await build;
}, 120_000);
afterAll(async () => {
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('tollgate apply', () => {
  it('plans, changes nothing on --dry-run, applies, and then has nothing to change', async () => {
    const dry = expectOk(await tollgate(['apply', '-f', EXAMPLE, '--dry-run']));
    expect(dry.trim().split('\n')).toEqual([
      '+ create issuer/spire',
      '+ create workload/support-bot',
      '+ create boundary/crm-orders',
      '+ create boundary/crm-refunds',
      '+ create policy/refund-ceiling',
      'Dry run: 5 change(s) planned, nothing applied.',
    ]);
    expect((await admin('GET', '/v1/admin/boundaries')).body.items).toEqual([]);
    expect((await admin('GET', '/v1/admin/issuers')).body.items).toEqual([]);

    const applied = expectOk(await tollgate(['apply', '-f', EXAMPLE]));
    expect(applied).toMatch(/\+ create policy\/refund-ceiling\nApplied 5 change\(s\)\.\n$/);
    const refunds = (await admin('GET', '/v1/admin/boundaries/crm-refunds')).body;
    expect(refunds).toMatchObject({ version: 1, intents: ['refund'], sensitivity: 'high', drift_threshold: 3, approval: { ttl: 600 } });
    expect((await admin('GET', '/v1/admin/workloads/support-bot')).body).toMatchObject({
      issuer: 'spire',
      subject: 'spiffe://acme.test/support-bot',
      enabled: true,
    });

    expect(expectOk(await tollgate(['apply', '-f', EXAMPLE]))).toBe('No changes.\n');
    expect((await admin('GET', '/v1/admin/boundaries/crm-refunds')).body.version).toBe(1);
  });

  it('shows a change with its fields and a removal as a disable, and applies them; the original file brings them back', async () => {
    const example = readFileSync(EXAMPLE, 'utf8');
    const orders = example.indexOf('  # Order status');
    const changed = file(
      'changed.yaml',
      (example.slice(0, orders) + example.slice(example.indexOf('  # Refunds')))
        .replace('default_ttl: 60', 'default_ttl: 90')
        .replace(/policies:[\s\S]*$/, 'policies: {}\n'),
    );
    const plan = expectOk(await tollgate(['apply', '-f', changed, '--dry-run']));
    expect(plan.trim().split('\n')).toEqual([
      '~ change boundary/crm-refunds (default_ttl: 60 → 90)',
      '- disable policy/refund-ceiling',
      '- disable boundary/crm-orders',
      'Dry run: 3 change(s) planned, nothing applied.',
    ]);
    expect((await admin('GET', '/v1/admin/boundaries/crm-orders')).body.enabled).toBe(true);

    const json = JSON.parse(expectOk(await tollgate(['apply', '-f', changed, '--json'])));
    expect(json.applied.map((c: { action: string; kind: string; id: string }) => `${c.action} ${c.kind}/${c.id}`)).toEqual([
      'change boundary/crm-refunds',
      'disable policy/refund-ceiling',
      'disable boundary/crm-orders',
    ]);
    expect((await admin('GET', '/v1/admin/boundaries/crm-orders')).body.enabled).toBe(false);
    expect((await admin('GET', '/v1/admin/boundaries/crm-refunds')).body.default_ttl).toBe(90);
    expect(expectOk(await tollgate(['apply', '-f', changed]))).toBe('No changes.\n');

    const back = expectOk(await tollgate(['apply', '-f', EXAMPLE]));
    expect(back.trim().split('\n')).toEqual([
      '~ change boundary/crm-orders (enabled: false → true)',
      '~ change boundary/crm-refunds (default_ttl: 90 → 60)',
      '~ change policy/refund-ceiling (enabled: false → true)',
      'Applied 3 change(s).',
    ]);
    expect(expectOk(await tollgate(['apply', '-f', EXAMPLE]))).toBe('No changes.\n');
  });

  it('refuses a bad file with exit 2 naming the bad field, sending nothing', async () => {
    const before = (await admin('GET', '/v1/admin/boundaries')).body.items;
    const fineBoundary = {
      tool: 'https://x.test',
      actions: ['x:read'],
      intents: ['order_status'],
      default_ttl: 60,
      max_ttl: 300,
      credential: { kind: 'jwt' },
    };
    const cases: Array<[string, RegExp]> = [
      ['boundaries:\n  crm-x:\n    tool: https://x.test\n    colour: red\n', /boundaries\.crm-x\.colour: unknown field/],
      ['boundaries:\n  crm-x:\n    tool: https://x.test\n    actions: read\n', /boundaries\.crm-x\.actions: must be a list of strings/],
      ['boundaries:\n  crm-x:\n    tool: [\n', /not valid YAML: .*line \d+/],
      ['widgets:\n  a: {}\n', /widgets: unknown section/],
      ['workloads:\n  Bad Bot: { issuer: spire, subject: x }\n', /workloads\.Bad Bot: the id must be a slug/],
      // Values too, by the broker's own schema from its /openapi.json, not only shapes; and the first
      // bad one stops everything even when others before it are fine.
      [
        `boundaries:\n  crm-fine: ${JSON.stringify(fineBoundary)}\n  crm-x: ${JSON.stringify({ ...fineBoundary, sensitivity: 'extreme' })}\n`,
        /^tollgate: .*bad\.yaml: boundaries\.crm-x\.sensitivity: must be one of low, medium, high\n$/,
      ],
      [
        `boundaries:\n  crm-x: ${JSON.stringify({ ...fineBoundary, credential: { kind: 'vault' } })}\n`,
        /boundaries\.crm-x\.credential\.path: is required/,
      ],
      [
        `boundaries:\n  crm-x: ${JSON.stringify({ ...fineBoundary, approval: { when: 'true', ttl: 0 } })}\n`,
        /boundaries\.crm-x\.approval\.ttl: must be at least 1/,
      ],
      [
        `boundaries:\n  crm-fine: ${JSON.stringify(fineBoundary)}\n  CRM: ${JSON.stringify(fineBoundary)}\n`,
        /boundaries\.CRM: the id must match \[a-z0-9\]/,
      ],
      [
        `workloads:\n  ? spiffe://acme.test/${'a'.repeat(2100)}\n  : { issuer: spire, subject: x }\n`,
        /workloads\.spiffe:\/\/acme\.test\/a+: the id is refused: a path parameter is too long\n$/,
      ],
      [
        'policies:\n  p: { policy: "permit(principal, action, resource);", colour: red }\n',
        /policies\.p\.colour: unknown field \(a policy takes policy, description\)/,
      ],
    ];
    for (const [text, message] of cases) expectFailure(await tollgate(['apply', '-f', file('bad.yaml', text)]), 2, message);
    expectFailure(await tollgate(['apply', '-f', join(dir, 'missing.yaml')]), 2, /cannot read .*missing\.yaml: ENOENT/);
    expectFailure(await tollgate(['apply']), 2, /-f <file> is required/);
    expect((await admin('GET', '/v1/admin/boundaries')).body.items).toEqual(before);
  });

  it('stops at an API refusal with exit 1, naming the field and what was applied before it', async () => {
    const example = readFileSync(EXAMPLE, 'utf8');
    const extra = `  crm-aaa:\n    tool: https://aaa.acme.test\n    actions: [a:read]\n    intents: [order_status]\n    default_ttl: 60\n    max_ttl: 300\n    credential: { kind: jwt }\n  crm-zzz:\n    tool: https://zzz.acme.test\n    actions: [z:read]\n    intents: [order_status]\n    default_ttl: 900\n    max_ttl: 300\n    credential: { kind: jwt }\n`;
    const broken = file('broken.yaml', example.replace('boundaries:\n', `boundaries:\n${extra}`));
    const run = await tollgate(['apply', '-f', broken]);
    expectFailure(
      run,
      1,
      /^tollgate: create boundary\/crm-zzz refused at boundaries\.crm-zzz\.default_ttl: invalid_request: .*max_ttl; applied before it: boundary\/crm-aaa\n$/,
    );
    expect(run.stdout).toMatch(/\+ create boundary\/crm-aaa\n\+ create boundary\/crm-zzz\n/);
    expect((await admin('GET', '/v1/admin/boundaries/crm-aaa')).status).toBe(200);
    expect((await admin('GET', '/v1/admin/boundaries/crm-zzz')).status).toBe(404);
    // Put the example back as it was (crm-aaa goes).
    expect(expectOk(await tollgate(['apply', '-f', EXAMPLE]))).toBe('- disable boundary/crm-aaa\nApplied 1 change(s).\n');
  });
});

describe('tollgate for reviewers', () => {
  let bot: Bot;
  const story = { taskId: '', otherTask: '', readLease: '', refundLease: '', approvalId: '' };
  const today = new Date().toISOString().slice(0, 10);
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

  beforeAll(async () => {
    bot = await registerBot(broker, 'chatbot');
    const ok = async (response: Promise<{ status: number; body: any }>, status: number) => {
      const answer = await response;
      expect(answer.status, JSON.stringify(answer.body)).toBe(status);
      return answer.body;
    };
    story.taskId = await bot.openTask('order_status', { subject: 'customer-42' });
    story.readLease = (
      await ok(bot.credential(story.taskId, { boundary: 'crm-orders', action: 'orders:read', resource: 'order/1001' }), 201)
    ).lease_id;
    await ok(
      bot.credential(story.taskId, { boundary: 'crm-refunds', action: 'orders:refund', resource: 'order/1001', params: { amount: 40 } }),
      403,
    );
    await ok(bot.call('POST', `/v1/tasks/${story.taskId}/intent`, { intent: 'refund' }), 200);
    story.refundLease = (
      await ok(
        bot.credential(story.taskId, { boundary: 'crm-refunds', action: 'orders:refund', resource: 'order/1001', params: { amount: 40 } }),
        201,
      )
    ).lease_id;
    story.approvalId = (
      await ok(
        bot.credential(story.taskId, { boundary: 'crm-refunds', action: 'orders:refund', resource: 'order/1002', params: { amount: 150 } }),
        202,
      )
    ).approval_id;
    await ok(
      bot.credential(story.taskId, { boundary: 'crm-refunds', action: 'orders:refund', resource: 'order/1003', params: { amount: 900 } }),
      403,
    );
    story.otherTask = await bot.openTask('refund', { subject: 'customer-7' });
    await ok(
      bot.credential(story.otherTask, { boundary: 'crm-refunds', action: 'orders:refund', resource: 'order/7', params: { amount: 20 } }),
      201,
    );
  });

  it("answers 'who could call the refunds tool for customer 42, and who was refused' with one command", async () => {
    const run = await tollgate(
      ['decisions', 'ls', '--boundary', 'crm-refunds', '--subject', 'customer-42', '--since', today, '--until', tomorrow],
      { key: reviewerKey },
    );
    const out = expectOk(run).trim().split('\n');
    expect(out[0]).toBe(`Decisions (boundary crm-refunds, subject customer-42, since ${today}, until ${tomorrow}), newest first:`);
    expect(out[1]).toMatch(/^TIME +OUTCOME +WORKLOAD +TASK +BOUNDARY +ACTION +RESOURCE +REASONS +LEASE$/);
    const rows = out.slice(2, -1).map((line) => line.split(/\s{2,}/));
    expect(rows.map((row) => [row[1], row[2], row[3], row[5], row[6], row[7], row[8]])).toEqual([
      ['DENY', 'chatbot', story.taskId, 'orders:refund', 'order/1003', 'policy_forbid', '-'],
      ['pending', 'chatbot', story.taskId, 'orders:refund', 'order/1002', 'approval_required', '-'],
      ['permit', 'chatbot', story.taskId, 'orders:refund', 'order/1001', '-', 'active'],
      ['DENY', 'chatbot', story.taskId, 'orders:refund', 'order/1001', 'intent_mismatch', '-'],
    ]);
    expect(out.at(-1)).toBe('4 decisions: 1 permitted (chatbot; 1 lease still active), 2 refused (chatbot), 1 sent to a reviewer.');

    // The same for scripts, and with a relative window.
    const json = JSON.parse(
      expectOk(
        await tollgate(['decisions', 'ls', '--boundary', 'crm-refunds', '--subject', 'customer-42', '--since', '1h', '--json'], {
          key: reviewerKey,
        }),
      ),
    );
    expect(json.items.map((d: { outcome: string }) => d.outcome)).toEqual(['deny', 'pending', 'permit', 'deny']);
    expect(json.items[2]).toMatchObject({ lease_id: story.refundLease, lease_state: 'active' });
    const refused = JSON.parse(
      expectOk(await tollgate(['decisions', 'ls', '--subject', 'customer-42', '--outcome', 'deny', '--json'], { key: reviewerKey })),
    );
    expect(refused.items.map((d: { reasons: string[] }) => d.reasons)).toEqual([['policy_forbid'], ['intent_mismatch']]);
    expect(expectOk(await tollgate(['decisions', 'ls', '--subject', 'customer-42', '--until', '2000-01-01']))).toMatch(
      /No decisions: nobody asked\.\n$/,
    );
  });

  it('lists leases with filters, as a table and as JSON, with --limit and --all', async () => {
    const table = expectOk(await tollgate(['leases', 'ls', '--subject', 'customer-42'], { key: reviewerKey }));
    expect(table).toMatch(/^Leases \(subject customer-42\), newest first:\nISSUED +STATE +WORKLOAD/);
    expect(table).toContain(story.refundLease);
    expect(table).toMatch(/revoked +chatbot .*journey_changed +\S+\n/);
    expect(table).toMatch(/2 leases, 1 still active\.\n$/);
    const ids = async (args: string[]) =>
      JSON.parse(expectOk(await tollgate(['leases', 'ls', ...args, '--json']))).items.map((l: { lease_id: string }) => l.lease_id);
    expect(await ids(['--subject', 'customer-42', '--state', 'active'])).toEqual([story.refundLease]);
    expect(await ids(['--tool', 'https://crm.acme.test', '--action', 'orders:read'])).toEqual([story.readLease]);
    expect(await ids(['--task', story.otherTask])).toHaveLength(1);
    const limited = JSON.parse(expectOk(await tollgate(['leases', 'ls', '--limit', '1', '--json'])));
    expect(limited).toMatchObject({ more: true });
    expect(limited.items).toHaveLength(1);
    expect(expectOk(await tollgate(['leases', 'ls', '--limit', '1']))).toMatch(/More match: add --all, or a larger --limit\.\n$/);
    const all = JSON.parse(expectOk(await tollgate(['leases', 'ls', '--all', '--json'])));
    expect(all).toMatchObject({ more: false });
    expect(all.items).toHaveLength(3);
  });

  it("shows a task's timeline in order", async () => {
    const out = expectOk(await tollgate(['tasks', 'show', story.taskId], { key: reviewerKey }))
      .trim()
      .split('\n');
    expect(out[0]).toBe(`Task ${story.taskId}: workload chatbot, subject customer-42`);
    const events = out.slice(3).map((line) => line.split(/\s{2,}/));
    expect(events.map((event) => event[1])).toEqual([
      'task.opened',
      'decision.permit',
      'lease.issued',
      'decision.deny',
      'task.intent_changed',
      'lease.revoked',
      'decision.permit',
      'lease.issued',
      'decision.pending',
      'decision.deny',
    ]);
    expect(events[3]![2]).toBe('crm-refunds orders:refund order/1001: intent_mismatch');
    expect(events[4]![2]).toBe('intent order_status → refund');
    expect(events[5]![2]).toBe(`lease ${story.readLease}: journey_changed`);
    expect(events[8]![2]).toBe(`crm-refunds orders:refund order/1002: waits for approval ${story.approvalId}`);
    expectFailure(await tollgate(['tasks', 'show', '0190b7d0-0000-7000-8000-000000000000']), 1, /^tollgate: not_found: no such task\n$/);
  });

  it('lists pending approvals and approves one; the bot then gets its credential once', async () => {
    const pending = expectOk(await tollgate(['approvals', 'ls'], { key: reviewerKey }));
    expect(pending).toContain(story.approvalId);
    expect(pending).toContain('{"amount":150}');
    expectFailure(await tollgate(['approvals', 'approve', story.approvalId], { key: reviewerKey }), 2, /--reason is required/);
    const approved = expectOk(
      await tollgate(['approvals', 'approve', story.approvalId, '--reason', 'customer verified by phone'], { key: reviewerKey }),
    );
    expect(approved).toMatch(
      new RegExp(`^Approved ${story.approvalId} \\(crm-refunds orders:refund order/1002\\): the bot may repeat the request once`),
    );
    expectFailure(
      await tollgate(['approvals', 'deny', story.approvalId, '--reason', 'too late'], { key: reviewerKey }),
      1,
      /^tollgate: .*approved, not pending/,
    );
    const repeat = await bot.credential(story.taskId, {
      boundary: 'crm-refunds',
      action: 'orders:refund',
      resource: 'order/1002',
      params: { amount: 150 },
      approval_id: story.approvalId,
    });
    expect(repeat.status).toBe(201);
    expect(expectOk(await tollgate(['approvals', 'ls'], { key: reviewerKey }))).toBe('No approvals waiting.\n');
  });

  it('revokes a lease, a task and a workload; again changes nothing; a reviewer is refused', async () => {
    expectFailure(await tollgate(['revoke', 'lease', story.refundLease], { key: reviewerKey }), 1, /^tollgate: insufficient_scope: /);
    expect(expectOk(await tollgate(['revoke', 'lease', story.refundLease, '--reason', 'refund under review']))).toBe(
      `Revoked lease ${story.refundLease} (revoked_by_admin).\n`,
    );
    expect(expectOk(await tollgate(['revoke', 'lease', story.refundLease]))).toMatch(
      /^Lease .* was not live \(revoked, revoked_by_admin at .*\): nothing changed\.\n$/,
    );
    expectFailure(await tollgate(['revoke', 'lease', '0190b7d0-0000-7000-8000-000000000000']), 1, /^tollgate: not_found: no such lease\n$/);

    const task = JSON.parse(expectOk(await tollgate(['revoke', 'task', story.taskId, '--reason', 'fraud suspected', '--json'])));
    expect(task).toMatchObject({ task_id: story.taskId, state: 'revoked', end_reason: 'revoked_by_admin' });
    expect(task.revoked_leases).toHaveLength(1); // the lease the approval gave
    expect(expectOk(await tollgate(['revoke', 'task', story.taskId]))).toBe(
      `Task ${story.taskId} is revoked (revoked_by_admin); 0 live lease(s) revoked now.\n`,
    );
    const timeline = expectOk(await tollgate(['tasks', 'show', story.taskId]));
    // The task ends first (its lease is dead from then on), then the lease's row is revoked.
    expect(timeline).toMatch(/task\.revoked +revoked_by_admin\n[^\n]*lease\.revoked[^\n]*task_revoked[^\n]*\n$/);

    expectFailure(await tollgate(['revoke', 'workload', 'chatbot', '--reason', 'x']), 2, /takes no --reason/);
    expect(expectOk(await tollgate(['revoke', 'workload', 'chatbot']))).toBe(
      'Workload chatbot disabled: 1 task(s) and 1 lease(s) revoked.\n',
    );
    expect(JSON.parse(expectOk(await tollgate(['leases', 'ls', '--state', 'active', '--json']))).items).toEqual([]);
  });
});

describe('tollgate audit verify and export', () => {
  // Other test files' transactions on the server can hold linking back a moment: link until settled.
  const chainAll = () => linkAuditChain(broker);

  it('verifies the chain: exit 0 while it holds, exit 4 naming the first broken event once a row is altered', async (context) => {
    await chainAll();
    const ok = expectOk(await tollgate(['audit', 'verify'], { key: reviewerKey }));
    const { rows } = await broker.app.broker.db.query<{ n: number; seq: string; hash: string }>(
      `SELECT (SELECT count(*)::int FROM audit_links) AS n, seq::text AS seq, hash FROM audit_links ORDER BY xid DESC, seq DESC LIMIT 1`,
    );
    const head = rows[0]!;
    expect(ok).toMatch(
      new RegExp(
        `^Audit chain intact: ${head.n} event\\(s\\) verified, head seq ${head.seq} hash ${head.hash}(; \\d+ newer event\\(s\\) not chained yet)?\\.\n$`,
      ),
    );
    expect(JSON.parse(expectOk(await tollgate(['audit', 'verify', '--json'])))).toMatchObject({
      ok: true,
      head: { seq: head.seq, hash: head.hash },
    });

    if (broker.db.kind !== 'postgres') context.skip();
    // An attacker with database access switches the append-only trigger off and edits an event.
    const su = await connect(broker.db.databaseUrl!);
    const victim = (
      await su.query(
        `SELECT a.id, a.seq::text AS seq, a.data FROM audit_events a JOIN audit_links l ON l.event_id = a.id WHERE a.kind = 'credential.deny' ORDER BY a.seq LIMIT 1`,
      )
    ).rows[0];
    expect(victim).toBeDefined();
    const edit = async (data: unknown) => {
      await su.query('BEGIN');
      await su.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await su.query('UPDATE audit_events SET data = $2::jsonb WHERE id = $1', [victim.id, JSON.stringify(data)]);
      await su.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
      await su.query('COMMIT');
    };
    try {
      await edit({ ...victim.data, reasons: [] });
      const broken = await tollgate(['audit', 'verify'], { key: reviewerKey });
      expectFailure(
        broken,
        4,
        new RegExp(
          `^tollgate: the audit chain is BROKEN at seq ${victim.seq} \\(event ${victim.id}\\): altered; \\d+ event\\(s\\) before it verified\n$`,
        ),
      );
      expect(broken.stdout).toBe('');
      const json = await tollgate(['audit', 'verify', '--json'], { key: reviewerKey });
      expect(json.code).toBe(4);
      expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, first_broken: { id: victim.id, reason: 'altered' } });
    } finally {
      await edit(victim.data);
      await su.end();
    }
    expectOk(await tollgate(['audit', 'verify'], { key: reviewerKey }));
  });

  it('exports audit events oldest first, following the cursor across pages, as JSON lines or CSV', async () => {
    // More events than one page holds (1000): the export must follow next_cursor.
    const marker = `export-${Date.now()}`;
    const seeded: AuditEvent[] = Array.from({ length: 1100 }, (_, i) => ({
      kind: 'policy.put',
      actor: 'admin',
      data: { policy_id: marker, version: i + 1 },
    }));
    await appendAudit(broker.app.broker.db, ...seeded);
    await chainAll();
    const { rows } = await broker.app.broker.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events`);
    const run = await tollgate(['export', '--since', '1d', '--format', 'jsonl'], { key: reviewerKey });
    const lines = expectOk(run)
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(rows[0]!.n);
    expect(run.stderr).toBe(`exported ${rows[0]!.n} audit event(s)\n`);
    const seqs = lines.map((event) => BigInt(event.seq));
    expect(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!)).toBe(true);
    expect(lines.filter((event) => event.data.policy_id === marker).map((event) => event.data.version)).toEqual(
      seeded.map((_, i) => i + 1),
    );
    expect(lines[0]).toMatchObject({ kind: expect.any(String), actor: expect.any(String), hash: expect.stringMatching(/^[0-9a-f]{64}$/) });

    const csv = expectOk(await tollgate(['export', '--since', '1d', '--until', 'now', '--format', 'csv', '--kind', 'task.opened']))
      .trim()
      .split('\n');
    expect(csv[0]).toBe('id,seq,at,kind,actor,task_id,lease_id,prev_hash,hash,data');
    const opened = await broker.app.broker.db.query<{ id: string }>(`SELECT id FROM audit_events WHERE kind = 'task.opened' ORDER BY seq`);
    expect(csv.slice(1).map((line) => line.split(',')[0])).toEqual(opened.rows.map((row) => row.id));
    expect(csv[1]).toMatch(/,task\.opened,workload:chatbot,[0-9a-f-]{36},,[0-9a-f]{64},[0-9a-f]{64},"\{""intent"":""order_status"",/);
    expect(expectOk(await tollgate(['export', '--until', '2000-01-01']))).toBe('');
  });
});

describe('exit statuses', () => {
  it('exits 2 on usage errors, without contacting the broker', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /./],
      [['frobnicate'], /unknown command "frobnicate"/],
      [['leases'], /leases: expected ls/],
      [['leases', 'ls', '--bogus'], /Unknown option '--bogus'/],
      [['leases', 'ls', 'extra'], /expected no arguments/],
      [['leases', 'ls', '--limit', 'lots'], /--limit: must be a whole number/],
      [['decisions', 'ls', '--since', 'yesterday'], /--since: "yesterday" is not a date/],
      [['revoke', 'thing', 'x'], /expected lease, task or workload, got "thing"/],
      [['tasks', 'show'], /expected <task-id>/],
      [['export', '--format', 'xml'], /--format: must be jsonl or csv/],
      [['audit', 'check'], /audit: expected verify/],
      [['workloads'], /workloads: expected ls, put or delete/],
      [['workloads', 'put', 'bot'], /workloads put: -f <file> is required/],
      [['api-keys', 'create'], /api-keys create: --role is required/],
      [['api-keys', 'revoke'], /expected <key-id>/],
      [['keys', 'spin'], /keys: expected ls or rotate, got "spin"/],
    ];
    for (const [args, message] of cases) {
      const run = await tollgate(args, { url: closedUrl });
      expect(run.code, args.join(' ')).toBe(2);
      if (args.length > 0) expectFailure(run, 2, message);
    }
    expectFailure(
      await tollgate(['leases', 'ls'], { key: null }),
      2,
      /no API key: add a profile \(tollgate profile add NAME --url URL --key-file PATH\), or set TOLLGATE_KEY \(or TOLLGATE_KEY_FILE, or pass --key-file\)/,
    );
    expect(expectOk(await tollgate(['--help']))).toMatch(/^tollgate: the command line/);
  });

  it('exits 3 when the broker cannot be reached, and 1 for a key it refuses', async () => {
    expectFailure(
      await tollgate(['leases', 'ls'], { url: closedUrl }),
      3,
      new RegExp(`^tollgate: cannot reach the broker at ${closedUrl}: ECONNREFUSED\n$`),
    );
    expectFailure(await tollgate(['leases', 'ls'], { key: 'not-a-key' }), 1, /^tollgate: invalid_client: /);
    expectFailure(await tollgate(['apply', '-f', EXAMPLE], { key: 'not-a-key' }), 1, /^tollgate: invalid_client: /);
    // --url and --key win over the environment.
    expectFailure(
      await tollgate(['leases', 'ls', '--url', closedUrl, '--key', broker.adminKey], { url: broker.url, key: 'not-a-key' }),
      3,
      /cannot reach/,
    );
    expect(
      expectOk(await tollgate(['leases', 'ls', '--url', broker.url, '--key', broker.adminKey], { url: closedUrl, key: 'not-a-key' })),
    ).toMatch(/^Leases \(all\)/);
  });
});

describe('tollgate admin verbs', () => {
  it('puts a workload from a JSON or YAML file, lists it, and deletes it', async () => {
    const key = await workloadKey('EdDSA');
    const body = file('sim-bot.json', JSON.stringify({ jwks: { keys: [key.publicJwk] } }));
    expect(expectOk(await tollgate(['workloads', 'put', 'sim-bot', '-f', body]))).toBe('Workload sim-bot: revision 1, enabled.\n');
    const yaml = file('sim-bot.yaml', `jwks:\n  keys:\n    - ${JSON.stringify(key.publicJwk)}\nenabled: true\n`);
    expect(expectOk(await tollgate(['workloads', 'put', 'sim-bot', '-f', yaml]))).toMatch(/^Workload sim-bot: revision \d+, enabled\.\n$/);
    expect((await admin('GET', '/v1/admin/workloads/sim-bot')).body).toMatchObject({
      id: 'sim-bot',
      enabled: true,
      jwks: { keys: [key.publicJwk] },
    });

    const table = expectOk(await tollgate(['workloads', 'ls']));
    expect(table.split('\n')[0]).toMatch(/^WORKLOAD\s+ENABLED\s+AUTHENTICATES WITH\s+REVISION\s+UPDATED$/);
    expect(table).toMatch(/\nsim-bot\s+yes\s+1 registered key\(s\)/);
    const listed = JSON.parse(expectOk(await tollgate(['workloads', 'ls', '--json']))).items;
    expect(listed.map((w: { id: string }) => w.id)).toContain('sim-bot');

    // The broker checks the body; a refusal names its field.
    expectFailure(
      await tollgate(['workloads', 'put', 'sim-bot', '-f', file('bad.json', '{"jwks": {"keys": []}}')]),
      1,
      /^tollgate: invalid_request: jwks\.keys/,
    );
    expectFailure(await tollgate(['workloads', 'put', 'sim-bot', '-f', file('list.json', '[1]')]), 2, /must hold one object/);
    // An id the broker's rule refuses is a usage error, in the broker's words; nothing is written.
    expectFailure(
      await tollgate(['workloads', 'put', 'Not A Slug', '-f', body]),
      2,
      /^tollgate: workloads put: <workload-id> must be a slug \[a-z0-9\]\[a-z0-9._-\]\{0,62\} or a SPIFFE ID\n/,
    );
    expect((await admin('GET', '/v1/admin/workloads')).body.items.map((w: { id: string }) => w.id)).not.toContain('Not A Slug');

    await putBoundary(broker, 'cli-sim');
    const simulated = JSON.parse(
      expectOk(
        await tollgate([
          'simulate',
          '--workload',
          'sim-bot',
          '--intent',
          'order_status',
          '--subject',
          'c-1',
          '--boundary',
          'cli-sim',
          '--action',
          'orders:read',
          '--json',
        ]),
      ),
    );
    expect(simulated).toMatchObject({ decision: 'permit', reasons: [] });

    expect(expectOk(await tollgate(['workloads', 'delete', 'sim-bot']))).toBe(
      'Workload sim-bot deleted (disabled): 0 task(s) and 0 lease(s) revoked.\n',
    );
    expect((await admin('GET', '/v1/admin/workloads/sim-bot')).body.enabled).toBe(false);
    expectFailure(await tollgate(['workloads', 'delete', 'nobody']), 1, /^tollgate: not_found: /);
  });

  it('simulates a request from flags or from a file, writing nothing', async () => {
    await registerBot(broker, 'sim-bot-2');
    await putBoundary(broker, 'cli-sim');
    const decisionsBefore = (await admin('GET', '/v1/decisions?limit=1000')).body.items.length;
    const base = [
      '--workload',
      'sim-bot-2',
      '--subject',
      'customer-9',
      '--boundary',
      'cli-sim',
      '--action',
      'orders:read',
      '--resource',
      'order/9',
    ];
    expect(expectOk(await tollgate(['simulate', ...base, '--intent', 'order_status']))).toBe(
      'PERMIT: sim-bot-2 orders:read on cli-sim order/9.\n',
    );
    expect(expectOk(await tollgate(['simulate', ...base, '--intent', 'refund']))).toBe(
      'DENY: sim-bot-2 orders:read on cli-sim order/9 (intent_mismatch).\n',
    );
    const request = file(
      'simulate.json',
      JSON.stringify({
        workload: 'sim-bot-2',
        task: { intent: 'order_status', subject: 'customer-9' },
        request: { boundary: 'cli-sim', action: 'orders:read' },
      }),
    );
    expect(JSON.parse(expectOk(await tollgate(['simulate', '-f', request, '--json'])))).toMatchObject({
      decision: 'permit',
      boundary_version: expect.any(Number),
    });
    // A flag replaces the file's field.
    expect(JSON.parse(expectOk(await tollgate(['simulate', '-f', request, '--action', 'orders:delete', '--json'])))).toMatchObject({
      decision: 'deny',
      reasons: ['action_not_allowed'],
    });
    expect((await admin('GET', '/v1/decisions?limit=1000')).body.items.length).toBe(decisionsBefore);
    expectFailure(
      await tollgate(['simulate', '--workload', 'sim-bot-2'], { url: closedUrl }),
      2,
      /simulate: missing --intent, --subject, --boundary, --action/,
    );
    expectFailure(
      await tollgate(['simulate', ...base, '--intent', 'order_status', '--params', '{not json'], { url: closedUrl }),
      2,
      /--params must be a JSON object/,
    );
  });

  it('creates an API key (alone on stdout), lists it, and revokes it; the revoked key is refused', async () => {
    const created = await tollgate(['api-keys', 'create', '--role', 'reviewer', '--label', 'cli made']);
    const key = expectOk(created).trim();
    expect(key).toMatch(/^tgrev_\S+$/);
    expect(created.stderr).toMatch(/^Created reviewer key \S+ \(cli made\): shown once, store it now\.\n$/);
    expect(expectOk(await tollgate(['leases', 'ls'], { key }))).toMatch(/^Leases \(all\)/);

    const listed = JSON.parse(expectOk(await tollgate(['api-keys', 'ls', '--json']))).items as Array<{
      id: string;
      label?: string;
      revoked_at: string | null;
    }>;
    const mine = listed.find((k) => k.label === 'cli made')!;
    expect(mine.revoked_at).toBeNull();
    expect(JSON.stringify(listed)).not.toContain(key);
    expect(expectOk(await tollgate(['api-keys', 'ls']))).toMatch(new RegExp(`\\n${mine.id}\\s+reviewer\\s+-\\s+cli made\\s`));
    // A reviewer may list but not create.
    expectFailure(await tollgate(['api-keys', 'create', '--role', 'admin'], { key }), 1, /^tollgate: insufficient_scope: /);

    expect(expectOk(await tollgate(['api-keys', 'revoke', mine.id]))).toMatch(new RegExp(`^Revoked reviewer key ${mine.id} \\(at `));
    expectFailure(await tollgate(['leases', 'ls'], { key }), 1, /^tollgate: invalid_client: /);
    expectFailure(await tollgate(['api-keys', 'create', '--role', 'root']), 1, /^tollgate: invalid_request: role/);
  });

  it('lists the signing keys and rotates them', async () => {
    const before = JSON.parse(expectOk(await tollgate(['keys', 'ls', '--json']))) as {
      active_kid: string;
      keys: Array<{ kid: string; state: string }>;
    };
    const next = before.keys.find((k) => k.state === 'next')!.kid;
    expect(expectOk(await tollgate(['keys', 'ls'], { key: reviewerKey }))).toMatch(
      new RegExp(`\\n${before.active_kid} \\*\\s+\\S+\\s+active`),
    );
    const rotated = expectOk(await tollgate(['keys', 'rotate']));
    expect(rotated.split('\n')[0]).toBe(
      `Rotated: ${next} signs from now on, ${before.active_kid} retired (published until what it signed expires); ${(await admin('GET', '/v1/admin/keys')).body.keys.find((k: { state: string }) => k.state === 'next').kid} is published as the next key.`,
    );
    expect((await admin('GET', '/v1/admin/keys')).body.active_kid).toBe(next);
    expectFailure(await tollgate(['keys', 'rotate'], { key: reviewerKey }), 1, /^tollgate: insufficient_scope: /);
  });
});

describe('tollgate --version, --help per command, and where the key comes from', () => {
  it("prints its version and each command's usage (exit 0, without contacting the broker)", async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'apps/cli/package.json'), 'utf8')) as { version: string };
    expect(expectOk(await tollgate(['--version'], { url: closedUrl, key: null }))).toBe(`tollgate ${version}\n`);
    for (const command of [
      'apply',
      'mcp',
      'profile',
      'leases',
      'decisions',
      'tasks',
      'revoke',
      'approvals',
      'audit',
      'export',
      'workloads',
      'api-keys',
      'keys',
      'simulate',
    ]) {
      const usage = expectOk(await tollgate([command, '--help'], { url: closedUrl, key: null }));
      expect(usage, command).toMatch(new RegExp(`^Usage:\\n  tollgate ${command} `));
      expect(usage, command).toMatch(/--key-file PATH/);
      // Only that command's lines.
      expect(
        usage.match(/^ {2}tollgate \S+/gm)!.every((line) => line === `  tollgate ${command}`),
        command,
      ).toBe(true);
    }
    expect(expectOk(await tollgate(['workloads', 'put', '--help'], { url: closedUrl }))).toMatch(
      /^Usage:\n {2}tollgate workloads ls\n {2}tollgate workloads put WORKLOAD_ID -f/,
    );
    expect(expectOk(await tollgate(['help', 'simulate'], { url: closedUrl }))).toMatch(/^Usage:\n {2}tollgate simulate --workload/);
    expect(expectOk(await tollgate(['--help'], { url: closedUrl }))).toMatch(
      /tollgate simulate[\s\S]*tollgate --version\n {2}tollgate <command> --help\n/,
    );
  });

  it('reads the key from --key-file or TOLLGATE_KEY_FILE, warns about a key on argv or a file others can read', async () => {
    const keyFile = file('admin.key', `${broker.adminKey}\n`);
    chmodSync(keyFile, 0o600);
    const fromFile = await tollgate(['leases', 'ls', '--key-file', keyFile], { key: null });
    expect(expectOk(fromFile)).toMatch(/^Leases \(all\)/);
    expect(fromFile.stderr).toBe('');
    const fromEnv = await tollgate(['leases', 'ls'], { key: null, env: { TOLLGATE_KEY_FILE: keyFile } });
    expect(expectOk(fromEnv)).toMatch(/^Leases \(all\)/);
    expect(fromEnv.stderr).toBe('');
    // --key-file wins over TOLLGATE_KEY.
    expect(expectOk(await tollgate(['leases', 'ls', '--key-file', keyFile], { key: 'not-a-key' }))).toMatch(/^Leases \(all\)/);

    chmodSync(keyFile, 0o644);
    const open = await tollgate(['leases', 'ls', '--key-file', keyFile], { key: null });
    expect(expectOk(open)).toMatch(/^Leases \(all\)/);
    expect(open.stderr).toBe(`tollgate: warning: ${keyFile} is readable by other users (mode 0644): chmod 600 it\n`);

    const onArgv = await tollgate(['leases', 'ls', '--key', broker.adminKey], { key: null });
    expect(expectOk(onArgv)).toMatch(/^Leases \(all\)/);
    expect(onArgv.stderr).toMatch(
      /^tollgate: warning: --key puts the key in the process list \(ps\) and shell history; prefer a profile, TOLLGATE_KEY or --key-file\n$/,
    );
    expect(onArgv.stderr).not.toContain(broker.adminKey);

    expectFailure(
      await tollgate(['leases', 'ls', '--key-file', join(dir, 'missing.key')], { key: null }),
      2,
      /^tollgate: --key-file: cannot read .*missing\.key: ENOENT\n$/,
    );
    expectFailure(
      await tollgate(['leases', 'ls', '--key-file', file('empty.key', '\n')], { key: null }),
      2,
      /--key-file: .*empty\.key is empty/,
    );
    expectFailure(
      await tollgate(['leases', 'ls', '--key-file', keyFile, '--key', 'x'], { key: null }),
      2,
      /--key and --key-file: give one of them/,
    );
  });
});

describe('tollgate profile', () => {
  // Many runs of the binary each: on a loaded machine, more than the default 30 s.
  it('saves a broker and its key in a 0600 profile file and uses it without any key on argv or in the environment', async () => {
    const config = join(dir, 'profiles', 'config.json');
    const env = { TOLLGATE_CONFIG: config };
    const keyFile = file('profile-admin.key', `${broker.adminKey}\n`);
    chmodSync(keyFile, 0o600);

    const added = await tollgate(['profile', 'add', 'prod', '--url', `${broker.url}/`, '--key-file', keyFile], {
      key: null,
      url: null,
      env,
    });
    expect(expectOk(added)).toBe(`Added profile prod (${broker.url}), the default, in ${config}.\n`);
    expect(added.stderr).toBe('');
    expect(statSync(config).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'profiles')).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(config, 'utf8'))).toEqual({
      default: 'prod',
      profiles: { prod: { url: broker.url, key: broker.adminKey } },
    });

    // The default profile: no --url, no key, no TOLLGATE_* variable.
    expect(expectOk(await tollgate(['leases', 'ls'], { key: null, url: null, env }))).toMatch(/^Leases \(all\)/);
    // A second profile, its key from stdin (`pass show … | tollgate profile add …`), pointing nowhere.
    const viaStdin = await tollgate(['profile', 'add', 'dead', '--url', closedUrl, '--key-file', '-'], {
      key: null,
      url: null,
      env,
      input: `${broker.adminKey}\n`,
    });
    expect(expectOk(viaStdin)).toBe(`Added profile dead (${closedUrl}), in ${config}.\n`);
    const listed = expectOk(await tollgate(['profile', 'ls'], { key: null, url: null, env }));
    expect(listed).toMatch(new RegExp(`^PROFILE\\s+URL\\nprod \\*\\s+${broker.url}\\ndead\\s+${closedUrl}\\n$`));
    const listedJson = expectOk(await tollgate(['profile', 'ls', '--json'], { key: null, url: null, env }));
    expect(JSON.parse(listedJson)).toEqual({
      path: config,
      items: [
        { name: 'prod', url: broker.url, default: true },
        { name: 'dead', url: closedUrl, default: false },
      ],
    });
    for (const out of [added.stdout, viaStdin.stdout, listed, listedJson]) expect(out).not.toContain(broker.adminKey);

    // A profile named on purpose beats the environment; the default profile does not.
    expect(expectOk(await tollgate(['leases', 'ls', '--profile', 'prod'], { key: 'tgadm_not-a-key', url: closedUrl, env }))).toMatch(
      /^Leases \(all\)/,
    );
    expect(expectOk(await tollgate(['leases', 'ls'], { key: null, url: closedUrl, env: { ...env, TOLLGATE_PROFILE: 'prod' } }))).toMatch(
      /^Leases \(all\)/,
    );
    // A key from the environment goes where the environment says, as before profiles.
    expectFailure(await tollgate(['leases', 'ls'], { key: 'tgadm_not-a-key', url: broker.url, env }), 1, /^tollgate: invalid_client: /);
    // The default profile's key never goes to another broker named by TOLLGATE_URL.
    expect(expectOk(await tollgate(['leases', 'ls'], { key: null, url: broker.url, env }))).toMatch(/^Leases \(all\)/);
    expectFailure(
      await tollgate(['leases', 'ls'], { key: null, url: closedUrl, env }),
      2,
      new RegExp(`^tollgate: TOLLGATE_URL is ${closedUrl}, but the key would come from the default profile prod \\(${broker.url}\\)`),
    );
    expectFailure(await tollgate(['leases', 'ls', '--profile', 'dead'], { key: null, url: null, env }), 3, /^tollgate: /);
    // --url still beats the profile's URL.
    expect(expectOk(await tollgate(['leases', 'ls', '--profile', 'dead', '--url', broker.url], { key: null, url: null, env }))).toMatch(
      /^Leases \(all\)/,
    );

    expect(expectOk(await tollgate(['profile', 'use', 'dead'], { key: null, url: null, env }))).toBe('Profile dead is the default.\n');
    expectFailure(await tollgate(['leases', 'ls'], { key: null, url: null, env }), 3, /^tollgate: /);
    expect(expectOk(await tollgate(['profile', 'rm', 'dead'], { key: null, url: null, env }))).toBe(
      'Removed profile dead; no profile is the default now (profile use NAME).\n',
    );
    expectFailure(await tollgate(['leases', 'ls'], { key: null, url: null, env }), 2, /^tollgate: no API key: add a profile/);
  }, 120_000);

  it('refuses an unknown profile, a key on argv, and a profile file others may read', async () => {
    const config = join(dir, 'profiles', 'config.json');
    const env = { TOLLGATE_CONFIG: config };
    const keyFile = join(dir, 'profile-admin.key');
    // Refusals: an unknown profile, a key on argv, a bad name or URL.
    expectFailure(
      await tollgate(['leases', 'ls', '--profile', 'staging'], { key: null, url: null, env }),
      2,
      /^tollgate: --profile \/ TOLLGATE_PROFILE: no profile "staging" in .*config\.json; it has prod\n$/,
    );
    expectFailure(
      await tollgate(['profile', 'add', 'x', '--url', broker.url, '--key', broker.adminKey], { key: null, url: null, env }),
      2,
      /--key is not taken/,
    );
    expectFailure(
      await tollgate(['profile', 'add', '../x', '--url', broker.url, '--key-file', keyFile], { key: null, env }),
      2,
      /<name> must be/,
    );
    expectFailure(
      await tollgate(['profile', 'add', 'x', '--url', 'ftp://a', '--key-file', keyFile], { key: null, env }),
      2,
      /must be an http\(s\) URL/,
    );
    expect(JSON.parse(readFileSync(config, 'utf8')).profiles).toEqual({ prod: { url: broker.url, key: broker.adminKey } });

    // Readable by others: refused, as ssh refuses such a private key, and the key is not echoed.
    chmodSync(config, 0o640);
    const open = await tollgate(['leases', 'ls', '--profile', 'prod'], { key: null, url: null, env });
    expectFailure(open, 2, /^tollgate: profiles: .*config\.json holds API keys and is readable by other users \(mode 0640\): chmod 600 it/);
    expect(open.stderr + open.stdout).not.toContain(broker.adminKey);
    expectFailure(await tollgate(['profile', 'ls'], { key: null, url: null, env }), 2, /readable by other users/);
    // A key given otherwise does not need the profile file, so it does not read it.
    expect(expectOk(await tollgate(['leases', 'ls'], { url: broker.url, env }))).toMatch(/^Leases \(all\)/);
  }, 120_000);
});

describe('tollgate api-keys create --jwks', () => {
  it('registers public keys for private_key_jwt with a resource_server key; refuses a private key before sending it', async () => {
    const signer = await workloadKey('EdDSA', 'rs-key-1');
    const jwks = file('rs-jwks.json', JSON.stringify({ keys: [signer.publicJwk] }));
    const created = await tollgate([
      'api-keys',
      'create',
      '--role',
      'resource_server',
      '--audience',
      'https://crm.acme.test/orders',
      '--label',
      'crm jwks',
      '--jwks',
      jwks,
    ]);
    expect(expectOk(created).trim()).toMatch(/^tgrs_\S+$/);
    expect(created.stderr).toMatch(
      /^Created resource_server key (\S+) \(crm jwks\) with 1 public key\(s\) for private_key_jwt: shown once/,
    );
    const id = /key (\S+) \(/.exec(created.stderr)![1]!;
    const listed = JSON.parse(expectOk(await tollgate(['api-keys', 'ls', '--json']))).items as Array<{ id: string; jwks?: unknown }>;
    expect(listed.find((k) => k.id === id)?.jwks).toEqual({ keys: [expect.objectContaining({ kid: 'rs-key-1', x: signer.publicJwk.x })] });

    // The registered key authenticates the resource server (RFC 7523 client assertion) at introspection.
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ iss: id, sub: id, aud: broker.url, iat: now, exp: now + 60, jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: 'EdDSA', kid: 'rs-key-1' })
      .sign(signer.privateKey);
    const introspected = await call(broker.url, 'POST', '/oauth2/introspect', {
      form: {
        token: 'not-a-token',
        client_id: id,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      },
    });
    expect(introspected.status, JSON.stringify(introspected.body)).toBe(200);
    expect(introspected.body).toEqual({ active: false });

    // One JWK, in YAML, is a set of one.
    const single = file(
      'one.yaml',
      `kty: ${signer.publicJwk.kty}\ncrv: ${signer.publicJwk.crv}\nx: ${signer.publicJwk.x}\nkid: rs-key-2\n`,
    );
    const fromYaml = await tollgate([
      'api-keys',
      'create',
      '--role',
      'resource_server',
      '--audience',
      'https://b.test',
      '--jwks',
      single,
      '--json',
    ]);
    expect(JSON.parse(expectOk(fromYaml)).jwks).toEqual({ keys: [expect.objectContaining({ kid: 'rs-key-2' })] });

    // A private key never leaves the machine (the broker is not even reachable here); other roles are the broker's to refuse.
    const privateJwk = file('private.json', JSON.stringify({ keys: [{ ...signer.publicJwk, d: 'c2VjcmV0LXByaXZhdGUta2V5LW1hdGVyaWFs' }] }));
    const refused = await tollgate(
      ['api-keys', 'create', '--role', 'resource_server', '--audience', 'https://b.test', '--jwks', privateJwk],
      {
        url: closedUrl,
      },
    );
    expectFailure(
      refused,
      2,
      /--jwks: key 0 of .*private\.json holds private key material \("d"\): register the public key only; nothing was sent/,
    );
    expect(refused.stderr).not.toContain('c2VjcmV0');
    expectFailure(await tollgate(['api-keys', 'create', '--role', 'reviewer', '--jwks', jwks]), 1, /^tollgate: invalid_request: jwks/);
    expectFailure(
      await tollgate(['api-keys', 'create', '--role', 'resource_server', '--audience', 'a', '--jwks', file('x.json', '[1]')]),
      2,
      /must hold one object/,
    );
    expectFailure(
      await tollgate(['api-keys', 'create', '--role', 'resource_server', '--audience', 'a', '--jwks', file('y.json', '{"k": 1}')]),
      2,
      /must hold a JWK Set/,
    );
  }, 120_000);
});
