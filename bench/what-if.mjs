// What-if throughput without the database: the compiled replay path (buildCedarContext +
// CedarEvaluator.evaluate on one preparsed set) over 10,000 decision rows shaped like the
// decisions table's. The e2e test (test/what-if.e2e.spec.ts) reports the same through HTTP and SQL.
// Usage: npm run build && node bench/what-if.mjs [rows] [runs]
import { buildCedarContext, CedarEvaluator } from '../dist/libs/policy/cedar.js';

const rows = Number(process.argv[2] ?? 10_000);
const runs = Number(process.argv[3] ?? 3);
const evaluator = new CedarEvaluator();
const set = evaluator.compile(
  'what-if',
  [
    {
      id: 'proposal',
      version: 0,
      text: 'permit(principal, action == Action::"refund:create", resource) when { context.params has amount && context.params.amount <= 100 };',
      scope: 'global',
    },
    {
      id: 'guard',
      version: 3,
      text: 'forbid(principal == Workload::"intern-bot", action, resource) when { resource.sensitivity == "high" };',
      scope: 'global',
    },
  ],
  'https://pay.acme.test',
);
const recorded = Array.from({ length: rows }, (_, i) => ({
  id: String(i),
  outcome: i % 3 === 0 ? 'deny' : 'permit',
  params: { amount: i % 200 },
  at: Date.now() - i * 1000,
}));
const rates = [];
for (let run = 0; run < runs; run++) {
  let flips = 0;
  const started = performance.now();
  for (const row of recorded) {
    const allowed =
      evaluator.evaluate(
        set,
        buildCedarContext({
          workloadId: 'chatbot',
          task: { intent: 'refund_request', subject: 'user-42', ageSeconds: 60, denials: 0 },
          boundary: {
            id: 'refunds',
            tool: 'https://pay.acme.test',
            sensitivity: 'low',
            actions: ['refund:create'],
            intents: ['refund_request'],
          },
          action: 'refund:create',
          resource: `order/${row.id}`,
          params: row.params,
          purpose: null,
          approved: false,
          at: row.at,
        }),
      ).decision === 'allow';
    if ((row.outcome === 'permit') !== allowed) flips++;
  }
  rates.push(Math.round(rows / ((performance.now() - started) / 1000)));
  if (run === 0) console.log(`flips: ${flips}`);
}
rates.sort((a, b) => a - b);
console.log(`what-if replay: ${rows} rows, ${rates.join(' / ')} decisions/s, median ${rates[Math.floor(runs / 2)]}`);
