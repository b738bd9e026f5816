import { TokenRevoked, VerifierUnavailable } from './errors.js';

export interface RevocationOptions {
  /** The broker's base URL (defaults to the verifier's issuer). */
  url?: string;
  /** A resource-server API key (role `resource_server`, audience this tool). */
  apiKey: string;
  /** Once the event stream has been down this long, each call is introspected instead. */
  staleAfterMs?: number;
  /** How long a revoked id is kept: at least the longest lifetime of a token the broker issues. */
  retainSeconds?: number;
  /** How many revoked ids are kept; past it the verifier introspects until the dropped ones expire. */
  maxEntries?: number;
  /** Wait between reconnections. */
  reconnectDelayMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/** What the verifier asks about a verified token. */
export interface TokenFacts {
  token: string;
  jti: string;
  taskId: string | undefined;
  /** Seconds. */
  iat: number;
  /** Seconds. */
  exp: number;
}

const DEFAULTS = { staleAfterMs: 5_000, retainSeconds: 3_600, maxEntries: 100_000, reconnectDelayMs: 250 };

/**
 * Revocation without introspecting every call: follows the broker's `GET /v1/events` stream and
 * keeps the revoked lease ids (a token's jti) and ended task ids until their tokens would have
 * expired. While the stream is up (or has been down less than `staleAfterMs`) a call costs a map
 * look-up; past that each call is introspected; when neither answers the call is refused.
 *
 * A stream opened fresh starts from now: revocations before it are not in it. So a token issued
 * before the stream first connected is introspected once; revocations after that reach the stream.
 */
export class RevocationFeed {
  private readonly options: Required<Omit<RevocationOptions, 'url'>> & { url: string };
  /** Revoked jti / task id → until when (ms) it matters. */
  private readonly revokedLeases = new Map<string, number>();
  private readonly endedTasks = new Map<string, number>();
  /** Tokens issued before the stream started that introspection found active: jti → exp (ms). */
  private readonly checkedBefore = new Map<string, number>();
  private readonly abort = new AbortController();
  private lastEventId: string | undefined;
  private connected = false;
  private downSince: number;
  /** When the stream first connected: tokens issued before it are introspected once. */
  private since: number | undefined;
  /** Entries were dropped for room that matter until then: introspect until it passes. */
  private overflowUntil = 0;
  private readonly waiters: Array<() => void> = [];
  private readonly loop: Promise<void>;

  constructor(options: RevocationOptions & { url: string }) {
    this.options = {
      ...DEFAULTS,
      fetch: (...args) => globalThis.fetch(...args),
      now: Date.now,
      ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
    } as RevocationFeed['options'];
    // Never connected counts as down since ever: calls are introspected until the stream is up.
    this.downSince = Number.NEGATIVE_INFINITY;
    this.loop = this.follow();
  }

  /** Resolves once the stream has connected (first time). */
  ready(): Promise<void> {
    if (this.since !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** True while the stream's knowledge is fresh enough to decide without introspection. */
  get streaming(): boolean {
    return this.connected || this.options.now() - this.downSince < this.options.staleAfterMs;
  }

  /** Throws TokenRevoked, or VerifierUnavailable when it cannot tell. */
  async check(facts: TokenFacts): Promise<void> {
    const now = this.options.now();
    this.prune(now);
    if (this.revokedLeases.has(facts.jti) || (facts.taskId !== undefined && this.endedTasks.has(facts.taskId))) {
      throw new TokenRevoked('the credential was revoked');
    }
    const issuedBeforeStream = this.since === undefined || facts.iat * 1000 < this.since;
    if (this.streaming && now >= this.overflowUntil) {
      if (!issuedBeforeStream || this.checkedBefore.has(facts.jti)) return;
    }
    const active = await this.introspect(facts.token);
    if (!active) {
      this.remember(this.revokedLeases, facts.jti, now);
      throw new TokenRevoked('the credential is not active (introspection)');
    }
    if (issuedBeforeStream && this.since !== undefined && this.checkedBefore.size < this.options.maxEntries) {
      this.checkedBefore.set(facts.jti, facts.exp * 1000);
    }
  }

  /** Stops following the stream. */
  async close(): Promise<void> {
    this.abort.abort();
    await this.loop.catch(() => {});
  }

  private async introspect(token: string): Promise<boolean> {
    let response: Response;
    try {
      response = await this.options.fetch(`${this.options.url}/oauth2/introspect`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.options.apiKey}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }).toString(),
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(5_000)]),
      });
    } catch (error) {
      throw new VerifierUnavailable('neither the event stream nor introspection answers', { cause: error });
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new VerifierUnavailable(`introspection answered ${response.status}`);
    }
    const body = (await response.json().catch(() => ({}))) as { active?: unknown };
    return body.active === true;
  }

  private async follow(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        await this.readStream();
      } catch {
        // Down: reconnect below; calls are introspected once down past staleAfterMs.
      }
      if (this.connected) {
        this.connected = false;
        this.downSince = this.options.now();
      }
      if (this.abort.signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, this.options.reconnectDelayMs).unref?.());
    }
  }

  private async readStream(): Promise<void> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.apiKey}`, accept: 'text/event-stream' };
    if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId;
    const response = await this.options.fetch(`${this.options.url}/v1/events`, { headers, signal: this.abort.signal });
    if (response.status !== 200 || !response.body) {
      await response.body?.cancel();
      throw new Error(`GET /v1/events answered ${response.status}`);
    }
    this.connected = true;
    if (this.since === undefined) {
      this.since = this.options.now();
      for (const resolve of this.waiters.splice(0)) resolve();
    }
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true }).replaceAll('\r\n', '\n');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        this.onBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  private onBlock(block: string): void {
    let id: string | undefined;
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'data') data += data ? `\n${value}` : value;
    }
    if (data) {
      let event: { type?: string; jti?: string | null; lease_id?: string | null; task_id?: string | null; reason?: string };
      try {
        event = JSON.parse(data) as typeof event;
      } catch {
        event = {};
      }
      const now = this.options.now();
      if (event.type === 'lease.revoked' || event.type === 'workload.revoked') {
        const jti = event.jti ?? event.lease_id;
        if (jti) this.remember(this.revokedLeases, jti, now);
        if (event.reason === 'task_completed' && event.task_id) this.remember(this.endedTasks, event.task_id, now);
      } else if (event.type === 'task.ended' && event.task_id) {
        this.remember(this.endedTasks, event.task_id, now);
      }
    }
    // Only once the event is applied: a reconnect resumes after what was taken in.
    if (id !== undefined) this.lastEventId = id;
  }

  private remember(map: Map<string, number>, id: string, now: number): void {
    const until = now + this.options.retainSeconds * 1000;
    map.delete(id);
    map.set(id, until);
    if (map.size > this.options.maxEntries) {
      const [oldest, oldestUntil] = map.entries().next().value as [string, number];
      map.delete(oldest);
      this.overflowUntil = Math.max(this.overflowUntil, oldestUntil);
    }
  }

  private prune(now: number): void {
    for (const map of [this.revokedLeases, this.endedTasks, this.checkedBefore]) {
      for (const [id, until] of map) {
        if (until > now) break;
        map.delete(id);
      }
    }
  }
}
