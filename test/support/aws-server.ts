import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * STS and IAM on loopback, speaking their real query API: form-encoded `Action=...&Version=...`
 * POSTs signed with SigV4, XML answers in AWS's shapes (results, `ErrorResponse/Error/Code`,
 * `RequestId`) and statuses. It enforces the rules Tollgate must respect (DurationSeconds, session
 * policy size, session tag limits, the role's inline-policy size), records what it received, and
 * can fail on demand. It also evaluates a role's deny statements for a session, so a test can ask
 * whether AWS would still let a revoked session through.
 */
export interface AwsTestServer {
  url: string;
  /** Every request received, parsed. */
  requests: ReceivedRequest[];
  /** Sessions issued, by access key id (secrets included: the test checks they never leak). */
  sessions: Map<string, IssuedSession>;
  /** Roles that may be assumed: name → its inline policies (name → JSON text) and an external id it requires. */
  roles: Map<string, { inline: Map<string, string>; externalId?: string | undefined }>;
  addRole(name: string, options?: { externalId?: string; inline?: Record<string, string> }): string;
  /** Added to every answer, to widen the window between a read and a write as a real network does. */
  latencyMs: number;
  /** The next `count` requests (optionally only of `action`) fail like this. */
  fail(count: number, fault: Fault, action?: string): void;
  /** The document of a role's inline policy as stored (JSON text), or undefined. */
  rolePolicy(roleName: string, policyName: string): string | undefined;
  /** True when the role's inline deny statements refuse every call of this session (as IAM would). */
  denied(accessKeyId: string): boolean;
  close(): Promise<void>;
}

export type Fault = { kind: 'status'; status: number; code: string } | { kind: 'throttle' } | { kind: 'hang'; ms: number };

export interface ReceivedRequest {
  service: 'sts' | 'iam';
  region: string;
  action: string;
  params: Record<string, string>;
  accessKeyId: string;
}

export interface IssuedSession {
  roleName: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  issuedAt: number;
  expiresAt: number;
  tags: Record<string, string>;
  sourceIdentity: string | undefined;
  policy: string | undefined;
}

export const ACCOUNT = '123456789012';
const ROLE_INLINE_LIMIT = 10_240;
const NAME = /^[\w+=,.@-]{2,64}$/;
const TAG_KEY = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u;
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$/u;

export async function startAwsServer(): Promise<AwsTestServer> {
  const faults: { fault: Fault; action: string | undefined }[] = [];
  const state: AwsTestServer = {
    url: '',
    requests: [],
    latencyMs: 0,
    sessions: new Map(),
    roles: new Map(),
    addRole(name, options = {}) {
      state.roles.set(name, { inline: new Map(Object.entries(options.inline ?? {})), externalId: options.externalId });
      return `arn:aws:iam::${ACCOUNT}:role/${name}`;
    },
    fail(count, fault, action) {
      for (let i = 0; i < count; i++) faults.push({ fault, action });
    },
    rolePolicy: (roleName, policyName) => state.roles.get(roleName)?.inline.get(policyName),
    denied(accessKeyId) {
      const session = state.sessions.get(accessKeyId);
      if (!session) throw new Error('no such session');
      for (const text of state.roles.get(session.roleName)?.inline.values() ?? []) {
        const document = JSON.parse(text) as {
          Statement: { Effect: string; Condition?: Record<string, Record<string, string | string[]>> }[];
        };
        for (const statement of document.Statement) {
          if (statement.Effect !== 'Deny') continue;
          if (statementMatches(statement.Condition ?? {}, session)) return true;
        }
      }
      return false;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const server: Server = createServer((request, response) => {
    void handle(request, response).catch(() => {
      if (!response.headersSent) response.writeHead(500).end();
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    // SigV4: the scope names the key, date, region and service; a real service refuses anything else.
    const auth =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([a-z0-9-]+)\/(sts|iam)\/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}$/.exec(
        String(request.headers.authorization ?? ''),
      );
    if (request.method !== 'POST' || !auth || !request.headers['x-amz-date']) {
      return send(response, 403, 'sts', error('Sender', 'MissingAuthenticationToken', 'Request is missing Authentication Token'));
    }
    const service = auth[4] as 'sts' | 'iam';
    const params = Object.fromEntries(new URLSearchParams(body));
    const action = params.Action ?? '';
    state.requests.push({ service, region: auth[3]!, action, params, accessKeyId: auth[1]! });

    if (state.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, state.latencyMs));
    const index = faults.findIndex((f) => f.action === undefined || f.action === action);
    if (index >= 0) {
      const { fault } = faults.splice(index, 1)[0]!;
      if (fault.kind === 'hang') {
        await new Promise((resolve) => setTimeout(resolve, fault.ms));
        if (response.destroyed) return;
      } else if (fault.kind === 'throttle') {
        return send(response, 400, service, error('Sender', 'Throttling', 'Rate exceeded'));
      } else {
        return send(response, fault.status, service, error('Receiver', fault.code, 'We encountered an internal error. Please try again.'));
      }
    }

    const version = service === 'sts' ? '2011-06-15' : '2010-05-08';
    if (params.Version !== version)
      return send(
        response,
        400,
        service,
        error('Sender', 'InvalidAction', `Could not find operation ${action} for version ${params.Version}`),
      );
    if (service === 'sts' && action === 'AssumeRole') return assumeRole(params, response);
    if (service === 'iam' && action === 'GetRolePolicy') return getRolePolicy(params, response);
    if (service === 'iam' && action === 'PutRolePolicy') return putRolePolicy(params, response);
    if (service === 'iam' && action === 'DeleteRolePolicy') return deleteRolePolicy(params, response);
    return send(response, 400, service, error('Sender', 'InvalidAction', `Could not find operation ${action} for version ${version}`));
  }

  function assumeRole(params: Record<string, string>, response: ServerResponse): void {
    const invalid = (message: string) => send(response, 400, 'sts', error('Sender', 'ValidationError', message));
    const arn = /^arn:aws:iam::(\d{12}):role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]+)$/.exec(params.RoleArn ?? '');
    if (!arn) return invalid("1 validation error detected: Value at 'roleArn' failed to satisfy constraint");
    const roleName = arn[2]!;
    if (!NAME.test(params.RoleSessionName ?? ''))
      return invalid("1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint");
    if (params.SourceIdentity !== undefined && !NAME.test(params.SourceIdentity)) {
      return invalid("1 validation error detected: Value at 'sourceIdentity' failed to satisfy constraint");
    }
    const duration = params.DurationSeconds === undefined ? 3600 : Number(params.DurationSeconds);
    if (!Number.isInteger(duration) || duration < 900 || duration > 43_200) {
      return invalid(
        `1 validation error detected: Value '${params.DurationSeconds}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900`,
      );
    }
    const policy = params.Policy;
    if (policy !== undefined) {
      if (policy.length > 2048)
        return invalid(
          "1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must have length less than or equal to 2048",
        );
      if (!/^[\u0009\u000a\u000d\u0020-\u00ff]+$/.test(policy))
        return invalid("Value at 'policy' failed to satisfy constraint: Member must satisfy regular expression pattern");
      try {
        JSON.parse(policy);
      } catch {
        return send(response, 400, 'sts', error('Sender', 'MalformedPolicyDocument', 'The policy is not in the valid JSON format.'));
      }
    }
    const tags: Record<string, string> = {};
    for (let i = 1; params[`Tags.member.${i}.Key`] !== undefined; i++) {
      const key = params[`Tags.member.${i}.Key`]!;
      const value = params[`Tags.member.${i}.Value`] ?? '';
      if (!TAG_KEY.test(key) || !TAG_VALUE.test(value))
        return invalid(`1 validation error detected: Value at 'tags.${i}.member' failed to satisfy constraint`);
      if (key.toLowerCase() in Object.fromEntries(Object.keys(tags).map((k) => [k.toLowerCase(), 1]))) {
        return invalid('Duplicate tag keys found. Please note that Tag keys are case insensitive.');
      }
      tags[key] = value;
    }
    if (Object.keys(tags).length > 50)
      return invalid(
        "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50",
      );
    if (JSON.stringify(tags).length + (policy?.length ?? 0) > 2500) {
      return send(
        response,
        400,
        'sts',
        error('Sender', 'PackedPolicyTooLarge', 'Packed size of the session policies and session tags is too large.'),
      );
    }
    const role = state.roles.get(roleName);
    if (!role || arn[1] !== ACCOUNT || (role.externalId !== undefined && role.externalId !== params.ExternalId)) {
      return send(
        response,
        403,
        'sts',
        error('Sender', 'AccessDenied', `User is not authorized to perform: sts:AssumeRole on resource: ${params.RoleArn}`),
      );
    }
    const issuedAt = Math.floor(Date.now() / 1000) * 1000;
    const session: IssuedSession = {
      roleName,
      accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken: `FwoG${randomBytes(96).toString('base64')}`,
      issuedAt,
      expiresAt: issuedAt + duration * 1000,
      tags,
      sourceIdentity: params.SourceIdentity,
      policy,
    };
    state.sessions.set(session.accessKeyId, session);
    const roleId = `AROA${createRoleId(roleName)}`;
    send(
      response,
      200,
      'sts',
      `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    ${params.SourceIdentity ? `<SourceIdentity>${xml(params.SourceIdentity)}</SourceIdentity>` : ''}
    <AssumedRoleUser>
      <AssumedRoleId>${roleId}:${xml(params.RoleSessionName!)}</AssumedRoleId>
      <Arn>arn:aws:sts::${ACCOUNT}:assumed-role/${xml(roleName)}/${xml(params.RoleSessionName!)}</Arn>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>${session.accessKeyId}</AccessKeyId>
      <SecretAccessKey>${xml(session.secretAccessKey)}</SecretAccessKey>
      <SessionToken>${xml(session.sessionToken)}</SessionToken>
      <Expiration>${new Date(session.expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z')}</Expiration>
    </Credentials>
    <PackedPolicySize>${Math.min(100, Math.ceil(((policy?.length ?? 0) + JSON.stringify(tags).length) / 25))}</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata>
</AssumeRoleResponse>`,
    );
  }

  function roleOr404(params: Record<string, string>, response: ServerResponse) {
    const role = state.roles.get(params.RoleName ?? '');
    if (!role) send(response, 404, 'iam', error('Sender', 'NoSuchEntity', `The role with name ${params.RoleName} cannot be found.`));
    return role;
  }

  function getRolePolicy(params: Record<string, string>, response: ServerResponse): void {
    const role = roleOr404(params, response);
    if (!role) return;
    const document = role.inline.get(params.PolicyName ?? '');
    if (document === undefined) {
      return send(response, 404, 'iam', error('Sender', 'NoSuchEntity', `The role policy with name ${params.PolicyName} cannot be found.`));
    }
    send(
      response,
      200,
      'iam',
      `<GetRolePolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <GetRolePolicyResult>
    <PolicyName>${xml(params.PolicyName!)}</PolicyName>
    <RoleName>${xml(params.RoleName!)}</RoleName>
    <PolicyDocument>${xml(encodeURIComponent(document))}</PolicyDocument>
  </GetRolePolicyResult>
  <ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata>
</GetRolePolicyResponse>`,
    );
  }

  function putRolePolicy(params: Record<string, string>, response: ServerResponse): void {
    const role = roleOr404(params, response);
    if (!role) return;
    const document = params.PolicyDocument ?? '';
    try {
      const parsed = JSON.parse(document) as { Statement?: unknown };
      if (!Array.isArray(parsed.Statement) || parsed.Statement.length === 0) throw new Error('no statement');
    } catch {
      return send(response, 400, 'iam', error('Sender', 'MalformedPolicyDocument', 'Syntax errors in policy.'));
    }
    let total = size(document);
    for (const [name, other] of role.inline) if (name !== params.PolicyName) total += size(other);
    if (total > ROLE_INLINE_LIMIT) {
      return send(
        response,
        409,
        'iam',
        error('Sender', 'LimitExceeded', `Maximum policy size of ${ROLE_INLINE_LIMIT} bytes exceeded for role ${params.RoleName}`),
      );
    }
    role.inline.set(params.PolicyName!, document);
    send(
      response,
      200,
      'iam',
      `<PutRolePolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata>
</PutRolePolicyResponse>`,
    );
  }

  function deleteRolePolicy(params: Record<string, string>, response: ServerResponse): void {
    const role = roleOr404(params, response);
    if (!role) return;
    if (!role.inline.delete(params.PolicyName ?? '')) {
      return send(response, 404, 'iam', error('Sender', 'NoSuchEntity', `The role policy with name ${params.PolicyName} cannot be found.`));
    }
    send(
      response,
      200,
      'iam',
      `<DeleteRolePolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata>
</DeleteRolePolicyResponse>`,
    );
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

function statementMatches(condition: Record<string, Record<string, string | string[]>>, session: IssuedSession): boolean {
  for (const [operator, entries] of Object.entries(condition)) {
    for (const [key, expected] of Object.entries(entries)) {
      const values = Array.isArray(expected) ? expected : [expected];
      if (operator === 'StringEquals' && key.startsWith('aws:PrincipalTag/')) {
        const actual = session.tags[key.slice('aws:PrincipalTag/'.length)];
        if (actual === undefined || !values.includes(actual)) return false;
      } else if (operator === 'DateLessThan' && key === 'aws:TokenIssueTime') {
        if (!values.some((value) => session.issuedAt < Date.parse(value))) return false;
      } else {
        return false;
      }
    }
  }
  return true;
}

/** IAM's size: characters without whitespace. */
function size(document: string): number {
  return document.replace(/\s/g, '').length;
}

function createRoleId(roleName: string): string {
  return Buffer.from(roleName).toString('hex').toUpperCase().padEnd(17, '0').slice(0, 17);
}

function error(type: 'Sender' | 'Receiver', code: string, message: string): string {
  return `<ErrorResponse><Error><Type>${type}</Type><Code>${code}</Code><Message>${xml(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`;
}

function send(response: ServerResponse, status: number, service: 'sts' | 'iam', body: string): void {
  const namespaced = body.startsWith('<ErrorResponse>')
    ? body.replace(
        '<ErrorResponse>',
        `<ErrorResponse xmlns="https://${service}.amazonaws.com/doc/${service === 'sts' ? '2011-06-15' : '2010-05-08'}/">`,
      )
    : body;
  response.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': randomUUID() });
  response.end(namespaced);
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
