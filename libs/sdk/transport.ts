import { TollgateUnavailable } from './errors.js';

/** Retries of 503 and 429 answers (and of network failures a request may safely be replayed after). */
export interface RetryOptions {
  /** Attempts in all, the first included (default 4). 1 turns retries off. */
  maxAttempts?: number;
  /** First backoff step (default 200 ms); each later step doubles, with full jitter. */
  baseDelayMs?: number;
  /** Cap of one backoff step (default 5 s). */
  maxDelayMs?: number;
  /** No retry starts after this much time since the first attempt (default 15 s). */
  maxElapsedMs?: number;
}

export interface TransportOptions {
  fetch: typeof fetch;
  /** Per attempt (default 10 s). */
  timeoutMs: number;
  retry: Required<RetryOptions>;
  random?: () => number;
  now?: () => number;
  /** Trace-context headers (`traceparent`, …) to send, read once per request in the caller's context. */
  traceHeaders?: () => Record<string, string>;
}

export interface OutgoingRequest {
  method: 'GET' | 'POST';
  url: string;
  /** Built again for every attempt: a DPoP proof or an assertion must be fresh each time. */
  headers: () => Promise<Record<string, string>>;
  body?: string;
  /**
   * True when replaying after a broken connection cannot do anything twice (reads, RFC 7009
   * revocation). A request that changes state is replayed only when it provably never left
   * (connection refused) or when the broker answered that it did nothing (503, 429).
   */
  replaySafe: boolean;
}

export interface RawResponse {
  status: number;
  body: Record<string, unknown> | undefined;
  headers: Headers;
  /** From `Retry-After`, in milliseconds. */
  retryAfterMs: number | undefined;
}

export const DEFAULT_RETRY: Required<RetryOptions> = { maxAttempts: 4, baseDelayMs: 200, maxDelayMs: 5000, maxElapsedMs: 15_000 };

export function retryOptions(retry: RetryOptions | false | undefined): Required<RetryOptions> {
  if (retry === false) return { ...DEFAULT_RETRY, maxAttempts: 1 };
  const merged = { ...DEFAULT_RETRY, ...retry };
  for (const [name, value] of Object.entries(merged)) {
    if (!Number.isFinite(value) || value < 0) throw new TypeError(`retry.${name}: must be a non-negative number`);
  }
  if (!Number.isInteger(merged.maxAttempts) || merged.maxAttempts < 1)
    throw new TypeError('retry.maxAttempts: must be an integer of at least 1');
  return merged;
}

/** fetch with a timeout per attempt and bounded exponential backoff with full jitter. */
export class Transport {
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(private readonly options: TransportOptions) {
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  async send(request: OutgoingRequest): Promise<RawResponse> {
    const { maxAttempts, maxElapsedMs } = this.options.retry;
    const started = this.now();
    // Taken here, still in the caller's async context: every attempt belongs to the caller's span.
    const traceHeaders = this.options.traceHeaders?.() ?? {};
    for (let attempt = 1; ; attempt++) {
      const canRetry = (delayMs: number) => attempt < maxAttempts && this.now() - started + delayMs <= maxElapsedMs;
      let response: Response;
      try {
        response = await this.options.fetch(request.url, {
          method: request.method,
          headers: { ...(await request.headers()), ...traceHeaders },
          body: request.body,
          signal: AbortSignal.timeout(this.options.timeoutMs),
          redirect: 'error',
        });
      } catch (error) {
        const safe = request.replaySafe || neverSent(error);
        const delay = this.backoff(attempt);
        if (safe && canRetry(delay)) {
          await sleep(delay);
          continue;
        }
        const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
        throw new TollgateUnavailable(
          `${timedOut ? 'Tollgate did not answer in time' : 'Tollgate could not be reached'}${safe ? '' : '; the request may have been carried out'}`,
          0,
          undefined,
          !safe,
          { cause: error },
        );
      }
      const raw = await readResponse(response);
      if (raw.status === 503 || raw.status === 429) {
        const delay = raw.retryAfterMs ?? this.backoff(attempt);
        if (canRetry(delay)) {
          await sleep(delay);
          continue;
        }
      }
      return raw;
    }
  }

  /** Full jitter (uniform in [0, min(cap, base * 2^(attempt-1))]): clients that failed together spread out. */
  backoff(attempt: number): number {
    const { baseDelayMs, maxDelayMs } = this.options.retry;
    return Math.round(this.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
  }
}

async function readResponse(response: Response): Promise<RawResponse> {
  const text = await response.text();
  let body: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    // A proxy's HTML error page: the status still decides.
  }
  return { status: response.status, body, headers: response.headers, retryAfterMs: retryAfter(response.headers.get('retry-after')) };
}

/** RFC 9110 §10.2.3: delay-seconds or an HTTP date. */
export function retryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Connection refused (or the name did not resolve): the request never reached anyone. */
function neverSent(error: unknown): boolean {
  const code = (error as { cause?: { code?: unknown } })?.cause?.code;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
