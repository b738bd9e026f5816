import { readFileSync } from 'node:fs';
import { KINDS, SCHEMAS, parseManifest, type Body, type Kind } from '../apply/manifest.js';
import { describeChange, plan, type Change } from '../apply/plan.js';
import { Command, type Io } from '../context.js';
import { ApiRefused, UsageError } from '../errors.js';

/**
 * `tollgate apply -f tollgate.yaml [--dry-run]`: shows the plan, then applies it in order. Stops at
 * the first refusal and says what was applied before it.
 */
export async function apply(io: Io, args: string[]): Promise<number> {
  const command = new Command('apply', io, args, { file: { type: 'string', short: 'f' }, 'dry-run': { type: 'boolean' } });
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

  const current: Partial<Record<Kind, Body[]>> = {};
  for (const kind of KINDS) {
    if (manifest[kind]) current[kind] = (await api.get<{ items: Body[] }>(SCHEMAS[kind].path)).items;
  }
  const issuer = manifest.issuer ? (await api.get<{ issuer: string }>('/.well-known/oauth-authorization-server')).issuer : api.url;
  const changes = plan(manifest, current, { issuer });
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
    const path = `${SCHEMAS[change.kind].path}/${encodeURIComponent(change.id)}`;
    try {
      if (change.action === 'disable') await api.delete(path);
      else await api.put(path, change.body);
    } catch (error) {
      if (!(error instanceof ApiRefused)) throw error;
      const at = `${SCHEMAS[change.kind].key}.${change.id}${error.field && error.field !== 'body' ? `.${error.field}` : ''}`;
      if (command.json) command.printJson({ changes: changes.map(changeJson), applied: applied.map(changeJson), failed: { ...changeJson(change), error: error.error, message: error.message } });
      const before = applied.length === 0 ? 'nothing was applied before it' : `applied before it: ${applied.map((c) => `${c.kind}/${c.id}`).join(', ')}`;
      throw new ApiRefused(`${change.action} ${change.kind}/${change.id} refused at ${at}: ${error.message}; ${before}`, error.status, error.error, error.field);
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
