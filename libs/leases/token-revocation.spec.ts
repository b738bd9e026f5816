import { describe, expect, it } from 'vitest';
import { InsufficientScope } from '../errors/errors.js';
import type { ApiKey, ApiKeyRole } from '../identity/api-key.js';
import type { AuthenticatedClient } from '../identity/client-authentication.js';
import { TokenRevocation } from './token-revocation.js';

const PAY = 'https://pay.acme.test';
const MAIL = 'https://mail.acme.test';

/** Tokens the fake introspection knows: each names its lease, the lease's workload and its tool. */
const TOKENS: Record<string, { id: string; workloadId: string; tool: string }> = {
  'pay-token': { id: 'lease-pay', workloadId: 'chatbot', tool: PAY },
  'mail-token': { id: 'lease-mail', workloadId: 'mailer', tool: MAIL },
};

function apiKey(role: ApiKeyRole, audience: string | null = null): AuthenticatedClient {
  const key: ApiKey = { id: `${role}-key`, role, audience, label: null, jwks: null, createdAt: new Date(0), revokedAt: null };
  return { kind: 'api_key', key, method: 'bearer' };
}

const workload = (workloadId: string): AuthenticatedClient => ({ kind: 'workload', workloadId });

/** Introspection scoped as the real one is (another tool's token reads as unknown), and a revocation that records. */
function setup() {
  const looked: { token: string; audience: string | undefined }[] = [];
  const revoked: { leaseId: string; reason: string; actor: string }[] = [];
  const tokens = new TokenRevocation(
    {
      leaseOf: async (token, audience) => {
        looked.push({ token, audience });
        const known = TOKENS[token];
        return known && (audience === undefined || audience === known.tool) ? { id: known.id, workloadId: known.workloadId } : undefined;
      },
    },
    {
      revokeLease: async (leaseId, reason, actor) => {
        revoked.push({ leaseId, reason, actor });
        return true;
      },
    },
  );
  return { tokens, looked, revoked };
}

describe('TokenRevocation', () => {
  it('lets an admin revoke any token, as revoked_by_admin', async () => {
    const { tokens, looked, revoked } = setup();
    await tokens.revoke(apiKey('admin'), 'mail-token');
    expect(looked).toEqual([{ token: 'mail-token', audience: undefined }]);
    expect(revoked).toEqual([{ leaseId: 'lease-mail', reason: 'revoked_by_admin', actor: 'admin:admin-key' }]);
  });

  it("lets a resource server revoke its own tool's tokens, as revoked_by_client", async () => {
    const { tokens, looked, revoked } = setup();
    await tokens.revoke(apiKey('resource_server', PAY), 'pay-token');
    expect(looked).toEqual([{ token: 'pay-token', audience: PAY }]);
    expect(revoked).toEqual([{ leaseId: 'lease-pay', reason: 'revoked_by_client', actor: 'resource_server:resource_server-key' }]);
  });

  it("leaves another tool's token alone for a resource server, and answers as for any token", async () => {
    const { tokens, looked, revoked } = setup();
    await expect(tokens.revoke(apiKey('resource_server', PAY), 'mail-token')).resolves.toBeUndefined();
    expect(looked).toEqual([{ token: 'mail-token', audience: PAY }]);
    expect(revoked).toEqual([]);
  });

  it('lets a workload revoke its own token, as revoked_by_client', async () => {
    const { tokens, looked, revoked } = setup();
    await tokens.revoke(workload('chatbot'), 'pay-token');
    expect(looked).toEqual([{ token: 'pay-token', audience: undefined }]);
    expect(revoked).toEqual([{ leaseId: 'lease-pay', reason: 'revoked_by_client', actor: 'workload:chatbot' }]);
  });

  it("leaves another workload's token alone, and answers as for any token", async () => {
    const { tokens, revoked } = setup();
    await expect(tokens.revoke(workload('chatbot'), 'mail-token')).resolves.toBeUndefined();
    expect(revoked).toEqual([]);
  });

  it('answers an unknown or invalid token as any other (RFC 7009 §2.2), for every client that may revoke', async () => {
    for (const client of [apiKey('admin'), apiKey('resource_server', PAY), workload('chatbot')]) {
      const { tokens, revoked } = setup();
      await expect(tokens.revoke(client, 'not-a-token')).resolves.toBeUndefined();
      expect(revoked).toEqual([]);
    }
  });

  it("refuses a reviewer's key before reading the token (403 insufficient_scope)", async () => {
    const { tokens, looked, revoked } = setup();
    expect(() => tokens.admit(apiKey('reviewer'))).toThrow(InsufficientScope);
    await expect(tokens.revoke(apiKey('reviewer'), 'pay-token')).rejects.toThrow(/a reviewer key may not/);
    expect(looked).toEqual([]);
    expect(revoked).toEqual([]);
  });

  it('admits admins, resource servers and workloads', () => {
    const { tokens } = setup();
    for (const client of [apiKey('admin'), apiKey('resource_server', PAY), workload('chatbot')])
      expect(() => tokens.admit(client)).not.toThrow();
  });
});
