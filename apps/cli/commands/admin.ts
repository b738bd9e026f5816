import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { Command, type Io } from '../context.js';
import { ApiRefused, UsageError } from '../errors.js';
import { table } from '../table.js';
import { shortTime } from '../time.js';

/**
 * The admin verbs one object at a time (apply does many): workloads, API keys, the signing keys and
 * simulate. Each is one call of the admin HTTP API; the broker checks every value.
 */

interface Workload {
  id: string;
  jwks?: { keys: unknown[] };
  issuer?: string;
  subject?: string;
  enabled: boolean;
  revision: number;
  updated_at: string;
}

interface ApiKey {
  id: string;
  role: string;
  audience?: string;
  label?: string;
  jwks?: { keys: unknown[] };
  created_at: string;
  revoked_at: string | null;
}

interface SigningKey {
  kid: string;
  alg: string;
  state: string;
  created_at: string;
  activated_at: string | null;
  retired_at: string | null;
  publish_until: string | null;
}

interface Simulation {
  decision: 'permit' | 'deny';
  reasons: string[];
  policies: Array<{ id: string; version: number }>;
  errors: string[];
  approval_required: boolean;
  boundary_version: number | null;
}

/** A JSON or YAML file (`-` reads stdin) holding one object: the body of a PUT or POST. */
function readBody(name: string, path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    throw new UsageError(`${name}: cannot read ${path}: ${(error as { code?: string }).code ?? String(error)}`, false);
  }
  let body: unknown;
  try {
    body = parseYaml(text);
  } catch (error) {
    throw new UsageError(
      `${name}: ${path} is not JSON or YAML: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      false,
    );
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new UsageError(`${name}: ${path} must hold one object`, false);
  return body as Record<string, unknown>;
}

/** Members of a JWK that only a private key has (RFC 7517, RFC 7518 §6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * `--jwks FILE`: a JWK Set (`{"keys": [...]}`) or one JWK, JSON or YAML (- for stdin). A private
 * key is refused here, before it leaves the machine (the broker would refuse it too, after
 * receiving it); every other check (curve, alg, key validity) is the broker's.
 */
function readJwks(path: string): { keys: unknown[] } {
  const body = readBody('api-keys create: --jwks', path);
  const keys = Array.isArray(body.keys) ? (body.keys as unknown[]) : 'kty' in body ? [body] : undefined;
  if (keys === undefined) throw new UsageError(`api-keys create: --jwks: ${path} must hold a JWK Set ({"keys": [...]}) or one JWK`, false);
  keys.forEach((key, index) => {
    const secret = isObject(key) ? PRIVATE_MEMBERS.filter((member) => member in key) : [];
    if (secret.length > 0)
      throw new UsageError(
        `api-keys create: --jwks: key ${index} of ${path} holds private key material (${secret.map((m) => `"${m}"`).join(', ')}): register the public key only; nothing was sent`,
        false,
      );
  });
  return { keys };
}

function expectedVerb(command: string, verbs: string, verb: string | undefined): never {
  throw new UsageError(`${command}: expected ${verbs}${verb === undefined ? '' : `, got "${verb}"`}`);
}

/** `tollgate workloads ls | put ID -f FILE | delete ID`. */
export async function workloads(io: Io, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'ls': {
      const command = new Command({ name: 'workloads ls', io, args: rest, options: {} });
      command.expectPositionals();
      const { items } = await command.api().get<{ items: Workload[] }>('/v1/admin/workloads');
      if (command.json) command.printJson({ items });
      else if (items.length === 0) command.print('No workloads.');
      else {
        command.print(
          table(
            ['WORKLOAD', 'ENABLED', 'AUTHENTICATES WITH', 'REVISION', 'UPDATED'],
            items.map((w) => [
              w.id,
              w.enabled ? 'yes' : 'no',
              w.jwks ? `${w.jwks.keys.length} registered key(s)` : `${w.issuer} ${w.subject}`,
              String(w.revision),
              shortTime(w.updated_at),
            ]),
          ),
        );
      }
      return 0;
    }
    case 'put': {
      const command = new Command({ name: 'workloads put', io, args: rest, options: { file: { type: 'string', short: 'f' } } });
      const [id] = command.expectPositionals('workload-id');
      const file = command.option('file');
      if (file === undefined)
        throw new UsageError('workloads put: -f <file> is required (the JSON or YAML body of PUT /v1/admin/workloads/{id})');
      const body = readBody('workloads put', file);
      let workload: Workload;
      try {
        workload = await command.api().put<Workload>(`/v1/admin/workloads/${encodeURIComponent(id!)}`, body);
      } catch (error) {
        // The id is an argument: one the broker refuses (by its own rule) is a usage error, as a bad option is.
        if (error instanceof ApiRefused && error.field === 'id')
          throw new UsageError(`workloads put: <workload-id> ${error.description.replace(/^id: /, '')}`);
        throw error;
      }
      if (command.json) command.printJson(workload);
      else command.print(`Workload ${workload.id}: revision ${workload.revision}, ${workload.enabled ? 'enabled' : 'disabled'}.`);
      return 0;
    }
    case 'delete': {
      const command = new Command({ name: 'workloads delete', io, args: rest, options: {} });
      const [id] = command.expectPositionals('workload-id');
      const result = await command
        .api()
        .delete<{ workload_id: string; revoked_tasks: number; revoked_leases: number }>(`/v1/admin/workloads/${encodeURIComponent(id!)}`);
      if (command.json) command.printJson(result);
      else
        command.print(
          `Workload ${result.workload_id} deleted (disabled): ${result.revoked_tasks} task(s) and ${result.revoked_leases} lease(s) revoked.`,
        );
      return 0;
    }
    default:
      return expectedVerb('workloads', 'ls, put or delete', verb);
  }
}

/** `tollgate api-keys create --role R [--audience A] [--label L] | ls | revoke ID`. */
export async function apiKeys(io: Io, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'create': {
      const command = new Command({
        name: 'api-keys create',
        io,
        args: rest,
        options: { role: { type: 'string' }, audience: { type: 'string' }, label: { type: 'string' }, jwks: { type: 'string' } },
      });
      command.expectPositionals();
      const role = command.option('role');
      if (role === undefined) throw new UsageError('api-keys create: --role is required (admin, reviewer or resource_server)');
      const jwksFile = command.option('jwks');
      const jwks = jwksFile === undefined ? undefined : readJwks(jwksFile);
      const body = { role, audience: command.option('audience'), label: command.option('label'), jwks };
      const created = await command.api().post<ApiKey & { key: string }>('/v1/admin/api-keys', body);
      if (command.json) command.printJson(created);
      else {
        // The key alone on stdout (KEY=$(tollgate api-keys create ...)); what it is on stderr.
        command.io.stderr.write(
          `Created ${created.role} key ${created.id}${created.label ? ` (${created.label})` : ''}${created.jwks ? ` with ${created.jwks.keys.length} public key(s) for private_key_jwt` : ''}: shown once, store it now.\n`,
        );
        command.print(created.key);
      }
      return 0;
    }
    case 'ls': {
      const command = new Command({ name: 'api-keys ls', io, args: rest, options: {} });
      command.expectPositionals();
      const { items } = await command.api().get<{ items: ApiKey[] }>('/v1/admin/api-keys');
      if (command.json) command.printJson({ items });
      else if (items.length === 0) command.print('No API keys (besides TOLLGATE_ADMIN_KEY).');
      else {
        command.print(
          table(
            ['ID', 'ROLE', 'AUDIENCE', 'LABEL', 'CREATED', 'REVOKED'],
            items.map((k) => [
              k.id,
              k.role,
              k.audience ?? '-',
              k.label ?? '-',
              shortTime(k.created_at),
              k.revoked_at ? shortTime(k.revoked_at) : '-',
            ]),
          ),
        );
      }
      return 0;
    }
    case 'revoke': {
      const command = new Command({ name: 'api-keys revoke', io, args: rest, options: {} });
      const [id] = command.expectPositionals('key-id');
      const key = await command.api().delete<ApiKey>(`/v1/admin/api-keys/${encodeURIComponent(id!)}`);
      if (command.json) command.printJson(key);
      else command.print(`Revoked ${key.role} key ${key.id}${key.revoked_at ? ` (at ${shortTime(key.revoked_at)})` : ''}.`);
      return 0;
    }
    default:
      return expectedVerb('api-keys', 'create, ls or revoke', verb);
  }
}

function signingKeyTable(keys: SigningKey[], activeKid: string): string {
  return table(
    ['KID', 'ALG', 'STATE', 'CREATED', 'ACTIVATED', 'PUBLISHED UNTIL'],
    keys.map((k) => [
      `${k.kid}${k.kid === activeKid ? ' *' : ''}`,
      k.alg,
      k.state,
      shortTime(k.created_at),
      k.activated_at ? shortTime(k.activated_at) : '-',
      k.publish_until ? shortTime(k.publish_until) : '-',
    ]),
  );
}

/** `tollgate keys ls | rotate`: the signing keys the JWKS publishes; rotate now. */
export async function signingKeys(io: Io, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'ls': {
      const command = new Command({ name: 'keys ls', io, args: rest, options: {} });
      command.expectPositionals();
      const result = await command.api().get<{ active_kid: string; keys: SigningKey[] }>('/v1/admin/keys');
      if (command.json) command.printJson(result);
      else command.print(signingKeyTable(result.keys, result.active_kid));
      return 0;
    }
    case 'rotate': {
      const command = new Command({ name: 'keys rotate', io, args: rest, options: {} });
      command.expectPositionals();
      const result = await command
        .api()
        .post<{ active_kid: string; retired_kid: string | null; next_kid: string; keys: SigningKey[] }>('/v1/admin/keys/rotate', {});
      if (command.json) command.printJson(result);
      else {
        command.print(
          `Rotated: ${result.active_kid} signs from now on${result.retired_kid ? `, ${result.retired_kid} retired (published until what it signed expires)` : ''}; ${result.next_kid} is published as the next key.`,
        );
        command.print(signingKeyTable(result.keys, result.active_kid));
      }
      return 0;
    }
    default:
      return expectedVerb('keys', 'ls or rotate', verb);
  }
}

/**
 * `tollgate simulate`: how the broker would answer a credential request now, writing nothing. The
 * request comes from -f FILE (the body of POST /v1/admin/simulate) or from the flags; flags given
 * with a file replace its fields. Exit 0 either way: the decision is the answer (--json for scripts).
 */
export async function simulate(io: Io, args: string[]): Promise<number> {
  const command = new Command({
    name: 'simulate',
    io,
    args,
    options: {
      file: { type: 'string', short: 'f' },
      workload: { type: 'string' },
      intent: { type: 'string' },
      subject: { type: 'string' },
      boundary: { type: 'string' },
      action: { type: 'string' },
      resource: { type: 'string' },
      params: { type: 'string' },
      purpose: { type: 'string' },
    },
  });
  command.expectPositionals();
  const file = command.option('file');
  const body = file === undefined ? {} : readBody('simulate', file);
  const task = { ...(isObject(body.task) ? body.task : {}) };
  const request = { ...(isObject(body.request) ? body.request : {}) };
  const set = (target: Record<string, unknown>, field: string, option: string) => {
    const value = command.option(option);
    if (value !== undefined) target[field] = value;
  };
  set(body, 'workload', 'workload');
  set(task, 'intent', 'intent');
  set(task, 'subject', 'subject');
  for (const field of ['boundary', 'action', 'resource', 'purpose']) set(request, field, field);
  const params = command.option('params');
  if (params !== undefined) {
    try {
      request.params = JSON.parse(params) as unknown;
    } catch {
      throw new UsageError('simulate: --params must be a JSON object, e.g. \'{"amount": 120}\'');
    }
  }
  const missing = [
    body.workload === undefined && '--workload',
    task.intent === undefined && '--intent',
    task.subject === undefined && '--subject',
    request.boundary === undefined && '--boundary',
    request.action === undefined && '--action',
  ].filter(Boolean);
  if (missing.length > 0) throw new UsageError(`simulate: missing ${missing.join(', ')} (or -f with a file holding them)`);
  const result = await command.api().post<Simulation>('/v1/admin/simulate', { ...body, task, request });
  if (command.json) {
    command.printJson(result);
    return 0;
  }
  const what = `${String(body.workload)} ${String(request.action)} on ${String(request.boundary)}${request.resource === undefined ? '' : ` ${String(request.resource)}`}`;
  if (result.decision === 'permit') command.print(`PERMIT: ${what}${result.approval_required ? ', after a reviewer approves it' : ''}.`);
  else command.print(`DENY: ${what} (${result.reasons.join(', ') || 'no reason given'}).`);
  if (result.policies.length > 0) command.print(`Deciding policies: ${result.policies.map((p) => `${p.id} v${p.version}`).join(', ')}.`);
  if (result.errors.length > 0) command.print(`Policy errors: ${result.errors.join('; ')}.`);
  return 0;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
