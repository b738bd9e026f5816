import { context, propagation } from '@opentelemetry/api';
import { DpopProver, generateDpopKey, type DpopKey } from './dpop.js';
import { errorFromResponse, TollgateError, type ErrorBody } from './errors.js';
import { retryOptions, Transport, type OutgoingRequest, type RawResponse, type RetryOptions } from './transport.js';
import { AssertionMinter, type TokenSource } from './workload-assertion.js';

export interface ClientOptions {
  /** Tollgate's base URL, e.g. `https://tollgate.internal`. */
  url: string;
  /** Who the bot is: its registered key (the SDK signs assertions) or a function returning the current workload JWT. */
  tokenSource: TokenSource;
  /** Bind credentials to a key (RFC 9449): a key pair, or `true` for a generated ES256 pair. */
  dpop?: DpopKey | true;
  /** Another fetch (a proxy agent, a test double); default the global one. */
  fetch?: typeof fetch;
  /** Backoff for 503 and 429 answers; `false` sends every request once. */
  retry?: RetryOptions | false;
  /** Per attempt, default 10 000 ms. */
  timeoutMs?: number;
  /** The `aud` of minted assertions; default the `issuer` of Tollgate's metadata document, else `url`. */
  audience?: string;
  /** Told when revoking a credential after `withCredential` failed (the credential still expires by its TTL). Default: a process warning. */
  onRevokeError?: (error: TollgateError, leaseId: string) => void;
  /**
   * W3C trace context on every request, so Tollgate's spans join the bot's trace. Default: from the
   * active OpenTelemetry context through @opentelemetry/api's propagator (nothing is sent unless the
   * bot registered an OpenTelemetry SDK). A function returns the `traceparent` to send instead (a
   * bot traced another way); `false` sends none.
   */
  traceparent?: (() => string | undefined) | false;
}

export interface OpenTaskRequest {
  intent: string;
  /** The end user the journey serves. */
  subject: string;
  /** Seconds; the broker's default is 1800. */
  ttl?: number;
  context?: Record<string, unknown>;
}

export interface CredentialRequest {
  boundary: string;
  action: string;
  resource?: string;
  params?: Record<string, unknown>;
  /** Seconds; capped by the boundary and the time left on the task. */
  ttl?: number;
  purpose?: string;
}

/** How to ask: `approvalId` repeats a request that answered `ApprovalPending`, once a reviewer approved it. */
export interface CredentialOptions {
  approvalId?: string;
}

/** One issued credential, good for one tool call. */
export interface Credential {
  leaseId: string;
  kind: string;
  /** Set for token kinds (`jwt`). */
  accessToken: string | undefined;
  /** `Bearer`, or `DPoP` when the token is bound to the client's DPoP key. */
  tokenType: string | undefined;
  expiresAt: Date;
  expiresIn: number;
  /** The credential object as the broker returned it (other kinds carry their own members). */
  raw: Record<string, unknown>;
  /**
   * Headers for calling the tool with this credential: `Authorization`, and for a DPoP-bound token a
   * fresh `DPoP` proof for exactly this method and URL.
   */
  headers(method: string, url: string): Promise<Record<string, string>>;
}

export interface TaskEvent {
  eventId: string;
  /** `opened`, `intent_changed`, `completed`, `revoked`, `expired`. */
  kind: string;
  /** The intent the event set; null for the events that end the task. */
  intent: string | null;
  reason: string | null;
  at: Date;
}

export interface LeaseSummary {
  leaseId: string;
  boundaryId: string;
  boundaryVersion: number;
  action: string;
  resource: string | null;
  state: string;
  issuedAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  revokeReason: string | null;
}

export interface TaskState {
  id: string;
  workloadId: string;
  intent: string;
  subject: string;
  context: Record<string, unknown>;
  state: string;
  createdAt: Date;
  expiresAt: Date;
  endedAt: Date | null;
  endReason: string | null;
}

export interface TaskDetails extends TaskState {
  events: TaskEvent[];
  leases: LeaseSummary[];
}

/** A task change (`changeIntent`, `complete`) with the leases it revoked. */
export interface TaskChange extends TaskState {
  revokedLeases: string[];
}

/**
 * The bot's client for Tollgate: opens tasks and asks for a credential before each tool call.
 * Safe to share across concurrent requests.
 */
export class TollgateClient {
  readonly url: string;
  private readonly transport: Transport;
  private readonly minter: AssertionMinter | undefined;
  private readonly tokenFunction: (() => string | Promise<string>) | undefined;
  private readonly dpopKey: Promise<DpopProver> | undefined;
  private readonly onRevokeError: (error: TollgateError, leaseId: string) => void;
  private audience: Promise<string> | undefined;
  private dpopNonce: string | undefined;

  constructor(options: ClientOptions) {
    if (typeof options?.url !== 'string' || !/^https?:\/\//.test(options.url)) throw new TypeError('url: must be an http(s) URL');
    this.url = options.url.replace(/\/+$/, '');
    if (typeof options.tokenSource === 'function') this.tokenFunction = options.tokenSource;
    else if (options.tokenSource && typeof options.tokenSource === 'object') this.minter = new AssertionMinter(options.tokenSource);
    else throw new TypeError('tokenSource: a registered key or a function returning the workload JWT is required');
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new TypeError('timeoutMs: must be a positive number');
    this.transport = new Transport({
      fetch: options.fetch ?? globalThis.fetch,
      timeoutMs,
      retry: retryOptions(options.retry),
      traceHeaders: traceHeadersOf(options.traceparent),
    });
    if (options.dpop === true) this.dpopKey = generateDpopKey().then((key) => new DpopProver(key));
    else if (options.dpop) this.dpopKey = Promise.resolve(new DpopProver(options.dpop));
    if (options.audience !== undefined) this.audience = Promise.resolve(options.audience);
    this.onRevokeError =
      options.onRevokeError ??
      ((error, leaseId) =>
        process.emitWarning(`revoking lease ${leaseId} failed (${error.code}); it expires by its TTL`, 'TollgateWarning'));
  }

  /** Opens a task: one user journey with its intent and end user. */
  async openTask(request: OpenTaskRequest): Promise<Task> {
    const body: Record<string, unknown> = { intent: request.intent, subject: request.subject };
    if (request.ttl !== undefined) body.ttl = request.ttl;
    if (request.context !== undefined) body.context = request.context;
    const view = await this.json('POST', '/v1/tasks', body, false);
    return new Task(this, taskState(view));
  }

  /** A handle on a task opened earlier (by id), e.g. by another replica of the bot. */
  task(id: string): Task {
    return new Task(this, id);
  }

  /**
   * RFC 7009 revocation of one of this workload's tokens. Idempotent: an unknown or already revoked
   * token is not an error.
   */
  async revoke(token: string): Promise<void> {
    const response = await this.transport.send({
      method: 'POST',
      url: `${this.url}/oauth2/revoke`,
      headers: async () => ({ authorization: `Bearer ${await this.workloadToken()}`, 'content-type': 'application/x-www-form-urlencoded' }),
      body: new URLSearchParams({ token }).toString(),
      replaySafe: true,
    });
    if (response.status !== 200) throw errorFromResponse(response.status, response.body as ErrorBody, response.retryAfterMs);
  }

  /** @internal */
  async issue(taskId: string, request: CredentialRequest, options: CredentialOptions = {}): Promise<Credential> {
    const url = `${this.url}/v1/tasks/${encodeURIComponent(taskId)}/credentials`;
    const prover = await this.dpopKey;
    const body: Record<string, unknown> = { boundary: request.boundary, action: request.action };
    for (const name of ['resource', 'params', 'ttl', 'purpose'] as const) if (request[name] !== undefined) body[name] = request[name];
    if (options.approvalId !== undefined) body.approval_id = options.approvalId;
    const send = () =>
      this.transport.send({
        method: 'POST',
        url,
        headers: async () => ({
          authorization: `Bearer ${await this.workloadToken()}`,
          'content-type': 'application/json',
          ...(prover ? { dpop: await prover.proof('POST', url, this.dpopNonce === undefined ? {} : { nonce: this.dpopNonce }) } : {}),
        }),
        body: JSON.stringify(body),
        replaySafe: false,
      });
    let response = await send();
    // RFC 9449 §8: a server that wants a nonce refuses once and names it; the refusal issued nothing.
    if (prover && (response.status === 400 || response.status === 401) && response.body?.error === 'use_dpop_nonce') {
      this.rememberNonce(response);
      response = await send();
    }
    if (prover) this.rememberNonce(response);
    if (response.status !== 201) throw errorFromResponse(response.status, response.body as ErrorBody, response.retryAfterMs);
    return this.credentialOf(response.body ?? {}, prover);
  }

  /** @internal JSON request to the bot API; throws the typed error for anything but 2xx. */
  async json(method: 'GET' | 'POST', path: string, body: unknown, replaySafe: boolean): Promise<Record<string, unknown>> {
    const request: OutgoingRequest = {
      method,
      url: `${this.url}${path}`,
      headers: async () => ({
        authorization: `Bearer ${await this.workloadToken()}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      }),
      body: body === undefined ? undefined : JSON.stringify(body),
      replaySafe,
    };
    const response = await this.transport.send(request);
    if (response.status < 200 || response.status >= 300)
      throw errorFromResponse(response.status, response.body as ErrorBody, response.retryAfterMs);
    return response.body ?? {};
  }

  /** @internal */
  revokeQuietly(credential: Credential): Promise<void> {
    if (credential.accessToken === undefined) return Promise.resolve();
    return this.revoke(credential.accessToken).catch((error: unknown) => {
      this.onRevokeError(
        error instanceof TollgateError ? error : new TollgateError('revoke_failed', 0, 'revocation failed'),
        credential.leaseId,
      );
    });
  }

  private async workloadToken(): Promise<string> {
    if (this.tokenFunction) {
      const token = await this.tokenFunction();
      if (typeof token !== 'string' || token.length === 0) throw new TypeError('tokenSource: the function returned no token');
      return token;
    }
    return this.minter!.token(await this.issuer());
  }

  /**
   * The audience of minted assertions: the `issuer` of the RFC 8414 metadata (Tollgate behind a
   * proxy may know itself by another name than `url`). A failed lookup falls back to `url` for this
   * request and is tried again next time.
   */
  private issuer(): Promise<string> {
    this.audience ??= (async () => {
      const response = await this.transport.send({
        method: 'GET',
        url: `${this.url}/.well-known/oauth-authorization-server`,
        headers: async () => ({ accept: 'application/json' }),
        replaySafe: true,
      });
      const issuer = response.body?.issuer;
      if (response.status !== 200 || typeof issuer !== 'string') throw new Error('no metadata');
      return issuer;
    })();
    return this.audience.catch(() => {
      this.audience = undefined;
      return this.url;
    });
  }

  private rememberNonce(response: RawResponse): void {
    const nonce = response.headers.get('dpop-nonce');
    if (nonce) this.dpopNonce = nonce;
  }

  private credentialOf(body: Record<string, unknown>, prover: DpopProver | undefined): Credential {
    const raw = (body.credential && typeof body.credential === 'object' ? body.credential : {}) as Record<string, unknown>;
    const accessToken = typeof raw.access_token === 'string' ? raw.access_token : undefined;
    const tokenType = typeof raw.token_type === 'string' ? raw.token_type : undefined;
    return {
      leaseId: String(body.lease_id),
      kind: String(raw.kind),
      accessToken,
      tokenType,
      expiresAt: new Date(String(body.expires_at)),
      expiresIn: Number(body.expires_in),
      raw,
      async headers(method: string, url: string): Promise<Record<string, string>> {
        if (accessToken === undefined) throw new TypeError(`a ${String(raw.kind)} credential carries no access token`);
        if (tokenType?.toLowerCase() === 'dpop') {
          if (!prover) throw new TypeError("a DPoP-bound token needs the client's dpop key");
          return { authorization: `DPoP ${accessToken}`, dpop: await prover.proof(method, url, { accessToken }) };
        }
        return { authorization: `Bearer ${accessToken}` };
      },
    };
  }
}

/** One user journey. Ask for a fresh credential before each tool call; complete the task at the end. */
export class Task {
  readonly id: string;
  /** The task as the broker last reported it (absent for a handle made from an id until `get()`). */
  snapshot: TaskState | undefined;

  constructor(
    private readonly client: TollgateClient,
    from: TaskState | string,
  ) {
    if (typeof from === 'string') this.id = from;
    else {
      this.id = from.id;
      this.snapshot = from;
    }
  }

  get intent(): string | undefined {
    return this.snapshot?.intent;
  }

  /**
   * A credential for one tool call, not revoked by the SDK: revoke it (`client.revoke`) or let it
   * expire. Throws `ApprovalPending` when a reviewer must approve first; then repeat the very same
   * request with `{ approvalId }`.
   */
  credential(request: CredentialRequest, options: CredentialOptions = {}): Promise<Credential> {
    return this.client.issue(this.id, request, options);
  }

  /**
   * Asks for a credential, runs `use` with it, and (unless `revokeAfter: false`) revokes it as soon as
   * `use` settles, whether it returned or threw: the credential served one call and should not
   * outlive it. A failed revocation does not hide `use`'s result; it goes to `onRevokeError`.
   */
  async withCredential<T>(
    request: CredentialRequest,
    use: (credential: Credential) => Promise<T> | T,
    options: { revokeAfter?: boolean } & CredentialOptions = {},
  ): Promise<T> {
    const credential = await this.credential(request, { approvalId: options.approvalId });
    try {
      return await use(credential);
    } finally {
      if (options.revokeAfter ?? true) await this.client.revokeQuietly(credential);
    }
  }

  /**
   * Revokes a credential of this task now (one from `credential()` whose call is over). Never
   * throws: a failed revocation goes to the client's `onRevokeError`, and the credential dies at its TTL.
   */
  revoke(credential: Credential): Promise<void> {
    return this.client.revokeQuietly(credential);
  }

  /** The user's journey changed: the broker revokes every active lease of the task. */
  async changeIntent(intent: string): Promise<TaskChange> {
    return this.change(await this.client.json('POST', `/v1/tasks/${encodeURIComponent(this.id)}/intent`, { intent }, false));
  }

  /**
   * The journey is over: the broker revokes every active lease of the task. Completing twice is
   * harmless, so this one is replayed after a broken connection.
   */
  async complete(): Promise<TaskChange> {
    return this.change(await this.client.json('POST', `/v1/tasks/${encodeURIComponent(this.id)}/complete`, undefined, true));
  }

  /** The task with its intent history and its leases. */
  async get(): Promise<TaskDetails> {
    const view = await this.client.json('GET', `/v1/tasks/${encodeURIComponent(this.id)}`, undefined, true);
    this.snapshot = taskState(view);
    const events = Array.isArray(view.events) ? (view.events as Record<string, unknown>[]) : [];
    const leases = Array.isArray(view.leases) ? (view.leases as Record<string, unknown>[]) : [];
    return {
      ...this.snapshot,
      events: events.map((event) => ({
        eventId: String(event.event_id),
        kind: String(event.kind),
        intent: nullableString(event.intent),
        reason: nullableString(event.reason),
        at: new Date(String(event.at)),
      })),
      leases: leases.map((lease) => ({
        leaseId: String(lease.lease_id),
        boundaryId: String(lease.boundary_id),
        boundaryVersion: Number(lease.boundary_version),
        action: String(lease.action),
        resource: nullableString(lease.resource),
        state: String(lease.state),
        issuedAt: new Date(String(lease.issued_at)),
        expiresAt: new Date(String(lease.expires_at)),
        revokedAt: nullableDate(lease.revoked_at),
        revokeReason: nullableString(lease.revoke_reason),
      })),
    };
  }

  private change(view: Record<string, unknown>): TaskChange {
    this.snapshot = taskState(view);
    return { ...this.snapshot, revokedLeases: Array.isArray(view.revoked_leases) ? view.revoked_leases.map(String) : [] };
  }
}

function taskState(view: Record<string, unknown>): TaskState {
  return {
    id: String(view.task_id),
    workloadId: String(view.workload_id),
    intent: String(view.intent),
    subject: String(view.subject),
    context: isRecord(view.context) ? view.context : {},
    state: String(view.state),
    createdAt: new Date(String(view.created_at)),
    expiresAt: new Date(String(view.expires_at)),
    endedAt: nullableDate(view.ended_at),
    endReason: nullableString(view.end_reason),
  };
}

function nullableString(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function nullableDate(value: unknown): Date | null {
  return typeof value === 'string' ? new Date(value) : null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A W3C `traceparent` (version 00): anything else a function returns is not sent. */
const TRACEPARENT = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;

function traceHeadersOf(option: ClientOptions['traceparent']): (() => Record<string, string>) | undefined {
  if (option === false) return undefined;
  if (option !== undefined) {
    if (typeof option !== 'function') throw new TypeError('traceparent: must be a function returning a W3C traceparent, or false');
    return (): Record<string, string> => {
      const traceparent = option();
      return traceparent !== undefined && TRACEPARENT.test(traceparent) ? { traceparent } : {};
    };
  }
  return () => {
    const carrier: Record<string, string> = {};
    propagation.inject(context.active(), carrier);
    return carrier;
  };
}
