import { call, type Response } from './http.js';
import { startBroker, type StartOptions, type TestBroker } from './broker.js';
import { assertion, workloadKey, type WorkloadKey } from './workload.js';

export const BOUNDARY = {
  tool: 'https://crm.acme.test',
  actions: ['orders:read', 'orders:refund'],
  intents: ['order_status'],
  default_ttl: 120,
  max_ttl: 600,
  credential: { kind: 'jwt' },
};

/** A registered bot with its key, and helpers to call the broker as it and as the admin. */
export interface Bot {
  id: string;
  key: WorkloadKey;
  token(): Promise<string>;
  call<T = any>(method: string, path: string, json?: unknown): Promise<Response<T>>;
  openTask(intent?: string, extra?: Record<string, unknown>): Promise<string>;
  credential<T = any>(taskId: string, body: Record<string, unknown>): Promise<Response<T>>;
}

/** What the helpers below need of a broker: its URL and admin key (a replica set's front has both). */
export type BrokerAddress = Pick<TestBroker, 'url' | 'adminKey'>;

export function asAdmin(broker: BrokerAddress) {
  return <T = any>(method: string, path: string, json?: unknown) => call<T>(broker.url, method, path, { token: broker.adminKey, json });
}

export async function putBoundary(broker: BrokerAddress, id: string, body: Record<string, unknown> = {}): Promise<Response> {
  const response = await asAdmin(broker)('PUT', `/v1/admin/boundaries/${id}`, { ...BOUNDARY, ...body });
  if (response.status >= 300) throw new Error(`PUT boundary ${id}: ${response.status} ${JSON.stringify(response.body)}`);
  return response;
}

export async function registerBot(broker: BrokerAddress, id = 'chatbot', alg: 'EdDSA' | 'ES256' = 'EdDSA'): Promise<Bot> {
  const key = await workloadKey(alg);
  const put = await asAdmin(broker)('PUT', `/v1/admin/workloads/${encodeURIComponent(id)}`, { jwks: { keys: [key.publicJwk] } });
  if (put.status >= 300) throw new Error(`PUT workload ${id}: ${put.status} ${JSON.stringify(put.body)}`);
  let cached: string | undefined;
  const token = async () => (cached ??= await assertion(id, key, broker.url));
  const bot: Bot = {
    id,
    key,
    token,
    call: async (method, path, json) => call(broker.url, method, path, { token: await token(), json }),
    openTask: async (intent = 'order_status', extra = {}) => {
      const response = await bot.call('POST', '/v1/tasks', { intent, subject: 'user-42', ...extra });
      if (response.status !== 201) throw new Error(`open task: ${response.status} ${JSON.stringify(response.body)}`);
      return response.body.task_id as string;
    },
    credential: (taskId, body) => bot.call('POST', `/v1/tasks/${taskId}/credentials`, body),
  };
  return bot;
}

export async function introspect(broker: BrokerAddress, token: string): Promise<Record<string, unknown>> {
  const response = await call(broker.url, 'POST', '/oauth2/introspect', { token: broker.adminKey, form: { token } });
  if (response.status !== 200) throw new Error(`introspect: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body;
}

/** A series' value on GET /metrics, e.g. `tollgate_drift_suspensions_total` (0 before its first increment). */
export async function metric(on: { url: string }, series: string): Promise<number> {
  const text = (await call<string>(on.url, 'GET', '/metrics')).body;
  const line = text.split('\n').find((row) => row.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** The usual start of an end-to-end file: a broker, the crm-orders boundary, and a registered bot. */
export async function startWithBot(options: StartOptions = {}): Promise<{ broker: TestBroker; bot: Bot }> {
  const broker = await startBroker(options);
  await putBoundary(broker, 'crm-orders');
  return { broker, bot: await registerBot(broker) };
}

/**
 * Runs the audit chainer until every event is linked. Any transaction in flight on the server (other
 * test files share it) holds linking back while it lasts, so one pass may leave a moment's tail.
 */
export async function linkAuditChain(broker: TestBroker, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let linked = 0;
  for (;;) {
    const pass = await broker.app.broker.auditChainer.runOnce();
    linked += pass.linked;
    if (pass.unlinked === 0) return linked;
    if (Date.now() > deadline) throw new Error(`${pass.unlinked} audit events are still unlinked after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
