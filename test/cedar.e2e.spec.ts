import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { call, type Response } from './support/http.js';
import { asAdmin, putBoundary, registerBot, type Bot } from './support/scenario.js';
import { assertion } from './support/workload.js';
import { ACTIVE_POLICIES_KEY } from '../libs/policy/policy-store.js';

/** Added to the broker's clock (ms): "business hours" are tested at chosen times of day. */
let skewMs = 0;
let broker: TestBroker;
let bot: Bot;
let intern: Bot;
let admin: ReturnType<typeof asAdmin>;

const REFUND_POLICY = `// refunds up to 100 only
permit(principal, action == Action::"refund:create", resource)
  when { context.params has amount && context.params.amount <= 100 };
forbid(principal, action == Action::"refund:create", resource)
  when { context.params has amount && context.params.amount > 100 };`;

const OWNER_POLICY = `permit(principal, action, resource)
  when { context.params has owner && context.params.owner == context.subject };`;

const BUSINESS_HOURS = `permit(principal, action, resource)
  when { context.now.weekday >= 1 && context.now.weekday <= 5 && context.now.hour >= 9 && context.now.hour < 17 };`;

// Refunds up to 100; above, only with a reviewer's approval of exactly this request.
const APPROVED_REFUNDS = `permit(principal, action == Action::"refund:create", resource)
  when { context.params has amount && (context.params.amount <= 100 || context.approved) };
@approval("required")
permit(principal, action == Action::"refund:create", resource)
  when { context.params has amount && context.params.amount > 100 && !context.approved };`;

const NO_HIGH_FOR_INTERN = `forbid(principal == Workload::"intern-bot", action, resource)
  when { resource.sensitivity == "high" };`;

beforeAll(async () => {
  broker = await startBroker({ clock: { now: () => Date.now() + skewMs } });
  admin = asAdmin(broker);
  await putBoundary(broker, 'payments', {
    tool: 'https://pay.acme.test',
    actions: ['refund:create'],
    intents: ['refund_request'],
    policy: REFUND_POLICY,
  });
  await putBoundary(broker, 'crm-owned', {
    tool: 'https://crm.acme.test',
    actions: ['orders:read'],
    intents: ['order_status'],
    policy: OWNER_POLICY,
  });
  await putBoundary(broker, 'payroll', {
    tool: 'https://payroll.acme.test',
    actions: ['payslip:read'],
    intents: ['order_status'],
    policy: BUSINESS_HOURS,
  });
  await putBoundary(broker, 'hr', {
    tool: 'https://hr.acme.test',
    actions: ['record:read'],
    intents: ['order_status'],
    sensitivity: 'high',
  });
  await putBoundary(broker, 'refunds', {
    tool: 'https://refunds.acme.test',
    actions: ['refund:create'],
    intents: ['refund_request'],
    policy: APPROVED_REFUNDS,
  });
  await putBoundary(broker, 'guarded', {
    tool: 'https://guarded.acme.test',
    actions: ['thing:read'],
    intents: ['order_status'],
    policy: NO_HIGH_FOR_INTERN,
  });
  await putBoundary(broker, 'plain', { tool: 'https://plain.acme.test', actions: ['thing:read'], intents: ['order_status'] });
  bot = await registerBot(broker);
  intern = await registerBot(broker, 'intern-bot');
});
afterAll(() => broker?.close());

/** Calls as the bot with an assertion made for the broker's (skewed) clock. */
async function asBot(who: Bot, method: string, path: string, json?: unknown): Promise<Response> {
  const now = Math.floor((Date.now() + skewMs) / 1000);
  const token = await assertion(who.id, who.key, broker.url, { iat: now, exp: now + 60 });
  return call(broker.url, method, path, { token, json });
}

async function openTask(who: Bot, intent: string, subject = 'user-42'): Promise<string> {
  const response = await asBot(who, 'POST', '/v1/tasks', { intent, subject });
  expect(response.status).toBe(201);
  return response.body.task_id;
}

async function rows<T>(text: string, params: unknown[] = []): Promise<T[]> {
  return (await broker.app.broker.db.query<T>(text, params)).rows;
}

/** The next Wednesday (or Saturday) at this UTC hour, as a skew from now. */
function skewTo(weekday: number, hour: number): number {
  const target = new Date();
  target.setUTCDate(target.getUTCDate() + ((weekday - target.getUTCDay() + 7) % 7) + 7);
  target.setUTCHours(hour, 30, 0, 0);
  return target.getTime() - Date.now();
}

describe('Cedar policies on a boundary', () => {
  it('permits a refund of at most 100 and forbids one above, naming the policy in the 403 and the decision row', async () => {
    const taskId = await openTask(bot, 'refund_request');
    const small = await asBot(bot, 'POST', `/v1/tasks/${taskId}/credentials`, {
      boundary: 'payments',
      action: 'refund:create',
      params: { amount: 100 },
    });
    expect(small.status).toBe(201);

    const large = await asBot(bot, 'POST', `/v1/tasks/${taskId}/credentials`, {
      boundary: 'payments',
      action: 'refund:create',
      params: { amount: 101 },
    });
    expect(large.status).toBe(403);
    expect(large.body).toMatchObject({
      error: 'access_denied',
      reasons: ['policy_forbid'],
      policies: [{ id: 'boundary:payments', version: 1 }],
    });

    // No amount: no permit applies, and a policy is attached: deny.
    const none = await asBot(bot, 'POST', `/v1/tasks/${taskId}/credentials`, { boundary: 'payments', action: 'refund:create' });
    expect(none.status).toBe(403);
    expect(none.body).toMatchObject({ reasons: ['policy_no_permit'] });

    const recorded = await rows<{ id: string; outcome: string; reasons: string[]; policies: unknown; intent: string; subject: string }>(
      'SELECT id, outcome, reasons, policies, intent, subject FROM decisions WHERE task_id = $1 ORDER BY id',
      [taskId],
    );
    expect(recorded).toEqual([
      {
        id: expect.any(String),
        outcome: 'permit',
        reasons: [],
        policies: [{ id: 'boundary:payments', version: 1 }],
        intent: 'refund_request',
        subject: 'user-42',
      },
      {
        id: large.body.decision_id,
        outcome: 'deny',
        reasons: ['policy_forbid'],
        policies: [{ id: 'boundary:payments', version: 1 }],
        intent: 'refund_request',
        subject: 'user-42',
      },
      {
        id: none.body.decision_id,
        outcome: 'deny',
        reasons: ['policy_no_permit'],
        policies: [],
        intent: 'refund_request',
        subject: 'user-42',
      },
    ]);
    // The review API (an admin's) shows the same policies, newest first: the denial without a permit names none.
    const history = await admin('GET', `/v1/decisions?task=${taskId}`);
    expect(history.status).toBe(200);
    expect(history.body.items.map((item: { decision_id: string; policies: unknown }) => [item.decision_id, item.policies])).toEqual([
      [none.body.decision_id, []],
      [large.body.decision_id, [{ id: 'boundary:payments', version: 1 }]],
      [recorded[0]!.id, [{ id: 'boundary:payments', version: 1 }]],
    ]);
  });

  it("permits a resource only to the task's subject (params.owner == context.subject)", async () => {
    const taskId = await openTask(bot, 'order_status', 'user-42');
    const own = await asBot(bot, 'POST', `/v1/tasks/${taskId}/credentials`, {
      boundary: 'crm-owned',
      action: 'orders:read',
      resource: 'order/1',
      params: { owner: 'user-42' },
    });
    expect(own.status).toBe(201);
    const other = await asBot(bot, 'POST', `/v1/tasks/${taskId}/credentials`, {
      boundary: 'crm-owned',
      action: 'orders:read',
      resource: 'order/2',
      params: { owner: 'user-7' },
    });
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({ reasons: ['policy_no_permit'] });
    // A forged entity reference in params is not an entity: it is dropped, not trusted.
    const forged = await asBot(bot, 'POST', `/v1/tasks/${taskId}/credentials`, {
      boundary: 'crm-owned',
      action: 'orders:read',
      params: { owner: { __entity: { type: 'Workload', id: 'user-42' } } },
    });
    expect(forged.status).toBe(403);
  });

  it('permits a tool only during business hours, by the broker clock', async () => {
    try {
      skewMs = skewTo(3, 10);
      const taskId = await openTask(bot, 'order_status');
      const open = await asBot(bot, 'POST', `/v1/tasks/${taskId}/credentials`, { boundary: 'payroll', action: 'payslip:read' });
      expect(open.status).toBe(201);

      skewMs = skewTo(3, 20);
      const evening = await openTask(bot, 'order_status');
      const late = await asBot(bot, 'POST', `/v1/tasks/${evening}/credentials`, { boundary: 'payroll', action: 'payslip:read' });
      expect(late.status).toBe(403);
      expect(late.body).toMatchObject({ reasons: ['policy_no_permit'] });

      skewMs = skewTo(6, 11);
      const saturday = await openTask(bot, 'order_status');
      const weekend = await asBot(bot, 'POST', `/v1/tasks/${saturday}/credentials`, { boundary: 'payroll', action: 'payslip:read' });
      expect(weekend.status).toBe(403);
    } finally {
      skewMs = 0;
    }
  });

  it("keeps the valid policy when a new one does not validate: 400 with Cedar's message, line and column", async () => {
    const before = (await admin('GET', '/v1/admin/boundaries/payments')).body;
    const definition = {
      tool: 'https://pay.acme.test',
      actions: ['refund:create'],
      intents: ['refund_request'],
      default_ttl: 120,
      max_ttl: 600,
      credential: { kind: 'jwt' },
    };
    const bad = await admin('PUT', '/v1/admin/boundaries/payments', {
      ...definition,
      policy: 'permit(principal, action, resource)\n  when { context.params.amount <= };',
    });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({
      error: 'invalid_request',
      field: 'policy',
      problems: [{ message: expect.stringContaining('unexpected token'), line: 2, column: 35 }],
    });
    expect(bad.body.error_description).toMatch(/line 2, column 35/);

    const untyped = await admin('PUT', '/v1/admin/boundaries/payments', {
      ...definition,
      policy: 'permit(principal, action, resource) when { context.params.colour == "red" };',
    });
    expect(untyped.status).toBe(400);
    expect(untyped.body.problems[0]).toMatchObject({ message: expect.stringContaining('params.colour'), line: 1 });
    const unknownAction = await admin('PUT', '/v1/admin/boundaries/payments', {
      ...definition,
      policy: 'permit(principal, action == Action::"refund:craete", resource);',
    });
    expect(unknownAction.status).toBe(400);

    const after = (await admin('GET', '/v1/admin/boundaries/payments')).body;
    expect(after).toEqual(before);
  });
});

describe('a boundary policy of forbids only', () => {
  it("follows Cedar's default deny: nothing permits, so every request is refused (policy_no_permit)", async () => {
    const taskId = await openTask(bot, 'order_status');
    const denied = await asBot(bot, 'POST', `/v1/tasks/${taskId}/credentials`, { boundary: 'guarded', action: 'thing:read' });
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ reasons: ['policy_no_permit'], policies: [] });
  });
});

describe('a policy that requires approval', () => {
  let reviewerKey: string;
  beforeAll(async () => {
    reviewerKey = (await admin('POST', '/v1/admin/api-keys', { role: 'reviewer', label: 'refunds desk' })).body.key;
  });
  const refund = (taskId: string, amount: number, approvalId?: string) =>
    asBot(bot, 'POST', `/v1/tasks/${taskId}/credentials`, {
      boundary: 'refunds',
      action: 'refund:create',
      params: { amount },
      ...(approvalId ? { approval_id: approvalId } : {}),
    });
  const approve = async (approvalId: string) => {
    const approved = await call(broker.url, 'POST', `/v1/approvals/${approvalId}/approve`, {
      token: reviewerKey,
      json: { reason: 'checked the order' },
    });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
  };

  it('permits 50, sends 500 to a reviewer (202, pending), then permits the approved repeat once; another amount is refused', async () => {
    const taskId = await openTask(bot, 'refund_request');
    expect((await refund(taskId, 50)).status).toBe(201);

    const pending = await refund(taskId, 500);
    expect(pending.status, JSON.stringify(pending.body)).toBe(202);
    expect(pending.body).toMatchObject({ status: 'pending', approval_id: expect.any(String), expires_at: expect.any(String) });
    const approvalId: string = pending.body.approval_id;
    const [event] = await rows<{ data: { policies: unknown; decision_id: string } }>(
      "SELECT data FROM audit_events WHERE kind = 'credential.pending' AND data->>'approval_id' = $1",
      [approvalId],
    );
    expect(event!.data.policies).toEqual([{ id: 'boundary:refunds', version: 1 }]);
    const [decision] = await rows<{ outcome: string; reasons: string[] }>('SELECT outcome, reasons FROM decisions WHERE id = $1', [
      event!.data.decision_id,
    ]);
    expect(decision).toEqual({ outcome: 'pending', reasons: ['approval_required'] });
    // Polling before a reviewer decides answers pending again.
    expect((await refund(taskId, 500, approvalId)).status).toBe(202);

    await approve(approvalId);
    const mismatch = await refund(taskId, 600, approvalId);
    expect(mismatch.status).toBe(403);
    expect(mismatch.body.reasons).toEqual(['approval_mismatch']);
    const permitted = await refund(taskId, 500, approvalId);
    expect(permitted.status, JSON.stringify(permitted.body)).toBe(201);
    const [permit] = await rows<{ policies: unknown; approval_id: string }>(
      'SELECT d.policies, d.approval_id FROM decisions d JOIN leases l ON l.decision_id = d.id WHERE l.id = $1',
      [permitted.body.lease_id],
    );
    expect(permit).toEqual({ policies: [{ id: 'boundary:refunds', version: 1 }], approval_id: approvalId });
    const again = await refund(taskId, 500, approvalId);
    expect(again.status).toBe(403);
    expect(again.body.reasons).toEqual(['approval_used']);
  });

  it('answers authorization_pending at /oauth2/token, then a token once approved', async () => {
    const taskId = await openTask(bot, 'refund_request');
    const form = async (approvalId?: string) => {
      const now = Math.floor((Date.now() + skewMs) / 1000);
      return {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: await assertion(bot.id, bot.key, broker.url, { iat: now, exp: now + 60 }),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        audience: 'https://refunds.acme.test',
        authorization_details: JSON.stringify([
          {
            type: 'tool_call',
            task_id: taskId,
            boundary: 'refunds',
            action: 'refund:create',
            params: { amount: 500 },
            ...(approvalId ? { approval_id: approvalId } : {}),
          },
        ]),
      };
    };
    const pending = await call(broker.url, 'POST', '/oauth2/token', { form: await form() });
    expect(pending.status).toBe(400);
    expect(pending.body).toMatchObject({ error: 'authorization_pending', approval_id: expect.any(String) });
    await approve(pending.body.approval_id);
    const token = await call(broker.url, 'POST', '/oauth2/token', { form: await form(pending.body.approval_id) });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    expect(token.body.access_token).toEqual(expect.any(String));
  });

  it('refuses an @approval annotation other than "required" on write, keeping the valid policy', async () => {
    const refused = await admin('PUT', '/v1/admin/boundaries/refunds', {
      tool: 'https://refunds.acme.test',
      actions: ['refund:create'],
      intents: ['refund_request'],
      default_ttl: 60,
      max_ttl: 600,
      credential: { kind: 'jwt' },
      policy: '@approval("sometimes") permit(principal, action, resource);',
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error_description).toContain('approval annotation');
    expect((await admin('GET', '/v1/admin/boundaries/refunds')).body.policy).toBe(APPROVED_REFUNDS);
  });
});

describe('global policy sets', () => {
  it('forbids a high-sensitivity boundary to one workload; a forbid-only set leaves other requests alone', async () => {
    const put = await admin('PUT', '/v1/admin/policies/no-high-for-intern', {
      policy: NO_HIGH_FOR_INTERN,
      description: 'interns never touch high-sensitivity tools',
    });
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({
      id: 'no-high-for-intern',
      version: 1,
      enabled: true,
      description: 'interns never touch high-sensitivity tools',
    });

    const internTask = await openTask(intern, 'order_status');
    const denied = await asBot(intern, 'POST', `/v1/tasks/${internTask}/credentials`, { boundary: 'hr', action: 'record:read' });
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ reasons: ['policy_forbid'], policies: [{ id: 'no-high-for-intern', version: 1 }] });
    const low = await asBot(intern, 'POST', `/v1/tasks/${internTask}/credentials`, { boundary: 'plain', action: 'thing:read' });
    expect(low.status).toBe(201);

    const botTask = await openTask(bot, 'order_status');
    const allowed = await asBot(bot, 'POST', `/v1/tasks/${botTask}/credentials`, { boundary: 'hr', action: 'record:read' });
    expect(allowed.status).toBe(201);
  });

  it('versions every change, refuses an invalid one without touching the active version, and DELETE disables', async () => {
    const bad = await admin('PUT', '/v1/admin/policies/no-high-for-intern', {
      policy: 'forbid(principal, action, resource) when { resource.sensitivty == "high" };',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.problems[0]).toMatchObject({ message: expect.stringContaining('sensitivty'), line: 1, column: expect.any(Number) });
    expect((await admin('GET', '/v1/admin/policies/no-high-for-intern')).body).toMatchObject({ version: 1, policy: NO_HIGH_FOR_INTERN });

    const changed = await admin('PUT', '/v1/admin/policies/no-high-for-intern', {
      policy: NO_HIGH_FOR_INTERN.replace('"high"', '"medium"'),
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ version: 2 });
    const internTask = await openTask(intern, 'order_status');
    // Takes effect at once on this replica: high is no longer forbidden.
    expect((await asBot(intern, 'POST', `/v1/tasks/${internTask}/credentials`, { boundary: 'hr', action: 'record:read' })).status).toBe(
      201,
    );

    const deleted = await admin('DELETE', '/v1/admin/policies/no-high-for-intern');
    expect(deleted.body).toMatchObject({ version: 3, enabled: false });
    const list = await admin('GET', '/v1/admin/policies');
    expect(list.body.items).toEqual([expect.objectContaining({ id: 'no-high-for-intern', version: 3, enabled: false })]);
    const versions = await rows<{ version: number }>("SELECT version FROM policies WHERE id = 'no-high-for-intern' ORDER BY version");
    expect(versions.map((row) => row.version)).toEqual([1, 2, 3]);
    expect((await admin('GET', '/v1/admin/policies/nope')).status).toBe(404);
  });

  it('takes effect on another replica within a second', async () => {
    const second = await broker.restart();
    try {
      const internTask = await openTask(intern, 'order_status');
      const path = `/v1/tasks/${internTask}/credentials`;
      const token = await assertion(intern.id, intern.key, second.url);
      const ask = () => call(second.url, 'POST', path, { token, json: { boundary: 'hr', action: 'record:read' } });
      expect((await ask()).status).toBe(201); // the second replica now remembers "no global policy"

      await admin('PUT', '/v1/admin/policies/no-high-for-intern', { policy: NO_HIGH_FOR_INTERN });
      const started = Date.now();
      let denied: Response | undefined;
      while (Date.now() - started < 1000) {
        const response = await ask();
        if (response.status === 403) {
          denied = response;
          break;
        }
      }
      expect(denied?.body).toMatchObject({ reasons: ['policy_forbid'], policies: [{ id: 'no-high-for-intern', version: 4 }] });
    } finally {
      await second.stop();
    }
  });

  it('maps a policy denial at /oauth2/token to access_denied with its reasons', async () => {
    const internTask = await openTask(intern, 'order_status');
    const response = await call(broker.url, 'POST', '/oauth2/token', {
      form: {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: await intern.token(),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        audience: 'https://hr.acme.test',
        authorization_details: JSON.stringify([{ type: 'tool_call', task_id: internTask, boundary: 'hr', action: 'record:read' }]),
      },
    });
    // RFC 6749 §5.2: a token endpoint answers its errors with 400.
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({
      error: 'access_denied',
      reasons: ['policy_forbid'],
      policies: [{ id: 'no-high-for-intern', version: 4 }],
    });
  });
});

describe('the policy set key', () => {
  it('is one row bumped with every policy write: a new key on each change, empty only when no policy is enabled', async () => {
    const key = async () => (await rows<{ key: string }>(`SELECT ${ACTIVE_POLICIES_KEY} AS key`))[0]!.key;
    const before = await key();
    await admin('PUT', '/v1/admin/policies/key-probe', { policy: NO_HIGH_FOR_INTERN });
    const added = await key();
    expect(added).not.toBe(before);
    expect(added).not.toBe('');
    // An unchanged PUT writes no version and keeps the key.
    await admin('PUT', '/v1/admin/policies/key-probe', { policy: NO_HIGH_FOR_INTERN });
    expect(await key()).toBe(added);
    await admin('DELETE', '/v1/admin/policies/key-probe');
    const enabled = await rows<{ n: number }>('SELECT count(*)::int AS n FROM policies WHERE superseded_at IS NULL AND enabled');
    const disabled = await key();
    expect(disabled).not.toBe(added);
    expect(disabled === '').toBe(enabled[0]!.n === 0);
  });
});

describe('simulation', () => {
  it('decides like the hot path and writes nothing', async () => {
    // Every table, not a chosen few: a simulation that wrote anywhere would show here.
    const tables = (
      await rows<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`)
    ).map((t) => t.name);
    expect(tables.length).toBeGreaterThan(10);
    const snapshot = async () =>
      Object.fromEntries(
        await Promise.all(
          tables.map(async (name) => [name, (await rows<{ n: number }>(`SELECT count(*)::int AS n FROM "${name}"`))[0]!.n] as const),
        ),
      );
    const before = await snapshot();
    const simulate = (body: unknown) => admin('POST', '/v1/admin/simulate', body);

    const cases = [
      { who: intern, intent: 'order_status', request: { boundary: 'hr', action: 'record:read' } },
      { who: bot, intent: 'refund_request', request: { boundary: 'payments', action: 'refund:create', params: { amount: 40 } } },
      { who: bot, intent: 'refund_request', request: { boundary: 'refunds', action: 'refund:create', params: { amount: 500 } } },
      { who: bot, intent: 'order_status', request: { boundary: 'payments', action: 'refund:create' } },
    ];
    const simulated = [];
    for (const { who, intent, request } of cases) {
      const answer = await simulate({ workload: who.id, task: { intent, subject: 'u' }, request });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      simulated.push(answer.body);
    }
    expect(simulated[0]).toEqual({
      decision: 'deny',
      reasons: ['policy_forbid'],
      policies: [{ id: 'no-high-for-intern', version: 4 }],
      errors: [],
      approval_required: false,
      boundary_version: 1,
    });
    expect(simulated[1]).toMatchObject({
      decision: 'permit',
      reasons: [],
      policies: [{ id: 'boundary:payments', version: 1 }],
      approval_required: false,
    });
    expect(simulated[2]).toMatchObject({ decision: 'permit', policies: [{ id: 'boundary:refunds', version: 1 }], approval_required: true });
    expect(simulated[3]).toMatchObject({ decision: 'deny', reasons: ['intent_mismatch'], policies: [] });
    const bad = await simulate({
      workload: 'chatbot',
      task: { intent: 'order_status' },
      request: { boundary: 'payments', action: 'refund:create' },
    });
    expect(bad.status).toBe(400);
    expect(await snapshot()).toEqual(before);

    // The same requests on the hot path decide the same: outcome, reasons and the policies named in
    // the decision row.
    for (const [i, { who, intent, request }] of cases.entries()) {
      const taskId = await openTask(who, intent, 'u');
      await asBot(who, 'POST', `/v1/tasks/${taskId}/credentials`, request);
      const [live] = await rows<{ outcome: string; reasons: string[]; policies: unknown }>(
        'SELECT outcome, reasons, policies FROM decisions WHERE task_id = $1',
        [taskId],
      );
      const sim = simulated[i];
      // A permit that needs approval is a pending decision there, which records why and no policies.
      const expected = sim.approval_required
        ? { outcome: 'pending', reasons: ['approval_required'], policies: null }
        : { outcome: sim.decision, reasons: sim.reasons, policies: sim.policies };
      // A denial before Cedar ran records no policies (NULL) where the simulation says none ([]).
      expect(
        { ...live, policies: sim.decision === 'deny' && live?.policies === null ? [] : live?.policies },
        JSON.stringify(request),
      ).toEqual(expected);
    }
  });
});

describe('metrics', () => {
  it('observes the Cedar step of each credential request Cedar decides in tollgate_policy_evaluation_seconds', async () => {
    const count = async () => {
      const metrics = await call<string>(broker.url, 'GET', '/metrics');
      return Number(/^tollgate_policy_evaluation_seconds_count (\d+)/m.exec(metrics.body)?.[1]);
    };
    const before = await count();
    const taskId = await openTask(bot, 'refund_request');
    const permitted = await asBot(bot, 'POST', `/v1/tasks/${taskId}/credentials`, {
      boundary: 'payments',
      action: 'refund:create',
      params: { amount: 50 },
    });
    expect(permitted.status).toBe(201);
    expect(await count()).toBe(before + 1);
  });
});
