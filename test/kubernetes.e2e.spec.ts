import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { freePort } from './support/broker.js';
import { freshDatabase, runtimeRole, type TestDatabase } from './support/database.js';
import { call } from './support/http.js';
import { KUBERNETES_SERVICE_LINKS } from './support/kubernetes.js';

/**
 * deploy/kubernetes as a user applies it: every object validates against the Kubernetes schemas
 * (kubernetes-models), the objects fit together, and the Job's and the Deployment's own command
 * and environment (secrets resolved, secret files mounted, plus the service links Kubernetes
 * injects) migrate a database and run a broker that passes its probes.
 */

const ROOT = resolve(import.meta.dirname, '..');
const DIR = join(ROOT, 'deploy/kubernetes');
const require_ = (await import('node:module')).createRequire(import.meta.url);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: any; // a test reads arbitrary manifests
}

const files = readdirSync(DIR)
  .filter((file) => file.endsWith('.yaml'))
  .sort();
const kustomization = YAML.parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'));
const objects: K8sObject[] = files
  .filter((file) => file !== 'kustomization.yaml')
  .flatMap((file) => YAML.parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((doc) => doc.toJSON() as K8sObject));
const byKind = (kind: string) => objects.find((object) => object.kind === kind)!;

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe('deploy/kubernetes', () => {
  it('lists every manifest in the kustomization, and each object validates against the Kubernetes schema', () => {
    expect([...kustomization.resources].sort()).toEqual(files.filter((file) => file !== 'kustomization.yaml'));
    expect(objects.map((object) => object.kind).sort()).toEqual([
      'Deployment',
      'Job',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
      'ServiceAccount',
    ]);
    for (const object of objects) {
      const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : [undefined, object.apiVersion];
      const models = require_(`kubernetes-models/${group ? `${group}/` : ''}${version}`) as Record<
        string,
        new (data: unknown) => { validate(): void }
      >;
      const Model = models[object.kind];
      expect(Model, `${object.apiVersion} ${object.kind}`).toBeTypeOf('function');
      expect(() => new Model!(object).validate(), `${object.kind} ${object.metadata.name}`).not.toThrow();
    }
    // The validator is not a rubber stamp.
    const broken = structuredClone(byKind('Deployment'));
    broken.spec.replicas = 'two';
    const { Deployment } = require_('kubernetes-models/apps/v1') as { Deployment: new (data: unknown) => { validate(): void } };
    expect(() => new Deployment(broken).validate()).toThrow(/replicas must be integer/);
  });

  it('fits together: selectors, ports, probes, a non-root read-only pod and the secret keys', () => {
    const deployment = byKind('Deployment');
    const pod = deployment.spec.template;
    const labels = pod.metadata.labels;
    const matches = (selector: Record<string, string>) => Object.entries(selector).every(([key, value]) => labels[key] === value);
    expect(matches(deployment.spec.selector.matchLabels)).toBe(true);
    expect(matches(byKind('Service').spec.selector)).toBe(true);
    expect(matches(byKind('PodDisruptionBudget').spec.selector.matchLabels)).toBe(true);
    expect(matches(byKind('NetworkPolicy').spec.podSelector.matchLabels)).toBe(true);
    const [container] = pod.spec.containers;
    expect(container.ports.map((port: { name: string }) => port.name)).toContain(byKind('Service').spec.ports[0].targetPort);
    expect(container.startupProbe.httpGet.path).toBe('/healthz');
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    for (const spec of [pod.spec, byKind('Job').spec.template.spec]) {
      expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(spec.automountServiceAccountToken).toBe(false);
      for (const c of spec.containers) {
        expect(c.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(c.resources.requests).toHaveProperty('cpu');
        expect(c.resources.limits).toHaveProperty('memory');
      }
    }
    // Every secret key the pods read is one the documented `kubectl create secret` makes.
    const documented = [...readFileSync(join(DIR, 'kustomization.yaml'), 'utf8').matchAll(/--from-literal=([a-z-]+)=/g)]
      .map((m) => m[1])
      .sort();
    const used = JSON.stringify(objects)
      .match(/"key":"[a-z-]+"/g)!
      .map((text) => text.slice(7, -1));
    expect([...new Set(used)].sort()).toEqual(documented);
    expect(container.env.find((e: { name: string }) => e.name === 'TOLLGATE_MIGRATE').value).toBe('off');
  });

  it("runs the Job's migrate and then the Deployment's broker with their own env, secret files and the injected service links", async () => {
    const db: TestDatabase = await freshDatabase('postgres');
    cleanups.push(() => db.drop());
    const work = mkdtempSync(join(tmpdir(), 'tollgate-k8s-'));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));
    const adminKey = randomBytes(32).toString('hex');
    const secret: Record<string, string> = {
      'migrate-database-url': db.databaseUrl!,
      'admin-key': `${adminKey}\n`,
      kek: `${randomBytes(32).toString('base64')}\n`,
    };

    const job = byKind('Job').spec.template.spec.containers[0];
    const migrated = await promisify(execFile)(process.execPath, job.command.slice(1), {
      cwd: ROOT,
      env: { PATH: process.env.PATH, ...envOf(job, secret, work) },
    });
    expect(migrated.stdout).toMatch(/^tollgate-broker migrate: applied \d+:/);

    const runtime = await runtimeRole(db);
    cleanups.unshift(() => runtime.drop()); // last: the role holds grants in the database until it is dropped
    secret['database-url'] = runtime.url;
    const deployment = byKind('Deployment');
    const container = deployment.spec.template.spec.containers[0];
    const port = await freePort();
    const env = {
      PATH: process.env.PATH,
      ...envOf(container, secret, work, deployment.spec.template.spec.volumes),
      // What Kubernetes injects for the Service `tollgate` (service.yaml) into every pod.
      ...KUBERNETES_SERVICE_LINKS,
      // The only change: this machine's port 8080 may be taken.
      PORT: String(port),
    };
    const child = spawn(process.execPath, container.command.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', done));
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    });
    const url = `http://127.0.0.1:${port}`;
    await expect
      .poll(
        async () =>
          child.exitCode === null
            ? (await call(url, 'GET', container.startupProbe.httpGet.path).catch(() => ({ status: 0 }))).status
            : `exited: ${log}`,
        {
          timeout: 30_000,
          interval: 250,
        },
      )
      .toBe(200);
    expect((await call(url, 'GET', container.readinessProbe.httpGet.path)).status).toBe(200);
    // The admin key came from the mounted secret file.
    expect((await call(url, 'GET', '/v1/leases', { token: adminKey })).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 90_000);
});

/** A container's environment as the kubelet builds it, with secret volumes mounted under `work`. */
function envOf(
  container: {
    env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef: { key: string } } }>;
    volumeMounts?: Array<{ name: string; mountPath: string }>;
  },
  secret: Record<string, string>,
  work: string,
  volumes: Array<{ name: string; secret?: { items: Array<{ key: string; path: string }> } }> = [],
): Record<string, string> {
  const mounts = new Map<string, string>();
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.find((v) => v.name === mount.name);
    const dir = join(work, mount.name);
    mounts.set(mount.mountPath, dir);
    if (volume?.secret) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      for (const item of volume.secret.items) writeFileSync(join(dir, item.path), secret[item.key]!, { mode: 0o440 });
    }
  }
  const env: Record<string, string> = {};
  for (const entry of container.env) {
    let value = entry.valueFrom ? secret[entry.valueFrom.secretKeyRef.key]! : entry.value!;
    const mount = [...mounts].find(([path]) => value.startsWith(`${path}/`) || value === path);
    if (mount) value = mount[1] + value.slice(mount[0].length);
    env[entry.name] = value;
  }
  return env;
}
