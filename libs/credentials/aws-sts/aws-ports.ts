import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { DeleteRolePolicyCommand, GetRolePolicyCommand, IAMClient, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import type { SessionRequest } from './session-request.js';

/** A session STS issued: the secret parts go to the bot once and nowhere else. */
export interface AssumedSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiresAt: number;
  assumedRoleId: string;
}

/** The one STS call Tollgate makes. */
export interface StsPort {
  assumeRole(region: string, request: SessionRequest): Promise<AssumedSession>;
}

/** The IAM calls on Tollgate's inline deny policy of a role. */
export interface IamPort {
  /** The policy document as IAM returns it (URL-encoded JSON), or undefined when the role has none by that name. */
  getRolePolicy(roleName: string, policyName: string): Promise<string | undefined>;
  putRolePolicy(roleName: string, policyName: string, document: string): Promise<void>;
  deleteRolePolicy(roleName: string, policyName: string): Promise<void>;
}

/**
 * An AWS call that failed. Only the service's error code and HTTP status are kept: an SDK error
 * can carry request parameters, and the caller's logs and audit rows must never see a secret.
 */
export class AwsCallFailed extends Error {
  constructor(
    readonly operation: string,
    readonly code: string,
    readonly httpStatus: number | undefined,
  ) {
    super(`AWS ${operation} failed: ${code}${httpStatus ? ` (HTTP ${httpStatus})` : ''}`);
    this.name = 'AwsCallFailed';
  }
}

/**
 * Options for the real SDK clients. Everything left out comes from the SDK's standard chain
 * (AWS_REGION, AWS_ACCESS_KEY_ID / profiles / instance roles, AWS_ENDPOINT_URL_STS and
 * AWS_ENDPOINT_URL_IAM), so LocalStack or a test server needs no Tollgate setting.
 */
export interface AwsClientOptions {
  endpoints?: { sts?: string | undefined; iam?: string | undefined };
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Tries per call, the first included (the SDK's standard retry mode backs off and retries 5xx and throttling). */
  maxAttempts?: number;
  /** Per HTTP request: a source that does not answer in time is a failed try, not a stuck lease. */
  requestTimeoutMs?: number;
  /** The region IAM (a global service) is signed for when AWS_REGION is not set. */
  iamRegion?: string;
}

export function sdkStsPort(options: AwsClientOptions = {}): StsPort {
  const clients = new Map<string, STSClient>();
  const client = (region: string) => {
    let sts = clients.get(region);
    if (!sts) {
      sts = new STSClient({
        region,
        ...(options.endpoints?.sts ? { endpoint: options.endpoints.sts } : {}),
        ...(options.credentials ? { credentials: options.credentials } : {}),
        maxAttempts: options.maxAttempts ?? 3,
        requestHandler: {
          requestTimeout: options.requestTimeoutMs ?? 5000,
          connectionTimeout: options.requestTimeoutMs ?? 5000,
          throwOnRequestTimeout: true,
        },
      });
      clients.set(region, sts);
    }
    return sts;
  };
  return {
    async assumeRole(region, request) {
      const output = await call('AssumeRole', () =>
        client(region).send(
          new AssumeRoleCommand({
            RoleArn: request.roleArn,
            RoleSessionName: request.roleSessionName,
            DurationSeconds: request.durationSeconds,
            SourceIdentity: request.sourceIdentity,
            Tags: request.tags.map((tag) => ({ Key: tag.key, Value: tag.value })),
            Policy: request.policy,
            ...(request.externalId === undefined ? {} : { ExternalId: request.externalId }),
          }),
        ),
      );
      const credentials = output.Credentials;
      if (!credentials?.AccessKeyId || !credentials.SecretAccessKey || !credentials.SessionToken || !credentials.Expiration) {
        throw new AwsCallFailed('AssumeRole', 'IncompleteResponse', undefined);
      }
      return {
        accessKeyId: credentials.AccessKeyId,
        secretAccessKey: credentials.SecretAccessKey,
        sessionToken: credentials.SessionToken,
        expiresAt: credentials.Expiration.getTime(),
        assumedRoleId: output.AssumedRoleUser?.AssumedRoleId ?? '',
      };
    },
  };
}

export function sdkIamPort(options: AwsClientOptions = {}): IamPort {
  // Made on first use, like the STS clients: constructing an SDK client prints the SDK's Node
  // version notice, which a broker with no aws-sts boundary has no reason to show at every start.
  let client: IAMClient | undefined;
  const iam = () => (client ??= makeIamClient(options));
  return {
    async getRolePolicy(RoleName, PolicyName) {
      try {
        const output = await iam().send(new GetRolePolicyCommand({ RoleName, PolicyName }));
        return output.PolicyDocument;
      } catch (error) {
        if (errorCode(error) === 'NoSuchEntity') return undefined;
        throw failed('GetRolePolicy', error);
      }
    },
    async putRolePolicy(RoleName, PolicyName, PolicyDocument) {
      await call('PutRolePolicy', () => iam().send(new PutRolePolicyCommand({ RoleName, PolicyName, PolicyDocument })));
    },
    async deleteRolePolicy(RoleName, PolicyName) {
      try {
        await iam().send(new DeleteRolePolicyCommand({ RoleName, PolicyName }));
      } catch (error) {
        if (errorCode(error) !== 'NoSuchEntity') throw failed('DeleteRolePolicy', error);
      }
    },
  };
}

function makeIamClient(options: AwsClientOptions): IAMClient {
  return new IAMClient({
    region: process.env.AWS_REGION ?? options.iamRegion ?? 'us-east-1',
    ...(options.endpoints?.iam ? { endpoint: options.endpoints.iam } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: {
      requestTimeout: options.requestTimeoutMs ?? 5000,
      connectionTimeout: options.requestTimeoutMs ?? 5000,
      throwOnRequestTimeout: true,
    },
  });
}

async function call<T>(operation: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw failed(operation, error);
  }
}

function errorCode(error: unknown): string {
  const e = error as { name?: unknown; Code?: unknown; code?: unknown };
  // A network failure is a plain Error whose code (ECONNREFUSED, …) says whether AWS was reached at all.
  const network = typeof e?.code === 'string' && (e.name === undefined || e.name === 'Error');
  const code =
    typeof e?.Code === 'string'
      ? e.Code
      : network
        ? (e.code as string)
        : typeof e?.name === 'string'
          ? e.name
          : typeof e?.code === 'string'
            ? e.code
            : 'Unknown';
  // Only a code-shaped word leaves: never a message that might quote a parameter.
  return /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? code : 'Unknown';
}

function failed(operation: string, error: unknown): AwsCallFailed {
  const status = (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return new AwsCallFailed(operation, errorCode(error), status);
}
