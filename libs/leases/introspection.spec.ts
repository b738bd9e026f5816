import type { JWTPayload } from 'jose';
import { describe, expect, it } from 'vitest';
import { Introspection } from './introspection.js';
import type { LeaseLookup } from './lease-reads.js';
import type { Lease, LeaseState } from './lease.js';

const JTI = '01a23940-7e8b-7056-b649-ce1abb19e075';
const TOOL = 'https://pay.acme.test';
const CLAIMS: JWTPayload = {
  iss: 'https://tollgate.acme.test',
  sub: 'user-42',
  aud: TOOL,
  exp: 1_800_000_120,
  iat: 1_800_000_000,
  nbf: 1_800_000_000,
  jti: JTI,
  client_id: 'chatbot',
  scope: 'refund:create',
  act: { sub: 'chatbot' },
};

const DIGEST = 'dCNOmK_nSY-12vHzasLXiswzlGT5UHA7jAGYkvmCuQs';

function lease(state: LeaseState, paramsDigest: string | null = null): Lease {
  return {
    id: JTI,
    taskId: 'task-1',
    workloadId: 'chatbot',
    boundaryId: 'payments',
    boundaryVersion: 1,
    action: 'refund:create',
    resource: null,
    credentialKind: 'jwt',
    state,
    issuedAt: new Date(0),
    expiresAt: new Date(0),
    revokedAt: null,
    revokeReason: null,
    paramsDigest,
  };
}

/** A verifier that knows one token, and a lease store that records what it was asked. */
function setup(claims: JWTPayload | undefined, state: LeaseState | null = 'active', digest: string | null = null) {
  const asked: string[] = [];
  const verified: string[] = [];
  const leases = {
    find: async (id: string) => (asked.push(id), state && id === JTI ? lease(state, digest) : undefined),
  } satisfies LeaseLookup;
  const introspection = new Introspection(leases, async (token) => (verified.push(token), token === 'good' ? claims : undefined));
  return { introspection, asked, verified };
}

describe('Introspection', () => {
  it('answers an active lease with the token claims, its task and lease state (Bearer)', async () => {
    const { introspection } = setup(CLAIMS);
    expect(await introspection.introspect('good')).toEqual({
      active: true,
      iss: CLAIMS.iss,
      sub: 'user-42',
      aud: TOOL,
      exp: CLAIMS.exp,
      iat: CLAIMS.iat,
      nbf: CLAIMS.nbf,
      jti: JTI,
      client_id: 'chatbot',
      scope: 'refund:create',
      token_type: 'Bearer',
      act: { sub: 'chatbot' },
      task_id: 'task-1',
      lease_state: 'active',
      // A lease issued before digests were kept: no params_digest rather than a guess.
      authorization_details: [{ type: 'tool_call', tool: TOOL, boundary: 'payments', action: 'refund:create' }],
    });
    expect(await introspection.introspect('good')).not.toHaveProperty('cnf');
  });

  it("answers the call as the lease row states it: its digest, and the token's params when they are the ones digested", async () => {
    const signed = { type: 'tool_call', tool: TOOL, boundary: 'payments', action: 'refund:create', params: { amount: 49 } };
    const withParams = setup({ ...CLAIMS, authorization_details: [{ ...signed, params_digest: DIGEST }] }, 'active', DIGEST);
    expect((await withParams.introspection.introspect('good')).authorization_details).toEqual([{ ...signed, params_digest: DIGEST }]);
    // A token whose digest is not the lease's: the lease's digest, and no params.
    const other = setup({ ...CLAIMS, authorization_details: [{ ...signed, params_digest: 'other' }] }, 'active', DIGEST);
    expect((await other.introspection.introspect('good')).authorization_details).toEqual([
      { type: 'tool_call', tool: TOOL, boundary: 'payments', action: 'refund:create', params_digest: DIGEST },
    ]);
  });

  it('says DPoP and shows cnf for a sender-constrained token', async () => {
    const cnf = { jkt: 'thumbprint' };
    const { introspection } = setup({ ...CLAIMS, cnf });
    expect(await introspection.introspect('good')).toMatchObject({ active: true, token_type: 'DPoP', cnf });
  });

  it('reads inactive once the lease is no longer active, whatever the token says', async () => {
    for (const state of ['revoked', 'expired', 'revoking', 'revoke_failed', 'issuing'] as const) {
      expect(await setup(CLAIMS, state).introspection.introspect('good'), state).toEqual({ active: false });
    }
    expect(await setup(CLAIMS, null).introspection.introspect('good')).toEqual({ active: false });
  });

  it('reads inactive for a token that does not verify or names no lease id, without asking the store', async () => {
    const bad = setup(CLAIMS);
    expect(await bad.introspection.introspect('forged')).toEqual({ active: false });
    for (const jti of [undefined, 'not-a-uuid', 42]) {
      const odd = setup({ ...CLAIMS, jti: jti as string | undefined });
      expect(await odd.introspection.introspect('good')).toEqual({ active: false });
      expect(odd.asked).toEqual([]);
    }
    expect(bad.asked).toEqual([]);
  });

  it('does not verify an oversized token at all', async () => {
    const { introspection, verified } = setup(CLAIMS);
    expect(await introspection.introspect('x'.repeat(16_385))).toEqual({ active: false });
    expect(verified).toEqual([]);
    await introspection.introspect('x'.repeat(16_384));
    expect(verified).toHaveLength(1);
  });

  it("with an audience, answers only for that tool's tokens (a string or a list aud)", async () => {
    expect(await setup(CLAIMS).introspection.introspect('good', TOOL)).toMatchObject({ active: true });
    expect(await setup({ ...CLAIMS, aud: ['https://other.acme.test', TOOL] }).introspection.introspect('good', TOOL)).toMatchObject({
      active: true,
    });
    const other = setup(CLAIMS);
    expect(await other.introspection.introspect('good', 'https://other.acme.test')).toEqual({ active: false });
    expect(other.asked).toEqual([]);
    expect(await setup({ ...CLAIMS, aud: ['https://other.acme.test'] }).introspection.introspect('good', TOOL)).toEqual({ active: false });
  });

  it('leaseOf names the lease and its workload, for the audience when given', async () => {
    expect(await setup(CLAIMS).introspection.leaseOf('good')).toEqual({ id: JTI, workloadId: 'chatbot' });
    expect(await setup(CLAIMS).introspection.leaseOf('good', TOOL)).toEqual({ id: JTI, workloadId: 'chatbot' });
    expect(await setup(CLAIMS).introspection.leaseOf('good', 'https://other.acme.test')).toBeUndefined();
    expect(await setup(CLAIMS).introspection.leaseOf('forged')).toBeUndefined();
    // Revocation (RFC 7009) needs the lease whatever its state.
    expect(await setup(CLAIMS, 'revoked').introspection.leaseOf('good')).toEqual({ id: JTI, workloadId: 'chatbot' });
  });
});
