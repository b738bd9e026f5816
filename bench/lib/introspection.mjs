// The introspection scenarios' moving parts, shared by bench/run.mjs (introspection, complete_1000)
// and bench/introspection.mjs (the same two, base and new alternately): the big lease table, the
// real tokens introspected over it, and the rounds of completing a task that holds 1,000 leases.
import { checkSeed, seedLeases, seedTasks, skipTriggers } from './database.mjs';
import { sleep } from './procs.mjs';
import { mapLimit } from './tollgate.mjs';

/**
 * Seeds `rows` leases (with decisions and 1,000 tasks) by SQL: 40% active, 30% revoked, 30%
 * expired (see seedLeases). Returns the table's row count and whether the FK triggers were skipped.
 */
export async function seedIntrospectionTable(sql, { workloadId, rows }) {
  const version = (await sql.query(`SELECT max(version)::int AS v FROM boundaries WHERE id = 'crm-orders'`)).rows[0].v;
  const fast = await skipTriggers(sql);
  await seedTasks(sql, { tag: 'introspection', workloadId, count: 1000 });
  await seedLeases(sql, {
    tag: 'introspection',
    taskCount: 1000,
    workloadId,
    boundaryId: 'crm-orders',
    boundaryVersion: version,
    count: rows,
    mode: 'mixed',
  });
  if (fast) await sql.query('SET session_replication_role = DEFAULT');
  await checkSeed(sql);
  await sql.query('ANALYZE tasks, decisions, leases');
  return { rows: (await sql.query('SELECT count(*)::int AS n FROM leases')).rows[0].n, fast };
}

/**
 * `count` real tokens issued through the API on ten tasks, two of which are then completed, so a
 * fifth are revoked; active and revoked interleaved: [{token, active}].
 */
export async function introspectionTokens(broker, bots, count) {
  const perTask = count / 10;
  const groups = [];
  for (let t = 0; t < 10; t++) {
    const bot = bots[t % bots.length];
    const task = await broker.must(201, 'POST', '/v1/tasks', {
      token: await bot.token(),
      json: { intent: 'order_status', subject: `introspected-${t}`, ttl: 3600 },
    });
    const issued = await mapLimit(Array.from({ length: perTask }), 20, (_, i) => broker.issue(task.task_id, bot, `order/${i}`));
    groups.push({ taskId: task.task_id, bot, tokens: issued.map((x) => x.token), active: t >= 2 });
  }
  for (const group of groups.filter((g) => !g.active)) {
    await broker.must(200, 'POST', `/v1/tasks/${group.taskId}/complete`, { token: await group.bot.token() });
  }
  const tokens = [];
  for (let i = 0; i < perTask; i++) for (const group of groups) tokens.push({ token: group.tokens[i], active: group.active });
  return tokens;
}

/**
 * One round of complete_1000: a task holding 1,000 active leases, completed while PROBES probes
 * introspect its tokens back to back (round robin over the 1,000, from before the complete is sent;
 * few, so that they time the moment without loading the broker that answers the complete). The task's leases are revoked in one transaction, so they turn inactive together, at its
 * commit: the first probe answered inactive marks the moment (an upper bound: that probe's answer
 * arrived after the commit). Every probe answer sent after that moment must be inactive, and every
 * one of the 1,000 tokens is then asked once more and must answer inactive on that first ask (the
 * check, 50 at a time; its time is `verify_ms`, bounded by introspection's throughput).
 * Returns {ms, visible_ms, last_active_sent_ms, complete_ms, verify_ms, passes, probes, revoked,
 * pending, late_active}: `ms` is until the client has seen all 1,000 inactive (the old measure);
 * `visible_ms` is until all 1,000 introspect inactive.
 */
/** Introspections in flight at once while a task completes: each answer dates the revocation within its round trip. */
export const PROBES = 2;

export async function completeRound(broker, bot, subject) {
  const task = await broker.must(201, 'POST', '/v1/tasks', {
    token: await bot.token(),
    json: { intent: 'order_status', subject, ttl: 3600 },
  });
  const issued = await mapLimit(Array.from({ length: 1000 }), 25, (_, i) => broker.issue(task.task_id, bot, `order/${i}`));
  // Every token introspects active before (this also warms the connection pool used after).
  const before = await mapLimit(issued, 50, (x) => broker.introspectFast(x.token));
  if (before.some((answer) => answer.active !== true)) throw new Error('complete_1000: a freshly issued token introspects inactive');
  const token = await bot.token();
  const tokens = issued.map((x) => x.token);

  // The probes: each records {sent, received, active} relative to t0 (set when complete is sent).
  const answers = [];
  let probing = true;
  let next = 0;
  let t0 = Number.POSITIVE_INFINITY;
  const probes = Array.from({ length: PROBES }, async () => {
    while (probing) {
      const sent = performance.now();
      const answer = await broker.introspectFast(tokens[next++ % tokens.length]);
      answers.push({ sent, received: performance.now(), active: answer.active === true });
    }
  });
  await sleep(100); // the probes are in flight, as they would be on a busy broker

  t0 = performance.now();
  const done = await broker.must(200, 'POST', `/v1/tasks/${task.task_id}/complete`, { token });
  const t1 = performance.now();
  // Keep probing until one answer says inactive (or 10 s pass), then a little longer.
  while (!answers.some((a) => a.sent >= t0 && !a.active) && performance.now() - t1 < 10_000) await sleep(1);
  await sleep(20);
  probing = false;
  await Promise.all(probes);

  const firstInactive = Math.min(...answers.filter((a) => !a.active).map((a) => a.received));
  const lateActive = answers.filter((a) => a.active && a.sent >= firstInactive).length;
  const lastActiveSent = Math.max(t0, ...answers.filter((a) => a.active).map((a) => a.sent));

  // The check: every token, asked again, answers inactive on its first ask.
  const t2 = performance.now();
  let pending = tokens;
  let passes = 0;
  while (pending.length > 0 && performance.now() - t2 < 10_000) {
    passes++;
    const checked = await mapLimit(pending, 50, (t) => broker.introspectFast(t));
    pending = pending.filter((_, i) => checked[i].active !== false);
  }
  const t3 = performance.now();
  return {
    ms: t1 - t0 + (t3 - t2),
    visible_ms: Math.min(firstInactive, t1) - t0,
    last_active_sent_ms: lastActiveSent - t0,
    complete_ms: t1 - t0,
    verify_ms: t3 - t2,
    passes,
    probes: answers.filter((a) => a.sent >= t0).length,
    revoked: done.revoked_leases?.length,
    pending: pending.length,
    late_active: lateActive,
  };
}
