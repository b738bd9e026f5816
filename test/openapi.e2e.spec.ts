import * as DPoP from 'dpop';
import { readFileSync } from 'node:fs';
import { compileErrors, validate as validateOpenApi } from '@readme/openapi-parser';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROLLERS } from '../apps/broker/app.js';
import { buildOpenApi } from '../apps/broker/http/openapi.js';
import type { TestBroker } from './support/broker.js';
import { call, type Response } from './support/http.js';
import { asAdmin, startWithBot, type Bot } from './support/scenario.js';

type Json = Record<string, any>;

let broker: TestBroker;
let bot: Bot;
let document: Json;
let served: Response;
const ajv = new Ajv2020({ strict: false, allErrors: true });
(formats as unknown as (ajv: Ajv2020) => void)(ajv);

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  served = await call(broker.url, 'GET', '/openapi.json');
  document = served.body;
  ajv.addSchema(document, 'openapi.json');
});
afterAll(() => broker?.close());

/** `/v1/tasks/{id}` as a JSON pointer segment: `~1v1~1tasks~1{id}`. */
const pointer = (...parts: string[]) => parts.map((part) => part.replaceAll('~', '~0').replaceAll('/', '~1')).join('/');

/** Validates against a schema of the served document itself, by its JSON pointer. */
function validatorAt(...parts: string[]): ValidateFunction {
  return ajv.compile({ $ref: `openapi.json#/${pointer(...parts)}` });
}

function deref(node: Json): Json {
  if (typeof node.$ref !== 'string') return node;
  const path = node.$ref
    .replace(/^#\//, '')
    .split('/')
    .map((part: string) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
  return path.reduce((at: Json, part: string) => at[part], document);
}

/** The request body schema the document gives for a route. */
function requestValidator(method: string, path: string, contentType = 'application/json'): ValidateFunction {
  expect(
    document.paths[path]?.[method]?.requestBody?.content?.[contentType]?.schema,
    `${method.toUpperCase()} ${path} ${contentType} body`,
  ).toBeDefined();
  return validatorAt('paths', path, method, 'requestBody', 'content', contentType, 'schema');
}

/** Asserts that a real response is one the document describes for its route: status, content type and body. */
function expectDocumented(method: string, path: string, response: Response): void {
  const route = `${method.toUpperCase()} ${path} → ${response.status}`;
  const operation = document.paths[path]?.[method];
  expect(operation, route).toBeDefined();
  const documented = operation.responses[String(response.status)];
  expect(documented, `${route} is not documented`).toBeDefined();
  const contentType = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
  const media = deref(documented).content?.[contentType];
  expect(media, `${route}: ${contentType} is not documented`).toBeDefined();
  if (!media.schema) return;
  const check = ajv.compile(media.schema.$ref ? { $ref: `openapi.json${media.schema.$ref}` } : media.schema);
  expect(check(response.body), `${route}: ${ajv.errorsText(check.errors)}\n${JSON.stringify(response.body)}`).toBe(true);
}

/** Every METHOD + path Fastify really serves, read from its own route tree (HEAD and OPTIONS are automatic). */
function servedRoutes(): Set<string> {
  const tree = broker.app.app.getHttpAdapter().getInstance().printRoutes({ commonPrefix: false });
  const routes = new Set<string>();
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([^)]*)\))?$/.exec(line.trimEnd());
    if (!match) continue;
    const depth = match[1]!.length / 4;
    stack.length = depth;
    stack.push(match[2]!);
    for (const method of (match[3] ?? '')
      .split(',')
      .map((m) => m.trim())
      .filter(Boolean)) {
      if (method === 'HEAD' || method === 'OPTIONS') continue;
      routes.add(`${method} ${stack.join('').replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`);
    }
  }
  return routes;
}

function documentedRoutes(): Set<string> {
  const routes = new Set<string>();
  for (const [path, item] of Object.entries(document.paths as Json))
    for (const method of Object.keys(item)) routes.add(`${method.toUpperCase()} ${path}`);
  return routes;
}

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document, served without authentication and cacheable', async () => {
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toMatch(/^application\/json/);
    expect(served.headers.get('cache-control')).toBe('public, max-age=300');
    expect(document.openapi).toMatch(/^3\.1\.\d+$/);
    expect(document.servers).toEqual([{ url: broker.url }]);
    const result = await validateOpenApi(structuredClone(document) as Parameters<typeof validateOpenApi>[0]);
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
    expect(Object.keys(document.components.securitySchemes).sort()).toEqual([
      'apiKey',
      'clientSecretBasic',
      'oauthClient',
      'workloadAssertion',
    ]);
  });

  it('names every route the app serves with its method, and nothing else', () => {
    const fastify = servedRoutes();
    const documented = documentedRoutes();
    expect(fastify.size).toBeGreaterThan(20);
    expect(
      [...fastify].filter((route) => !documented.has(route)),
      'served but not in /openapi.json',
    ).toEqual([]);
    expect(
      [...documented].filter((route) => !fastify.has(route)),
      'in /openapi.json but not served',
    ).toEqual([]);
  });

  it('every route has its @ApiRoute, every body-carrying route its body schema, every path parameter is declared', () => {
    // Names each route that lacks its documentation: add @ApiRoute({...}) beside its @Get/@Post.
    expect(buildOpenApi(CONTROLLERS, { issuer: broker.url }).problems).toEqual([]);
    for (const [path, item] of Object.entries(document.paths as Json)) {
      const pathParams = [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]).sort();
      for (const [method, operation] of Object.entries(item as Json)) {
        const route = `${method.toUpperCase()} ${path}`;
        expect(operation.summary, route).not.toBe('undocumented');
        if (['post', 'put', 'patch', 'delete'].includes(method)) {
          const content = operation.requestBody?.content ?? {};
          expect(Object.keys(content), `${route} documents no request body`).not.toEqual([]);
          for (const media of Object.values(content as Json)) expect(media.schema?.type, `${route} body schema`).toBe('object');
        }
        const declared = (operation.parameters ?? [])
          .filter((p: Json) => p.in === 'path')
          .map((p: Json) => p.name)
          .sort();
        expect(declared, `${route} path parameters`).toEqual(pathParams);
        expect(
          Object.keys(operation.responses).some((status) => /^2\d\d$/.test(status)),
          `${route} success response`,
        ).toBe(true);
        if (operation.security?.length) expect(operation.responses['401'], `${route} 401`).toBeDefined();
      }
    }
  });

  it('routes carry the security their guards enforce', () => {
    expect(document.paths['/v1/tasks'].post.security).toEqual([{ workloadAssertion: [] }]);
    expect(document.paths['/v1/admin/boundaries/{id}'].put.security).toEqual([{ apiKey: ['admin'] }]);
    expect(document.paths['/v1/admin/boundaries/{id}'].get.security).toEqual([{ apiKey: ['admin', 'reviewer'] }]);
    expect(document.paths['/v1/leases'].get.security).toEqual([{ apiKey: ['admin', 'reviewer'] }]);
    expect(document.paths['/v1/events'].get.security).toEqual([{ apiKey: ['admin', 'reviewer', 'resource_server'] }]);
    expect(document.paths['/oauth2/introspect'].post.security).toEqual([{ oauthClient: [] }, { clientSecretBasic: [] }]);
    expect(document.paths['/oauth2/token'].post.security).toEqual([]);
    expect(document.paths['/.well-known/jwks.json'].get.security).toEqual([]);
    expect(Object.keys(document.paths['/oauth2/token'].post.requestBody.content)).toEqual(['application/x-www-form-urlencoded']);
    expect(Object.keys(document.paths['/v1/events'].get.responses['200'].content)).toEqual(['text/event-stream']);
    expect(document.paths['/v1/leases'].get.parameters.map((p: Json) => p.name)).toEqual(
      expect.arrayContaining(['task', 'state', 'limit', 'cursor']),
    );
  });
});

describe('the document agrees with what the app does', () => {
  const boundaryPath = '/v1/admin/boundaries/{id}';

  /** The README's own boundary example (step 1 of its walkthrough), as its curl sends it. */
  function readmeBoundary(): Json {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const match = /boundaries\/payments" \\\n[^\n]*\n\s*-d '([^']+)'/.exec(readme);
    expect(match, 'README.md: the PUT /v1/admin/boundaries/payments example').not.toBeNull();
    return JSON.parse(match![1]!);
  }

  it("the README's boundary example is valid by the document and accepted by the app; invalid ones are refused by both", async () => {
    const valid = requestValidator('put', boundaryPath);
    const example = readmeBoundary();
    expect(valid(example), ajv.errorsText(valid.errors)).toBe(true);
    const put = await asAdmin(broker)('PUT', '/v1/admin/boundaries/payments', example);
    expect(put.status).toBe(201);
    expectDocumented('put', boundaryPath, put);

    const invalid: Array<[Json, string]> = [
      [{ ...example, scope: 'all' }, 'scope'],
      [{ ...example, default_ttl: 0 }, 'default_ttl'],
      [{ ...example, actions: [] }, 'actions'],
      [{ ...example, credential: { kind: 'kerberos' } }, 'credential.kind'],
      [{ ...example, credential: { kind: 'vault' } }, 'credential.path'],
      [{ ...example, tool: undefined }, 'tool'],
    ];
    for (const [body, field] of invalid) {
      expect(valid(body), `document accepts ${JSON.stringify(body)}`).toBe(false);
      const refused = await asAdmin(broker)('PUT', '/v1/admin/boundaries/refused', body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.body.field).toBe(field);
      expectDocumented('put', boundaryPath, refused);
    }
    expect((await asAdmin(broker)('GET', '/v1/admin/boundaries/refused')).status).toBe(404);
  });

  it('the bodies the bot and the form endpoints send are valid by the document', () => {
    expect(requestValidator('post', '/v1/tasks')({ intent: 'order_status', subject: 'user-42' })).toBe(true);
    expect(requestValidator('post', '/v1/tasks')({ intent: 'order_status' })).toBe(false);
    expect(
      requestValidator('post', '/v1/tasks/{id}/credentials')({ boundary: 'crm-orders', action: 'orders:read', resource: 'order/1' }),
    ).toBe(true);
    expect(requestValidator('post', '/v1/tasks/{id}/complete')({})).toBe(true);
    expect(requestValidator('post', '/v1/tasks/{id}/complete')({ force: true })).toBe(false);
    expect(document.paths['/v1/tasks/{id}/complete'].post.requestBody.required).toBe(false);
    expect(document.paths['/v1/tasks'].post.requestBody.required).toBe(true);
    expect(requestValidator('post', '/oauth2/introspect', 'application/x-www-form-urlencoded')({ token: 'x' })).toBe(true);
  });

  /**
   * The handler must parse with the schema the document shows. Probe every documented body and
   * query, routes added later included: an unknown member must be refused (400) by the app, and
   * the field it names must be the probe or a member the document says is required. A handler
   * parsing some other schema than its @ApiRoute names reports a field the document does not know.
   */
  it('every route refuses input its documented schema refuses, naming a field the document knows', async () => {
    const taskId = await bot.openTask();
    const samples: Record<string, string> = {
      '/v1/tasks/': taskId,
      '/v1/admin/boundaries/': 'crm-orders',
      '/v1/admin/workloads/': 'chatbot',
    };
    let probed = 0;
    for (const [path, item] of Object.entries(document.paths as Json)) {
      const url = path.replace(/\{[^}]+\}/g, (_param, offset: number) => samples[path.slice(0, offset)] ?? 'openapi-probe');
      for (const [method, operation] of Object.entries(item as Json)) {
        const route = `${method.toUpperCase()} ${path}`;
        const scheme = Object.keys(operation.security?.[0] ?? {})[0];
        const token = scheme === undefined ? undefined : scheme === 'workloadAssertion' ? await bot.token() : broker.adminKey;
        const queryNames = (operation.parameters ?? []).filter((p: Json) => p.in === 'query').map((p: Json) => p.name);
        if (queryNames.length > 0) {
          const refused = await call(broker.url, method.toUpperCase(), `${url}?openapi_probe=1`, { token });
          expect(refused.status, `${route}?openapi_probe=1`).toBe(400);
          expect(refused.body.field, route).toBe('openapi_probe');
          probed++;
        }
        for (const [contentType, media] of Object.entries((operation.requestBody?.content ?? {}) as Json)) {
          const probe = { openapi_probe: '1' };
          const required: string[] = deref(media.schema).required ?? [];
          expect(requestValidator(method, path, contentType)(probe), `${route}: the document accepts ${JSON.stringify(probe)}`).toBe(false);
          const options = contentType === 'application/json' ? { token, json: probe } : { token, form: probe };
          const refused = await call(broker.url, method.toUpperCase(), url, options);
          expect(refused.status, `${route} ${JSON.stringify(refused.body)}`).toBe(400);
          expect(
            ['openapi_probe', ...required],
            `${route}: the app names "${refused.body.field}", the document requires [${required}]`,
          ).toContain(refused.body.field);
          probed++;
        }
      }
    }
    expect(probed).toBeGreaterThanOrEqual(15);
  });

  it('real responses match the documented response schemas, successes and errors alike', async () => {
    const admin = asAdmin(broker);
    const open = await bot.call('POST', '/v1/tasks', { intent: 'order_status', subject: 'user-42' });
    expectDocumented('post', '/v1/tasks', open);
    const taskId = open.body.task_id as string;
    const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read', resource: 'order/1' });
    expectDocumented('post', '/v1/tasks/{id}/credentials', issued);
    expectDocumented(
      'post',
      '/v1/tasks/{id}/credentials',
      await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:delete' }),
    );
    expectDocumented(
      'post',
      '/v1/tasks/{id}/credentials',
      await bot.credential('6a0f2e1c-8a9b-4c7d-9e0f-123456789abc', { boundary: 'crm-orders', action: 'orders:read' }),
    );
    expectDocumented('get', '/v1/tasks/{id}', await bot.call('GET', `/v1/tasks/${taskId}`));
    const token = issued.body.credential.access_token as string;
    const introspect = (form: Record<string, string>) => call(broker.url, 'POST', '/oauth2/introspect', { token: broker.adminKey, form });
    expectDocumented('post', '/oauth2/introspect', await introspect({ token }));
    // A DPoP-bound credential, and its introspection with cnf.
    const proof = await DPoP.generateProof(await DPoP.generateKeyPair('ES256'), `${broker.url}/v1/tasks/${taskId}/credentials`, 'POST');
    const bound = await call(broker.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
      token: await bot.token(),
      headers: { dpop: proof },
      json: { boundary: 'crm-orders', action: 'orders:read' },
    });
    expect(bound.body.credential.token_type).toBe('DPoP');
    expectDocumented('post', '/v1/tasks/{id}/credentials', bound);
    const boundIntrospection = await introspect({ token: bound.body.credential.access_token });
    expect(boundIntrospection.body.cnf).toBeDefined();
    expectDocumented('post', '/oauth2/introspect', boundIntrospection);
    expectDocumented('post', '/oauth2/introspect', await introspect({ token: 'not-a-token' }));
    expectDocumented('post', '/oauth2/introspect', await introspect({}));
    expectDocumented('get', '/v1/leases', await admin('GET', '/v1/leases'));
    expectDocumented('get', '/v1/leases', await admin('GET', '/v1/leases?state=gone'));
    expectDocumented('get', '/v1/decisions', await admin('GET', '/v1/decisions?outcome=deny'));
    expectDocumented('get', '/v1/audit', await admin('GET', '/v1/audit?limit=5'));
    await broker.app.broker.auditChainer.runOnce();
    expectDocumented('get', '/v1/audit', await admin('GET', '/v1/audit?limit=5'));
    expectDocumented('get', '/v1/audit', await admin('GET', '/v1/audit?kind=task.exploded'));
    expectDocumented('get', '/v1/audit/verify', await admin('GET', '/v1/audit/verify'));
    expectDocumented('get', '/v1/audit/checkpoint', await admin('GET', '/v1/audit/checkpoint'));
    expectDocumented(
      'get',
      '/v1/decisions',
      await admin('GET', '/v1/decisions?outcome=permit&subject=user-42&tool=https%3A%2F%2Fcrm.acme.test&action=orders:read'),
    );
    expectDocumented('get', '/v1/decisions', await admin('GET', '/v1/decisions?subject='));
    expectDocumented('get', '/v1/tasks/{id}/timeline', await admin('GET', `/v1/tasks/${taskId}/timeline`));
    expectDocumented('get', '/v1/tasks/{id}/timeline', await admin('GET', '/v1/tasks/6a0f2e1c-8a9b-4c7d-9e0f-123456789abc/timeline'));
    expectDocumented(
      'post',
      '/v1/admin/leases/{id}/revoke',
      await admin('POST', `/v1/admin/leases/${issued.body.lease_id}/revoke`, { reason: 'openapi' }),
    );
    expectDocumented('post', '/v1/admin/leases/{id}/revoke', await admin('POST', `/v1/admin/leases/${issued.body.lease_id}/revoke`, {}));
    expectDocumented(
      'post',
      '/v1/admin/leases/{id}/revoke',
      await admin('POST', '/v1/admin/leases/6a0f2e1c-8a9b-4c7d-9e0f-123456789abc/revoke', {}),
    );
    expectDocumented(
      'post',
      '/v1/admin/tasks/{id}/revoke',
      await admin('POST', '/v1/admin/tasks/6a0f2e1c-8a9b-4c7d-9e0f-123456789abc/revoke', {}),
    );
    expectDocumented('post', '/v1/tasks/{id}/intent', await bot.call('POST', `/v1/tasks/${taskId}/intent`, { intent: 'refund_request' }));
    expectDocumented('post', '/v1/tasks/{id}/complete', await bot.call('POST', `/v1/tasks/${taskId}/complete`, {}));
    expectDocumented('post', '/v1/tasks/{id}/complete', await bot.call('POST', `/v1/tasks/${taskId}/complete`, {}));
    expectDocumented('post', '/v1/admin/tasks/{id}/revoke', await admin('POST', `/v1/admin/tasks/${taskId}/revoke`, { reason: 'openapi' }));
    expectDocumented('get', '/v1/tasks/{id}/timeline', await admin('GET', `/v1/tasks/${taskId}/timeline`));
    expectDocumented(
      'post',
      '/oauth2/revoke',
      await call(broker.url, 'POST', '/oauth2/revoke', { token: broker.adminKey, form: { token } }),
    );

    const exchange = await call(broker.url, 'POST', '/oauth2/token', {
      form: {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: await bot.token(),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        authorization_details: JSON.stringify([
          { type: 'tool_call', task_id: await bot.openTask(), boundary: 'crm-orders', action: 'orders:read' },
        ]),
      },
    });
    expect(exchange.status).toBe(200);
    expectDocumented('post', '/oauth2/token', exchange);
    expectDocumented('post', '/oauth2/token', await call(broker.url, 'POST', '/oauth2/token', { form: { grant_type: 'password' } }));

    expectDocumented('get', '/v1/admin/boundaries', await admin('GET', '/v1/admin/boundaries'));
    expectDocumented('get', '/v1/admin/boundaries/{id}', await admin('GET', '/v1/admin/boundaries/crm-orders'));
    expectDocumented('get', '/v1/admin/workloads', await admin('GET', '/v1/admin/workloads'));
    expectDocumented('get', '/v1/admin/workloads/{id}', await admin('GET', '/v1/admin/workloads/chatbot'));
    expectDocumented('get', '/v1/admin/workloads/{id}', await admin('GET', '/v1/admin/workloads/nobody'));
    const limited = await admin('PUT', '/v1/admin/workloads/chatbot', {
      jwks: { keys: [bot.key.publicJwk] },
      rate_limit: { per_minute: 600, burst: 20 },
    });
    expect(limited.body.rate_limit).toEqual({ per_minute: 600, burst: 20 });
    expectDocumented('put', '/v1/admin/workloads/{id}', limited);
    expectDocumented('get', '/v1/admin/workloads/{id}', await admin('GET', '/v1/admin/workloads/chatbot'));
    expectDocumented(
      'put',
      '/v1/admin/workloads/{id}',
      await admin('PUT', '/v1/admin/workloads/chatbot', {
        jwks: { keys: [bot.key.publicJwk] },
        rate_limit: { per_minute: 600, per_hour: 1 },
      }),
    );
    expectDocumented(
      'put',
      '/v1/admin/workloads/{id}',
      await admin('PUT', '/v1/admin/workloads/chatbot', { jwks: { keys: [bot.key.publicJwk] } }),
    );
    expectDocumented('delete', '/v1/admin/boundaries/{id}', await admin('DELETE', '/v1/admin/boundaries/payments'));
    expectDocumented('get', '/.well-known/jwks.json', await call(broker.url, 'GET', '/.well-known/jwks.json'));
    expectDocumented(
      'get',
      '/.well-known/oauth-authorization-server',
      await call(broker.url, 'GET', '/.well-known/oauth-authorization-server'),
    );
    expectDocumented('get', '/healthz', await call(broker.url, 'GET', '/healthz'));
    expectDocumented('get', '/readyz', await call(broker.url, 'GET', '/readyz'));
    expectDocumented('get', '/metrics', await call(broker.url, 'GET', '/metrics'));
  });

  it('approval responses match their schemas: 202 pending, the queue, approve, deny, 409, authorization_pending', async () => {
    const admin = asAdmin(broker);
    const put = await admin('PUT', '/v1/admin/boundaries/step-up', {
      tool: 'https://pay.acme.test',
      actions: ['refund:create'],
      intents: ['order_status'],
      default_ttl: 60,
      max_ttl: 60,
      credential: { kind: 'jwt' },
      approval: { when: 'context.params.amount > 100' },
    });
    expectDocumented('put', '/v1/admin/boundaries/{id}', put);
    expectDocumented('get', '/v1/admin/boundaries/{id}', await admin('GET', '/v1/admin/boundaries/step-up'));
    const taskId = await bot.openTask();
    const call1 = { boundary: 'step-up', action: 'refund:create', params: { amount: 500 } };
    const pending = await bot.credential(taskId, call1);
    expect(pending.status).toBe(202);
    expectDocumented('post', '/v1/tasks/{id}/credentials', pending);
    const approvalId = pending.body.approval_id as string;
    expectDocumented('get', '/v1/approvals', await admin('GET', '/v1/approvals?status=pending'));
    expectDocumented('get', '/v1/approvals/{id}', await admin('GET', `/v1/approvals/${approvalId}`));
    expectDocumented('get', '/v1/approvals/{id}', await admin('GET', '/v1/approvals/6a0f2e1c-8a9b-4c7d-9e0f-123456789abc'));
    const pendingToken = await call(broker.url, 'POST', '/oauth2/token', {
      form: {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: await bot.token(),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        authorization_details: JSON.stringify([{ type: 'tool_call', task_id: taskId, ...call1, approval_id: approvalId }]),
      },
    });
    expect(pendingToken.body.error).toBe('authorization_pending');
    expectDocumented('post', '/oauth2/token', pendingToken);
    expectDocumented('post', '/v1/approvals/{id}/approve', await admin('POST', `/v1/approvals/${approvalId}/approve`, { reason: 'ok' }));
    const conflict = await admin('POST', `/v1/approvals/${approvalId}/deny`, { reason: 'no' });
    expect(conflict.status).toBe(409);
    expectDocumented('post', '/v1/approvals/{id}/deny', conflict);
    const other = await bot.credential(taskId, { ...call1, params: { amount: 600 } });
    expectDocumented(
      'post',
      '/v1/approvals/{id}/deny',
      await admin('POST', `/v1/approvals/${other.body.approval_id}/deny`, { reason: 'no' }),
    );
  });

  it('the Error component is exactly what the error filter sends for a 400 and a 401', async () => {
    const badRequest = await bot.call('POST', '/v1/tasks', { intent: 'order_status', subject: 'u', admin: true });
    expect(badRequest.status).toBe(400);
    expect(badRequest.body).toEqual({ error: 'invalid_request', error_description: 'unknown field "admin"', field: 'admin' });
    expectDocumented('post', '/v1/tasks', badRequest);

    const unauthorized = await call(broker.url, 'POST', '/v1/tasks', { json: { intent: 'order_status', subject: 'u' } });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.body.error).toBe('invalid_client');
    expectDocumented('post', '/v1/tasks', unauthorized);
    expect(unauthorized.headers.get('www-authenticate')).toBe('Bearer error="invalid_client"');
    expect(document.components.responses.Unauthorized.headers['WWW-Authenticate']).toBeDefined();

    const Error = validatorAt('components', 'schemas', 'Error');
    expect(Error(badRequest.body)).toBe(true);
    expect(Error(unauthorized.body)).toBe(true);
    // The schema is strict: a member the filter never sends, or a code it does not know, is not an error body.
    expect(Error({ ...badRequest.body, stack: 'at x.ts:1' })).toBe(false);
    expect(Error({ error: 'teapot', error_description: 'x' })).toBe(false);

    // The framework's own refusals, in the same shape.
    expectDocumented(
      'post',
      '/v1/tasks',
      await call(broker.url, 'POST', '/v1/tasks', { token: await bot.token(), raw: 'intent=x', contentType: 'text/plain' }),
    );
    expectDocumented('post', '/v1/tasks', await call(broker.url, 'POST', '/v1/tasks', { token: await bot.token(), raw: '{"intent":' }));
    expectDocumented('get', '/v1/tasks/{id}', await call(broker.url, 'GET', `/v1/tasks/${'x'.repeat(2200)}`, { token: await bot.token() }));
  });
});
