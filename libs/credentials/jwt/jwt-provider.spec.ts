import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import { paramsDigest } from '../../audit/index.js';
import type { SigningKey } from '../../keys/index.js';
import type { ToolBoundary } from '../../policy/index.js';
import { JwtCredentialProvider, MAX_TOKEN_PARAMS_BYTES } from './jwt-provider.js';

const key: SigningKey = { kid: 'k1', alg: 'EdDSA', privateKeyObject: generateKeyPairSync('ed25519').privateKey, publicJwk: {} };
const boundary = { id: 'payments', tool: 'https://pay.acme.test' } as ToolBoundary;

async function toolCall(params: Record<string, unknown> | undefined, resource: string | null = null): Promise<Record<string, unknown>> {
  const provider = new JwtCredentialProvider('https://tollgate.test', () => key);
  const issued = await provider.issue({
    lease: { id: '00000000-0000-4000-8000-000000000001', issuedAt: 1_000_000, expiresAt: 1_060_000, action: 'refund:create', resource },
    task: { id: 't1', intent: 'refund', subject: 'u1' },
    workloadId: 'bot',
    boundary,
    settings: { kind: 'jwt' },
    params,
  });
  const claims = decodeJwt(issued.credential.access_token as string);
  return (claims.authorization_details as Record<string, unknown>[])[0]!;
}

describe('JWT credential: the exact call', () => {
  it('names the tool, action, resource, params and their digest', async () => {
    const params = { order: 'o1', amount: 49 };
    expect(await toolCall(params, 'order/o1')).toEqual({
      type: 'tool_call',
      tool: 'https://pay.acme.test',
      boundary: 'payments',
      action: 'refund:create',
      resource: 'order/o1',
      params,
      params_digest: paramsDigest({ amount: 49, order: 'o1' }),
    });
  });

  it('absent params are digested as null, and not carried', async () => {
    const detail = await toolCall(undefined);
    expect(detail).not.toHaveProperty('params');
    expect(detail.params_digest).toBe(paramsDigest(null));
  });

  it('params larger than the bound travel as their digest only; at the bound they are carried', async () => {
    // {"n":"…"} is 8 bytes around the string.
    const atBound = { n: 'x'.repeat(MAX_TOKEN_PARAMS_BYTES - 8) };
    expect((await toolCall(atBound)).params).toEqual(atBound);
    const over = { n: 'x'.repeat(MAX_TOKEN_PARAMS_BYTES - 7) };
    const detail = await toolCall(over);
    expect(detail).not.toHaveProperty('params');
    expect(detail.params_digest).toBe(paramsDigest(over));
  });
});
