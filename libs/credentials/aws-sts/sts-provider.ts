import {
  SourceError,
  type CredentialKind,
  type CredentialProvider,
  type ExternalHandle,
  type Issued,
  type IssueRequest,
} from '../provider.js';
import { AwsCallFailed, sdkIamPort, sdkStsPort, type IamPort, type StsPort } from './aws-ports.js';
import { databaseRoleLocks, type RoleLocks } from './deny-policy-store.js';
import { REVOKED_POLICY_NAME, ROLE_INLINE_POLICY_LIMIT, planRevocationPolicy, type RevokedSession } from './revocation-policy.js';
import { buildSessionRequest } from './session-request.js';
import { awsStsSettings, sessionPolicyTemplate, type AwsStsSettings } from './settings.js';

/**
 * The catalog entry: AWS configuration comes from the SDK's standard chain (AWS_REGION, the
 * credential providers, AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL_IAM), so nothing here is Tollgate's.
 */
export const awsStsCredential: CredentialKind<AwsStsSettings> = {
  kind: 'aws-sts',
  settings: awsStsSettings,
  create: ({ db, audit }) => new StsCredentialProvider(sdkStsPort(), sdkIamPort(), databaseRoleLocks(db, audit)),
};

/** What the lease records about an STS session: enough to revoke it later, nothing secret. */
export interface StsHandle {
  role_arn: string;
  /** The `tollgate-lease` tag value the deny matches. */
  lease: string;
  /** STS's Expiration, epoch ms: the deny entry is pruned after it. */
  expires_at: number;
  assumed_role_id: string;
}

/** Told when revocation had to fall back to a role-wide cut-off: sessions of other leases die too. */
export type CutoffWarning = (event: { roleArn: string; issuedBefore: string; leases: number; size: number }) => void;

export interface StsProviderOptions {
  /** Characters of the role's inline-policy budget Tollgate's deny policy may use (other inline policies share IAM's 10,240). */
  policyBudget?: number;
  onCutoff?: CutoffWarning;
}

/**
 * AWS STS sessions for leases: AssumeRole with the lease's tags and a session policy rendered from
 * the boundary, revoked for real by a deny on the role that names the lease's tag. STS sessions
 * cannot be ended at their source, so the deny is the revocation; it is pruned once STS has ended
 * the session anyway.
 */
export class StsCredentialProvider implements CredentialProvider<AwsStsSettings> {
  readonly kind = 'aws-sts';
  /** The session lives at STS: its leases go through the outbox, which calls revoke until IAM confirms. */
  readonly external = true;

  constructor(
    private readonly sts: StsPort,
    private readonly iam: IamPort,
    private readonly locks: RoleLocks,
    private readonly options: StsProviderOptions = {},
  ) {}

  async issue({ lease, task, workloadId, settings }: IssueRequest<AwsStsSettings>): Promise<Issued> {
    const request = buildSessionRequest({
      roleArn: settings.role_arn,
      sessionPolicy: sessionPolicyTemplate(settings),
      externalId: settings.external_id,
      lease,
      task,
      workloadId,
    });
    const session = await this.sts.assumeRole(settings.region, request).catch((error: unknown) => {
      throw issueFailure(error);
    });
    const handle: StsHandle = {
      role_arn: settings.role_arn,
      lease: lease.id,
      expires_at: session.expiresAt,
      assumed_role_id: session.assumedRoleId,
    };
    return {
      credential: {
        kind: 'aws-sts',
        access_key_id: session.accessKeyId,
        secret_access_key: session.secretAccessKey,
        session_token: session.sessionToken,
        expiration: new Date(session.expiresAt).toISOString(),
        region: settings.region,
      },
      externalHandle: JSON.stringify(handle),
      sourceExpiresAt: session.expiresAt,
    };
  }

  /** Idempotent: a lease already in the deny policy stays there once. */
  async revoke({ leaseId, externalHandle }: ExternalHandle): Promise<void> {
    if (externalHandle === null) throw new Error(`lease ${leaseId} has no STS handle to revoke by`);
    await this.revokeSessions([externalHandle]);
  }

  /**
   * Denies many sessions at once: one locked read-modify-write per role, however many leases. An
   * IAM refusal for size (other inline policies share the limit) is answered with the cut-off.
   */
  async revokeSessions(handles: readonly string[]): Promise<{ cutoffRoles: string[] }> {
    const byRole = new Map<string, RevokedSession[]>();
    for (const text of handles) {
      const handle = parseHandle(text);
      const sessions = byRole.get(handle.role_arn) ?? [];
      sessions.push({ lease: handle.lease, expiresAt: handle.expires_at });
      byRole.set(handle.role_arn, sessions);
    }
    const cutoffRoles: string[] = [];
    for (const [roleArn, sessions] of byRole) {
      if (await this.denySessions(roleArn, sessions)) cutoffRoles.push(roleArn);
    }
    return { cutoffRoles };
  }

  private denySessions(roleArn: string, sessions: readonly RevokedSession[]): Promise<boolean> {
    const roleName = roleArn.slice(roleArn.lastIndexOf('/') + 1);
    return this.locks.withRoleLock(roleArn, async (lock) => {
      const now = lock.now;
      const current = await this.iam.getRolePolicy(roleName, REVOKED_POLICY_NAME);
      const limit = this.options.policyBudget ?? ROLE_INLINE_POLICY_LIMIT;
      let plan = planRevocationPolicy({ current, revoked: sessions, now, limit, issuedAt: leaseIssuedAt });
      try {
        await this.write(roleName, current, plan.document);
      } catch (error) {
        if (!(error instanceof AwsCallFailed && /^LimitExceeded(Exception)?$/.test(error.code)) || plan.cutoffApplied) throw error;
        plan = planRevocationPolicy({ current, revoked: sessions, now, limit, forceCutoff: true, issuedAt: leaseIssuedAt });
        await this.write(roleName, current, plan.document);
      }
      if (plan.cutoffApplied) {
        const issuedBefore = new Date(now).toISOString();
        await lock.audit({
          kind: 'aws_sts.revocation_cutoff',
          actor: 'system:aws-sts',
          data: {
            role_arn: roleArn,
            issued_before: issuedBefore,
            leases: sessions.length,
            policy_size: plan.size,
            lease_ids: sessions.map((s) => s.lease),
          },
        });
        this.options.onCutoff?.({ roleArn, issuedBefore, leases: sessions.length, size: plan.size });
      }
      return plan.cutoffApplied;
    });
  }

  private async write(roleName: string, current: string | undefined, document: object | undefined): Promise<void> {
    if (document) await this.iam.putRolePolicy(roleName, REVOKED_POLICY_NAME, JSON.stringify(document));
    else if (current !== undefined) await this.iam.deleteRolePolicy(roleName, REVOKED_POLICY_NAME);
  }
}

/**
 * An AssumeRole that failed, as the lease machinery needs it: STS answering with an error, or not
 * being reachable at all, created no session (the lease can simply be dropped); a call that timed
 * out, or an answer without credentials, may have (the lease goes to the outbox to be denied).
 */
function issueFailure(error: unknown): SourceError {
  if (!(error instanceof AwsCallFailed)) return new SourceError('aws_sts_error', false);
  const answered = error.httpStatus !== undefined;
  const unreachable = /^(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN)$/.test(error.code);
  return new SourceError(`aws_sts_${error.code}`, answered || unreachable);
}

export function parseHandle(text: string): StsHandle {
  const handle = JSON.parse(text) as Partial<StsHandle>;
  if (typeof handle.role_arn !== 'string' || typeof handle.lease !== 'string' || typeof handle.expires_at !== 'number') {
    throw new Error('not an STS handle');
  }
  return {
    role_arn: handle.role_arn,
    lease: handle.lease,
    expires_at: handle.expires_at,
    assumed_role_id: String(handle.assumed_role_id ?? ''),
  };
}

/**
 * The latest a lease's session can have been issued, for skipping sessions a cut-off already
 * denies. Lease ids are UUIDv7 (their first 48 bits are the lease's issue time); STS issued the
 * session after that, by at most the AssumeRole call with its retries: five minutes is generous.
 */
function leaseIssuedAt(lease: string): number | undefined {
  const hex = lease.replace(/-/g, '').slice(0, 12);
  return /^[0-9a-f]{12}$/i.test(hex) && lease[14] === '7' ? parseInt(hex, 16) + 5 * 60_000 : undefined;
}
