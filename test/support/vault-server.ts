import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small Vault on loopback speaking Vault's real JSON API, for the real node-vault client: token
 * auth (X-Vault-Token, lookup-self, renew-self), AppRole and Kubernetes login, a database secrets
 * engine (`database/creds/<role>` with lease ids), `sys/leases/revoke`, response wrapping
 * (`X-Vault-Wrap-TTL`, `sys/wrapping/wrap`, `sys/wrapping/unwrap`) and Vault's `{errors: [...]}`
 * error shape. Faults are injected per route; every lease it hands out is remembered, so a test can
 * assert that each was revoked exactly once.
 */
export interface VaultServer {
  addr: string;
  rootToken: string;
  /** role_id/secret_id the AppRole login accepts; the role and JWT the Kubernetes login accepts. */
  approle: { roleId: string; secretId: string };
  kubernetes: { role: string; jwt: string };
  /** lease_duration of database creds (seconds); token TTL of logins (seconds). */
  leaseDuration: number;
  tokenTtl: number;
  /** Every lease issued, by id: revoke count and the secret's username. */
  leases: Map<string, { revoked: number; username: string }>;
  /** Requests answered, by "METHOD path" (after faults). */
  requests: string[];
  /**
   * The next `count` requests matching `route` (a path prefix such as "sys/leases/revoke") fail:
   * `status` answers with Vault's error shape; 'hang' never answers (a client timeout) and does
   * nothing; 'lost' does the work (a lease is created) but its answer never arrives.
   */
  fail(route: string, count: number, fault: number | 'hang' | 'lost'): void;
  /** Refuse connections (stop listening) / listen again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

interface Token {
  ttl: number;
  renewable: boolean;
  issuedAt: number;
}

export async function startVaultServer(options: { leaseDuration?: number; tokenTtl?: number } = {}): Promise<VaultServer> {
  const rootToken = `hvs.root-${randomBytes(8).toString('hex')}`;
  const tokens = new Map<string, Token>([[rootToken, { ttl: 0, renewable: false, issuedAt: Date.now() }]]);
  const wrapped = new Map<string, unknown>();
  const faults: Array<{ route: string; left: number; fault: number | 'hang' | 'lost' }> = [];
  const lost = new WeakSet<ServerResponse>();
  const hung = new Set<ServerResponse>();
  let port = 0;
  let server: Server | undefined;

  const vault: VaultServer = {
    addr: '',
    rootToken,
    approle: { roleId: randomUUID(), secretId: randomUUID() },
    kubernetes: { role: 'tollgate', jwt: `eyJhbGciOiJSUzI1NiJ9.${randomBytes(12).toString('base64url')}.sig` },
    leaseDuration: options.leaseDuration ?? 3600,
    tokenTtl: options.tokenTtl ?? 3600,
    leases: new Map(),
    requests: [],
    fail(route, count, fault) {
      faults.push({ route, left: count, fault });
    },
    stop: () => stopServer(),
    start: () => listen(),
    close: () => stopServer(),
  };

  const send = (res: ServerResponse, status: number, body?: unknown) => {
    if (lost.has(res)) {
      hung.add(res);
      return;
    }
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const errors = (res: ServerResponse, status: number, ...messages: string[]) => send(res, status, { errors: messages });
  const newToken = (ttl: number, renewable: boolean) => {
    const token = `hvs.${randomBytes(16).toString('base64url')}`;
    tokens.set(token, { ttl, renewable, issuedAt: Date.now() });
    return token;
  };
  const authResponse = (token: string, ttl: number) => ({
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data: null,
    wrap_info: null,
    warnings: null,
    auth: {
      client_token: token,
      accessor: randomUUID(),
      policies: ['tollgate'],
      token_policies: ['tollgate'],
      lease_duration: ttl,
      renewable: true,
    },
  });
  /** Vault wraps any answer when the request carries X-Vault-Wrap-TTL: the answer is stored, a token returned. */
  const answer = (req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>, path: string) => {
    const wrapTtl = req.headers['x-vault-wrap-ttl'];
    if (typeof wrapTtl !== 'string') return send(res, 200, body);
    const ttl = /^(\d+)s?$/.exec(wrapTtl);
    if (!ttl) return errors(res, 400, 'invalid wrap TTL');
    const token = `hvs.wrap-${randomBytes(16).toString('base64url')}`;
    wrapped.set(token, body);
    send(res, 200, {
      request_id: randomUUID(),
      lease_id: '',
      renewable: false,
      lease_duration: 0,
      data: null,
      wrap_info: { token, accessor: randomUUID(), ttl: Number(ttl[1]), creation_time: new Date().toISOString(), creation_path: path },
      warnings: null,
      auth: null,
    });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const url = new URL(req.url ?? '/', 'http://vault');
    if (!url.pathname.startsWith('/v1/')) return errors(res, 404, 'no handler for route');
    const path = url.pathname.slice('/v1/'.length);
    const method = req.method ?? 'GET';
    const fault = faults.find((f) => f.left > 0 && path.startsWith(f.route));
    if (fault) {
      fault.left--;
      if (fault.fault === 'hang') {
        hung.add(res);
        return;
      }
      if (fault.fault === 'lost') lost.add(res);
      else return errors(res, fault.fault, 'injected fault');
    }
    vault.requests.push(`${method} ${path}`);
    let body: Record<string, unknown> = {};
    if (raw) {
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return errors(res, 400, 'failed to parse JSON input');
      }
    }

    if (method === 'POST' && path.match(/^auth\/[^/]+\/login$/)) {
      if (path === 'auth/approle/login') {
        if (body.role_id !== vault.approle.roleId || body.secret_id !== vault.approle.secretId)
          return errors(res, 400, 'invalid role or secret ID');
      } else if (path === 'auth/kubernetes/login') {
        if (body.role !== vault.kubernetes.role || body.jwt !== vault.kubernetes.jwt) return errors(res, 403, 'permission denied');
      } else return errors(res, 404, 'no handler for route');
      return send(res, 200, authResponse(newToken(vault.tokenTtl, true), vault.tokenTtl));
    }

    // A wrapping token is its own authentication, for unwrapping only (and only once).
    const presented = req.headers['x-vault-token'];
    if (
      method === 'POST' &&
      path === 'sys/wrapping/unwrap' &&
      typeof presented === 'string' &&
      wrapped.has(presented) &&
      body.token === undefined
    ) {
      const inside = wrapped.get(presented);
      wrapped.delete(presented);
      return send(res, 200, inside);
    }
    // Everything else needs a live token.
    const token = typeof presented === 'string' ? tokens.get(presented) : undefined;
    if (!token || (token.ttl > 0 && token.issuedAt + token.ttl * 1000 < Date.now())) return errors(res, 403, 'permission denied');

    if (method === 'GET' && path === 'auth/token/lookup-self') {
      const left = token.ttl === 0 ? 0 : Math.max(0, Math.round(token.ttl - (Date.now() - token.issuedAt) / 1000));
      return send(res, 200, {
        request_id: randomUUID(),
        data: { ttl: left, creation_ttl: token.ttl, renewable: token.renewable, policies: ['root'] },
      });
    }
    if ((method === 'POST' || method === 'PUT') && path === 'auth/token/renew-self') {
      if (!token.renewable) return errors(res, 400, 'lease is not renewable');
      token.issuedAt = Date.now();
      return send(res, 200, authResponse(presented as string, token.ttl));
    }
    const creds = /^database\/creds\/([a-z0-9_-]+)$/.exec(path);
    if (creds && (method === 'GET' || method === 'POST')) {
      const leaseId = `database/creds/${creds[1]}/${randomBytes(12).toString('base64url')}`;
      const username = `v-tollgate-${creds[1]}-${randomBytes(6).toString('hex')}`;
      vault.leases.set(leaseId, { revoked: 0, username });
      return answer(
        req,
        res,
        {
          request_id: randomUUID(),
          lease_id: leaseId,
          renewable: true,
          lease_duration: vault.leaseDuration,
          data: { username, password: `A1a-${randomBytes(15).toString('base64url')}` },
          wrap_info: null,
          warnings: null,
          auth: null,
        },
        path,
      );
    }
    if (method === 'PUT' && path === 'sys/leases/revoke') {
      const leaseId = typeof body.lease_id === 'string' ? body.lease_id : '';
      const lease = vault.leases.get(leaseId);
      if (!lease) return errors(res, 400, 'invalid lease');
      lease.revoked++;
      return send(res, 204);
    }
    if (method === 'POST' && path === 'sys/wrapping/wrap') {
      return answer(
        req,
        res,
        { request_id: randomUUID(), data: body, lease_id: '', renewable: false, lease_duration: 0, auth: null },
        path,
      );
    }
    if (method === 'POST' && path === 'sys/wrapping/unwrap') {
      const wrapToken = typeof body.token === 'string' ? body.token : (presented as string);
      const inside = wrapped.get(wrapToken);
      if (!inside) return errors(res, 400, 'wrapping token is not valid or does not exist');
      wrapped.delete(wrapToken);
      return send(res, 200, inside);
    }
    return errors(res, 404, 'no handler for route');
  };

  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => void handle(req, res, Buffer.concat(chunks).toString('utf8')));
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as AddressInfo).port;
        vault.addr = `http://127.0.0.1:${port}`;
        resolve();
      });
    });
  const stopServer = () =>
    new Promise<void>((resolve) => {
      for (const res of hung) res.destroy();
      hung.clear();
      if (!server) return resolve();
      server.closeAllConnections();
      server.close(() => resolve());
      server = undefined;
    });
  await listen();
  return vault;
}
