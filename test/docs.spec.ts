import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The documentation is README.md plus docs/*.md. A reader follows its links, and an operator looks
 * up variables in docs/configuration.md: a moved heading or a new setting must not leave either
 * stale without a failing test.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
];

/** Markdown with fenced code blocks and inline code spans blanked out: links and headings only count in prose. */
function prose(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```[ \t]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchors for a file's headings: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const text = markdown.replace(/^```[^\n]*\n[\s\S]*?^```[ \t]*$/gm, '');
  for (const [, heading] of text.matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
    const base = heading!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

interface Link {
  from: string;
  target: string;
}

function relativeLinks(file: string): Link[] {
  const links: Link[] = [];
  for (const [, target] of prose(readFileSync(join(ROOT, file), 'utf8')).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target!)) continue; // https:, mailto: and the like are not ours to check
    links.push({ from: file, target: target! });
  }
  return links;
}

/** Undefined when the link reaches an existing file (and heading), else why not. */
function brokenBecause({ from, target }: Link): string | undefined {
  const [path, anchor] = target.split('#') as [string, string | undefined];
  const file = path === '' ? join(ROOT, from) : resolve(dirname(join(ROOT, from)), decodeURIComponent(path));
  if (!existsSync(file)) return `no file ${relative(ROOT, file)}`;
  if (anchor === undefined) return undefined;
  if (!statSync(file).isFile() || !file.endsWith('.md')) return `an anchor into ${relative(ROOT, file)}, which is not markdown`;
  return anchorsOf(readFileSync(file, 'utf8')).has(anchor) ? undefined : `no heading #${anchor} in ${relative(ROOT, file)}`;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'dist' ? [] : sourceFiles(path);
    return /\.(ts|mjs|js)$/.test(entry.name) && !/\.(spec|test)\.ts$/.test(entry.name) ? [path] : [];
  });
}

/**
 * Environment variables the code reads: `env.NAME`, `env['NAME']`, and quoted names of the shapes a
 * setting has (`'TOLLGATE_…'`, `'VAULT_…'`, `'OTEL_…'`, `'AWS_…'`, `'PORT'`, `'HOST'`,
 * `'DATABASE_URL'`), wherever the code that reads them lives.
 */
function variablesReadByCode(): Set<string> {
  const setting = /^(?:PORT|HOST|DATABASE_URL|(?:TOLLGATE|VAULT|OTEL|AWS)_[A-Z0-9_]*[A-Z0-9])$/;
  const names = new Set<string>();
  for (const file of ['libs', 'apps', 'scripts'].flatMap(sourceFiles)) {
    const source = readFileSync(join(ROOT, file), 'utf8');
    for (const [, a, b] of source.matchAll(/\benv(?:\.([A-Z][A-Z0-9_]*)|\[\s*['"]([A-Z][A-Z0-9_]*)['"]\s*\])/g)) names.add((a ?? b)!);
    for (const [, name] of source.matchAll(/['"`]([A-Z][A-Z0-9_]*)['"`]/g)) if (setting.test(name!)) names.add(name!);
  }
  return new Set([...names].filter((name) => setting.test(name)));
}

describe('the documentation', () => {
  it('links only to files and headings that exist', () => {
    const links = DOCS.flatMap(relativeLinks);
    expect(links.length).toBeGreaterThan(50);
    const broken = links.flatMap((link) => {
      const why = brokenBecause(link);
      return why === undefined ? [] : [`${link.from}: (${link.target}): ${why}`];
    });
    expect(broken).toEqual([]);
  });

  it('tells broken links from good ones', () => {
    expect(brokenBecause({ from: 'README.md', target: 'docs/configuration.md#the-service' })).toBeUndefined();
    expect(brokenBecause({ from: 'docs/http-api.md', target: '../README.md#walkthrough' })).toBeUndefined();
    expect(brokenBecause({ from: 'docs/http-api.md', target: '#the-flows' })).toBeUndefined();
    expect(brokenBecause({ from: 'README.md', target: 'docs/nothing-here.md' })).toMatch(/no file/);
    expect(brokenBecause({ from: 'README.md', target: 'docs/configuration.md#no-such-heading' })).toMatch(/no heading/);
    expect(brokenBecause({ from: 'docs/http-api.md', target: 'README.md' })).toMatch(/no file docs\/README.md/);
  });

  it("makes GitHub's anchors from headings", () => {
    const anchors = anchorsOf(
      '# A\n## Trusted issuers (SPIRE, Kubernetes, any OIDC issuer)\n### 4. Ask (bot)\n## At `/oauth2/token` x\n```sh\n# not a heading\n```\n## A\n',
    );
    expect([...anchors]).toEqual(['a', 'trusted-issuers-spire-kubernetes-any-oidc-issuer', '4-ask-bot', 'at-oauth2token-x', 'a-1']);
  });

  it('documents in docs/configuration.md every environment variable the code reads', () => {
    const documented = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
    const read = variablesReadByCode();
    // The list is found, not empty: a broken scan must not pass for a complete document.
    for (const name of [
      'PORT',
      'DATABASE_URL',
      'TOLLGATE_ADMIN_KEY',
      'TOLLGATE_KEK_PREVIOUS_FILE',
      'VAULT_ADDR',
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      'TOLLGATE_URL',
    ]) {
      expect(read, name).toContain(name);
    }
    const missing = [...read].filter((name) => !new RegExp(`\`${name}\``).test(documented)).sort();
    expect(missing).toEqual([]);
  });
});
