import { context, propagation, trace } from '@opentelemetry/api';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { decodeJwt, generateKeyPair } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { TollgateClient } from './client.js';
import { AccessDenied, ApprovalPending, InvalidRequest, TollgateUnavailable } from './errors.js';
import { CREDENTIAL, scriptedServer, TASK_ID, type Step } from './scripted-server.fixture.js';

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

type Options = ConstructorParameters<typeof TollgateClient>[0];

async function setUp(
  steps: Step[],
  options: { issuer?: string; retry?: Options['retry']; timeoutMs?: number; traceparent?: Options['traceparent'] } = {},
) {
  const server = await scriptedServer(steps, options.issuer);
  servers.push(server);
  const { privateKey } = await generateKeyPair('EdDSA');
  const client = new TollgateClient({
    url: server.url,
    tokenSource: { workloadId: 'chatbot', privateKey, kid: 'k1', alg: 'EdDSA' },
    retry: options.retry ?? { baseDelayMs: 5, maxDelayMs: 20 },
    timeoutMs: options.timeoutMs,
    traceparent: options.traceparent,
  });
  return { server, client, task: client.task(TASK_ID) };
}

const unavailable: Step = {
  status: 503,
  body: { error: 'temporarily_unavailable', error_description: 'the database is not available; try again shortly' },
};
const busy: Step = { status: 429, body: { error: 'too_many_requests', error_description: 'slow down' }, headers: { 'retry-after': '1' } };
const issued: Step = { status: 201, body: CREDENTIAL };

describe('retries', () => {
  it('retries 503 and 429 with backoff until the credential is issued, each attempt once on the wire', async () => {
    const { server, task } = await setUp([unavailable, unavailable, issued]);
    const credential = await task.credential({ boundary: 'crm-orders', action: 'orders:read' });
    expect(credential).toMatchObject({
      leaseId: CREDENTIAL.lease_id,
      accessToken: 'header.payload.signature',
      tokenType: 'Bearer',
      kind: 'jwt',
      expiresIn: 120,
    });
    expect(credential.expiresAt.toISOString()).toBe(CREDENTIAL.expires_at);
    expect(server.seen.map((request) => request.url)).toEqual(Array(3).fill(`/v1/tasks/${TASK_ID}/credentials`));
  });

  it('honours Retry-After on a 429', async () => {
    const { server, task } = await setUp([busy, issued]);
    const started = Date.now();
    await task.credential({ boundary: 'crm-orders', action: 'orders:read' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
    expect(server.seen).toHaveLength(2);
  });

  it('gives up after maxAttempts with TollgateUnavailable', async () => {
    const { server, task } = await setUp([unavailable], { retry: { maxAttempts: 3, baseDelayMs: 1 } });
    const error = await task.credential({ boundary: 'crm-orders', action: 'orders:read' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TollgateUnavailable);
    expect(error).toMatchObject({ status: 503, outcomeUnknown: false });
    expect(server.seen).toHaveLength(3);
  });

  it('does not start a retry that would end past maxElapsedMs', async () => {
    const { server, task } = await setUp([busy], { retry: { maxAttempts: 10, maxElapsedMs: 500 } });
    const error = await task.credential({ boundary: 'crm-orders', action: 'orders:read' }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ status: 429, retryAfterMs: 1000 });
    expect(server.seen).toHaveLength(1);
  });

  it('never retries a 400 or a 403', async () => {
    const bad = await setUp([
      { status: 400, body: { error: 'invalid_request', error_description: 'unknown field "colour"', field: 'colour' } },
      issued,
    ]);
    await expect(bad.task.credential({ boundary: 'crm-orders', action: 'orders:read' })).rejects.toBeInstanceOf(InvalidRequest);
    expect(bad.server.seen).toHaveLength(1);

    const denied = await setUp([
      { status: 403, body: { error: 'access_denied', error_description: 'no', reasons: ['intent_mismatch'], decision_id: 'd-1' } },
      issued,
    ]);
    const error = await denied.task.credential({ boundary: 'payments', action: 'refund:create' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AccessDenied);
    expect(error).toMatchObject({ reasons: ['intent_mismatch'], decisionId: 'd-1' });
    expect(denied.server.seen).toHaveLength(1);
  });

  it('turns a 202 into ApprovalPending, not a credential', async () => {
    const { task } = await setUp([{ status: 202, body: { approval_id: 'ap-7', status: 'pending' } }]);
    await expect(task.credential({ boundary: 'payments', action: 'refund:create' })).rejects.toMatchObject({
      constructor: ApprovalPending,
      approvalId: 'ap-7',
    });
  });

  it('repeats an approved request with approval_id in the body, the request itself unchanged', async () => {
    const { server, task } = await setUp([
      { status: 202, body: { approval_id: 'ap-7', status: 'pending' } },
      issued,
      issued,
      { status: 200, body: {} },
    ]);
    const refund = { boundary: 'payments', action: 'refund:create', resource: 'order/1002', params: { amount: 349 } };
    const pending = (await task.credential(refund).catch((caught: unknown) => caught)) as ApprovalPending;
    await task.credential(refund, { approvalId: pending.approvalId });
    const used = await task.withCredential(refund, (credential) => credential.leaseId, { approvalId: 'ap-8' });
    expect(used).toBe(CREDENTIAL.lease_id);
    const bodies = server.seen.slice(0, 3).map((request) => JSON.parse(request.body) as Record<string, unknown>);
    expect(bodies).toEqual([refund, { ...refund, approval_id: 'ap-7' }, { ...refund, approval_id: 'ap-8' }]);
    // withCredential revoked the credential it got once `use` returned.
    expect(server.seen[3]!.url).toBe('/oauth2/revoke');
  });

  it('does not replay a credential request whose connection broke: the outcome is unknown', async () => {
    const { server, task } = await setUp(['hang-up', issued]);
    const error = await task.credential({ boundary: 'crm-orders', action: 'orders:read' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TollgateUnavailable);
    expect(error).toMatchObject({ status: 0, outcomeUnknown: true });
    expect(server.seen).toHaveLength(1);
  });

  it('replays a read and a revocation after a broken connection', async () => {
    const view = {
      task_id: TASK_ID,
      workload_id: 'chatbot',
      intent: 'order_status',
      subject: 'user-42',
      state: 'active',
      created_at: '2026-11-27T03:00:00.000Z',
      expires_at: '2026-11-27T03:30:00.000Z',
      ended_at: null,
      end_reason: null,
      events: [],
      leases: [],
    };
    const read = await setUp(['hang-up', { status: 200, body: view }]);
    await expect(read.task.get()).resolves.toMatchObject({ id: TASK_ID, state: 'active', leases: [] });
    expect(read.server.seen).toHaveLength(2);

    const revoke = await setUp(['hang-up', { status: 200, body: {} }]);
    await revoke.client.revoke('header.payload.signature');
    expect(revoke.server.seen).toHaveLength(2);
    expect(revoke.server.seen[1]!.body).toBe('token=header.payload.signature');
    expect(revoke.server.seen[1]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
  });

  it('retries a connection refused even for a credential request: it never reached anyone', async () => {
    const { server } = await setUp([issued]);
    const url = server.url;
    await server.close();
    servers.length = 0;
    const started = Date.now();
    // The token is built afresh for every attempt: its count is the number of attempts made.
    let attempts = 0;
    const tokenSource = () => {
      attempts += 1;
      return 'a.b.c';
    };
    const error = await new TollgateClient({ url, tokenSource, retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 50 } })
      .task(TASK_ID)
      .credential({ boundary: 'crm-orders', action: 'orders:read' })
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ constructor: TollgateUnavailable, status: 0, outcomeUnknown: false });
    expect(attempts).toBe(3);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('times an attempt out', async () => {
    const { server, task } = await setUp([{ ...issued, delayMs: 1000 }], { timeoutMs: 200 });
    const started = Date.now();
    const error = await task.credential({ boundary: 'crm-orders', action: 'orders:read' }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({
      constructor: TollgateUnavailable,
      outcomeUnknown: true,
      description: 'Tollgate did not answer in time; the request may have been carried out',
    });
    expect(Date.now() - started).toBeLessThan(900);
    expect(server.seen).toHaveLength(1);
  });

  it('refuses bad retry settings at construction, naming the field', () => {
    expect(() => new TollgateClient({ url: 'http://127.0.0.1:1', tokenSource: () => 'a.b.c', retry: { maxAttempts: 0 } })).toThrow(
      /retry\.maxAttempts/,
    );
    expect(() => new TollgateClient({ url: 'http://127.0.0.1:1', tokenSource: () => 'a.b.c', retry: { baseDelayMs: -1 } })).toThrow(
      /retry\.baseDelayMs/,
    );
    expect(() => new TollgateClient({ url: 'ftp://x', tokenSource: () => 'a.b.c' })).toThrow(/^url/);
  });
});

describe('workload authentication', () => {
  it('signs assertions for the issuer named in the metadata document and reuses them', async () => {
    const { server, client } = await setUp(
      [
        {
          status: 201,
          body: {
            task_id: TASK_ID,
            workload_id: 'chatbot',
            intent: 'order_status',
            subject: 'user-42',
            state: 'active',
            created_at: '2026-11-27T03:00:00.000Z',
            expires_at: '2026-11-27T03:30:00.000Z',
            ended_at: null,
            end_reason: null,
          },
        },
      ],
      { issuer: 'https://tollgate.acme.test' },
    );
    const task = await client.openTask({ intent: 'order_status', subject: 'user-42' });
    await client.openTask({ intent: 'order_status', subject: 'user-42', ttl: 60 });
    expect(task).toMatchObject({ id: TASK_ID, intent: 'order_status' });
    const [first, second] = server.seen.map((request) => request.headers.authorization!.replace(/^Bearer /, ''));
    expect(decodeJwt(first!)).toMatchObject({ iss: 'chatbot', sub: 'chatbot', aud: 'https://tollgate.acme.test' });
    expect(second).toBe(first);
    expect(JSON.parse(server.seen[1]!.body)).toEqual({ intent: 'order_status', subject: 'user-42', ttl: 60 });
  });

  it('calls a token function before every request', async () => {
    const server = await scriptedServer([issued]);
    servers.push(server);
    let calls = 0;
    const client = new TollgateClient({ url: server.url, tokenSource: async () => `svid.${++calls}.sig` });
    await client.task(TASK_ID).credential({ boundary: 'crm-orders', action: 'orders:read' });
    await client.task(TASK_ID).credential({ boundary: 'crm-orders', action: 'orders:read' });
    expect(server.seen.map((request) => request.headers.authorization)).toEqual(['Bearer svid.1.sig', 'Bearer svid.2.sig']);
  });
});

describe('withCredential', () => {
  it('revokes the credential after the callback by default, also when it throws', async () => {
    const { server, task } = await setUp([issued, { status: 200, body: {} }, issued, { status: 200, body: {} }]);
    const result = await task.withCredential({ boundary: 'crm-orders', action: 'orders:read' }, (credential) =>
      credential.headers('GET', 'https://crm.acme.test/orders/1'),
    );
    expect(result).toEqual({ authorization: 'Bearer header.payload.signature' });
    await expect(
      task.withCredential({ boundary: 'crm-orders', action: 'orders:read' }, () => {
        throw new Error('tool failed');
      }),
    ).rejects.toThrow('tool failed');
    expect(server.seen.map((request) => request.url)).toEqual([
      `/v1/tasks/${TASK_ID}/credentials`,
      '/oauth2/revoke',
      `/v1/tasks/${TASK_ID}/credentials`,
      '/oauth2/revoke',
    ]);
  });

  it('keeps the credential with revokeAfter: false, and reports a failed revocation without hiding the result', async () => {
    const kept = await setUp([issued]);
    await kept.task.withCredential({ boundary: 'crm-orders', action: 'orders:read' }, () => 'ok', { revokeAfter: false });
    expect(kept.server.seen).toHaveLength(1);

    const server = await scriptedServer([
      issued,
      { status: 400, body: { error: 'invalid_request', error_description: 'token: is required' } },
    ]);
    servers.push(server);
    const failures: string[] = [];
    const client = new TollgateClient({
      url: server.url,
      tokenSource: () => 'a.b.c',
      onRevokeError: (error, leaseId) => failures.push(`${leaseId} ${error.code}`),
    });
    await expect(client.task(TASK_ID).withCredential({ boundary: 'crm-orders', action: 'orders:read' }, () => 'result')).resolves.toBe(
      'result',
    );
    expect(failures).toEqual([`${CREDENTIAL.lease_id} invalid_request`]);
  });
});

describe('trace context', () => {
  it("sends the active OpenTelemetry span's traceparent on every attempt of a request", async () => {
    const provider = new NodeTracerProvider();
    provider.register();
    try {
      const { server, task } = await setUp([unavailable, issued]);
      const tracer = provider.getTracer('bot');
      const ids = await tracer.startActiveSpan('tool call', async (span) => {
        await task.credential({ boundary: 'crm-orders', action: 'orders:read' });
        span.end();
        return span.spanContext();
      });
      expect(server.seen.map((request) => request.headers.traceparent)).toEqual(Array(2).fill(`00-${ids.traceId}-${ids.spanId}-01`));
      // Outside any span there is nothing to continue.
      await task.credential({ boundary: 'crm-orders', action: 'orders:read' });
      expect(server.seen[2]!.headers.traceparent).toBeUndefined();
    } finally {
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    }
  });

  it('sends an explicit traceparent, drops a malformed one, and sends none without an OpenTelemetry SDK or with false', async () => {
    const given = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    for (const [option, expected] of [
      [() => given, given],
      [() => 'not-a-traceparent\r\nx: y', undefined],
      [undefined, undefined],
      [false, undefined],
    ] as const) {
      const { server, task } = await setUp([issued], { traceparent: option });
      await task.credential({ boundary: 'crm-orders', action: 'orders:read' });
      expect(server.seen[0]!.headers.traceparent).toBe(expected);
    }
  });
});
