#!/usr/bin/env node
// Acts as a bot (workload) for trying Tollgate by hand: holds an Ed25519 key and signs the short
// workload assertions the bot API expects.
//
//   node scripts/workload-key.mjs init <workload-id> [--force]
//       Creates an Ed25519 key pair, saves the private JWK to
//       $TOLLGATE_DATA_DIR/workloads/<id>.jwk.json (default ./.tollgate, mode 0600) and prints the
//       public JWKS as the body of PUT /v1/admin/workloads/<id>: {"jwks":{"keys":[...]}}.
//       When the key file already exists it is reused (its public JWKS printed again);
//       --force replaces it.
//
//   node scripts/workload-key.mjs token <workload-id> [--aud URL] [--ttl SECONDS]
//       Prints a fresh assertion: EdDSA, kid; iss = sub = workload id, aud = --aud, else
//       TOLLGATE_URL, else http://127.0.0.1:8080 (it must equal the broker's TOLLGATE_ISSUER);
//       iat = now, exp = now + 120 (--ttl, at most 300), a random jti.
//
// Exit codes: 0 done, 1 failed (missing or unreadable key file), 2 usage error.
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';

const USAGE = `usage:
  node scripts/workload-key.mjs init <workload-id> [--force]
  node scripts/workload-key.mjs token <workload-id> [--aud URL] [--ttl SECONDS]

environment:
  TOLLGATE_DATA_DIR  where keys are kept, under workloads/ (default ./.tollgate)
  TOLLGATE_URL       default audience for "token" (default http://127.0.0.1:8080)`;

// The broker's rule for workload ids: a slug, or a SPIFFE ID.
const WORKLOAD_ID = /^(?:[a-z0-9][a-z0-9._-]{0,62}|spiffe:\/\/[a-z0-9.-]{1,255}(?:\/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+)$/;
const MAX_TTL_S = 300;

class UsageError extends Error {}
class Failure extends Error {}

function parseArgs(argv) {
  const [command, id, ...rest] = argv;
  if (command === '-h' || command === '--help' || command === 'help') return { command: 'help' };
  if (command !== 'init' && command !== 'token') throw new UsageError(command ? `unknown command "${command}"` : 'a command is required');
  if (!id || id.startsWith('--')) throw new UsageError(`${command}: a workload id is required`);
  if (!WORKLOAD_ID.test(id)) throw new UsageError(`"${id}" is not a workload id (a slug [a-z0-9][a-z0-9._-]{0,62} or a SPIFFE ID)`);
  const options = { command, id, force: false, aud: undefined, ttl: 120 };
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    const value = () => {
      const next = rest[++i];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${flag} needs a value`);
      return next;
    };
    if (command === 'init' && flag === '--force') options.force = true;
    else if (command === 'token' && flag === '--aud') options.aud = value();
    else if (command === 'token' && flag === '--ttl') {
      const text = value();
      const ttl = /^\d+$/.test(text) ? Number(text) : Number.NaN;
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_S) throw new UsageError(`--ttl must be an integer from 1 to ${MAX_TTL_S}`);
      options.ttl = ttl;
    } else throw new UsageError(`${command}: unknown argument "${flag}"`);
  }
  return options;
}

function keyFile(id) {
  const dataDir = process.env.TOLLGATE_DATA_DIR?.trim() || './.tollgate';
  // SPIFFE IDs carry slashes and colons: keep the file name flat and reversible.
  return resolve(join(dataDir, 'workloads', `${encodeURIComponent(id)}.jwk.json`));
}

function publicOf(jwk) {
  const { kty, crv, x, kid, alg, use } = jwk;
  return { kty, crv, x, kid, alg, use };
}

async function init({ id, force }) {
  const file = keyFile(id);
  if (existsSync(file) && !force) {
    const jwk = readKey(file, id);
    process.stderr.write(`using the existing key ${file} (--force replaces it)\n`);
    return { jwks: { keys: [publicOf(jwk)] } };
  }
  const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = (await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x })).slice(0, 16);
  const stored = { ...jwk, kid, alg: 'EdDSA', use: 'sig' };
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify(stored, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600); // the mode option does not apply when the file already existed
  process.stderr.write(`saved the private key to ${file}\n`);
  return { jwks: { keys: [publicOf(stored)] } };
}

function readKey(file, id) {
  let jwk;
  try {
    jwk = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    if (error?.code === 'ENOENT')
      throw new Failure(`no key for workload "${id}" at ${file}; run: node scripts/workload-key.mjs init ${id}`);
    throw new Failure(`cannot read the key file ${file}: ${error instanceof SyntaxError ? 'not valid JSON' : error.message}`);
  }
  if (
    jwk?.kty !== 'OKP' ||
    jwk.crv !== 'Ed25519' ||
    typeof jwk.x !== 'string' ||
    typeof jwk.d !== 'string' ||
    typeof jwk.kid !== 'string'
  ) {
    throw new Failure(`${file} does not hold an Ed25519 private JWK with a kid`);
  }
  return jwk;
}

async function token({ id, aud, ttl }) {
  const audience = aud ?? (process.env.TOLLGATE_URL?.trim() || 'http://127.0.0.1:8080');
  try {
    const url = new URL(audience);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error();
  } catch {
    throw new UsageError(`the audience "${audience}" is not an http(s) URL`);
  }
  const jwk = readKey(keyFile(id), id);
  const key = await importJWK(jwk, 'EdDSA');
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'EdDSA', kid: jwk.kid, typ: 'JWT' })
    .setIssuer(id)
    .setSubject(id)
    .setAudience(audience.replace(/\/+$/, ''))
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .setJti(randomUUID())
    .sign(key);
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  if (options.command === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const output = options.command === 'init' ? JSON.stringify(await init(options)) : await token(options);
  process.stdout.write(output + '\n');
}

main().catch((error) => {
  if (error instanceof UsageError) {
    process.stderr.write(`workload-key: ${error.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  process.stderr.write(`workload-key: ${error instanceof Failure ? error.message : `failed: ${error?.message ?? error}`}\n`);
  process.exit(1);
});
