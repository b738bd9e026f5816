import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../clock/index.js';
import { findUnstorable } from '../db/index.js';
import { InvalidClient, InvalidRequest } from '../errors/index.js';
import type { ApiKey } from './api-key.js';
import type { ApiKeys } from './api-keys.js';
import type { WorkloadAuthenticator } from './workload-authenticator.js';

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** The client authentication methods of RFC 6749 §2.3 and RFC 7523 we accept, plus a bearer API key. */
export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'bearer'] as const;
export type ClientAuthMethod = (typeof CLIENT_AUTH_METHODS)[number];
/** Ed25519 is RFC 9864's fully-specified name for EdDSA over Ed25519 (oauth4webapi signs with it). */
export const CLIENT_ASSERTION_ALGORITHMS = ['EdDSA', 'Ed25519', 'ES256'] as const;

const LEEWAY_S = 30;
/** A client assertion is single-use and for one request: it need not live long. */
const MAX_ASSERTION_LIFETIME_S = 300;
const MAX_ASSERTION_LENGTH = 8192;
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'];

/** The parts of a request that may authenticate a client (form fields already validated as strings). */
export interface ClientCredentials {
  authorization: string | undefined;
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  clientAssertion?: string | undefined;
  clientAssertionType?: string | undefined;
}

export interface ApiKeyClient {
  kind: 'api_key';
  key: ApiKey;
  method: ClientAuthMethod;
}

export type AuthenticatedClient = ApiKeyClient | { kind: 'workload'; workloadId: string };

/**
 * Client authentication on the introspection and revocation endpoints. Exactly one method per
 * request (RFC 6749 §2.3): an API key as a Bearer token (or, where workloads are let in, a workload
 * assertion), HTTP Basic with the key's id and the key as client_id and client_secret
 * (client_secret_basic, each form-urlencoded as §2.3.1 says), the same two as form fields
 * (client_secret_post), or a JWT signed by a key in the client's registered JWKS (private_key_jwt,
 * RFC 7523 §2.2). A client assertion is accepted once: its jti is recorded in the database until it
 * expires, so a replay is refused by every replica.
 */
export class ClientAuthentication {
  private readonly keySets = new WeakMap<ApiKey, ReturnType<typeof createLocalJWKSet>>();

  private readonly keys: ApiKeys;
  private readonly workloads: WorkloadAuthenticator;
  private readonly issuer: string;
  private readonly clock: Clock;

  constructor(options: { keys: ApiKeys; workloads: WorkloadAuthenticator; issuer: string; clock: Clock }) {
    this.keys = options.keys;
    this.workloads = options.workloads;
    this.issuer = options.issuer;
    this.clock = options.clock;
  }

  /** An API key, by any of the methods. `endpoint` is the path called (an assertion's aud may be its URL). */
  async authenticate(credentials: ClientCredentials, endpoint: string): Promise<ApiKeyClient> {
    const client = await this.either(credentials, endpoint, false);
    if (client.kind !== 'api_key') throw new InvalidClient('client authentication failed');
    return client;
  }

  /** An API key by any of the methods, or a workload by its assertion as the Bearer token. */
  authenticateOrWorkload(credentials: ClientCredentials, endpoint: string): Promise<AuthenticatedClient> {
    return this.either(credentials, endpoint, true);
  }

  private async either(credentials: ClientCredentials, endpoint: string, workloads: boolean): Promise<AuthenticatedClient> {
    const header = parseAuthorization(credentials.authorization);
    const usesSecret = credentials.clientSecret !== undefined;
    const usesAssertion = credentials.clientAssertion !== undefined || credentials.clientAssertionType !== undefined;
    const methods = Number(header !== undefined) + Number(usesSecret) + Number(usesAssertion);
    if (methods > 1) throw new InvalidRequest('use exactly one client authentication method', { field: 'client_authentication' });
    if (methods === 0) throw new InvalidClient('client authentication is required');

    if (header?.scheme === 'Basic') {
      const key = await this.keys.authenticate(header.secret, 'Basic');
      if (key.id !== header.clientId) throw new InvalidClient('client authentication failed', 'Basic');
      return this.matching(credentials.clientId, { kind: 'api_key', key, method: 'client_secret_basic' }, 'Basic');
    }
    if (header?.scheme === 'Bearer') {
      if (workloads && header.token.split('.').length === 3) {
        const workload = await this.workloads.authenticate(header.token);
        return { kind: 'workload', workloadId: workload.id };
      }
      const key = await this.keys.authenticate(header.token);
      return this.matching(credentials.clientId, { kind: 'api_key', key, method: 'bearer' });
    }
    if (usesSecret) {
      if (credentials.clientId === undefined) throw new InvalidRequest('client_id is required with client_secret', { field: 'client_id' });
      const key = await this.keys.authenticate(credentials.clientSecret);
      if (key.id !== credentials.clientId) throw new InvalidClient('client authentication failed');
      return { kind: 'api_key', key, method: 'client_secret_post' };
    }
    return this.matching(credentials.clientId, await this.assertion(credentials, endpoint));
  }

  /** A client_id sent beside another method must name the same client. */
  private matching(clientId: string | undefined, client: ApiKeyClient, challenge: 'Bearer' | 'Basic' = 'Bearer') {
    if (clientId !== undefined && clientId !== client.key.id)
      throw new InvalidClient('client_id does not match the client authentication', challenge);
    return client;
  }

  private async assertion(credentials: ClientCredentials, endpoint: string): Promise<ApiKeyClient> {
    if (credentials.clientAssertionType !== CLIENT_ASSERTION_TYPE) {
      throw new InvalidRequest(`client_assertion_type: must be ${CLIENT_ASSERTION_TYPE}`, { field: 'client_assertion_type' });
    }
    const token = credentials.clientAssertion;
    if (token === undefined) throw new InvalidRequest('client_assertion: is required', { field: 'client_assertion' });
    if (token.length === 0 || token.length > MAX_ASSERTION_LENGTH) throw rejected('malformed client assertion');

    const { header, claims } = decodeUnverified(token);
    for (const name of FORBIDDEN_HEADERS) {
      if (name in header) throw rejected(`the assertion header may not carry "${name}"`);
    }
    if (typeof claims.iss !== 'string' || claims.iss !== claims.sub) throw rejected('iss and sub must both be the client_id');
    const key = await this.keys.client(claims.iss);
    if (!key || !key.jwks) throw rejected('unknown client, or one with no registered keys');

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keySet(key), {
        algorithms: [...CLIENT_ASSERTION_ALGORITHMS],
        issuer: key.id,
        subject: key.id,
        audience: [this.issuer, `${this.issuer}${endpoint}`],
        clockTolerance: LEEWAY_S,
        requiredClaims: ['exp', 'jti'],
        currentDate: new Date(this.clock.now()),
      }));
    } catch (error) {
      throw rejected(describeJoseError(error));
    }
    const nowS = this.clock.now() / 1000;
    const exp = payload.exp!;
    if (exp - nowS > MAX_ASSERTION_LIFETIME_S + LEEWAY_S || (payload.iat !== undefined && exp - payload.iat > MAX_ASSERTION_LIFETIME_S)) {
      throw rejected(`the assertion may live at most ${MAX_ASSERTION_LIFETIME_S} seconds`);
    }
    if (payload.iat !== undefined && payload.iat > nowS + LEEWAY_S) throw rejected('the assertion was issued in the future');
    if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256)
      throw rejected('jti must be a string of at most 256 characters');
    if (!(await this.keys.recordAssertion(key.id, payload.jti, (exp + LEEWAY_S) * 1000))) throw rejected('the assertion was already used');
    return { kind: 'api_key', key, method: 'private_key_jwt' };
  }

  private keySet(key: ApiKey): ReturnType<typeof createLocalJWKSet> {
    let set = this.keySets.get(key);
    if (!set) {
      // The key type decides the algorithm: a key registered as "EdDSA" also verifies "Ed25519", the
      // same algorithm by its newer name, which jose would refuse for a JWK that names the other.
      set = createLocalJWKSet({ keys: key.jwks!.keys.map(({ alg: _alg, ...jwk }) => jwk) });
      this.keySets.set(key, set);
    }
    return set;
  }
}

type Authorization = { scheme: 'Bearer'; token: string } | { scheme: 'Basic'; clientId: string; secret: string };

/** The Authorization header as a client authentication method; anything we cannot use is a 401. */
export function parseAuthorization(header: string | undefined): Authorization | undefined {
  if (header === undefined) return undefined;
  const bearer = /^Bearer +([^\s]+) *$/i.exec(header);
  if (bearer) return { scheme: 'Bearer', token: bearer[1]! };
  const basic = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header);
  if (/^Basic(?: |$)/i.test(header)) {
    const decoded = basic ? Buffer.from(basic[1]!, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    const clientId = colon > 0 ? formDecode(decoded.slice(0, colon)) : undefined;
    const secret = colon > 0 ? formDecode(decoded.slice(colon + 1)) : undefined;
    if (clientId === undefined || secret === undefined || secret.length === 0)
      throw new InvalidClient('malformed Basic credentials', 'Basic');
    return { scheme: 'Basic', clientId, secret };
  }
  throw new InvalidClient('unsupported Authorization scheme: use Bearer or Basic');
}

/** application/x-www-form-urlencoded decoding (RFC 6749 §2.3.1, Appendix B); undefined when malformed. */
function formDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

function decodeUnverified(token: string) {
  let decoded;
  try {
    decoded = { header: decodeProtectedHeader(token), claims: decodeJwt(token) };
  } catch {
    throw rejected('malformed client assertion');
  }
  // Claims name rows (iss, jti): a NUL or a lone surrogate would reach the database as a 500.
  if (findUnstorable(decoded.header) || findUnstorable(decoded.claims))
    throw rejected('the assertion holds a NUL, broken unicode or nesting deeper than 32 levels');
  return decoded;
}

function rejected(why: string): InvalidClient {
  return new InvalidClient(`client authentication failed: ${why}`);
}

function describeJoseError(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the assertion has expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `claim "${error.claim}" is invalid (${error.reason})`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'signature verification failed';
  if (error instanceof errors.JWKSNoMatchingKey) return 'no registered key of the client matches the assertion';
  if (error instanceof errors.JOSENotSupported) return 'unsupported assertion (algorithm or critical header)';
  if (error instanceof errors.JOSEError) return error.code;
  return 'the assertion could not be verified';
}
