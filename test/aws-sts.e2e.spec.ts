import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REVOKED_POLICY_NAME, parseRevocationPolicy, revokedLeases } from '../libs/credentials/aws-sts/revocation-policy.js';
import { startAwsServer, type AwsTestServer } from './support/aws-server.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { asAdmin, BOUNDARY, registerBot, type Bot } from './support/scenario.js';

let aws: AwsTestServer;
let broker: TestBroker;
let bot: Bot;
let roleArn: string;
const saved = { ...process.env };
/** Retries come fast here: the backoff's shape is checked in libs/leases/outbox.spec.ts. */
const FAST = { firstRetryMs: 20, maxRetryMs: 80, maxAttempts: 5, failedRetryMs: 60_000, issuingGraceMs: 60_000 };

/** Runs outbox passes until `until` holds, or gives up after `ms`. */
async function drain(until: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await broker.app.broker.outbox.runOnce();
    if (await until()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('outbox did not finish in time');
}

async function leaseState(id: string): Promise<string | undefined> {
  const { rows } = await broker.app.broker.db.query<{ state: string }>('SELECT state FROM leases WHERE id = $1', [id]);
  return rows[0]?.state;
}

function deniedLeases(): string[] {
  return revokedLeases(parseRevocationPolicy(aws.rolePolicy('crm-exports-reader', REVOKED_POLICY_NAME)));
}

const STS_BOUNDARY = {
  ...BOUNDARY,
  tool: 'https://s3.crm-exports.acme.test',
  actions: ['exports:read'],
  credential: {
    kind: 'aws-sts',
    role_arn: '',
    region: 'eu-west-1',
    session_policy: {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::crm-exports/${subject}/${resource}' }],
    },
  },
};

beforeAll(async () => {
  aws = await startAwsServer();
  roleArn = aws.addRole('crm-exports-reader');
  STS_BOUNDARY.credential.role_arn = roleArn;
  // Only the SDK's standard variables: no Tollgate setting points it at the test server.
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_STS: aws.url,
    AWS_ENDPOINT_URL_IAM: aws.url,
    AWS_ACCESS_KEY_ID: 'AKIATOLLGATEBROKER01',
    AWS_SECRET_ACCESS_KEY: 'broker-own-aws-secret-never-logged',
    AWS_REGION: 'us-east-1',
  });
  broker = await startBroker({ outboxTimings: FAST });
  bot = await registerBot(broker);
});
afterAll(async () => {
  await broker?.close();
  await aws?.close();
  for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
});

describe('aws-sts credentials through the broker', () => {
  it('refuses a bad aws-sts boundary with a 400 naming the field, and stores nothing', async () => {
    const admin = asAdmin(broker);
    const cases: [Record<string, unknown>, string][] = [
      [{ role_arn: 'arn:aws:iam::1:role/x' }, 'credential.role_arn'],
      [{ region: 'moon-1' }, 'credential.region'],
      [{ session_policy: '{"Statement": [' }, 'credential.session_policy'],
      [{ session_policy: { Statement: [{ Resource: `${'a'.repeat(1200)}\${resource}` }] } }, 'credential.session_policy'],
    ];
    for (const [change, field] of cases) {
      const response = await admin('PUT', '/v1/admin/boundaries/bad-sts', {
        ...STS_BOUNDARY,
        credential: { ...STS_BOUNDARY.credential, ...change },
      });
      expect(response.status).toBe(400);
      expect(response.body).toMatchObject({ error: 'invalid_request' });
      expect(response.body.error_description).toContain(field);
    }
    const unknown = await admin('PUT', '/v1/admin/boundaries/bad-sts', {
      ...STS_BOUNDARY,
      credential: { ...STS_BOUNDARY.credential, secret: 'x' },
    });
    expect(unknown.status).toBe(400);
    expect((await admin('GET', '/v1/admin/boundaries/bad-sts')).status).toBe(404);
  });

  it('a bot gets an STS session through the same credential request as a JWT; secrets stay out of audit rows', async () => {
    const put = await asAdmin(broker)('PUT', '/v1/admin/boundaries/crm-exports', STS_BOUNDARY);
    expect(put.status).toBeLessThan(300);
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-exports', action: 'exports:read', resource: 'q3.csv', ttl: 120 });
    expect(issued.status).toBe(201);
    const credential = issued.body.credential;
    const session = aws.sessions.get(credential.access_key_id)!;
    expect(credential).toEqual({
      kind: 'aws-sts',
      access_key_id: session.accessKeyId,
      secret_access_key: session.secretAccessKey,
      session_token: session.sessionToken,
      expiration: new Date(session.expiresAt).toISOString(),
      region: 'eu-west-1',
    });
    expect(session.tags).toEqual({ 'tollgate-lease': issued.body.lease_id, 'tollgate-task': taskId, 'tollgate-intent': 'order_status' });
    expect(session.sourceIdentity).toBe('chatbot');
    const assume = aws.requests.find((r) => r.action === 'AssumeRole')!;
    expect(assume).toMatchObject({
      region: 'eu-west-1',
      accessKeyId: 'AKIATOLLGATEBROKER01',
      params: { DurationSeconds: '900', RoleSessionName: `tg-${issued.body.lease_id}` },
    });
    expect(JSON.parse(assume.params.Policy!).Statement[0].Resource).toBe('arn:aws:s3:::crm-exports/user-42/q3.csv');

    const { rows } = await broker.app.broker.db.query<{ row: string }>(`SELECT row_to_json(a)::text AS row FROM audit_events a`);
    for (const { row } of rows) {
      for (const secret of [session.secretAccessKey, session.sessionToken, 'broker-own-aws-secret-never-logged'])
        expect(row).not.toContain(secret);
    }
  });

  it('STS refusing the role: 503 and the lease is not left usable', async () => {
    await asAdmin(broker)('PUT', '/v1/admin/boundaries/crm-missing', {
      ...STS_BOUNDARY,
      credential: { ...STS_BOUNDARY.credential, role_arn: 'arn:aws:iam::123456789012:role/not-there' },
    });
    const taskId = await bot.openTask();
    const refused = await bot.credential(taskId, { boundary: 'crm-missing', action: 'exports:read' });
    expect(refused.status).toBe(503);
    expect(JSON.stringify(refused.body)).not.toContain('AccessDenied');
    // STS answered with an error, so no session exists: the lease is dropped rather than sent to the
    // outbox to be denied at IAM (on a role that may not exist), and the audit log says why.
    const leases = await asAdmin(broker)('GET', `/v1/leases?task=${taskId}`);
    expect(leases.body.items).toEqual([]);
    const { rows } = await broker.app.broker.db.query<{ data: { kind: string; error: string } }>(
      `SELECT data FROM audit_events WHERE kind = 'credential.mint_failed' AND task_id = $1`,
      [taskId],
    );
    expect(rows.map((row) => row.data)).toMatchObject([{ kind: 'aws-sts', error: 'aws_sts_AccessDenied' }]);
    expect(aws.requests.some((r) => r.action === 'PutRolePolicy' && r.params.RoleName === 'not-there')).toBe(false);
  });

  it('completing the task puts the lease into the role deny policy at IAM: the session is refused from then on', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-exports', action: 'exports:read', resource: 'q4.csv' });
    expect(issued.status).toBe(201);
    const other = await bot.credential(await bot.openTask(), { boundary: 'crm-exports', action: 'exports:read' });
    expect(aws.denied(issued.body.credential.access_key_id)).toBe(false);

    expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).status).toBe(200);
    await drain(async () => (await leaseState(issued.body.lease_id)) === 'revoked');
    expect(deniedLeases()).toContain(issued.body.lease_id);
    expect(aws.denied(issued.body.credential.access_key_id)).toBe(true);
    expect(aws.denied(other.body.credential.access_key_id)).toBe(false);
    const put = aws.requests.filter((r) => r.action === 'PutRolePolicy').at(-1)!;
    expect(put).toMatchObject({
      service: 'iam',
      accessKeyId: 'AKIATOLLGATEBROKER01',
      params: { RoleName: 'crm-exports-reader', PolicyName: REVOKED_POLICY_NAME },
    });
  });

  it('IAM failing during revocation: the lease stays revoking, is retried, and ends revoked with the deny in place', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-exports', action: 'exports:read' });
    // One outbox attempt's worth of failures (the SDK itself tries three times).
    aws.fail(3, { kind: 'status', status: 500, code: 'ServiceFailure' }, 'PutRolePolicy');
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    await broker.app.broker.outbox.runOnce();
    expect(await leaseState(issued.body.lease_id)).toBe('revoking');
    expect(deniedLeases()).not.toContain(issued.body.lease_id);
    await drain(async () => (await leaseState(issued.body.lease_id)) === 'revoked');
    expect(deniedLeases()).toContain(issued.body.lease_id);
    expect(aws.denied(issued.body.credential.access_key_id)).toBe(true);
  });
});
