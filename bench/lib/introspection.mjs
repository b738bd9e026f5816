// The introspection scenarios' moving parts, shared by bench/run.mjs (introspection, complete_1000)
// and bench/introspection.mjs (the same two, base and new alternately): the big lease table, the
// real tokens introspected over it, and the rounds of completing a task that holds 1,000 leases.
import { checkSeed, seedLeases, seedTasks, skipTriggers } from './database.mjs';
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
 * One round of complete_1000: a task holding 1,000 active leases; the time from sending
 * POST /v1/tasks/{id}/complete until every one of its 1,000 tokens has been seen inactive by
 * introspection (50 at a time, right after the complete answers; tokens still active are asked
 * again until a 10 s bound). Returns {ms, complete_ms, verify_ms, passes, revoked, pending}.
 */
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

  const t0 = performance.now();
  const done = await broker.must(200, 'POST', `/v1/tasks/${task.task_id}/complete`, { token });
  const t1 = performance.now();
  let pending = issued.map((x) => x.token);
  let passes = 0;
  while (pending.length > 0 && performance.now() - t1 < 10_000) {
    passes++;
    const answers = await mapLimit(pending, 50, (t) => broker.introspectFast(t));
    pending = pending.filter((_, i) => answers[i].active !== false);
  }
  const t2 = performance.now();
  return {
    ms: t2 - t0,
    complete_ms: t1 - t0,
    verify_ms: t2 - t1,
    passes,
    revoked: done.revoked_leases?.length,
    pending: pending.length,
  };
}
