// Cedar decision latency as the credential hot path sees it: the compiled evaluator
// (dist/libs/policy/cedar.js: buildCedarContext + CedarEvaluator.evaluate, i.e.
// statefulIsAuthorized on a set preparsed once), with 10 and 100 policies of the shipped model.
// Usage: npm run build && node bench/cedar.mjs [requests per run] [runs]
import { buildCedarContext, CedarEvaluator } from '../dist/libs/policy/cedar.js';
import { BENCH_TOOL, benchPolicyTexts } from './lib/cedar-policies.mjs';

const requests = Number(process.argv[2] ?? 5000);
const runs = Number(process.argv[3] ?? 3);
const TOOL = BENCH_TOOL;

/** n policies as one global policy set. */
function policies(n) {
  return [{ id: 'bench', version: 1, text: benchPolicyTexts(n).join('\n'), scope: 'global' }];
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

for (const n of [10, 100]) {
  const evaluator = new CedarEvaluator();
  const set = evaluator.compile(`bench-${n}`, policies(n), TOOL);
  const medians = [];
  const p99s = [];
  for (let run = 0; run < runs; run++) {
    const samples = new Float64Array(requests);
    for (let i = 0; i < requests; i++) {
      const started = performance.now();
      const request = buildCedarContext({
        workloadId: 'chatbot',
        task: { intent: 'refund_request', subject: 'user-42', ageSeconds: 30, denials: i % 3 },
        boundary: { id: 'payments', tool: TOOL, sensitivity: 'medium', actions: ['refund:create'], intents: ['refund_request'] },
        action: 'refund:create',
        resource: `order/${i}`,
        params: { amount: i % 200, owner: 'user-42' },
        purpose: null,
        approved: false,
        at: Date.now(),
      });
      evaluator.evaluate(set, request);
      samples[i] = performance.now() - started;
    }
    samples.sort();
    medians.push(percentile(samples, 0.5));
    p99s.push(percentile(samples, 0.99));
  }
  const med = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
  console.log(
    `${n} policies (${Object.keys(set.policies).length} applicable to the tool): median ${(med(medians) * 1000).toFixed(0)} µs, p99 ${(med(p99s) * 1000).toFixed(0)} µs ` +
      `(medians of ${runs} runs of ${requests}; per run median ${medians.map((m) => (m * 1000).toFixed(0)).join('/')} µs)`,
  );
}
