import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../broker/app.js';
import { loadBrokerConfig } from '../broker/config.js';
import { runStory } from './story.js';

export interface DemoOptions {
  /** Read for TOLLGATE_URL and TOLLGATE_ADMIN_KEY only. */
  env: Record<string, string | undefined>;
  print(line: string): void;
  /** On Ctrl-C or SIGTERM, stop what the demo started and remove its folder before exiting (`npm run demo`). */
  handleSignals?: boolean;
}

interface Tollgate {
  url: string;
  adminKey: string;
}

/** What the demo started, undone last first: on the way out, and on Ctrl-C. */
type Cleanup = (() => Promise<void> | void)[];

/**
 * `npm run demo`: the story against the Tollgate named by TOLLGATE_URL + TOLLGATE_ADMIN_KEY, or
 * against one started here on the embedded database in a temporary folder (removed afterwards).
 * Returns the exit status: 0 when the story went as expected, 1 when not, 2 when it could not start.
 */
export async function runDemo(options: DemoOptions): Promise<number> {
  const cleanup: Cleanup = [];
  const undo = async () => {
    for (const step of cleanup.splice(0).reverse()) await Promise.resolve(step()).catch(() => {});
  };
  const interrupted = () => {
    options.print('demo: interrupted, cleaning up');
    void undo().finally(() => process.exit(130));
  };
  if (options.handleSignals) {
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
  }
  try {
    let tollgate: Tollgate;
    try {
      tollgate = await chooseTollgate(options, cleanup);
    } catch (error) {
      options.print(`demo: ${error instanceof Error ? error.message : String(error)}`);
      return 2;
    }
    return (await runStory({ tollgate: tollgate.url, adminKey: tollgate.adminKey, print: options.print })) ? 0 : 1;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await undo();
  }
}

async function chooseTollgate(options: DemoOptions, cleanup: Cleanup): Promise<Tollgate> {
  const url = options.env.TOLLGATE_URL?.trim();
  if (url) {
    const adminKey = options.env.TOLLGATE_ADMIN_KEY?.trim();
    if (!adminKey) throw new Error("TOLLGATE_URL is set: TOLLGATE_ADMIN_KEY must name that Tollgate's admin key");
    options.print(`Tollgate demo: a support bot whose customer changes their mind, against ${url}`);
    options.print('(it defines boundaries crm-orders and crm-refunds, the workload support-bot and two API keys there)');
    return { url: url.replace(/\/+$/, ''), adminKey };
  }
  return startEmbedded(options.print, cleanup);
}

/** A Tollgate in this process on PGlite in a fresh folder: no Docker, no network beyond loopback. */
async function startEmbedded(print: (line: string) => void, cleanup: Cleanup): Promise<Tollgate> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-demo-'));
  cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const adminKey = `demo-admin-${randomBytes(24).toString('hex')}`;
  print('Starting Tollgate on its embedded database (PGlite creates and migrates it: a few seconds)...');
  const port = await freePort();
  // Only these settings: TOLLGATE_* variables of the caller's shell describe some other Tollgate.
  const config = loadBrokerConfig({
    PORT: String(port),
    TOLLGATE_DATA_DIR: dataDir,
    TOLLGATE_ADMIN_KEY: adminKey,
    TOLLGATE_KEK: randomBytes(32).toString('base64'),
    TOLLGATE_LOG_LEVEL: 'error',
  });
  const app = await createApp(config);
  cleanup.push(() => app.close());
  await app.app.listen({ port, host: '127.0.0.1' });
  print('Tollgate demo: a support bot whose customer changes their mind.');
  print(`(Tollgate runs on ${config.issuer}, embedded PGlite database in ${dataDir}, removed at the end)`);
  return { url: config.issuer, adminKey };
}

/** The issuer must be known before listening: reserve a port first. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
