import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../errors/errors.js';
import { loadConfig, type ConfigPart } from './config.js';
import { KUBERNETES_SERVICE_LINKS, serviceLinks } from '../../test/support/kubernetes.js';

const KEK = Buffer.alloc(32, 7).toString('base64');

function problems(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigurationError) return error.problems;
    throw error;
  }
  return [];
}

describe('loadConfig', () => {
  it('defaults to the embedded database on 127.0.0.1:8080', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      issuer: 'http://127.0.0.1:8080',
      databaseUrl: undefined,
      dataDir: './.tollgate',
    });
    expect(config.kek).toBeUndefined();
  });

  it('derives the issuer from HOST and PORT, and strips a trailing slash from an explicit one', () => {
    expect(loadConfig({ HOST: '0.0.0.0', PORT: '9000' }).issuer).toBe('http://0.0.0.0:9000');
    expect(loadConfig({ TOLLGATE_ISSUER: 'https://tollgate.acme.test/' }).issuer).toBe('https://tollgate.acme.test');
  });

  it('decodes a 32-byte KEK', () => {
    expect(loadConfig({ TOLLGATE_KEK: KEK }).kek).toEqual(Buffer.alloc(32, 7));
  });

  it('reports every bad key at once, each by name', () => {
    const found = problems({
      PORT: 'eighty',
      TOLLGATE_ISSUER: 'ftp://x',
      TOLLGATE_ADMIN_KEY: 'short',
      TOLLGATE_KEK: 'bm90IDMyIGJ5dGVz',
      TOLLGATE_SWEEP_INTERVAL_MS: '-1',
      TOLLGATE_LOG_LEVEL: 'chatty',
      TOLLGATE_ADMN_KEY: 'typo',
      TOLLGATE_KEY_ROTATION: 'weekly',
      TOLLGATE_SIGNING_ALG: 'HS256',
    });
    expect(found.map((p) => p.split(':')[0]).sort()).toEqual(
      [
        'PORT',
        'TOLLGATE_ADMIN_KEY',
        'TOLLGATE_ADMN_KEY',
        'TOLLGATE_ISSUER',
        'TOLLGATE_KEK',
        'TOLLGATE_LOG_LEVEL',
        'TOLLGATE_SWEEP_INTERVAL_MS',
        'TOLLGATE_KEY_ROTATION',
        'TOLLGATE_SIGNING_ALG',
      ].sort(),
    );
  });

  it('rotates signing keys daily with EdDSA by default; takes a duration or off, and ES256', () => {
    expect(loadConfig({})).toMatchObject({ keyRotationMs: 86_400_000, signingAlg: 'EdDSA' });
    expect(loadConfig({ TOLLGATE_KEY_ROTATION: '30m' }).keyRotationMs).toBe(1_800_000);
    expect(loadConfig({ TOLLGATE_KEY_ROTATION: '90s' }).keyRotationMs).toBe(90_000);
    expect(loadConfig({ TOLLGATE_KEY_ROTATION: '7d' }).keyRotationMs).toBe(604_800_000);
    expect(loadConfig({ TOLLGATE_KEY_ROTATION: 'off' }).keyRotationMs).toBeUndefined();
    expect(loadConfig({ TOLLGATE_KEY_ROTATION: '0' }).keyRotationMs).toBeUndefined();
    expect(loadConfig({ TOLLGATE_SIGNING_ALG: 'ES256' }).signingAlg).toBe('ES256');
    for (const bad of ['10s', '90', '1.5h', '-1h', '400d', '24 h', 'never']) {
      expect(problems({ TOLLGATE_KEY_ROTATION: bad }), bad).toEqual([expect.stringMatching(/^TOLLGATE_KEY_ROTATION: /)]);
    }
    expect(problems({ TOLLGATE_SIGNING_ALG: 'es256' })).toEqual([expect.stringMatching(/^TOLLGATE_SIGNING_ALG: /)]);
  });

  it("leaves AWS configuration to the SDK's standard variables (LocalStack or a test server need no Tollgate setting)", () => {
    const aws = {
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_SESSION_TOKEN: 'token',
      AWS_PROFILE: 'tollgate',
      AWS_ENDPOINT_URL: 'http://localstack:4566',
      AWS_ENDPOINT_URL_STS: 'http://localstack:4566',
      AWS_ENDPOINT_URL_IAM: 'http://localstack:4566',
    };
    expect(problems(aws)).toEqual([]);
  });

  it('ignores the service links Kubernetes injects for Services named tollgate and tollgate-*, and still reports typos', () => {
    // Exactly what a pod sees with a Service `tollgate` (port 8080, named http) and `tollgate-postgres` in its namespace.
    const injected = { ...KUBERNETES_SERVICE_LINKS, ...serviceLinks('TOLLGATE_POSTGRES', '[fd00:10:96::a]', 'fd00:10:96::a', 5432) };
    expect(problems(injected)).toEqual([]);
    expect(problems({ ...injected, TOLLGATE_PORT: '8080', TOLLGATE_SERVICE_HOST: 'tollgate.svc', TOLLGATE_RATE_LIMT: '10/s' })).toEqual([
      'TOLLGATE_SERVICE_HOST: unknown setting',
      'TOLLGATE_PORT: unknown setting',
      'TOLLGATE_RATE_LIMT: unknown setting',
    ]);
  });

  it('reads the admin key and the KEKs from *_FILE (one trailing newline dropped), never both ways, never echoing a value', () => {
    const files: Record<string, string> = {
      '/run/secrets/admin': `${'a'.repeat(40)}\n`,
      '/run/secrets/kek': `${KEK}\n`,
      '/run/secrets/empty': '\n',
    };
    const read = (path: string) => {
      if (path in files) return files[path]!;
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    };
    const config = loadConfig(
      {
        TOLLGATE_ADMIN_KEY_FILE: '/run/secrets/admin',
        TOLLGATE_KEK_FILE: '/run/secrets/kek',
        TOLLGATE_KEK_PREVIOUS: `${Buffer.alloc(32, 1).toString('base64')}, ${Buffer.alloc(32, 2).toString('base64')}`,
      },
      { readSecretFile: read },
    );
    expect(config.adminKey).toBe('a'.repeat(40));
    expect(config.kek).toEqual(Buffer.alloc(32, 7));
    expect(config.previousKeks).toEqual([Buffer.alloc(32, 1), Buffer.alloc(32, 2)]);

    const problemsOf = (env: Record<string, string>) => {
      try {
        loadConfig(env, { readSecretFile: read });
      } catch (error) {
        if (error instanceof ConfigurationError) return error.problems;
        throw error;
      }
      return [];
    };
    expect(problemsOf({ TOLLGATE_KEK: KEK, TOLLGATE_KEK_FILE: '/run/secrets/kek' })).toEqual([
      'TOLLGATE_KEK: set either TOLLGATE_KEK or TOLLGATE_KEK_FILE, not both',
    ]);
    expect(problemsOf({ TOLLGATE_ADMIN_KEY_FILE: '/run/secrets/missing' })).toEqual([
      'TOLLGATE_ADMIN_KEY_FILE: cannot read "/run/secrets/missing" (ENOENT)',
    ]);
    expect(problemsOf({ TOLLGATE_KEK_FILE: '/run/secrets/empty' })).toEqual(['TOLLGATE_KEK_FILE: "/run/secrets/empty" is empty']);
    expect(problemsOf({ TOLLGATE_KEK: KEK, TOLLGATE_KEK_PREVIOUS: 'c2hvcnQ=' })).toEqual([
      'TOLLGATE_KEK_PREVIOUS (key 1): must be 32 random bytes in base64 (openssl rand -base64 32)',
    ]);
    expect(problemsOf({ TOLLGATE_KEK_PREVIOUS: KEK })).toEqual([
      'TOLLGATE_KEK_PREVIOUS: only with TOLLGATE_KEK (the key to re-encrypt under)',
    ]);
    files['/run/secrets/short'] = 'short-secret-value\n';
    const shown = problemsOf({ TOLLGATE_ADMIN_KEY_FILE: '/run/secrets/short', TOLLGATE_KEK_FILE: '/run/secrets/short' }).join('\n');
    expect(shown).toContain('TOLLGATE_ADMIN_KEY: must be at least 32 characters');
    expect(shown).not.toContain('short-secret-value');
  });

  it('drains for 5 s then gives requests in flight 10 s by default; both bounded, by name', () => {
    expect(loadConfig({}).shutdown).toEqual({ delayMs: 5_000, timeoutMs: 10_000 });
    expect(loadConfig({ TOLLGATE_SHUTDOWN_DELAY_MS: '0', TOLLGATE_SHUTDOWN_TIMEOUT_MS: '250' }).shutdown).toEqual({
      delayMs: 0,
      timeoutMs: 250,
    });
    expect(problems({ TOLLGATE_SHUTDOWN_DELAY_MS: '5s', TOLLGATE_SHUTDOWN_TIMEOUT_MS: '0' })).toEqual([
      'TOLLGATE_SHUTDOWN_DELAY_MS: must be an integer from 0 to 600000',
      'TOLLGATE_SHUTDOWN_TIMEOUT_MS: must be an integer from 100 to 600000',
    ]);
    expect(problems({ TOLLGATE_SHUTDOWN_DELAY_MS: '600001' })).toEqual(['TOLLGATE_SHUTDOWN_DELAY_MS: must be an integer from 0 to 600000']);
  });

  it('migrates at start unless TOLLGATE_MIGRATE=off; `migrate` needs only the database', () => {
    expect(loadConfig({}).migrate).toBe(true);
    expect(loadConfig({ TOLLGATE_MIGRATE: 'off' }).migrate).toBe(false);
    expect(problems({ TOLLGATE_MIGRATE: 'no' })).toEqual(['TOLLGATE_MIGRATE: must be on or off']);
    const url = 'postgres://owner@db:5432/tollgate';
    expect(problems({ DATABASE_URL: url })).toEqual([
      'TOLLGATE_ADMIN_KEY: required when DATABASE_URL is set',
      'TOLLGATE_KEK: required when DATABASE_URL is set (openssl rand -base64 32)',
    ]);
    expect(loadConfig({ DATABASE_URL: url }, { command: 'migrate' }).databaseUrl).toBe(url);
  });

  it("ignores the clients' own settings exported in the same shell", () => {
    expect(
      problems({
        TOLLGATE_URL: 'http://127.0.0.1:8080',
        TOLLGATE_KEY: 'x',
        TOLLGATE_KEY_FILE: '/run/secrets/tollgate-key',
        TOLLGATE_PROFILE: 'prod',
        TOLLGATE_CONFIG: '/home/me/.config/tollgate/config.json',
      }),
    ).toEqual([]);
    // Still a typo of theirs is one.
    expect(problems({ TOLLGATE_PROFILES: 'prod' })).toEqual([expect.stringMatching(/^TOLLGATE_PROFILES: /)]);
  });

  it('requires an admin key and a KEK with DATABASE_URL', () => {
    expect(
      problems({ DATABASE_URL: 'postgres://db/tollgate' })
        .map((p) => p.split(':')[0])
        .sort(),
    ).toEqual(['TOLLGATE_ADMIN_KEY', 'TOLLGATE_KEK']);
    expect(problems({ DATABASE_URL: 'postgres://db/tollgate', TOLLGATE_ADMIN_KEY: 'a'.repeat(32), TOLLGATE_KEK: KEK })).toEqual([]);
  });

  it('refuses a DATABASE_URL that is not PostgreSQL', () => {
    expect(problems({ DATABASE_URL: 'mysql://db', TOLLGATE_ADMIN_KEY: 'a'.repeat(32), TOLLGATE_KEK: KEK })[0]).toMatch(/^DATABASE_URL:/);
  });

  it('never echoes a secret value in a problem', () => {
    const secret = 'super secret admin key';
    expect(problems({ TOLLGATE_ADMIN_KEY: secret }).join(' ')).not.toContain(secret);
  });

  it('validates the drift threshold and the rate limit, each by name', () => {
    expect(loadConfig({})).toMatchObject({ driftThreshold: 3, rateLimit: undefined });
    expect(loadConfig({ TOLLGATE_DRIFT_THRESHOLD: '5', TOLLGATE_RATE_LIMIT: '2.5' })).toMatchObject({
      driftThreshold: 5,
      rateLimit: { perSecond: 2.5, burst: 5 },
    });
    expect(loadConfig({ TOLLGATE_RATE_LIMIT: '10', TOLLGATE_RATE_BURST: '3' }).rateLimit).toEqual({ perSecond: 10, burst: 3 });
    expect(problems({ TOLLGATE_DRIFT_THRESHOLD: '0', TOLLGATE_RATE_LIMIT: 'fast', TOLLGATE_RATE_BURST: '1' })).toEqual([
      'TOLLGATE_DRIFT_THRESHOLD: must be an integer from 1 to 1000',
      'TOLLGATE_RATE_LIMIT: must be requests per second per workload, a number from 0.001 to 100000, or off',
    ]);
    expect(problems({ TOLLGATE_RATE_BURST: '4' })).toEqual(['TOLLGATE_RATE_BURST: needs TOLLGATE_RATE_LIMIT']);
    expect(problems({ TOLLGATE_RATE_LIMIT: '0', TOLLGATE_DRIFT_THRESHOLD: 'three' })).toHaveLength(2);
    expect(problems({ TOLLGATE_RATE_LIMIT: '5', TOLLGATE_RATE_BURST: '0' })).toEqual([
      'TOLLGATE_RATE_BURST: must be an integer from 1 to 1000000',
    ]);
  });

  it('reads a part owned by a lib above the kernel with the rest: its problems join the others, its TOLLGATE_* names are known', () => {
    const part: ConfigPart<{ source: string | undefined }> = {
      variables: ['TOLLGATE_SOURCE_MODE'],
      read: (env, found) => {
        if (env.SOURCE_ADDR === 'bad') found.push('SOURCE_ADDR: must be a URL');
        return { source: env.SOURCE_ADDR };
      },
    };
    expect(loadConfig({ SOURCE_ADDR: 'http://s', TOLLGATE_SOURCE_MODE: 'x' }, {}, part)).toMatchObject({ source: 'http://s', port: 8080 });
    let error: unknown;
    try {
      loadConfig({ SOURCE_ADDR: 'bad', PORT: 'eighty', TOLLGATE_SOURCE_MODE: 'x', TOLLGATE_SOURCE_MODEL: 'typo' }, {}, part);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'PORT',
      'SOURCE_ADDR',
      'TOLLGATE_SOURCE_MODEL',
    ]);
    // Without the part, its variable is unknown like any other.
    expect(problems({ TOLLGATE_SOURCE_MODE: 'x' })).toEqual(['TOLLGATE_SOURCE_MODE: unknown setting']);
  });

  it('reads the event-stream caps and stall timeout, and refuses bad ones by name', () => {
    expect(loadConfig({}).events).toEqual({ maxStreams: 500, maxStreamsPerKey: 20, stallTimeoutMs: 30_000 });
    expect(
      loadConfig({ TOLLGATE_EVENTS_MAX_STREAMS: '50', TOLLGATE_EVENTS_MAX_STREAMS_PER_KEY: '5', TOLLGATE_EVENTS_STALL_TIMEOUT_MS: '2000' })
        .events,
    ).toEqual({
      maxStreams: 50,
      maxStreamsPerKey: 5,
      stallTimeoutMs: 2000,
    });
    expect(problems({ TOLLGATE_EVENTS_MAX_STREAMS: '0', TOLLGATE_EVENTS_STALL_TIMEOUT_MS: '10' })).toEqual([
      'TOLLGATE_EVENTS_MAX_STREAMS: must be an integer from 1 to 100000',
      'TOLLGATE_EVENTS_STALL_TIMEOUT_MS: must be an integer from 1000 to 3600000',
    ]);
    expect(problems({ TOLLGATE_EVENTS_MAX_STREAMS: '10', TOLLGATE_EVENTS_MAX_STREAMS_PER_KEY: '11' })).toEqual([
      'TOLLGATE_EVENTS_MAX_STREAMS_PER_KEY: must not be more than TOLLGATE_EVENTS_MAX_STREAMS',
    ]);
  });

  it('turns traces on only for an OTLP endpoint in the standard OTEL_* variables, and validates it by name', () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_SERVICE_NAME: 'x' }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing).toEqual({
      url: 'http://collector:4318/v1/traces',
      serviceName: 'tollgate',
      sampler: { name: 'parentbased_always_on', ratio: 1 },
    });
    expect(
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://b/otlp/traces',
        OTEL_SERVICE_NAME: 'tollgate-eu',
      }).tracing,
    ).toEqual({
      url: 'https://b/otlp/traces',
      serviceName: 'tollgate-eu',
      sampler: { name: 'parentbased_always_on', ratio: 1 },
    });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_TRACES_EXPORTER: 'none' }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_SDK_DISABLED: 'true' }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }).tracing).toBeDefined();
    expect(problems({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toEqual([
      'OTEL_EXPORTER_OTLP_ENDPOINT: must be an http(s) URL such as http://collector:4318',
    ]);
    expect(problems({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://c/v1/traces' })).toEqual([
      'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must be an http(s) URL such as http://collector:4318/v1/traces',
    ]);
    expect(
      problems({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_TRACES_EXPORTER: 'zipkin' }),
    ).toEqual([
      'OTEL_TRACES_EXPORTER: must be otlp or none',
      'OTEL_EXPORTER_OTLP_PROTOCOL: must be http/json or http/protobuf (Tollgate sends OTLP over HTTP, as JSON)',
    ]);
  });

  it('reads the sampler from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, and stops start on a typo in either', () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318' };
    expect(
      loadConfig({ ...on, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).tracing?.sampler,
    ).toEqual({
      name: 'parentbased_traceidratio',
      ratio: 0.25,
    });
    expect(loadConfig({ ...on, OTEL_TRACES_SAMPLER: 'Always_Off' }).tracing?.sampler).toEqual({ name: 'always_off', ratio: 1 });
    expect(loadConfig({ ...on, OTEL_TRACES_SAMPLER_ARG: '0' }).tracing?.sampler.ratio).toBe(0);
    expect(problems({ ...on, OTEL_TRACES_SAMPLER: 'parentbased_alwayson', OTEL_TRACES_SAMPLER_ARG: '1.5' })).toEqual([
      'OTEL_TRACES_SAMPLER: must be one of parentbased_always_on, parentbased_always_off, parentbased_traceidratio, always_on, always_off, traceidratio',
      'OTEL_TRACES_SAMPLER_ARG: must be a number from 0 to 1, such as 0.25',
    ]);
    expect(problems({ ...on, OTEL_TRACES_SAMPLER_ARG: '-0.1' })).toEqual([
      'OTEL_TRACES_SAMPLER_ARG: must be a number from 0 to 1, such as 0.25',
    ]);
    // Traces off: the sampler variables are not read at all.
    expect(problems({ OTEL_TRACES_SAMPLER: 'nonsense' })).toEqual([]);
  });
});
