import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { InsufficientScope, InvalidToken, MissingToken, VerifierUnavailable } from './errors.js';
import { protectedResourceMetadata, protectedResourceMetadataUrl, resourceMetadataPaths } from './mcp-metadata.js';
import { mcpNodeGuard } from './mcp-adapters.js';
import { mcpTokenVerifier, type SdkAuthErrors } from './mcp-token-verifier.js';
import { admitMcpRequest, InvalidMcpMessage, mcpRefusal } from './mcp.js';
import { paramsDigest } from './params-digest.js';
import { createVerifier, type Verifier } from './verifier.js';

const ISSUER = 'https://tollgate.test';
const MCP = 'https://mcp.acme.test/mcp';
const METADATA = 'https://mcp.acme.test/.well-known/oauth-protected-resource/mcp';

let signing: { privateKey: CryptoKey; jwk: JWK };
let verifier: Verifier;

beforeAll(async () => {
  const pair = await generateKeyPair('EdDSA');
  signing = { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'EdDSA' } };
  verifier = createVerifier({ issuer: ISSUER, audience: MCP, jwks: { keys: [signing.jwk] } });
});

async function token(action: string, params: unknown, claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: ISSUER,
    aud: MCP,
    sub: 'user-42',
    client_id: 'support-bot',
    scope: action,
    task_id: 'task-1',
    iat: now,
    exp: now + 60,
    jti: randomUUID(),
    authorization_details: [{ type: 'tool_call', tool: MCP, action, params_digest: paramsDigest(params) }],
    ...claims,
  })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: 'k1' })
    .sign(signing.privateKey);
}

const post = (body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST', url: MCP, headers, body });
const call = (name: string, args: unknown, id = 1) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

describe('RFC 9728 metadata', () => {
  it('puts the well-known path between the host and the resource path (§3.1)', () => {
    expect(protectedResourceMetadataUrl(MCP)).toBe(METADATA);
    expect(protectedResourceMetadataUrl('https://mcp.acme.test')).toBe('https://mcp.acme.test/.well-known/oauth-protected-resource');
    expect(protectedResourceMetadataUrl('https://mcp.acme.test/a/b/')).toBe(
      'https://mcp.acme.test/.well-known/oauth-protected-resource/a/b',
    );
    expect(resourceMetadataPaths(MCP)).toEqual(['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']);
    expect(resourceMetadataPaths('https://mcp.acme.test/')).toEqual(['/.well-known/oauth-protected-resource']);
  });

  it('writes the document, with DPoP advertised, required only when asked', () => {
    const document = protectedResourceMetadata({
      resource: MCP,
      authorizationServers: [ISSUER],
      resourceName: 'CRM',
      scopesSupported: ['refund'],
    });
    expect(document).toEqual({
      resource: MCP,
      authorization_servers: [ISSUER],
      bearer_methods_supported: ['header'],
      authorization_details_types_supported: ['tool_call'],
      resource_name: 'CRM',
      scopes_supported: ['refund'],
      dpop_signing_alg_values_supported: expect.arrayContaining(['ES256', 'EdDSA']),
    });
    expect(protectedResourceMetadata({ resource: MCP, authorizationServers: [ISSUER], dpop: 'required' })).toMatchObject({
      dpop_bound_access_tokens_required: true,
    });
    expect(protectedResourceMetadata({ resource: MCP, authorizationServers: [ISSUER], dpop: false })).not.toHaveProperty(
      'dpop_signing_alg_values_supported',
    );
  });

  it('refuses a resource that is not an absolute URL, one with a fragment, and no issuer, naming the field', () => {
    expect(() => protectedResourceMetadata({ resource: 'mcp', authorizationServers: [ISSUER] })).toThrow(
      /^resource: "mcp" is not an absolute URL/,
    );
    expect(() => protectedResourceMetadata({ resource: `${MCP}#x`, authorizationServers: [ISSUER] })).toThrow(/fragment/);
    expect(() => protectedResourceMetadata({ resource: MCP, authorizationServers: [] })).toThrow(/^authorizationServers/);
    expect(() => protectedResourceMetadata({ resource: MCP, authorizationServers: ['x'] })).toThrow(/^authorizationServers\[0\]/);
  });
});

describe('admitMcpRequest', () => {
  it('lets the handshake, listings and notifications pass without a credential; other methods need one', async () => {
    for (const method of ['initialize', 'ping', 'notifications/initialized', 'tools/list', 'prompts/list']) {
      await expect(admitMcpRequest(verifier, post({ jsonrpc: '2.0', id: 1, method }))).resolves.toBeUndefined();
    }
    // A client's response to a server request has no method: it asks for nothing.
    await expect(admitMcpRequest(verifier, post({ jsonrpc: '2.0', id: 1, result: {} }))).resolves.toBeUndefined();
    await expect(admitMcpRequest(verifier, post({ jsonrpc: '2.0', id: 1, method: 'resources/read' }))).rejects.toThrow(MissingToken);
    await expect(admitMcpRequest(verifier, post(call('refund', {})))).rejects.toThrow(MissingToken);
    // openMethods replaces the default list.
    await expect(
      admitMcpRequest(verifier, post({ jsonrpc: '2.0', id: 1, method: 'tools/list' }), { openMethods: ['initialize'] }),
    ).rejects.toThrow(MissingToken);
    // tools/call is never open: a list that would let it pass is refused, naming the field.
    expect(() => mcpNodeGuard(verifier, { openMethods: ['initialize', 'tools/*'] })).toThrow(
      /^openMethods: "tools\/\*" would let tools\/call pass/,
    );
    await expect(admitMcpRequest(verifier, post(call('refund', {})), { openMethods: ['tools/call'] })).rejects.toThrow(/openMethods/);
    // Requests other than POST carry no message.
    await expect(admitMcpRequest(verifier, { method: 'GET', url: MCP, headers: {}, body: undefined })).resolves.toBeUndefined();
  });

  it('holds a tools/call to the credential: tool name, arguments digest and resource', async () => {
    const args = { order: 'o-1', amount: 49 };
    const headers = { authorization: `Bearer ${await token('refund', args)}` };
    const auth = await admitMcpRequest(verifier, post(call('refund', args), headers));
    expect(auth).toMatchObject({ clientId: 'support-bot', scopes: ['refund'], resource: new URL(MCP), extra: { taskId: 'task-1' } });
    await expect(admitMcpRequest(verifier, post(call('lookup', args), headers))).rejects.toThrow(InsufficientScope);
    await expect(admitMcpRequest(verifier, post(call('refund', { ...args, amount: 50 }), headers))).rejects.toThrow(/params/);
    await expect(admitMcpRequest(verifier, post(call('refund', args), headers), { resourceOf: () => 'order/o-1' })).rejects.toThrow(
      /resource/,
    );
    // A batch: one tools/call passes with open messages beside it; two are refused.
    await expect(
      admitMcpRequest(verifier, post([{ jsonrpc: '2.0', method: 'notifications/initialized' }, call('refund', args)], headers)),
    ).resolves.toBeDefined();
    await expect(admitMcpRequest(verifier, post([call('refund', args, 1), call('refund', args, 2)], headers))).rejects.toThrow(
      /one tool call/,
    );
  });

  it('refuses a body that is not JSON-RPC, and a tools/call without a name, as InvalidMcpMessage', async () => {
    for (const body of [[], 'x', null, [1], { jsonrpc: '2.0', id: 1, method: 5 }])
      await expect(admitMcpRequest(verifier, post(body))).rejects.toThrow(InvalidMcpMessage);
    await expect(admitMcpRequest(verifier, post({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} }))).rejects.toThrow(
      /params.name/,
    );
  });
});

describe('mcpRefusal', () => {
  it('401 without a token: Bearer and DPoP challenges naming the metadata, no error code', () => {
    const refusal = mcpRefusal(new MissingToken('no credential'), METADATA);
    expect(refusal.status).toBe(401);
    expect(refusal.headers['www-authenticate']).toEqual([
      `Bearer resource_metadata="${METADATA}"`,
      expect.stringMatching(/^DPoP resource_metadata="[^"]+", algs="/),
    ]);
    expect(mcpRefusal(new MissingToken('no credential'), METADATA, { dpop: false }).headers['www-authenticate']).toBe(
      `Bearer resource_metadata="${METADATA}"`,
    );
  });

  it('401 invalid_token, 403 insufficient_scope, 503, 400 as JSON-RPC', () => {
    expect(mcpRefusal(new InvalidToken('bad "sig"'), METADATA, { dpop: false })).toMatchObject({
      status: 401,
      headers: { 'www-authenticate': `Bearer error="invalid_token", error_description="bad sig", resource_metadata="${METADATA}"` },
    });
    expect(mcpRefusal(new InsufficientScope('not this call'), METADATA)).toMatchObject({
      status: 403,
      headers: {
        'www-authenticate': `Bearer error="insufficient_scope", error_description="not this call", resource_metadata="${METADATA}"`,
      },
    });
    expect(mcpRefusal(new VerifierUnavailable('down'), METADATA)).toMatchObject({ status: 503, headers: { 'retry-after': '1' } });
    expect(mcpRefusal(new InvalidMcpMessage(-32700, 'the body is not JSON'), METADATA)).toMatchObject({
      status: 400,
      body: { jsonrpc: '2.0', error: { code: -32700 }, id: null },
    });
    expect(mcpRefusal(new Error('secret detail'), METADATA)).toEqual({
      status: 500,
      headers: { 'cache-control': 'no-store' },
      body: { error: 'server_error' },
    });
  });
});

describe('mcpTokenVerifier', () => {
  class InvalidTokenError extends Error {}
  class InsufficientScopeError extends Error {}
  class ServerError extends Error {}
  const errors: SdkAuthErrors = { InvalidTokenError, InsufficientScopeError, ServerError };

  it('answers AuthInfo for a bearer credential, and refuses a DPoP-bound one as the SDK’s InvalidTokenError', async () => {
    const tokens = mcpTokenVerifier(verifier, { errors });
    const good = await token('refund', null);
    await expect(tokens.verifyAccessToken(good)).resolves.toMatchObject({
      token: good,
      clientId: 'support-bot',
      expiresAt: expect.any(Number),
    });
    const bound = await token('refund', null, { cnf: { jkt: 'x'.repeat(43) } });
    await expect(tokens.verifyAccessToken(bound)).rejects.toThrow(InvalidTokenError);
    await expect(tokens.verifyAccessToken(bound)).rejects.toThrow(/DPoP/);
  });

  it('loads the installed SDK’s classes when none are given, so requireBearerAuth answers 401', async () => {
    const sdk = (await import('@modelcontextprotocol/sdk/server/auth/errors.js')) as unknown as SdkAuthErrors;
    await expect(mcpTokenVerifier(verifier).verifyAccessToken('not-a-jwt')).rejects.toThrow(sdk.InvalidTokenError);
  });
});
