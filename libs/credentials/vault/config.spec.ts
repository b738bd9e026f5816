import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { ConfigurationError } from '../../errors/errors.js';
import { credentialConfig } from '../catalog.js';
import { readVaultConfig, type VaultConfig } from './config.js';

function vaultOf(env: Record<string, string>): VaultConfig | undefined {
  const problems: string[] = [];
  const config = readVaultConfig(env, problems);
  expect(problems).toEqual([]);
  return config;
}

function problems(env: Record<string, string>): readonly string[] {
  const found: string[] = [];
  readVaultConfig(env, found);
  return found;
}

describe('readVaultConfig', () => {
  it("reads Tollgate's Vault login from Vault's variables: a token, AppRole or Kubernetes auth", () => {
    expect(vaultOf({})).toBeUndefined();
    expect(vaultOf({ VAULT_ADDR: 'http://vault:8200/', VAULT_TOKEN: 'hvs.x' })).toEqual({
      addr: 'http://vault:8200',
      namespace: undefined,
      auth: { method: 'token', token: 'hvs.x' },
      timeoutMs: 10_000,
    });
    expect(vaultOf({ VAULT_ADDR: 'https://v', VAULT_ROLE_ID: 'r', VAULT_SECRET_ID: 's', VAULT_CLIENT_TIMEOUT: '3s' })).toMatchObject({
      auth: { method: 'approle', roleId: 'r', secretId: 's', mount: 'approle' },
      timeoutMs: 3000,
    });
    expect(vaultOf({ VAULT_ADDR: 'https://v', VAULT_K8S_ROLE: 'tollgate' })?.auth).toEqual({
      method: 'kubernetes',
      role: 'tollgate',
      jwtPath: '/var/run/secrets/kubernetes.io/serviceaccount/token',
      mount: 'kubernetes',
    });
    expect(vaultOf({ VAULT_ADDR: 'https://v', VAULT_TOKEN: 't', VAULT_NAMESPACE: 'team-a' })?.namespace).toBe('team-a');
  });

  it('refuses an incomplete or ambiguous Vault login, naming the variable and never the secret', () => {
    expect(problems({ VAULT_TOKEN: 'hvs.secret' })[0]).toMatch(/^VAULT_ADDR: required when VAULT_TOKEN/);
    expect(problems({ VAULT_ADDR: 'https://v' })[0]).toMatch(/^VAULT_ADDR: set exactly one way to log in/);
    expect(problems({ VAULT_ADDR: 'https://v', VAULT_TOKEN: 'hvs.secret', VAULT_K8S_ROLE: 'r' })[0]).toMatch(
      /^VAULT_ADDR: set exactly one/,
    );
    expect(problems({ VAULT_ADDR: 'https://v', VAULT_ROLE_ID: 'r' })).toContain('VAULT_SECRET_ID: required with VAULT_ROLE_ID');
    expect(problems({ VAULT_ADDR: 'vault:8200', VAULT_TOKEN: 'hvs.secret' })[0]).toMatch(/^VAULT_ADDR: must be an http/);
    expect(problems({ VAULT_ADDR: 'https://v', VAULT_TOKEN: 'hvs.secret', VAULT_CLIENT_TIMEOUT: 'soon' })[0]).toMatch(
      /^VAULT_CLIENT_TIMEOUT:/,
    );
    expect(problems({ VAULT_ADDR: 'nope', VAULT_TOKEN: 'hvs.secret', VAULT_SECRET_ID: 'sid-secret' }).join(' ')).not.toMatch(
      /hvs\.secret|sid-secret/,
    );
  });

  it('is checked at start with the rest of the configuration: every problem at once, no secret in any', () => {
    let error: unknown;
    try {
      loadConfig(
        { PORT: 'eighty', TOLLGATE_ADMN_KEY: 'typo', VAULT_ADDR: 'nope', VAULT_TOKEN: 'hvs.secret', VAULT_SECRET_ID: 'sid-secret' },
        {},
        credentialConfig(),
      );
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    const found = (error as ConfigurationError).problems;
    expect(found.map((p) => p.split(':')[0]).sort()).toEqual(
      ['PORT', 'TOLLGATE_ADMN_KEY', 'VAULT_ADDR', 'VAULT_ADDR', 'VAULT_ROLE_ID'].sort(),
    );
    expect(String(error)).not.toMatch(/hvs\.secret|sid-secret/);
    const config = loadConfig({ VAULT_ADDR: 'https://v', VAULT_TOKEN: 't' }, {}, credentialConfig());
    expect(config.credentialSources.vault).toMatchObject({ addr: 'https://v', auth: { method: 'token', token: 't' } });
  });
});
