import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadBrokerConfig } from '../apps/broker/config.js';
import type { VaultConfig } from '../libs/credentials/vault/config.js';

/**
 * There is no Docker engine here, so docker-compose.yml and the Dockerfile are checked without
 * running them: always by reading them, and with Debian's docker-compose (v1) `config -q` when it is
 * installed.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const composeFile = join(ROOT, 'docker-compose.yml');
const compose = parse(readFileSync(composeFile, 'utf8')) as Compose;
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

interface Service {
  image?: string;
  profiles?: string[];
  command?: string | string[];
  build?: string | { context?: string; dockerfile?: string };
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: Array<string | { target?: number; published?: string | number; host_ip?: string }>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[] };
  restart?: string;
}
interface Compose {
  services?: Record<string, Service>;
}

const secrets = {
  TOLLGATE_ADMIN_KEY: randomBytes(32).toString('hex'),
  TOLLGATE_KEK: randomBytes(32).toString('base64'),
};

function environment(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((entry) => [entry.split('=')[0]!, entry.slice(entry.indexOf('=') + 1)]));
  }
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value === null ? '' : String(value)]));
}

/** Compose's interpolation of `${VAR}`, `${VAR:-default}` and `${VAR:?message}`, for the checks below. */
function interpolate(value: string, vars: Record<string, string | undefined>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}/g, (_match, name: string, op: string | undefined, arg: string) => {
    const set = vars[name] !== undefined && vars[name] !== '';
    if (op === ':?' || op === '?') {
      if (!set) throw new Error(`${name}: ${arg}`);
      return vars[name]!;
    }
    if (op === ':-' || op === '-') return set ? vars[name]! : arg;
    return vars[name] ?? '';
  });
}

describe('docker-compose.yml', () => {
  const services = compose.services ?? {};
  const postgres = services.postgres!;
  const tollgate = services.tollgate!;

  it('runs exactly PostgreSQL 15 and Tollgate by default; Vault (dev mode) and LocalStack only with the downstream profile', () => {
    const always = Object.entries(services)
      .filter(([, service]) => !service.profiles?.length)
      .map(([name]) => name);
    expect(always.sort()).toEqual(['postgres', 'tollgate']);
    expect(postgres.image).toMatch(/^postgres:15(\b|$)/);
    const downstream = Object.entries(services)
      .filter(([, service]) => service.profiles?.includes('downstream'))
      .map(([name]) => name);
    expect(downstream.sort()).toEqual(['localstack', 'vault', 'vault-init']);
    expect(services.vault!.image).toMatch(/^hashicorp\/vault:/);
    expect([services.vault!.command].flat().join(' ')).toMatch(/server -dev/);
    expect(services.localstack!.image).toMatch(/^localstack\/localstack:/);
  });

  it('points Tollgate at the vault service with the dev root token Vault is started with', () => {
    const env = environment(tollgate);
    const config = loadBrokerConfig(Object.fromEntries(Object.entries(env).map(([key, value]) => [key, interpolate(value, secrets)])));
    const vault = config.credentialSources.vault as VaultConfig | undefined;
    expect(vault).toMatchObject({ addr: 'http://vault:8200', auth: { method: 'token' } });
    const vaultToken = interpolate(environment(services.vault!).VAULT_DEV_ROOT_TOKEN_ID!, {});
    expect(vault?.auth).toEqual({ method: 'token', token: vaultToken });
    expect(interpolate(env.AWS_ENDPOINT_URL_STS!, {})).toBe('http://localstack:4566');
  });

  it('checks PostgreSQL with pg_isready, and starts Tollgate only once it is healthy', () => {
    const test = postgres.healthcheck?.test;
    expect([test].flat().join(' ')).toMatch(/pg_isready/);
    const dependsOn = tollgate.depends_on;
    expect(Array.isArray(dependsOn)).toBe(false);
    expect((dependsOn as Record<string, { condition?: string }>).postgres?.condition).toBe('service_healthy');
  });

  it('restarts Tollgate and PostgreSQL when they die (the supervisor; issue 12, finding 3)', () => {
    expect(tollgate.restart).toBe('unless-stopped');
    expect(postgres.restart).toBe('unless-stopped');
  });

  it('builds Tollgate from the Dockerfile in the repository', () => {
    const build = typeof tollgate.build === 'string' ? { context: tollgate.build } : tollgate.build;
    expect(build?.context).toBe('.');
    expect(existsSync(join(ROOT, build?.context ?? '.', build?.dockerfile ?? 'Dockerfile'))).toBe(true);
  });

  it('points Tollgate at the postgres service with the credentials that service creates', () => {
    const env = environment(tollgate);
    const url = new URL(env.DATABASE_URL!);
    const pg = environment(postgres);
    expect(url.protocol).toBe('postgres:');
    expect(url.hostname).toBe('postgres');
    expect(url.port || '5432').toBe('5432');
    expect(decodeURIComponent(url.username)).toBe(pg.POSTGRES_USER ?? 'postgres');
    expect(decodeURIComponent(url.password)).toBe(pg.POSTGRES_PASSWORD);
    expect(url.pathname.slice(1)).toBe(pg.POSTGRES_DB ?? pg.POSTGRES_USER ?? 'postgres');
  });

  it('requires the admin key and the KEK from the environment, with a message', () => {
    const env = environment(tollgate);
    expect(env.TOLLGATE_ADMIN_KEY).toMatch(/^\$\{TOLLGATE_ADMIN_KEY:\?.+\}$/);
    expect(env.TOLLGATE_KEK).toMatch(/^\$\{TOLLGATE_KEK:\?.+\}$/);
    expect(() => interpolate(env.TOLLGATE_KEK!, {})).toThrow(/TOLLGATE_KEK: .*openssl rand -base64 32/);
  });

  it('listens on all interfaces inside the container and publishes port 8080', () => {
    const env = environment(tollgate);
    expect(env.HOST).toBe('0.0.0.0');
    expect(env.PORT ?? '8080').toBe('8080');
    const published = (tollgate.ports ?? []).map((port) =>
      typeof port === 'string' ? port : `${port.host_ip ? `${port.host_ip}:` : ''}${port.published}:${port.target}`,
    );
    expect(published.some((port) => /(^|:)8080:8080$/.test(port))).toBe(true);
  });

  it('gives Tollgate an environment its configuration accepts, with an issuer clients can reach', () => {
    const resolved = Object.fromEntries(Object.entries(environment(tollgate)).map(([key, value]) => [key, interpolate(value, secrets)]));
    const config = loadBrokerConfig(resolved);
    expect(config).toMatchObject({ host: '0.0.0.0', port: 8080, issuer: 'http://127.0.0.1:8080' });
    expect(config.databaseUrl).toMatch(/^postgres:\/\/[^@]+@postgres:5432\//);
    expect(config.kek?.length).toBe(32);
  });

  const dockerCompose = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;

  it.runIf(dockerCompose)('passes `docker-compose config -q` with the required variables set, and fails without them', () => {
    const base = { ...process.env };
    delete base.TOLLGATE_ADMIN_KEY;
    delete base.TOLLGATE_KEK;
    const ok = spawnSync('docker-compose', ['-f', composeFile, 'config', '-q'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...base, ...secrets },
    });
    expect(ok.status, ok.stderr).toBe(0);
    const missing = spawnSync('docker-compose', ['-f', composeFile, 'config', '-q'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...base, TOLLGATE_ADMIN_KEY: secrets.TOLLGATE_ADMIN_KEY },
    });
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/TOLLGATE_KEK/);
  });
});

describe('Dockerfile', () => {
  const lines = dockerfile
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const from = lines.filter((line) => /^FROM\s/i.test(line));

  it('builds on node:24-slim (Node 24 LTS; Node 20 ended in April 2026)', () => {
    expect(from.length).toBeGreaterThan(0);
    for (const line of from) expect(line).toMatch(/^FROM\s+node:24-slim(\s|$)/i);
  });

  it('installs from the lock file, builds, and drops the dev dependencies', () => {
    const run = lines.filter((line) => /^RUN\s/i.test(line)).join('\n');
    const order = ['npm ci', 'npm run build', 'npm prune --omit=dev'].map((command) => run.indexOf(command));
    expect(
      order.every((index) => index >= 0),
      run,
    ).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(dockerfile).toMatch(/COPY\s+package\.json\s+package-lock\.json\s/);
  });

  it('starts the broker the way `npm start` does', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe('node dist/apps/broker/main.js');
    expect(lines.at(-1)).toBe('CMD ["node", "dist/apps/broker/main.js"]');
    // The build stage copies every source folder tsconfig.build.json compiles.
    const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    for (const folder of build.include) expect(dockerfile).toMatch(new RegExp(`COPY\\s+${folder}\\s`));
  });

  it('keeps local state and build output out of the image context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim());
    for (const entry of ['node_modules', 'dist', '.tollgate', '.git']) expect(ignored).toContain(entry);
  });
});
