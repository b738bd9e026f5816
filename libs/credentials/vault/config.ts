import { isHttpUrl, nonEmpty, type Env } from '../../config/index.js';

/** How Tollgate logs in to Vault: exactly one of a token, AppRole, or Kubernetes auth. */
export interface VaultConfig {
  addr: string;
  namespace: string | undefined;
  auth:
    | { method: 'token'; token: string }
    | { method: 'approle'; roleId: string; secretId: string; mount: string }
    | { method: 'kubernetes'; role: string; jwtPath: string; mount: string };
  /** Per request to Vault: a hung Vault must not hold a credential request for long. */
  timeoutMs: number;
}

/** Where a pod's service-account token is mounted (Vault's Kubernetes auth reads it from here too). */
export const DEFAULT_K8S_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Vault's own variables (VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CLIENT_TIMEOUT), plus
 * VAULT_ROLE_ID/VAULT_SECRET_ID for AppRole and VAULT_K8S_ROLE/VAULT_K8S_TOKEN_PATH for Kubernetes
 * auth (the names Vault's docs and most Vault clients use). Secrets are never echoed in a problem.
 */
export function readVaultConfig(env: Env, problems: string[]): VaultConfig | undefined {
  const addr = nonEmpty(env.VAULT_ADDR);
  const token = nonEmpty(env.VAULT_TOKEN);
  const roleId = nonEmpty(env.VAULT_ROLE_ID);
  const secretId = nonEmpty(env.VAULT_SECRET_ID);
  const k8sRole = nonEmpty(env.VAULT_K8S_ROLE);
  const methods = [token && 'VAULT_TOKEN', (roleId || secretId) && 'VAULT_ROLE_ID', k8sRole && 'VAULT_K8S_ROLE'].filter(Boolean);
  if (addr === undefined) {
    if (methods.length > 0) problems.push(`VAULT_ADDR: required when ${methods.join(', ')} is set`);
    return undefined;
  }
  let ok = true;
  if (!isHttpUrl(addr)) {
    problems.push('VAULT_ADDR: must be an http(s) URL such as https://vault.example:8200');
    ok = false;
  }
  if (methods.length !== 1) {
    problems.push(
      'VAULT_ADDR: set exactly one way to log in: VAULT_TOKEN, VAULT_ROLE_ID + VAULT_SECRET_ID (AppRole), or VAULT_K8S_ROLE (Kubernetes)',
    );
    ok = false;
  }
  if ((roleId === undefined) !== (secretId === undefined)) {
    problems.push(
      `${roleId === undefined ? 'VAULT_ROLE_ID' : 'VAULT_SECRET_ID'}: required with ${roleId === undefined ? 'VAULT_SECRET_ID' : 'VAULT_ROLE_ID'}`,
    );
    ok = false;
  }
  const timeoutText = nonEmpty(env.VAULT_CLIENT_TIMEOUT) ?? '10s';
  const match = /^(\d{1,4})s?$/.exec(timeoutText);
  const timeoutSeconds = match ? Number(match[1]) : 0;
  if (timeoutSeconds < 1 || timeoutSeconds > 600) {
    problems.push('VAULT_CLIENT_TIMEOUT: must be seconds from 1 to 600, such as 10 or 10s');
    ok = false;
  }
  const mount = (key: string, fallback: string) => (nonEmpty(env[key]) ?? fallback).replace(/^\/+|\/+$/g, '');
  if (!ok) return undefined;
  return {
    addr: addr.replace(/\/+$/, ''),
    namespace: nonEmpty(env.VAULT_NAMESPACE),
    auth: token
      ? { method: 'token', token }
      : roleId
        ? { method: 'approle', roleId, secretId: secretId!, mount: mount('VAULT_APPROLE_MOUNT', 'approle') }
        : {
            method: 'kubernetes',
            role: k8sRole!,
            jwtPath: nonEmpty(env.VAULT_K8S_TOKEN_PATH) ?? DEFAULT_K8S_TOKEN_PATH,
            mount: mount('VAULT_K8S_MOUNT', 'kubernetes'),
          },
    timeoutMs: timeoutSeconds * 1000,
  };
}
