import { audienceScope, requireAccess } from '../identity/index.js';
import type { AuthenticatedClient } from '../identity/index.js';
import type { Introspection } from './introspection.js';
import type { LeaseRevocation } from './revocation.js';

/**
 * RFC 7009 token revocation: who may revoke which token. An admin key may revoke any token, a
 * resource server's key the tokens of its own tool, a workload (with its own assertion) its own
 * tokens. A reviewer's key may not revoke at all (403 insufficient_scope). Any other token
 * (unknown, invalid, expired, someone else's) is left alone and still answers 200, as §2.2 says:
 * the caller learns nothing it could probe with, so `revoke` returns nothing either way.
 */
export class TokenRevocation {
  constructor(
    private readonly introspection: Pick<Introspection, 'leaseOf'>,
    private readonly revocation: Pick<LeaseRevocation, 'revokeLease'>,
  ) {}

  /**
   * Refuses a client that may not revoke anything. Called before the request's token is read, so
   * a reviewer learns "not allowed" whatever it sent, as at the introspection endpoint.
   */
  admit(client: AuthenticatedClient): void {
    if (client.kind === 'api_key') requireAccess(client.key, 'revoke');
  }

  async revoke(client: AuthenticatedClient, token: string): Promise<void> {
    this.admit(client);
    if (client.kind === 'workload') {
      const lease = await this.introspection.leaseOf(token);
      if (lease?.workloadId === client.workloadId)
        await this.revocation.revokeLease(lease.id, 'revoked_by_client', `workload:${client.workloadId}`);
      return;
    }
    // A resource server reads only its own tool's tokens: another tool's is as good as unknown.
    const lease = await this.introspection.leaseOf(token, audienceScope(client.key));
    if (!lease) return;
    const admin = client.key.role === 'admin';
    await this.revocation.revokeLease(lease.id, admin ? 'revoked_by_admin' : 'revoked_by_client', `${client.key.role}:${client.key.id}`);
  }
}
