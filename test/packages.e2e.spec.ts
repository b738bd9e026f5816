import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt, exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { asAdmin, putBoundary } from './support/scenario.js';
import { call } from './support/http.js';
import { assertion, workloadKey } from './support/workload.js';

/**
 * The installable packages as a user gets them: each is packed (`npm pack`, whose prepack builds
 * it), the tarballs are installed into a fresh project outside the repository (so nothing resolves
 * from the repository's node_modules or sources), and used there: the SDK imported as ESM and run
 * against a real broker, its types checked by `tsc --noEmit`; the CLI run through `npx tollgate`.
 * The transcript (commands, sizes, times) is printed and kept in test/artifacts/packages.txt.
 */

const ROOT = resolve(import.meta.dirname, '..');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const run = promisify(execFile);

/** The workspace packages to ship. */
const PACKAGES = [
  { name: '@tollgate/sdk', dir: 'libs/sdk' },
  { name: '@tollgate/cli', dir: 'apps/cli' },
  { name: '@tollgate/verifier', dir: 'packages/verifier' },
] as const;

interface Packed {
  name: string;
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: Array<{ path: string; size: number }>;
}

let work: string;
let project: string;
let broker: TestBroker;
const transcript: string[] = [];
const packed = new Map<string, Packed & { tarball: string }>();

function kb(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} kB`;
}

/** Runs a command, noting it (and how long it took) in the transcript. */
async function step(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string | undefined> = {},
): Promise<{ stdout: string; stderr: string }> {
  const started = performance.now();
  const merged = Object.fromEntries(
    Object.entries({ ...process.env, ...env }).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  const result = await run(command, args, { cwd, env: merged, maxBuffer: 16 * 1024 * 1024 }).catch(
    (error: { message: string; stdout?: string; stderr?: string }) => {
      throw new Error(`${error.message}\n${error.stdout ?? ''}${error.stderr ?? ''}`);
    },
  );
  transcript.push(
    `$ (cd ${cwd.startsWith(ROOT) ? relative(ROOT, cwd) || '.' : cwd.replace(work, '$TMP')}) ${[command === process.execPath ? 'node' : command, ...args].join(' ').replaceAll(work, '$TMP')}   [${Math.round(performance.now() - started)} ms]`,
  );
  return result;
}

beforeAll(async () => {
  // Outside the repository: no node_modules above it to lend the packages what they did not declare.
  work = mkdtempSync(join(tmpdir(), 'tollgate-packages-'));
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  for (const pkg of PACKAGES) {
    const { stdout } = await step('npm', ['pack', '--json', '--pack-destination', tarballs], join(ROOT, pkg.dir));
    // The prepack build may print before the JSON.
    const [info] = JSON.parse(stdout.slice(stdout.indexOf('[\n'))) as Packed[];
    packed.set(pkg.name, { ...info!, tarball: join(tarballs, info!.filename) });
    transcript.push(
      `  ${info!.filename}: ${kb(info!.size)} packed, ${kb(info!.unpackedSize)} unpacked, ${info!.entryCount} files: ${info!.files.map((f) => f.path).join(' ')}`,
    );
  }

  project = join(work, 'consumer');
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2),
  );
  // @types/node at the version the repository builds with: the SDK's types name fetch's Response.
  const typesNode = (JSON.parse(readFileSync(join(ROOT, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version;
  const install = await step(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', ...[...packed.values()].map((p) => p.tarball), `@types/node@${typesNode}`],
    project,
  );
  transcript.push(
    ...install.stdout
      .trim()
      .split('\n')
      .map((line) => `  ${line}`),
  );

  broker = await startBroker();
}, 300_000);

afterAll(async () => {
  const text = `${transcript.join('\n')}\n`;
  process.stdout.write(`\npack-and-install transcript:\n${text}`);
  writeFileSync(join(ROOT, 'test/artifacts/packages.txt'), text);
  await broker?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Every relative import (or `new URL('..', import.meta.url)`) of a package's JavaScript stays inside the package. */
function relativeImportsLeaving(root: string): string[] {
  const leaving: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.m?js$/.test(name)) {
        const text = readFileSync(path, 'utf8');
        const found = [
          ...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g),
          ...text.matchAll(/new URL\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*,\s*import\.meta\.url/g),
        ];
        for (const match of found) {
          const target = resolve(dirname(path), match[1]!);
          if (!target.startsWith(`${root}/`)) leaving.push(`${relative(root, path)} → ${match[1]}`);
        }
      }
    }
  };
  walk(root);
  return leaving;
}

describe.each(PACKAGES)('$name', ({ name }) => {
  it('packs only its built files, with declarations where it exports code, and reaches nothing outside itself', () => {
    const info = packed.get(name)!;
    const paths = info.files.map((f) => f.path);
    expect(paths).toContain('package.json');
    expect(paths.filter((p) => p.endsWith('.ts') && !p.endsWith('.d.ts'))).toEqual([]);
    expect(paths.filter((p) => /spec|fixture|tsconfig/.test(p))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', name, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest.files).toBeInstanceOf(Array);
    expect(manifest.exports).toBeTypeOf('object');
    expect(relativeImportsLeaving(join(project, 'node_modules', name))).toEqual([]);
  });
});

describe('@tollgate/sdk installed from its tarball', () => {
  it('imports as ESM and runs against a real broker: a task, a credential, a refusal', async () => {
    const key = await workloadKey('EdDSA');
    const admin = asAdmin(broker);
    expect((await admin('PUT', '/v1/admin/workloads/pkg-bot', { jwks: { keys: [key.publicJwk] } })).status).toBe(201);
    await putBoundary(broker, 'pkg-orders');
    writeFileSync(
      join(project, 'bot.mjs'),
      `import { AccessDenied, TollgateClient } from '@tollgate/sdk';
const jwk = JSON.parse(process.env.BOT_JWK);
const tollgate = new TollgateClient({ url: process.env.TOLLGATE_URL, tokenSource: { workloadId: 'pkg-bot', privateKey: jwk, kid: jwk.kid, alg: 'EdDSA' } });
const task = await tollgate.openTask({ intent: 'order_status', subject: 'customer-1' });
const tokenType = await task.withCredential({ boundary: 'pkg-orders', action: 'orders:read', resource: 'order/1' }, async (cred) => cred.tokenType);
let refused;
try {
  await task.withCredential({ boundary: 'pkg-orders', action: 'orders:delete' }, async () => 'called');
} catch (error) {
  refused = error instanceof AccessDenied ? error.reasons : String(error);
}
await task.complete();
console.log(JSON.stringify({ tokenType, refused }));
`,
    );
    const jwk = { ...(await exportJWK(key.privateKey)), kid: key.kid };
    const { stdout } = await step(process.execPath, ['bot.mjs'], project, { TOLLGATE_URL: broker.url, BOT_JWK: JSON.stringify(jwk) });
    transcript.push(`  ${stdout.trim()}`);
    expect(JSON.parse(stdout)).toEqual({ tokenType: 'Bearer', refused: ['action_not_allowed'] });
  });

  it("type-checks a TypeScript file against the package's declarations (tsc --noEmit, strict, libraries checked too)", async () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify(
        {
          compilerOptions: {
            module: 'nodenext',
            moduleResolution: 'nodenext',
            target: 'es2022',
            strict: true,
            noEmit: true,
            types: ['node'],
            skipLibCheck: false,
          },
          include: ['*.ts'],
        },
        null,
        2,
      ),
    );
    writeFileSync(
      join(project, 'bot.ts'),
      `import { AccessDenied, TollgateClient, generateDpopKey, type ClientOptions, type Credential } from '@tollgate/sdk';

const options: ClientOptions = { url: 'https://tollgate.internal', tokenSource: () => 'a workload JWT', dpop: await generateDpopKey() };
const tollgate = new TollgateClient(options);
const task = await tollgate.openTask({ intent: 'order_status', subject: 'customer-1' });
const expires: Date = await task.withCredential({ boundary: 'crm-orders', action: 'orders:read' }, async (cred: Credential) => cred.expiresAt);
export const reasons = (error: unknown): readonly string[] => (error instanceof AccessDenied ? error.reasons : []);
// The declarations are real types, not any: a misuse is an error (an unused @ts-expect-error would be one too).
// @ts-expect-error: openTask needs an intent
await tollgate.openTask({ subject: 'customer-1' });
// @ts-expect-error: expiresAt is a Date
export const wrong: string = expires;
`,
    );
    await step(process.execPath, [TSC, '-p', 'tsconfig.json'], project);
    // And the check can fail: a wrong option name is reported against the package's types.
    writeFileSync(
      join(project, 'broken.ts'),
      `import { TollgateClient } from '@tollgate/sdk';\nnew TollgateClient({ url: 'x', tokenSource: () => 't', retries: 3 });\n`,
    );
    const failed = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: project }).then(
      () => '',
      (error: { stdout: string }) => error.stdout,
    );
    rmSync(join(project, 'broken.ts'));
    expect(failed).toMatch(/broken\.ts\(2,\d+\): error TS2353: .*'retries' does not exist in type 'ClientOptions'/);
  }, 180_000); // two full type checks: about 15 s idle, over 30 s on a loaded machine
});

describe('@tollgate/cli installed from its tarball', () => {
  it("runs as `npx tollgate`: --version, --help, a command's --help, and a command against a real broker", async () => {
    // `--`: npm 11's npx would take a bare --version or --help as its own.
    const npx = async (args: string[], env: Record<string, string> = {}) => {
      const result = await step('npx', ['--no', '--', 'tollgate', ...args], project, {
        TOLLGATE_URL: broker.url,
        TOLLGATE_KEY: undefined,
        ...env,
      });
      transcript.push(`  ${result.stdout.split('\n')[0]}`);
      return result;
    };
    const { version } = JSON.parse(readFileSync(join(ROOT, 'apps/cli/package.json'), 'utf8')) as { version: string };
    expect((await npx(['--version'])).stdout).toBe(`tollgate ${version}\n`);
    expect((await npx(['--help'])).stdout).toMatch(
      /^tollgate: the command line for Tollgate admins and reviewers\n[\s\S]*tollgate simulate/,
    );
    expect((await npx(['workloads', '--help'])).stdout).toMatch(/^Usage:\n {2}tollgate workloads ls\n/);
    const keyFile = join(work, 'admin.key');
    writeFileSync(join(work, 'admin.key'), broker.adminKey, { mode: 0o600 });
    const keys = await npx(['keys', 'ls', '--json', '--key-file', keyFile]);
    expect((JSON.parse(keys.stdout) as { active_kid: string }).active_kid).toMatch(/\S/);
    expect(keys.stderr).toBe('');
  }, 60_000);
});

describe('@tollgate/verifier installed from its tarball', () => {
  it("imports as ESM (jose its only dependency) and verifies a real broker's token, refusing another tool's", async () => {
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules/@tollgate/verifier/package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(Object.keys(manifest.dependencies)).toEqual(['jose']);
    const key = await workloadKey('EdDSA');
    const admin = asAdmin(broker);
    expect((await admin('PUT', '/v1/admin/workloads/pkg-tool-bot', { jwks: { keys: [key.publicJwk] } })).status).toBe(201);
    await putBoundary(broker, 'pkg-verified');
    const task = await call(broker.url, 'POST', '/v1/tasks', {
      token: await assertion('pkg-tool-bot', key, broker.url),
      json: { intent: 'order_status', subject: 'customer-1' },
    });
    const issued = await call(broker.url, 'POST', `/v1/tasks/${task.body.task_id}/credentials`, {
      token: await assertion('pkg-tool-bot', key, broker.url),
      json: { boundary: 'pkg-verified', action: 'orders:read', resource: 'order/1' },
    });
    expect(issued.status).toBe(201);
    writeFileSync(
      join(project, 'tool.mjs'),
      `import { createVerifier, InvalidToken } from '@tollgate/verifier';
const options = { issuer: process.env.ISSUER, jwksUri: process.env.TOLLGATE_URL + '/.well-known/jwks.json' };
const request = { method: 'GET', url: 'https://crm.acme.test/orders/1' };
const verified = await createVerifier({ ...options, audience: 'https://crm.acme.test' }).verify(process.env.TOKEN, request);
let other;
try {
  await createVerifier({ ...options, audience: 'https://billing.acme.test' }).verify(process.env.TOKEN, request);
} catch (error) {
  other = error instanceof InvalidToken ? error.code : String(error);
}
console.log(JSON.stringify({ action: verified.toolCall.action, other }));
`,
    );
    const token = issued.body.credential.access_token as string;
    const { stdout } = await step(process.execPath, ['tool.mjs'], project, {
      TOLLGATE_URL: broker.url,
      ISSUER: decodeJwt(token).iss,
      TOKEN: token,
    });
    transcript.push(`  ${stdout.trim()}`);
    expect(JSON.parse(stdout)).toEqual({ action: 'orders:read', other: 'invalid_token' });
  });

  it("type-checks a tool server against the package's declarations (tsc --noEmit, strict, libraries checked too)", async () => {
    // The tsconfig.json the SDK's check wrote; express and fastify are not installed: the adapters need neither's types.
    writeFileSync(
      join(project, 'tool.ts'),
      `import { createServer } from 'node:http';
import {
  createVerifier,
  InsufficientScope,
  mcpNodeGuard,
  mcpTokenVerifier,
  nodeAuthenticator,
  nodeResourceMetadata,
  protectedResourceMetadata,
  writeChallenge,
  type McpAuthInfo,
  type McpNodeRequest,
  type VerifiedCall,
} from '@tollgate/verifier';

const verifier = createVerifier({ issuer: 'https://tollgate.internal', audience: 'https://crm.acme.test', revocation: { apiKey: 'tgrs_x' } });
const authenticate = nodeAuthenticator(verifier, { baseUrl: 'https://crm.acme.test' });
createServer((req, res) => {
  authenticate(req)
    .then((call: VerifiedCall) => {
      call.checkCall({ action: 'orders:refund', resource: 'order/1', params: { amount: 49 } });
      res.end(call.toolCall.action);
    })
    .catch((error: unknown) => writeChallenge(res, error));
});
export const scope = (error: unknown): boolean => error instanceof InsufficientScope && error.status === 403;
// The MCP side types the SDK's shapes itself: it compiles with no @modelcontextprotocol/sdk installed.
const guard = mcpNodeGuard(verifier, { resourceOf: (tool) => (tool === 'refund' ? 'order/1' : null) });
const metadata = nodeResourceMetadata(protectedResourceMetadata({ resource: 'https://crm.acme.test/mcp', authorizationServers: ['https://tollgate.internal'] }));
createServer(async (req, res) => {
  if (metadata(req, res)) return;
  const admitted = await guard(req, res);
  const auth: McpAuthInfo | undefined = (req as McpNodeRequest).auth;
  if (admitted) res.end(JSON.stringify({ body: admitted.body, client: auth?.clientId }));
});
export const tokens: { verifyAccessToken(token: string): Promise<McpAuthInfo> } = mcpTokenVerifier(verifier);
// @ts-expect-error: an audience is required
createVerifier({ issuer: 'https://tollgate.internal' });
`,
    );
    await step(process.execPath, [TSC, '-p', 'tsconfig.json'], project);
  }, 180_000);
});
