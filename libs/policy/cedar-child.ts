/**
 * A Cedar child process (started by cedar-process.ts): Cedar-WASM runs here, not in the broker, so
 * a trap (a WASM stack overflow leaves the instance broken for every later call) or a fatal V8
 * error kills only this process. After a trap it answers and exits: the broker starts a fresh one.
 */
import { approvalConditionProblems, CedarEvaluator, validatePolicyText } from './cedar.js';
import { LocalCedar, type DecideInput, type ReplayBatch } from './cedar-engine.js';
import type { CedarCall, CedarReply } from './cedar-process.js';
import type { ParamsSchemas } from './boundary.js';

const engine = new LocalCedar(new CedarEvaluator(Number(process.argv[2] ?? 1000)));

function run(call: CedarCall): unknown {
  switch (call.op) {
    case 'decide':
      return engine.decideNow(call.args[0] as DecideInput);
    case 'validate':
      return validatePolicyText(call.args[0] as string, call.args[1] as string[], call.args[2] as ParamsSchemas | null | undefined);
    case 'conditionProblems':
      return approvalConditionProblems(call.args[0] as string);
    case 'replay':
      return engine.replayNow(call.args[0] as ReplayBatch);
  }
}

function send(reply: CedarReply, then?: () => void): void {
  process.send!(reply, undefined, {}, () => then?.());
}

process.on('message', (call: CedarCall) => {
  try {
    send({ id: call.id, ok: true, value: run(call) });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // A trap: this WASM instance cannot be trusted again.
    const trap = error instanceof RangeError || (error instanceof Error && error.name === 'RuntimeError');
    send({ id: call.id, ok: false, trap, message }, trap ? () => process.exit(70) : undefined);
  }
});
// The broker is gone: so is its Cedar.
process.on('disconnect', () => process.exit(0));
send({ ready: true });
