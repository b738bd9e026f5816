import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../libs/db/typeorm-database.js';
import type { Database } from '../libs/db/database.js';
import { uuidv7 } from '../libs/ids/ids.js';
import { appendAudit } from '../libs/audit/audit.js';
import { SourceError, type IssueRequest } from '../libs/credentials/provider.js';
import type { AwsStsSettings } from '../libs/credentials/aws-sts/settings.js';
import { sdkIamPort, sdkStsPort, AwsCallFailed, type AwsClientOptions } from '../libs/credentials/aws-sts/aws-ports.js';
import {
  REVOKED_POLICY_NAME,
  ROLE_INLINE_POLICY_LIMIT,
  parseRevocationPolicy,
  revokedLeases,
} from '../libs/credentials/aws-sts/revocation-policy.js';
import { databaseRoleLocks, type RoleLocks } from '../libs/credentials/aws-sts/deny-policy-store.js';
import { StsCredentialProvider } from '../libs/credentials/aws-sts/sts-provider.js';
import type { ToolBoundary } from '../libs/policy/boundary.js';
import { startAwsServer, type AwsTestServer } from './support/aws-server.js';
import { freshDatabase, type TestDatabase } from './support/database.js';

const CREDENTIALS = { accessKeyId: 'AKIATESTTOLLGATE0001', secretAccessKey: 'tollgate-test-secret-access-key-never-logged' };
let aws: AwsTestServer;
let testDb: TestDatabase;
let db: Database;
let roleArn: string;

const clientOptions = (extra: Partial<AwsClientOptions> = {}): AwsClientOptions => ({
  endpoints: { sts: aws.url, iam: aws.url },
  credentials: CREDENTIALS,
  requestTimeoutMs: 1000,
  ...extra,
});

function provider(
  options: { locks?: RoleLocks; budget?: number; onCutoff?: (e: { leases: number }) => void; client?: Partial<AwsClientOptions> } = {},
) {
  return new StsCredentialProvider(
    sdkStsPort(clientOptions(options.client)),
    sdkIamPort(clientOptions(options.client)),
    options.locks ?? databaseRoleLocks(db, appendAudit),
    {
      policyBudget: options.budget,
      onCutoff: options.onCutoff,
    },
  );
}

function boundary(arn = roleArn, extra: Record<string, unknown> = {}): ToolBoundary {
  return {
    id: 'crm-exports',
    version: 1,
    tool: 'https://crm.acme.test',
    actions: ['exports:read'],
    intents: ['order_status'],
    defaultTtl: 120,
    maxTtl: 600,
    credential: {
      kind: 'aws-sts',
      role_arn: arn,
      region: 'eu-central-1',
      session_policy: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::crm-exports/${subject}/${resource}' }],
      },
      ...extra,
    },
    sensitivity: 'low',
    driftThreshold: null,
    enabled: true,
    approval: null,
    policy: null,
    paramsSchemas: null,
    createdAt: new Date(),
  };
}

function issueRequest(options: { ttl?: number; resource?: string; boundary?: ToolBoundary } = {}): IssueRequest<AwsStsSettings> {
  const now = Date.now();
  const b = options.boundary ?? boundary();
  return {
    lease: {
      id: uuidv7(now),
      issuedAt: now,
      expiresAt: now + (options.ttl ?? 120) * 1000,
      action: 'exports:read',
      resource: options.resource ?? 'orders.csv',
    },
    task: { id: uuidv7(now), intent: 'order_status', subject: 'user-42' },
    workloadId: 'spiffe://acme.test/chatbot',
    boundary: b,
    settings: b.credential as AwsStsSettings,
  };
}

beforeAll(async () => {
  aws = await startAwsServer();
  testDb = await freshDatabase();
  db = await openDatabase({ databaseUrl: testDb.databaseUrl, dataDir: testDb.dataDir });
});
afterAll(async () => {
  await db?.close();
  await testDb?.drop();
  await aws?.close();
});
beforeEach(() => {
  roleArn = aws.addRole(`crm-reader-${Math.random().toString(36).slice(2, 8)}`);
  aws.requests.length = 0;
  aws.latencyMs = 0;
});

describe('aws-sts provider against STS and IAM', () => {
  it('issues: AssumeRole signed for the boundary region, with the lease tags, SourceIdentity, 900 s floor and the escaped policy', async () => {
    const request = issueRequest({ resource: 'q3/*.csv' });
    const minted = await provider().issue(request);
    const assume = aws.requests.find((r) => r.action === 'AssumeRole')!;
    expect(assume).toMatchObject({ service: 'sts', region: 'eu-central-1', accessKeyId: CREDENTIALS.accessKeyId });
    expect(assume.params).toMatchObject({
      Version: '2011-06-15',
      RoleArn: roleArn,
      RoleSessionName: `tg-${request.lease.id}`,
      DurationSeconds: '900',
      SourceIdentity: 'spiffe___acme.test_chatbot',
      'Tags.member.1.Key': 'tollgate-lease',
      'Tags.member.1.Value': request.lease.id,
      'Tags.member.2.Key': 'tollgate-task',
      'Tags.member.2.Value': request.task.id,
      'Tags.member.3.Key': 'tollgate-intent',
      'Tags.member.3.Value': 'order_status',
    });
    expect(JSON.parse(assume.params.Policy!).Statement[0].Resource).toBe('arn:aws:s3:::crm-exports/user-42/q3/${*}.csv');
    expect(assume.params.ExternalId).toBeUndefined();

    const session = aws.sessions.get(minted.credential.access_key_id as string)!;
    expect(minted.credential).toEqual({
      kind: 'aws-sts',
      access_key_id: session.accessKeyId,
      secret_access_key: session.secretAccessKey,
      session_token: session.sessionToken,
      expiration: new Date(session.expiresAt).toISOString(),
      region: 'eu-central-1',
    });
    expect(minted.sourceExpiresAt).toBe(session.expiresAt);
    const handle = JSON.parse(minted.externalHandle!);
    expect(handle).toMatchObject({ role_arn: roleArn, lease: request.lease.id, expires_at: session.expiresAt });
    expect(handle.assumed_role_id).toMatch(new RegExp(`^AROA[0-9A-F]+:tg-${request.lease.id}$`));
    for (const secret of [session.secretAccessKey, session.sessionToken]) expect(minted.externalHandle!).not.toContain(secret);
  });

  it('asks for the lease TTL when it is longer than 900 s, and passes the external id', async () => {
    const arn = aws.addRole('crm-partner', { externalId: 'acme-partner-7' });
    await provider().issue(issueRequest({ ttl: 1800, boundary: boundary(arn, { external_id: 'acme-partner-7' }) }));
    const assume = aws.requests.filter((r) => r.action === 'AssumeRole').at(-1)!;
    expect(assume.params).toMatchObject({ DurationSeconds: '1800', ExternalId: 'acme-partner-7' });
    // The wrong external id is refused by STS: the error names the code, never a secret or parameter.
    const refused = await provider()
      .issue(issueRequest({ boundary: boundary(arn, { external_id: 'wrong-id' }) }))
      .catch((e: unknown) => e);
    // STS answered with an error: no session exists, so the lease can simply be dropped.
    expect(refused).toBeInstanceOf(SourceError);
    expect(refused).toMatchObject({ code: 'aws_sts_AccessDenied', nothingIssued: true });
    expect((refused as Error).message).not.toContain('wrong-id');
  });

  it('revokes: the deny policy on the role names the lease, and IAM would refuse that session but not another', async () => {
    const sts = provider();
    const revokedOne = await sts.issue(issueRequest());
    const kept = await sts.issue(issueRequest());
    await sts.revoke({ leaseId: 'x', externalHandle: revokedOne.externalHandle! });
    const roleName = roleArn.split('/').at(-1)!;
    const document = aws.rolePolicy(roleName, REVOKED_POLICY_NAME)!;
    expect(revokedLeases(parseRevocationPolicy(document))).toEqual([JSON.parse(revokedOne.externalHandle!).lease]);
    expect(aws.denied(revokedOne.credential.access_key_id as string)).toBe(true);
    expect(aws.denied(kept.credential.access_key_id as string)).toBe(false);
    const put = aws.requests.find((r) => r.action === 'PutRolePolicy')!;
    expect(put).toMatchObject({ service: 'iam', params: { Version: '2010-05-08', RoleName: roleName, PolicyName: REVOKED_POLICY_NAME } });
  });

  it('500 revoked leases: listed while they fit, then a role-wide cut-off with a warning event; every one stays denied', async () => {
    const sts = provider({ onCutoff: (e) => warnings.push(e.leases) });
    const warnings: number[] = [];
    const sessions = [];
    for (let i = 0; i < 500; i++) sessions.push(await sts.issue(issueRequest()));
    for (let i = 0; i < 500; i += 50) await sts.revokeSessions(sessions.slice(i, i + 50).map((s) => s.externalHandle!));
    const roleName = roleArn.split('/').at(-1)!;
    const document = aws.rolePolicy(roleName, REVOKED_POLICY_NAME)!;
    expect(document.replace(/\s/g, '').length).toBeLessThanOrEqual(ROLE_INLINE_POLICY_LIMIT);
    expect(warnings.length).toBeGreaterThan(0);
    expect(parseRevocationPolicy(document).cutoff).toBeDefined();
    for (const session of sessions) expect(aws.denied(session.credential.access_key_id as string)).toBe(true);
    const { rows } = await db.query<{ data: { role_arn: string; leases: number } }>(
      `SELECT data FROM audit_events WHERE kind = 'aws_sts.revocation_cutoff'`,
    );
    expect(rows.some((row) => row.data.role_arn === roleArn)).toBe(true);
    // A session issued after the cut-off is not caught by it.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const later = await sts.issue(issueRequest());
    expect(aws.denied(later.credential.access_key_id as string)).toBe(false);
  });

  it("falls back to the cut-off when IAM refuses the size because of the role's other inline policies", async () => {
    const name = `crm-crowded-${Math.random().toString(36).slice(2, 8)}`;
    const big = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 's3:GetObject', Resource: Array.from({ length: 200 }, (_, i) => `arn:aws:s3:::bucket-${i}/*`) },
      ],
    });
    const arn = aws.addRole(name, { inline: { 'app-permissions': big } });
    const sts = provider();
    const sessions = [];
    for (let i = 0; i < 150; i++) sessions.push(await sts.issue(issueRequest({ boundary: boundary(arn) })));
    const result = await sts.revokeSessions(sessions.map((s) => s.externalHandle!));
    expect(result.cutoffRoles).toEqual([arn]);
    // The SDK classes IAM's LimitExceededException as throttling and retries it before Tollgate sees it.
    const puts = aws.requests.filter((r) => r.action === 'PutRolePolicy');
    expect(puts.length).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(puts.at(-1)!.params.PolicyDocument!).Statement).toHaveLength(1);
    for (const session of sessions) expect(aws.denied(session.credential.access_key_id as string)).toBe(true);
  });

  it('concurrent revocations from two providers on one database lose no entry (the advisory lock serialises the role)', async () => {
    aws.latencyMs = 15;
    const second = await openDatabase({ databaseUrl: testDb.databaseUrl, dataDir: testDb.dataDir });
    try {
      const a = provider();
      const b = provider({ locks: databaseRoleLocks(second, appendAudit) });
      const sessions = [];
      for (let i = 0; i < 16; i++) sessions.push(await a.issue(issueRequest()));
      await Promise.all(sessions.map((s, i) => (i % 2 ? a : b).revoke({ leaseId: 'x', externalHandle: s.externalHandle! })));
      const document = aws.rolePolicy(roleArn.split('/').at(-1)!, REVOKED_POLICY_NAME)!;
      expect(revokedLeases(parseRevocationPolicy(document))).toHaveLength(16);
    } finally {
      if (second !== db) await second.close();
    }
  });

  it('without the lock the same race loses entries (why the lock is there)', async () => {
    aws.latencyMs = 15;
    const noLock: RoleLocks = { withRoleLock: (_arn, work) => work({ now: Date.now(), audit: (event) => appendAudit(db, event) }) };
    const a = provider({ locks: noLock });
    const sessions = [];
    for (let i = 0; i < 16; i++) sessions.push(await a.issue(issueRequest()));
    await Promise.all(sessions.map((s) => a.revoke({ leaseId: 'x', externalHandle: s.externalHandle! })));
    const document = aws.rolePolicy(roleArn.split('/').at(-1)!, REVOKED_POLICY_NAME)!;
    expect(revokedLeases(parseRevocationPolicy(document)).length).toBeLessThan(16);
  });

  it('prunes entries whose STS sessions have ended anyway', async () => {
    const roleName = roleArn.split('/').at(-1)!;
    const old = Math.floor((Date.now() - 3_600_000) / 1000);
    aws.roles.get(roleName)!.inline.set(
      REVOKED_POLICY_NAME,
      JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: `TollgateRevokedUntil${old}`,
            Effect: 'Deny',
            Action: '*',
            Resource: '*',
            Condition: { StringEquals: { 'aws:PrincipalTag/tollgate-lease': ['old-lease'] } },
          },
        ],
      }),
    );
    const sts = provider();
    const fresh = await sts.issue(issueRequest());
    await sts.revoke({ leaseId: 'x', externalHandle: fresh.externalHandle! });
    expect(revokedLeases(parseRevocationPolicy(aws.rolePolicy(roleName, REVOKED_POLICY_NAME)))).toEqual([
      JSON.parse(fresh.externalHandle!).lease,
    ]);
  });

  it('retries a 5xx and throttling, then succeeds (the SDK standard retry)', async () => {
    aws.fail(1, { kind: 'status', status: 500, code: 'InternalFailure' }, 'AssumeRole');
    aws.fail(1, { kind: 'throttle' }, 'AssumeRole');
    const minted = await provider().issue(issueRequest());
    expect(minted.credential.access_key_id).toMatch(/^ASIA/);
    expect(aws.requests.filter((r) => r.action === 'AssumeRole')).toHaveLength(3);

    aws.fail(1, { kind: 'status', status: 503, code: 'ServiceUnavailable' }, 'PutRolePolicy');
    await provider().revoke({ leaseId: 'x', externalHandle: minted.externalHandle! });
    expect(aws.requests.filter((r) => r.action === 'PutRolePolicy')).toHaveLength(2);
  });

  it('a source that does not answer fails the call after its tries, with no secret in the error', async () => {
    aws.fail(2, { kind: 'hang', ms: 1500 }, 'AssumeRole');
    const started = Date.now();
    const error = await provider({ client: { maxAttempts: 2, requestTimeoutMs: 300 } })
      .issue(issueRequest())
      .catch((e: unknown) => e);
    // Timed out: STS may have issued the session, so the lease must go to the outbox, not be dropped.
    expect(error).toBeInstanceOf(SourceError);
    expect(error).toMatchObject({ nothingIssued: false });
    expect(Date.now() - started).toBeLessThan(1500);
    expect(String(error)).not.toContain(CREDENTIALS.secretAccessKey);
  });

  it('a failed revocation throws (for the outbox to retry) and leaves the policy as it was', async () => {
    const sts = provider({ client: { maxAttempts: 1 } });
    const minted = await sts.issue(issueRequest());
    aws.fail(1, { kind: 'status', status: 500, code: 'ServiceFailure' }, 'PutRolePolicy');
    await expect(sts.revoke({ leaseId: 'x', externalHandle: minted.externalHandle! })).rejects.toBeInstanceOf(AwsCallFailed);
    expect(aws.rolePolicy(roleArn.split('/').at(-1)!, REVOKED_POLICY_NAME)).toBeUndefined();
    await sts.revoke({ leaseId: 'x', externalHandle: minted.externalHandle! });
    expect(aws.denied(minted.credential.access_key_id as string)).toBe(true);
  });

  it('takes endpoints and credentials from the SDK standard variables (AWS_ENDPOINT_URL_STS / _IAM)', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_STS: aws.url,
      AWS_ENDPOINT_URL_IAM: aws.url,
      AWS_ACCESS_KEY_ID: 'AKIAFROMTHEENVIRONMENT',
      AWS_SECRET_ACCESS_KEY: 'env-secret',
      AWS_REGION: 'us-west-2',
    });
    try {
      const sts = new StsCredentialProvider(sdkStsPort(), sdkIamPort(), databaseRoleLocks(db, appendAudit));
      const minted = await sts.issue(issueRequest());
      await sts.revoke({ leaseId: 'x', externalHandle: minted.externalHandle! });
      expect(aws.requests.find((r) => r.action === 'AssumeRole')).toMatchObject({
        accessKeyId: 'AKIAFROMTHEENVIRONMENT',
        region: 'eu-central-1',
      });
      expect(aws.requests.find((r) => r.action === 'PutRolePolicy')).toMatchObject({
        accessKeyId: 'AKIAFROMTHEENVIRONMENT',
        region: 'us-west-2',
      });
    } finally {
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    }
  });

  it('measures issuance latency: median of 500 sequential AssumeRole calls through the provider', async () => {
    const sts = provider();
    const times: number[] = [];
    for (let i = 0; i < 500; i++) {
      const started = performance.now();
      await sts.issue(issueRequest());
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    const median = times[250]!;
    const p99 = times[495]!;
    console.log(`aws-sts issuance against the test server: median ${median.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms over 500 calls`);
    expect(median).toBeLessThan(250);
  });
});
