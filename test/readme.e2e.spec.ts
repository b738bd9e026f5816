import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { asAdmin } from './support/scenario.js';

/**
 * Runs README.md's walkthrough as written: every ```sh block of its "## Walkthrough" section, then of
 * every "## Walkthrough…" section of docs/*.md (continuations, such as the kill switch in
 * docs/identity.md; files in name order), in order, in one bash session, against a real broker. Only
 * the two lines that set TG and ADMIN are replaced (the broker listens on a random port and has its
 * own admin key). Each block's output is then compared with the output block shown after it.
 *
 * Comparing: every line of the shown output must match a line of the real output, in order (other
 * real lines, such as messages on stderr, may come between). `…` stands for any text. A UUID or a
 * 10-digit epoch time in the README stands for one real value throughout the walkthrough: the
 * README's `jti` must be the same real id as its `lease_id`, two different README ids must be two
 * different real ids. An RFC 3339 time stands for any time; `http://127.0.0.1:8080` is the broker.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const README_URL = 'http://127.0.0.1:8080';

interface Step {
  heading: string;
  script: string;
  expected: string[];
}

/** The walkthrough sections of one markdown file: each runs from its "## Walkthrough…" heading to the next "## ". */
function walkthroughSections(markdown: string): string[] {
  const sections: string[] = [];
  for (const start of markdown.matchAll(/^## Walkthrough\b.*$/gm)) {
    const rest = markdown.slice(start.index + start[0].length);
    const end = /^## /m.exec(rest);
    sections.push(end ? rest.slice(0, end.index) : rest);
  }
  return sections;
}

/** README.md's walkthrough first (it must have one), then the docs' continuations, file by file. */
function walkthroughFiles(): { file: string; sections: string[] }[] {
  const readme = walkthroughSections(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  if (readme.length !== 1) throw new Error(`README.md must have one "## Walkthrough" section (found ${readme.length})`);
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => ({ file: `docs/${name}`, sections: walkthroughSections(readFileSync(join(ROOT, 'docs', name), 'utf8')) }))
    .filter((doc) => doc.sections.length > 0);
  return [{ file: 'README.md', sections: readme }, ...docs];
}

function walkthroughSteps(file: string, section: string): Step[] {
  const steps: Step[] = [];
  let heading = `${file}: (walkthrough)`;
  const token = /^(#{3,6}) +(.+)$|^```([\w-]*)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  for (let match = token.exec(section); match; match = token.exec(section)) {
    if (match[1]) {
      heading = `${file}: ${match[2]!.trim()}`;
      continue;
    }
    const lang = match[3]!;
    const body = match[4]!;
    if (lang === 'sh' || lang === 'bash') steps.push({ heading, script: body, expected: [] });
    else if (steps.length > 0 && steps.at(-1)!.expected.length === 0) {
      steps.at(-1)!.expected = body.split('\n').filter((line) => line.trim() !== '');
    }
  }
  return steps;
}

/** Replaces the README's `TG=...` and `ADMIN=...` lines, and nothing else. */
function pointAt(steps: Step[], url: string, adminKey: string): Step[] {
  const count = { TG: 0, ADMIN: 0 };
  const replaced = steps.map((step) => ({
    ...step,
    script: step.script.replace(/^(TG|ADMIN)=.*$/gm, (_line, name: 'TG' | 'ADMIN') => {
      count[name]++;
      return `${name}='${name === 'TG' ? url : adminKey}'`;
    }),
  }));
  if (count.TG !== 1 || count.ADMIN !== 1) {
    throw new Error(`the walkthrough must set TG and ADMIN once each on a line of their own (found TG ${count.TG}, ADMIN ${count.ADMIN})`);
  }
  return replaced;
}

const MARK = '@@readme-step-done@@';

async function runBash(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', ['--noprofile', '--norc', '-s'], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output });
    });
    child.stdin.end(script);
  });
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const EPOCH = /\b\d{10}\b/;
const TIME = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/;
const PLACEHOLDER = new RegExp(`(…)|(${UUID.source})|(${TIME.source})|(${EPOCH.source})|(${escape(README_URL)})`, 'g');

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * Matches README output lines against real output lines, keeping one real value per README
 * UUID or epoch time across the whole walkthrough.
 */
class Transcript {
  private readonly bound = new Map<string, string>();
  private readonly taken = new Set<string>();

  constructor(private readonly url: string) {}

  /** Returns undefined when every expected line matched, else a description of the first miss. */
  match(expected: readonly string[], actual: readonly string[]): string | undefined {
    let from = 0;
    for (const line of expected) {
      const { pattern, names } = this.compile(line);
      let found = -1;
      let groups: Record<string, string> = {};
      for (let i = from; i < actual.length; i++) {
        const hit = pattern.exec(actual[i]!);
        if (hit && this.fresh(names, hit.groups ?? {})) {
          found = i;
          groups = hit.groups ?? {};
          break;
        }
      }
      if (found < 0) return `no output line matches the README line\n  ${line}\n(after output line ${from})`;
      for (const [group, readmeValue] of names) {
        this.bound.set(readmeValue, groups[group]!);
        this.taken.add(groups[group]!);
      }
      from = found + 1;
    }
    return undefined;
  }

  /** A first-seen README value must not bind a real value another README value already has. */
  private fresh(names: Map<string, string>, groups: Record<string, string>): boolean {
    const seen = new Map<string, string>();
    for (const [group, readmeValue] of names) {
      const value = groups[group]!;
      if (this.taken.has(value)) return false;
      for (const [otherReadme, otherValue] of seen) if (otherValue === value && otherReadme !== readmeValue) return false;
      seen.set(readmeValue, value);
    }
    return true;
  }

  private compile(line: string): { pattern: RegExp; names: Map<string, string> } {
    const names = new Map<string, string>(); // group name -> README value, for first sightings
    const groupOf = new Map<string, string>(); // README value -> group name, within this line
    let source = '';
    let last = 0;
    for (const hit of line.matchAll(PLACEHOLDER)) {
      source += escape(line.slice(last, hit.index));
      last = hit.index + hit[0].length;
      const [text, ellipsis, uuid, time, epoch] = hit;
      if (ellipsis) source += '.*?';
      else if (time) source += TIME.source;
      else if (uuid || epoch) {
        const known = this.bound.get(text);
        if (known !== undefined) source += escape(known);
        else if (groupOf.has(text)) source += `\\k<${groupOf.get(text)}>`;
        else {
          const group = `v${groupOf.size}`;
          groupOf.set(text, group);
          names.set(group, text);
          source += `(?<${group}>${uuid ? UUID.source : '\\d{10}'})`;
        }
      } else source += escape(this.url);
    }
    source += escape(line.slice(last));
    return { pattern: new RegExp(`^${source}$`), names };
  }
}

let broker: TestBroker;
const files = walkthroughFiles();
const steps = files.flatMap(({ file, sections }) => sections.flatMap((section) => walkthroughSteps(file, section)));
let outputs: string[] = [];
let transcript = '';
let exitCode: number | null = null;

beforeAll(async () => {
  broker = await startBroker();
  const script = [
    // Both streams into one, in order: the README's outputs show what a terminal shows.
    'exec 2>&1',
    'set -u',
    ...pointAt(steps, broker.url, broker.adminKey).flatMap((step) => [step.script, `printf '\\n%s\\n' '${MARK}'`]),
  ].join('\n');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // The bot's key lives in the broker's data folder, as it does in .tollgate for a user.
    TOLLGATE_DATA_DIR: broker.db.dataDir,
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
  };
  delete env.TOLLGATE_URL;
  delete env.BASH_ENV;
  const result = await runBash(script, env);
  exitCode = result.code;
  transcript = result.output;
  outputs = result.output.split(`\n${MARK}\n`);
}, 120_000);
afterAll(() => broker?.close());

describe('the README walkthrough', () => {
  it('has its steps and shows the output of each', () => {
    expect(steps.length).toBeGreaterThanOrEqual(12);
    // The kill switch and the way back in, moved out of the README, still run.
    expect(files.map((f) => f.file)).toContain('docs/identity.md');
    for (const step of steps.slice(1)) expect(step.expected.length, `"${step.heading}" shows no output`).toBeGreaterThan(0);
  });

  it('runs to the end in bash', () => {
    expect(outputs.length, `the walkthrough stopped in step ${outputs.length - 1}:\n${transcript}`).toBe(steps.length + 1);
    expect(exitCode, transcript).toBe(0);
  });

  it('prints, step by step, what the README shows', () => {
    const matcher = new Transcript(broker.url);
    steps.forEach((step, index) => {
      const actual = (outputs[index] ?? '').split('\n');
      const miss = matcher.match(step.expected, actual);
      expect(miss, `step "${step.heading}": ${miss}\n--- its output ---\n${outputs[index] ?? '(none)'}`).toBeUndefined();
    });
  });

  it('issues a credential that verifies offline as the README says', async () => {
    const step = steps.findIndex((s) => /\/credentials"/.test(s.script) && /access_token/.test(s.script));
    const token = /"access_token":"([\w-]+\.[\w-]+\.[\w-]+)"/.exec(outputs[step] ?? '')?.[1];
    expect(token, outputs[step]).toBeDefined();
    const jwks = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(token!, jwks, {
      issuer: broker.url,
      audience: 'https://crm.acme.test',
      typ: 'at+jwt',
    });
    expect(protectedHeader.alg).toBe('EdDSA');
    expect(payload).toMatchObject({ sub: 'user-42', scope: 'orders:read', client_id: 'chatbot', act: { sub: 'chatbot' } });
  });

  it('left the history the README describes', async () => {
    const leases = await asAdmin(broker)('GET', '/v1/leases?workload=chatbot');
    expect(leases.status).toBe(200);
    expect(
      leases.body.items.map((l: { boundary_id: string; state: string; revoke_reason: string }) => [
        l.boundary_id,
        l.state,
        l.revoke_reason,
      ]),
    ).toEqual([
      ['crm-orders', 'revoked', 'workload_revoked'],
      ['payments', 'revoked', 'task_completed'],
      ['crm-orders', 'revoked', 'journey_changed'],
    ]);
    const decisions = await asAdmin(broker)('GET', '/v1/decisions?workload=chatbot');
    expect(decisions.body.items.map((d: { outcome: string; reasons: string[] }) => [d.outcome, ...d.reasons])).toEqual([
      ['permit'],
      ['permit'],
      ['deny', 'action_not_allowed'],
      ['deny', 'intent_mismatch'],
      ['permit'],
    ]);
    const workload = await asAdmin(broker)('GET', '/v1/admin/workloads/chatbot');
    expect(workload.body.enabled).toBe(true);
    const active = await asAdmin(broker)('GET', '/v1/leases?workload=chatbot&state=active');
    expect(active.body.items).toEqual([]);
  });

  it('kept the bot key in the data folder, readable by its owner only', () => {
    const file = join(broker.db.dataDir, 'workloads', 'chatbot.jwk.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const jwk = JSON.parse(readFileSync(file, 'utf8'));
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
    expect(typeof jwk.d).toBe('string');
  });
});
