import { readFileSync } from 'node:fs';
import type { BrokerApi } from '../api.js';
import {
  KINDS,
  SECTIONS,
  checkBodies,
  parseManifest,
  putSchemas,
  type Body,
  type Kind,
  type Manifest,
  type PutSchemas,
} from '../apply/manifest.js';
import { describeChange, plan, type Change } from '../apply/plan.js';
import { Command, type Io } from '../context.js';
import { ApiRefused, Unreachable, UsageError } from '../errors.js';

/**
 * `tollgate apply -f tollgate.yaml [--dry-run]`: checks the whole file against the broker's own
 * schemas and id rules, shows the plan, then applies it in order. Nothing is sent before every body
 * and id has passed; after that, it stops at the first refusal and says what was applied before it.
 */
export async function apply(io: Io, args: string[]): Promise<number> {
  const command = new Command({
    name: 'apply',
    io,
    args,
    options: { file: { type: 'string', short: 'f' }, 'dry-run': { type: 'boolean' } },
  });
  command.expectPositionals();
  const file = command.option('file');
  if (file === undefined) throw new UsageError('apply: -f <file> is required (a tollgate.yaml)');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`apply: cannot read ${file}: ${(error as { code?: string }).code ?? String(error)}`, false);
  }
  const manifest = parseManifest(text, file);
  const api = command.api();
  const schemas = await brokerSchemas(api);
  checkBodies(manifest, schemas, file);
  const current = await currentObjects(api, manifest, file);
  const issuer = manifest.issuer ? (await api.get<{ issuer: string }>('/.well-known/oauth-authorization-server')).issuer : api.url;
  const changes = plan(manifest, current, { issuer, schemas });
  const dryRun = command.flag('dry-run');

  if (!command.json) {
    for (const change of changes) command.print(describeChange(change));
    if (changes.length === 0) command.print('No changes.');
    else if (dryRun) command.print(`Dry run: ${changes.length} change(s) planned, nothing applied.`);
  }
  if (changes.length === 0 || dryRun) {
    if (command.json) command.printJson({ changes: changes.map(changeJson), applied: [] });
    return 0;
  }

  const applied: Change[] = [];
  for (const change of changes) {
    const path = `${SECTIONS[change.kind].path}/${encodeURIComponent(change.id)}`;
    try {
      if (change.action === 'disable') await api.delete(path);
      else await api.put(path, change.body);
    } catch (error) {
      if (!(error instanceof ApiRefused)) throw error;
      const at = `${SECTIONS[change.kind].key}.${change.id}${error.field && error.field !== 'body' ? `.${error.field}` : ''}`;
      if (command.json)
        command.printJson({
          changes: changes.map(changeJson),
          applied: applied.map(changeJson),
          failed: { ...changeJson(change), error: error.error, message: error.message },
        });
      const before =
        applied.length === 0 ? 'nothing was applied before it' : `applied before it: ${applied.map((c) => `${c.kind}/${c.id}`).join(', ')}`;
      throw new ApiRefused(`${change.action} ${change.kind}/${change.id} refused at ${at}: ${error.message}; ${before}`, error);
    }
    applied.push(change);
  }
  if (command.json) command.printJson({ changes: changes.map(changeJson), applied: applied.map(changeJson) });
  else command.print(`Applied ${applied.length} change(s).`);
  return 0;
}

function changeJson(change: Change) {
  return { action: change.action, kind: change.kind, id: change.id, ...(change.fields ? { fields: change.fields } : {}) };
}

/** The admin PUT body schemas, from the broker's /openapi.json (served without a key). */
async function brokerSchemas(api: BrokerApi): Promise<PutSchemas> {
  const document = await api.get<unknown>('/openapi.json');
  try {
    return putSchemas(document);
  } catch (error) {
    throw new Unreachable(`the broker at ${api.url} cannot be applied to: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * What the broker holds of each kind the file mentions. An id the broker does not hold is asked for
 * by itself: the broker answers 404 for an id it would take and 400 for one it would refuse, so a bad
 * id is found, by the broker's own rule, before anything is written.
 */
async function currentObjects(api: BrokerApi, manifest: Manifest, file: string): Promise<Partial<Record<Kind, Body[]>>> {
  const current: Partial<Record<Kind, Body[]>> = {};
  for (const kind of KINDS) {
    const declared = manifest[kind];
    if (!declared) continue;
    const { path, key } = SECTIONS[kind];
    const items = (await api.get<{ items: Body[] }>(path)).items;
    const held = new Set(items.map((object) => String(object.id)));
    for (const id of declared.keys()) {
      if (held.has(id)) continue;
      try {
        items.push(await api.get<Body>(`${path}/${encodeURIComponent(id)}`));
      } catch (error) {
        if (!(error instanceof ApiRefused)) throw error;
        if (error.status === 404) continue;
        // A GET names nothing but the id: whatever it refuses as invalid (400, or 414 for a long one) is the id.
        if (error.status !== 400 && error.status !== 414) throw error;
        const rule = error.field === 'id' ? error.description.replace(/^id: /, '') : `is refused: ${error.description}`;
        throw new UsageError(`${file}: ${key}.${id}: the id ${rule}`, false);
      }
    }
    current[kind] = items;
  }
  return current;
}
