import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:net';
import { decodeJwt, exportJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit } from '../audit/audit.js';
import { systemClock } from '../clock/clock.js';
import type { Database } from '../db/database.js';
import { openDatabase } from '../db/typeorm-database.js';
import { uuidv7 } from '../ids/ids.js';
import type { SigningKey } from '../keys/signing-keys.js';
import type { CredentialSettings, ToolBoundary } from '../policy/boundary.js';
import { startAwsServer, type AwsTestServer } from '../../test/support/aws-server.js';
import { freshDatabase, type TestDatabase } from '../../test/support/database.js';
import { startVaultServer, type VaultServer } from '../../test/support/vault-server.js';
import { sdkIamPort, sdkStsPort, type AwsClientOptions } from './aws-sts/aws-ports.js';
import { databaseRoleLocks } from './aws-sts/deny-policy-store.js';
import { LEASE_TAG } from './aws-sts/session-request.js';
import { awsStsCredential, parseHandle, StsCredentialProvider } from './aws-sts/sts-provider.js';
import { CREDENTIAL_KINDS } from './catalog.js';
import { jwtCredential } from './jwt/jwt-provider.js';
import { vaultCredential } from './vault/vault-provider.js';
import {
  SourceError,
  type CredentialKind,
  type CredentialProvider,
  type Issued,
  type IssueRequest,
  type ProviderContext,
} from './provider.js';

/**
 * The contract every credential kind keeps, checked against the real wire protocols (the fake
 * Vault speaks Vault's JSON API to the real node-vault client; the fake STS/IAM speaks the query/XML
 * API to the real AWS SDK), as SPIRE checks each plugin against one plugin contract:
 * - issue → revoke → revoke again: the second revoke is a no-op at the source, not an error;
 * - a source that answers with an error or cannot be reached created nothing: SourceError with
 *   `nothingIssued`, and nothing at the source; a source that timed out may have: `nothingIssued` false;
 * - the issued credential names the lease (or, where the source keeps the credential, its handle does);
 * - the kind's boundary settings reject a field they do not know.
 */
interface Subject {
  kind: CredentialKind;
  settings: CredentialSettings;
  provider: CredentialProvider;
  /** Checks that the credential (or, where the source keeps it, its handle) names the lease. */
  expectNamesLease(issued: Issued, leaseId: string): Promise<void>;
  /** Credentials the source has created so far (0 for a kind without a source). */
  createdAtSource(): number;
  /** Whether the source still honours this credential. */
  liveAtSource(issued: Issued): Promise<boolean>;
  /** Failure modes of the source; absent for a kind that has no source. */
  source?: {
    /** The next call is answered with an HTTP 500. */
    refuse(): void;
    /** The source cannot be reached until the returned function is called. */
    unreachable(): Promise<() => Promise<void>>;
    /** The next call never answers (the client's timeout ends it). */
    hang(): void;
  };
  close(): Promise<void>;
}

interface Factory {
  name: string;
  start(): Promise<Subject>;
}

function boundaryFor(settings: CredentialSettings): ToolBoundary {
  return {
    id: 'contract',
    version: 1,
    tool: 'https://tool.contract.test',
    actions: ['read'],
    intents: ['order_status'],
    defaultTtl: 120,
    maxTtl: 600,
    credential: settings,
    sensitivity: 'low',
    driftThreshold: null,
    enabled: true,
    approval: null,
    policy: null,
    paramsSchemas: null,
    createdAt: new Date(),
  };
}

function issueRequest(settings: CredentialSettings): IssueRequest {
  const now = Date.now();
  return {
    lease: { id: uuidv7(now), issuedAt: now, expiresAt: now + 120_000, action: 'read', resource: 'orders.csv' },
    task: { id: uuidv7(now), intent: 'order_status', subject: 'user-42' },
    workloadId: 'spiffe://contract.test/bot',
    boundary: boundaryFor(settings),
    settings,
  };
}

/** The context for kinds that use neither the database nor the audit log. */
function contextWith(signingKey: SigningKey): ProviderContext {
  return {
    issuer: 'https://tollgate.contract.test',
    clock: systemClock,
    signingKey: () => signingKey,
    audit: () => Promise.reject(new Error('no audit in this context')),
    db: undefined as unknown as Database,
  };
}

function unusedKey(): SigningKey {
  return { kid: 'unused', alg: 'EdDSA', privateKeyObject: generateKeyPairSync('ed25519').privateKey, publicJwk: {} };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const jwt: Factory = {
  name: 'jwt',
  async start() {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const key: SigningKey = { kid: 'contract-1', alg: 'EdDSA', privateKeyObject: privateKey, publicJwk: await exportJWK(publicKey) };
    const context = contextWith(key);
    return {
      kind: jwtCredential,
      settings: { kind: 'jwt' },
      provider: jwtCredential.create(context, undefined),
      async expectNamesLease(issued, leaseId) {
        const token = issued.credential.access_token as string;
        await jwtVerify(token, publicKey, { issuer: context.issuer, typ: 'at+jwt' });
        expect(decodeJwt(token).jti).toBe(leaseId);
      },
      // The token lives in the lease row only: there is no source to hold anything.
      createdAtSource: () => 0,
      liveAtSource: async () => false,
      close: async () => {},
    };
  },
};

const vault: Factory = {
  name: 'vault',
  async start() {
    const server: VaultServer = await startVaultServer();
    const config = { addr: server.addr, namespace: undefined, auth: { method: 'token' as const, token: server.rootToken }, timeoutMs: 400 };
    return {
      kind: vaultCredential,
      settings: { kind: 'vault', path: 'database/creds/readonly' },
      provider: vaultCredential.create(contextWith(unusedKey()), config),
      // Vault names the secret by its own lease id: the handle the Tollgate lease keeps and revokes by.
      async expectNamesLease(issued) {
        expect(server.leases.has(issued.externalHandle!)).toBe(true);
      },
      createdAtSource: () => server.leases.size,
      liveAtSource: async (issued) => server.leases.get(issued.externalHandle!)?.revoked === 0,
      source: {
        refuse: () => server.fail('database/creds', 1, 500),
        async unreachable() {
          await server.stop();
          // Let the client see its pooled connection close: a request on a connection that breaks
          // under it is a reset (it may have been received), not a refusal.
          await new Promise((resolve) => setTimeout(resolve, 50));
          return () => server.start();
        },
        hang: () => server.fail('database/creds', 1, 'hang'),
      },
      close: () => server.close(),
    };
  },
};

const awsSts: Factory = {
  name: 'aws-sts',
  async start() {
    const aws: AwsTestServer = await startAwsServer();
    const testDb: TestDatabase = await freshDatabase();
    const db = await openDatabase({ databaseUrl: testDb.databaseUrl, dataDir: testDb.dataDir });
    const roleArn = aws.addRole('contract-reader');
    const options = (endpoint: string): AwsClientOptions => ({
      endpoints: { sts: endpoint, iam: aws.url },
      credentials: { accessKeyId: 'AKIACONTRACTTEST0001', secretAccessKey: 'contract-secret' },
      maxAttempts: 1,
      requestTimeoutMs: 400,
    });
    let stsEndpoint = aws.url;
    // The STS client is made per call here so `unreachable` can point it at a closed port.
    const sts = {
      assumeRole: (region: string, request: Parameters<ReturnType<typeof sdkStsPort>['assumeRole']>[1]) =>
        sdkStsPort(options(stsEndpoint)).assumeRole(region, request),
    };
    const provider = new StsCredentialProvider(sts, sdkIamPort(options(aws.url)), databaseRoleLocks(db, appendAudit));
    const accessKey = (issued: Issued) => issued.credential.access_key_id as string;
    return {
      kind: awsStsCredential,
      settings: {
        kind: 'aws-sts',
        role_arn: roleArn,
        region: 'eu-central-1',
        session_policy: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::exports/${resource}' }],
        },
      },
      provider,
      async expectNamesLease(issued, leaseId) {
        expect(parseHandle(issued.externalHandle!).lease).toBe(leaseId);
        // STS itself carries the lease: the session is tagged with it (the deny matches that tag).
        expect(aws.sessions.get(accessKey(issued))?.tags[LEASE_TAG]).toBe(leaseId);
      },
      createdAtSource: () => aws.sessions.size,
      liveAtSource: async (issued) => !aws.denied(accessKey(issued)),
      source: {
        refuse: () => aws.fail(1, { kind: 'status', status: 500, code: 'InternalFailure' }, 'AssumeRole'),
        async unreachable() {
          stsEndpoint = `http://127.0.0.1:${await closedPort()}`;
          return async () => {
            stsEndpoint = aws.url;
          };
        },
        hang: () => aws.fail(1, { kind: 'hang', ms: 1500 }, 'AssumeRole'),
      },
      async close() {
        await db.close();
        await testDb.drop();
        await aws.close();
      },
    };
  },
};

it('covers every kind in the catalog', () => {
  expect([jwt, vault, awsSts].map((factory) => factory.name).sort()).toEqual(CREDENTIAL_KINDS.map((kind) => kind.kind).sort());
});

describe.each([jwt, vault, awsSts])('credential provider contract: $name', (factory) => {
  let subject: Subject;
  beforeAll(async () => {
    subject = await factory.start();
  });
  afterAll(() => subject?.close());

  it('is the kind its catalog entry names', () => {
    expect(subject.provider.kind).toBe(factory.name);
    expect(subject.kind.kind).toBe(factory.name);
  });

  it('issues a credential that names the lease; revoke ends it at the source; revoking again is a no-op', async () => {
    const request = issueRequest(subject.settings);
    const issued = await subject.provider.issue(request);
    expect(issued.credential.kind).toBe(factory.name);
    await subject.expectNamesLease(issued, request.lease.id);
    if (subject.provider.external) {
      expect(issued.externalHandle).toBeDefined();
      expect(await subject.liveAtSource(issued)).toBe(true);
    }

    const handle = { leaseId: request.lease.id, externalHandle: issued.externalHandle ?? null };
    await subject.provider.revoke(handle);
    expect(await subject.liveAtSource(issued)).toBe(false);
    const created = subject.createdAtSource();
    await expect(subject.provider.revoke(handle)).resolves.toBeUndefined();
    expect(await subject.liveAtSource(issued)).toBe(false);
    expect(subject.createdAtSource()).toBe(created);
  });

  it('a source that answers with an error created nothing: SourceError, nothingIssued', async (context) => {
    if (!subject.source) return context.skip();
    const before = subject.createdAtSource();
    subject.source.refuse();
    const error = await subject.provider.issue(issueRequest(subject.settings)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceError);
    expect(error).toMatchObject({ nothingIssued: true });
    expect((error as SourceError).code).toMatch(/^[a-z_]+[A-Za-z0-9_]*$/);
    expect(subject.createdAtSource()).toBe(before);
  });

  it('a source that cannot be reached created nothing: SourceError, nothingIssued', async (context) => {
    if (!subject.source) return context.skip();
    const before = subject.createdAtSource();
    const restore = await subject.source.unreachable();
    try {
      const error = await subject.provider.issue(issueRequest(subject.settings)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SourceError);
      expect(error).toMatchObject({ nothingIssued: true });
    } finally {
      await restore();
    }
    expect(subject.createdAtSource()).toBe(before);
    // And the source is usable again once it is back.
    await expect(subject.provider.issue(issueRequest(subject.settings))).resolves.toBeDefined();
  });

  it('a source that timed out may have issued: SourceError, not nothingIssued (the lease goes to the outbox)', async (context) => {
    if (!subject.source) return context.skip();
    subject.source.hang();
    const error = await subject.provider.issue(issueRequest(subject.settings)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceError);
    expect(error).toMatchObject({ nothingIssued: false });
  });

  it('its boundary settings accept the valid ones and reject a field they do not know', () => {
    expect(subject.kind.settings.safeParse(subject.settings).success).toBe(true);
    const extra = subject.kind.settings.safeParse({ ...subject.settings, secret: 'x' });
    expect(extra.success).toBe(false);
    expect(JSON.stringify(extra.error?.issues)).toContain('secret');
  });
});
