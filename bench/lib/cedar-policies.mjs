// Cedar policies of the shipped model for the benches (bench/cedar.mjs in process,
// bench/cedar-request.mjs through the broker): a mix of permits and forbids over params, subject,
// sensitivity and the clock, some scoped to other tools. A request for refund:create on
// BENCH_TOOL with params { amount <= 100, owner: <the task's subject> } is permitted by them all.

export const BENCH_TOOL = 'https://pay.acme.test';

/** The text of n policies, one string each. */
export function benchPolicyTexts(n) {
  const texts = [];
  for (let i = 0; i < n; i++) {
    switch (i % 5) {
      case 0:
        texts.push(
          `permit(principal, action == Action::"refund:create", resource) when { context.params has amount && context.params.amount <= ${100 + i} };`,
        );
        break;
      case 1:
        texts.push(`forbid(principal == Workload::"intern-${i}", action, resource) when { resource.sensitivity == "high" };`);
        break;
      case 2:
        texts.push(
          `permit(principal, action, resource) when { context.params has owner && context.params.owner == context.subject && context.denials_in_task < ${3 + i} };`,
        );
        break;
      case 3:
        texts.push(
          `forbid(principal, action, resource) when { context.now.weekday == 0 && context.now.hour < ${i % 24} && context.intent == "batch-${i}" };`,
        );
        break;
      case 4:
        texts.push(`forbid(principal, action, resource == Tool::"https://other-${i}.test");`);
        break;
    }
  }
  return texts;
}
