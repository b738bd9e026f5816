import { readFileSync } from 'node:fs';
import { ConfigurationError } from '../errors/index.js';

/** The algorithms Tollgate signs its credentials with (TOLLGATE_SIGNING_ALG); libs/keys makes keys for them. */
export const SIGNING_ALGS = ['EdDSA', 'ES256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

/** Validated service configuration. Built once at start from the environment; never read again. */
export interface Config {
  port: number;
  host: string;
  issuer: string;
  /** PostgreSQL server; when absent the embedded PGlite database in `dataDir` is used. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** Bootstrap admin key (plain text only in memory, hashed before it is stored). */
  adminKey: string | undefined;
  /** Key-encryption key for private signing keys at rest: exactly 32 bytes. */
  kek: Buffer | undefined;
  /** Earlier KEKs, still accepted to open signing keys, which start re-encrypts under `kek`. */
  previousKeks: readonly Buffer[];
  /** Run pending migrations at start (on), or refuse to start without them (off: no DDL rights needed). */
  migrate: boolean;
  sweepIntervalMs: number;
  /** After a trusted issuer's JWKS was fetched, how long before an unknown kid may fetch it again. */
  jwksCooldownMs: number;
  logLevel: LogLevel;
  /** Automatic signing-key rotation period in milliseconds; undefined when off. */
  keyRotationMs: number | undefined;
  /** The alg new signing keys are made for. */
  signingAlg: SigningAlg;
  /** Policy-style denials a task may collect before the drift guard suspends it (a boundary may override). */
  driftThreshold: number;
  /** Credential requests per workload: a token bucket shared by the replicas; undefined when off. */
  rateLimit: RateLimit | undefined;
  /** GET /v1/events on this replica: how many streams, and how long a reader may stall. */
  events: EventsConfig;
  /** OpenTelemetry traces (the standard OTEL_* variables); undefined when off, the default. */
  tracing: TracingConfig | undefined;
  /** How a replica leaves on SIGTERM: still serving while the load balancer notices, then draining. */
  shutdown: ShutdownConfig;
}

export interface ShutdownConfig {
  /**
   * After SIGTERM, how long the replica keeps serving (readiness 503, `Connection: close`) before
   * it stops accepting: the time its load balancer or Kubernetes endpoints need to stop sending.
   */
  delayMs: number;
  /** Then how long requests in flight may take to finish before their connections are cut. */
  timeoutMs: number;
}

/** Where traces go: an OTLP/HTTP receiver (spans are sent as OTLP JSON). */
export interface TracingConfig {
  /** The full traces URL, e.g. http://collector:4318/v1/traces. */
  url: string;
  serviceName: string;
  /** OTEL_TRACES_SAMPLER and its OTEL_TRACES_SAMPLER_ARG, as OpenTelemetry defines them. */
  sampler: TraceSampler;
}

export const TRACE_SAMPLERS = [
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
  'always_on',
  'always_off',
  'traceidratio',
] as const;

export interface TraceSampler {
  name: (typeof TRACE_SAMPLERS)[number];
  /** The share of new traces kept by the traceidratio samplers, 0 to 1 (1 when unset). */
  ratio: number;
}

export interface EventsConfig {
  maxStreams: number;
  maxStreamsPerKey: number;
  stallTimeoutMs: number;
}

export interface RateLimit {
  perSecond: number;
  burst: number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const KNOWN = new Set([
  'TOLLGATE_ISSUER',
  'TOLLGATE_DATA_DIR',
  'TOLLGATE_ADMIN_KEY',
  'TOLLGATE_ADMIN_KEY_FILE',
  'TOLLGATE_KEK',
  'TOLLGATE_KEK_FILE',
  'TOLLGATE_KEK_PREVIOUS',
  'TOLLGATE_KEK_PREVIOUS_FILE',
  'TOLLGATE_MIGRATE',
  'TOLLGATE_SWEEP_INTERVAL_MS',
  'TOLLGATE_JWKS_COOLDOWN_MS',
  'TOLLGATE_LOG_LEVEL',
  'TOLLGATE_KEY_ROTATION',
  'TOLLGATE_SIGNING_ALG',
  'TOLLGATE_DRIFT_THRESHOLD',
  'TOLLGATE_RATE_LIMIT',
  'TOLLGATE_RATE_BURST',
  'TOLLGATE_EVENTS_MAX_STREAMS',
  'TOLLGATE_EVENTS_MAX_STREAMS_PER_KEY',
  'TOLLGATE_EVENTS_STALL_TIMEOUT_MS',
  'TOLLGATE_SHUTDOWN_DELAY_MS',
  'TOLLGATE_SHUTDOWN_TIMEOUT_MS',
]);

/** Shortest automatic rotation period: a key is published one period before it signs, and jose's
 * createRemoteJWKSet refetches a JWKS on an unknown kid only 30 s after its last fetch. */
export const MIN_KEY_ROTATION_MS = 30_000;
const MAX_KEY_ROTATION_MS = 366 * 86_400_000;

/** The environment, as `process.env` gives it. */
export type Env = Record<string, string | undefined>;

/**
 * A part of the start-up configuration that a lib above the kernel owns (a credential kind's own
 * source, such as Vault's login). It is read with the rest, into the same list of problems, so one
 * start still reports every problem at once. Problems name the variable, never a secret value.
 */
export interface ConfigPart<T extends object> {
  /** TOLLGATE_* variables the part reads: the unknown-setting check must not report them. */
  readonly variables: readonly string[];
  read(env: Env, problems: string[]): T;
}

export interface LoadOptions {
  /** Reads a `*_FILE` secret; the file system by default. */
  readSecretFile?: (path: string) => string;
  /** `serve` (the default) or `migrate`, which needs only the database settings. */
  command?: 'serve' | 'migrate';
}

/** Settings of Tollgate's clients (the CLI, scripts, the SDK), often exported in the same shell. */
const CLIENT_SIDE = new Set(['TOLLGATE_URL', 'TOLLGATE_KEY', 'TOLLGATE_KEY_FILE', 'TOLLGATE_PROFILE', 'TOLLGATE_CONFIG']);

/**
 * Kubernetes injects docker-link style variables for every Service of the namespace into every pod:
 * a Service `tollgate` (or `tollgate-db`) gives TOLLGATE_SERVICE_HOST, TOLLGATE_PORT=tcp://…,
 * TOLLGATE_PORT_8080_TCP_ADDR and so on. They are ignored only when both the name and the value have
 * the shape Kubernetes gives them, so a typo such as TOLLGATE_PORT=8080 is still reported.
 */
const KUBERNETES_SERVICE_LINKS: ReadonlyArray<readonly [RegExp, RegExp]> = (() => {
  const service = '(?:_[A-Z0-9_]+?)?';
  const ip = '(?:\\d{1,3}(?:\\.\\d{1,3}){3}|\\[?[0-9A-Fa-f:]+\\]?)';
  const port = '\\d{1,5}';
  const link = `${port}_(?:TCP|UDP|SCTP)`;
  return [
    [new RegExp(`^TOLLGATE${service}_SERVICE_HOST$`), new RegExp(`^${ip}$`)],
    [new RegExp(`^TOLLGATE${service}_SERVICE_PORT(?:_[A-Z0-9_]+)?$`), new RegExp(`^${port}$`)],
    [new RegExp(`^TOLLGATE${service}_PORT(?:_${link})?$`), new RegExp(`^(?:tcp|udp|sctp)://${ip}:${port}$`)],
    [new RegExp(`^TOLLGATE${service}_PORT_${link}_PROTO$`), /^(?:tcp|udp|sctp)$/],
    [new RegExp(`^TOLLGATE${service}_PORT_${link}_PORT$`), new RegExp(`^${port}$`)],
    [new RegExp(`^TOLLGATE${service}_PORT_${link}_ADDR$`), new RegExp(`^${ip}$`)],
  ];
})();

function isKubernetesServiceLink(key: string, value: string | undefined): boolean {
  return value !== undefined && KUBERNETES_SERVICE_LINKS.some(([name, shape]) => name.test(key) && shape.test(value));
}

/**
 * Reads every key, collects every problem, and throws them together (each naming its key), so an
 * operator fixes a bad deployment in one pass rather than one restart per typo.
 */
export function loadConfig(env: Env, options?: LoadOptions): Config;
export function loadConfig<T extends object>(env: Env, options: LoadOptions, part: ConfigPart<T>): Config & T;
export function loadConfig(env: Env, options: LoadOptions = {}, part?: ConfigPart<object>): Config {
  const readSecretFile = options.readSecretFile ?? ((path: string) => readFileSync(path, 'utf8'));
  // `migrate` only opens the database: it needs no admin key or KEK (a migrate Job gets neither).
  const serving = options.command !== 'migrate';
  const problems: string[] = [];

  for (const key of Object.keys(env)) {
    if (!key.startsWith('TOLLGATE_') || KNOWN.has(key) || CLIENT_SIDE.has(key) || part?.variables.includes(key)) continue;
    if (isKubernetesServiceLink(key, env[key])) continue;
    problems.push(`${key}: unknown setting`);
  }

  const port = integer(env, 'PORT', 8080, 0, 65535, problems);
  const host = nonEmpty(env.HOST) ?? '127.0.0.1';
  if (!/^[A-Za-z0-9.:\-[\]]+$/.test(host)) problems.push('HOST: must be a host name or an IP address');

  const databaseUrl = nonEmpty(env.DATABASE_URL);
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\/[^\s]+$/.test(databaseUrl)) {
    problems.push('DATABASE_URL: must be a postgres:// or postgresql:// URL');
  }

  const issuer = (nonEmpty(env.TOLLGATE_ISSUER) ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(/\/+$/, '');
  if (!isHttpUrl(issuer)) problems.push('TOLLGATE_ISSUER: must be an http(s) URL without query or fragment');

  const secret = (key: string) => secretOf(env, key, readSecretFile, problems);
  const adminKey = secret('TOLLGATE_ADMIN_KEY');
  if (adminKey !== undefined && (adminKey.length < 32 || /\s/.test(adminKey))) {
    problems.push('TOLLGATE_ADMIN_KEY: must be at least 32 characters without spaces');
  }
  if (adminKey === undefined && databaseUrl !== undefined && serving) {
    problems.push('TOLLGATE_ADMIN_KEY: required when DATABASE_URL is set');
  }

  const kekText = secret('TOLLGATE_KEK');
  const kek = kekText === undefined ? undefined : kekOf(kekText, 'TOLLGATE_KEK', problems);
  if (kekText === undefined && databaseUrl !== undefined && serving) {
    problems.push('TOLLGATE_KEK: required when DATABASE_URL is set (openssl rand -base64 32)');
  }
  const previousText = secret('TOLLGATE_KEK_PREVIOUS');
  const previousKeks = (previousText ?? '')
    .split(/[\s,]+/)
    .filter((text) => text !== '')
    .map((text, i) => kekOf(text, `TOLLGATE_KEK_PREVIOUS (key ${i + 1})`, problems))
    .filter((key): key is Buffer => key !== undefined);
  if (previousText !== undefined && kekText === undefined)
    problems.push('TOLLGATE_KEK_PREVIOUS: only with TOLLGATE_KEK (the key to re-encrypt under)');

  const sweepIntervalMs = integer(env, 'TOLLGATE_SWEEP_INTERVAL_MS', 1000, 50, 3_600_000, problems);

  const jwksCooldownMs = integer(env, 'TOLLGATE_JWKS_COOLDOWN_MS', 30_000, 100, 3_600_000, problems);

  const logLevel = (nonEmpty(env.TOLLGATE_LOG_LEVEL) ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(logLevel)) {
    problems.push('TOLLGATE_LOG_LEVEL: must be one of debug, info, warn, error, silent');
  }

  const keyRotationMs = duration(nonEmpty(env.TOLLGATE_KEY_ROTATION) ?? '24h');
  if (keyRotationMs === null) {
    problems.push('TOLLGATE_KEY_ROTATION: must be a duration such as 24h, 30m or 90s (units s, m, h, d) from 30s to 366d, or off');
  }

  const signingAlg = (nonEmpty(env.TOLLGATE_SIGNING_ALG) ?? 'EdDSA') as SigningAlg;
  if (!SIGNING_ALGS.includes(signingAlg)) problems.push(`TOLLGATE_SIGNING_ALG: must be one of ${SIGNING_ALGS.join(', ')}`);

  const driftThreshold = integer(env, 'TOLLGATE_DRIFT_THRESHOLD', 3, 1, 1000, problems);

  const migrateText = nonEmpty(env.TOLLGATE_MIGRATE) ?? 'on';
  if (migrateText !== 'on' && migrateText !== 'off') problems.push('TOLLGATE_MIGRATE: must be on or off');

  const rateLimit = rateLimitOf(env, problems);
  const events = eventsConfig(env, problems);
  const tracing = tracingConfig(env, problems);
  const shutdown = shutdownConfig(env, problems);
  const own = part?.read(env, problems);

  if (problems.length > 0) throw new ConfigurationError(problems);
  return {
    ...own,
    port,
    host,
    issuer,
    databaseUrl,
    dataDir: nonEmpty(env.TOLLGATE_DATA_DIR) ?? './.tollgate',
    adminKey,
    kek,
    previousKeks,
    migrate: migrateText !== 'off',
    sweepIntervalMs,
    jwksCooldownMs,
    logLevel,
    keyRotationMs: keyRotationMs ?? undefined,
    signingAlg,
    driftThreshold,
    rateLimit,
    events,
    tracing,
    shutdown,
  };
}

/**
 * TOLLGATE_SHUTDOWN_DELAY_MS (default 5 s): Kubernetes takes a terminating pod out of its Service's
 * endpoints at once, but kube-proxy and ingress controllers apply that a second or a few later, and a
 * load balancer polling /readyz every second with three failures to fall needs about 3 s; until then
 * requests keep arriving, and a replica that closed its listener would refuse them.
 * TOLLGATE_SHUTDOWN_TIMEOUT_MS (default 10 s): requests in flight then finish; no request runs longer
 * than the 10 s statement timeout unless the database hangs, and 5 + 10 s fit in Kubernetes' default
 * 30 s grace period with room for the pool to close.
 */
function shutdownConfig(env: Record<string, string | undefined>, problems: string[]): ShutdownConfig {
  const delayMs = integer(env, 'TOLLGATE_SHUTDOWN_DELAY_MS', 5_000, 0, 600_000, problems);
  const timeoutMs = integer(env, 'TOLLGATE_SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000, problems);
  return { delayMs, timeoutMs };
}

/**
 * Traces are off unless an OTLP endpoint is named with OpenTelemetry's own variables:
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the traces URL as it is) or OTEL_EXPORTER_OTLP_ENDPOINT (a
 * base URL, `/v1/traces` appended). OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none turn them
 * off; OTEL_SERVICE_NAME names the service (default tollgate). Only OTLP over HTTP is spoken: a
 * gRPC endpoint would swallow every span, so it is a start error rather than a silent loss.
 */
function tracingConfig(env: Record<string, string | undefined>, problems: string[]): TracingConfig | undefined {
  if (nonEmpty(env.OTEL_SDK_DISABLED)?.toLowerCase() === 'true') return undefined;
  const exporter = nonEmpty(env.OTEL_TRACES_EXPORTER)?.toLowerCase() ?? 'otlp';
  if (exporter === 'none') return undefined;
  const tracesEndpoint = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  const baseEndpoint = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  if (tracesEndpoint === undefined && baseEndpoint === undefined) return undefined;
  let ok = true;
  if (exporter !== 'otlp') {
    problems.push('OTEL_TRACES_EXPORTER: must be otlp or none');
    ok = false;
  }
  for (const key of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const protocol = nonEmpty(env[key]);
    if (protocol !== undefined && protocol !== 'http/json' && protocol !== 'http/protobuf') {
      problems.push(`${key}: must be http/json or http/protobuf (Tollgate sends OTLP over HTTP, as JSON)`);
      ok = false;
    }
  }
  const [key, url] =
    tracesEndpoint !== undefined
      ? ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', tracesEndpoint]
      : ['OTEL_EXPORTER_OTLP_ENDPOINT', `${baseEndpoint!.replace(/\/+$/, '')}/v1/traces`];
  if (!isOtlpUrl(url)) {
    problems.push(
      `${key}: must be an http(s) URL such as http://collector:4318${key === 'OTEL_EXPORTER_OTLP_ENDPOINT' ? '' : '/v1/traces'}`,
    );
    ok = false;
  }
  const sampler = traceSampler(env, problems);
  return ok && sampler ? { url, serviceName: nonEmpty(env.OTEL_SERVICE_NAME) ?? 'tollgate', sampler } : undefined;
}

/**
 * The sampler OpenTelemetry's variables name (default parentbased_always_on). The SDK would read
 * them itself, but it falls back to the default on a typo; here a typo stops start, by name, as
 * every other setting does. The broker adds its own rule on top (probes make no spans).
 */
function traceSampler(env: Record<string, string | undefined>, problems: string[]): TraceSampler | undefined {
  const name = nonEmpty(env.OTEL_TRACES_SAMPLER)?.toLowerCase() ?? 'parentbased_always_on';
  const known = (TRACE_SAMPLERS as readonly string[]).includes(name);
  if (!known) problems.push(`OTEL_TRACES_SAMPLER: must be one of ${TRACE_SAMPLERS.join(', ')}`);
  const ratioText = nonEmpty(env.OTEL_TRACES_SAMPLER_ARG);
  const ratio = ratioText === undefined ? 1 : /^(?:0|1|0?\.\d+|1\.0*)$/.test(ratioText) ? Number(ratioText) : Number.NaN;
  if (Number.isNaN(ratio)) problems.push('OTEL_TRACES_SAMPLER_ARG: must be a number from 0 to 1, such as 0.25');
  return known && !Number.isNaN(ratio) ? { name: name as TraceSampler['name'], ratio } : undefined;
}

function isOtlpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' && url.hash === '';
  } catch {
    return false;
  }
}

/**
 * A secret from `KEY` or from the file `KEY_FILE` names (a mounted Kubernetes or Docker secret),
 * one trailing newline dropped. Never both: which one wins would be a guess. Problems name the key
 * and the file, never the value.
 */
function secretOf(
  env: Record<string, string | undefined>,
  key: string,
  readFile: (path: string) => string,
  problems: string[],
): string | undefined {
  const direct = nonEmpty(env[key]);
  const path = nonEmpty(env[`${key}_FILE`]);
  if (path === undefined) return direct;
  if (direct !== undefined) {
    problems.push(`${key}: set either ${key} or ${key}_FILE, not both`);
    return undefined;
  }
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    problems.push(`${key}_FILE: cannot read ${JSON.stringify(path)} (${code})`);
    return undefined;
  }
  const value = text.replace(/\r?\n$/, '');
  if (value === '') problems.push(`${key}_FILE: ${JSON.stringify(path)} is empty`);
  return nonEmpty(value);
}

function kekOf(text: string, name: string, problems: string[]): Buffer | undefined {
  const decoded = /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : Buffer.alloc(0);
  if (decoded.length === 32) return decoded;
  problems.push(`${name}: must be 32 random bytes in base64 (openssl rand -base64 32)`);
  return undefined;
}

/**
 * Event streams hold a socket each and what it has not taken yet: a replica serves at most
 * TOLLGATE_EVENTS_MAX_STREAMS (default 500), one API key at most TOLLGATE_EVENTS_MAX_STREAMS_PER_KEY
 * (default 20); a reader that takes nothing for TOLLGATE_EVENTS_STALL_TIMEOUT_MS (default 30 s) is dropped.
 */
function eventsConfig(env: Record<string, string | undefined>, problems: string[]): EventsConfig {
  const maxStreams = integer(env, 'TOLLGATE_EVENTS_MAX_STREAMS', 500, 1, 100_000, problems);
  const maxStreamsPerKey = integer(env, 'TOLLGATE_EVENTS_MAX_STREAMS_PER_KEY', 20, 1, 100_000, problems);
  if (maxStreamsPerKey > maxStreams)
    problems.push('TOLLGATE_EVENTS_MAX_STREAMS_PER_KEY: must not be more than TOLLGATE_EVENTS_MAX_STREAMS');
  const stallTimeoutMs = integer(env, 'TOLLGATE_EVENTS_STALL_TIMEOUT_MS', 30_000, 1000, 3_600_000, problems);
  return { maxStreams, maxStreamsPerKey, stallTimeoutMs };
}

/**
 * TOLLGATE_RATE_LIMIT: credential requests per second per workload, or `off` (the default: a fit
 * number depends on the deployment). TOLLGATE_RATE_BURST: how many may come at once (default twice
 * the rate, at least 1).
 */
function rateLimitOf(env: Record<string, string | undefined>, problems: string[]): RateLimit | undefined {
  const text = nonEmpty(env.TOLLGATE_RATE_LIMIT) ?? 'off';
  if (text === 'off') {
    if (nonEmpty(env.TOLLGATE_RATE_BURST) !== undefined) problems.push('TOLLGATE_RATE_BURST: needs TOLLGATE_RATE_LIMIT');
    return undefined;
  }
  const perSecond = /^\d{1,6}(\.\d{1,3})?$/.test(text) ? Number(text) : Number.NaN;
  if (!(perSecond >= 0.001 && perSecond <= 100_000)) {
    problems.push('TOLLGATE_RATE_LIMIT: must be requests per second per workload, a number from 0.001 to 100000, or off');
    return undefined;
  }
  const burst = integer(env, 'TOLLGATE_RATE_BURST', defaultBurst(perSecond), 1, 1_000_000, problems);
  return { perSecond, burst };
}

/** The burst a limit gets when none is named (here and for a workload's own limit): twice the rate, at least 1. */
export function defaultBurst(perSecond: number): number {
  return Math.max(1, Math.ceil(perSecond * 2));
}

/** `off` or `0` → undefined (no automatic rotation); a duration in range → milliseconds; else null. */
function duration(text: string): number | undefined | null {
  if (text === 'off' || text === '0') return undefined;
  const match = /^(\d{1,9})(s|m|h|d)$/.exec(text);
  if (!match) return null;
  const ms = Number(match[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
  return ms >= MIN_KEY_ROTATION_MS && ms <= MAX_KEY_ROTATION_MS ? ms : null;
}

/** The value of a variable, trimmed; undefined when it is unset or blank. */
export function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function integer(
  env: Record<string, string | undefined>,
  key: string,
  fallback: number,
  min: number,
  max: number,
  problems: string[],
): number {
  const text = nonEmpty(env[key]);
  if (text === undefined) return fallback;
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.push(`${key}: must be an integer from ${min} to ${max}`);
    return fallback;
  }
  return value;
}

/** An http(s) URL without query or fragment. */
export function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.search === '' && url.hash === '';
  } catch {
    return false;
  }
}
