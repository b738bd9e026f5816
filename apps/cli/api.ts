import { ApiRefused, Unreachable } from './errors.js';

/** Query values: undefined ones are left out. */
export type Query = Record<string, string | number | undefined>;

/**
 * The broker's HTTP API as the CLI uses it: JSON in and out, the API key as a bearer token, and
 * every failure turned into a typed error with the broker's own error and error_description.
 */
export class BrokerApi {
  constructor(
    readonly url: string,
    private readonly key: string,
    private readonly timeoutMs = 30_000,
  ) {}

  get<T>(path: string, query: Query = {}): Promise<T> {
    return this.request<T>('GET', path, query);
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, {}, body);
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, {}, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path, {}, {});
  }

  /** Follows next_cursor from page to page (newest first, as the API lists). */
  async *pages<T>(path: string, query: Query): AsyncGenerator<{ items: T[]; next_cursor: string | null }> {
    let cursor: string | undefined;
    do {
      const page = await this.get<{ items: T[]; next_cursor: string | null }>(path, { ...query, cursor });
      yield page;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  private async request<T>(method: string, path: string, query: Query, body?: unknown): Promise<T> {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined) search.set(name, String(value));
    const target = `${this.url}${path}${search.size > 0 ? `?${search}` : ''}`;
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(target, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new Unreachable(`cannot reach the broker at ${this.url}: ${networkReason(error)}`);
    }
    const text = await response.text().catch(() => '');
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch {
      throw new Unreachable(`the broker at ${this.url} answered ${response.status} without JSON: is it a Tollgate?`);
    }
    if (response.ok) return parsed as T;
    const problem = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as {
      error?: unknown;
      error_description?: unknown;
      field?: unknown;
      reasons?: unknown;
    };
    const error = typeof problem.error === 'string' ? problem.error : `http_${response.status}`;
    const description = typeof problem.error_description === 'string' ? problem.error_description : response.statusText;
    const reasons = Array.isArray(problem.reasons) && problem.reasons.length > 0 ? ` (${problem.reasons.join(', ')})` : '';
    if (response.status >= 500) throw new Unreachable(`the broker at ${this.url} cannot serve the request: ${error}: ${description}`);
    throw new ApiRefused(`${error}: ${description}${reasons}`, {
      status: response.status,
      error,
      description,
      field: typeof problem.field === 'string' ? problem.field : undefined,
    });
  }
}

/** The network failure in a few words (the code, not a stack). */
function networkReason(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return 'no answer in time';
  const cause = error instanceof Error ? (error.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}
