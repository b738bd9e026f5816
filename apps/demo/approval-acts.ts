import { AccessDenied, ApprovalPending, MCP_REFUSAL_PREFIX } from '../../libs/sdk/index.js';
import { rawToolCall } from './bot.js';
import { list, openConversation, type ApprovalView, type Cast } from './cast.js';
import { fingerprint } from './fingerprint.js';
import { shown } from './transcript.js';

/** 5. A refund over the approval rule's limit waits for a reviewer; the approval works exactly once. */
export async function tellApproval(cast: Cast): Promise<void> {
  const { transcript, crm, reviewer } = cast;
  transcript.heading('5. A large refund waits for a reviewer');
  transcript.say('user', 'Order 1002, the espresso machine, arrived broken too. I want my 349 EUR back.');
  const { task, tools } = await openConversation(cast, 'refund', 'opens a new task');
  const args = { order_id: '1002', amount: 349 };
  const refundsBefore = crm.refunds.length;
  const waiting = await tools.call('refund_order', args);
  const approvalId = /approval ([0-9a-f-]{36})/.exec(waiting.text)?.[1];
  transcript.expect(
    waiting.isError && waiting.text.startsWith(MCP_REFUSAL_PREFIX) && approvalId !== undefined,
    "the tool error to say the call awaits a reviewer's approval, naming it",
  );
  if (!approvalId) throw new Error('Tollgate did not hold the 349 EUR refund for an approval');
  transcript.say('bot', "A refund this large needs a colleague's approval. One moment, please.");

  await review(cast, task.id, approvalId, 'photo of the broken machine checked');

  transcript.say('bot', 'calls the very same tool with the very same arguments again (mcpFetch repeats the request with the approval)');
  const refund = await tools.call('refund_order', args);
  transcript.expect(!refund.isError && crm.refunds.length === refundsBefore + 1, 'the CRM to issue the approved refund');
  transcript.say('bot', `Approved and done: ${refund.text}`);
  const leaseId = task.permits.at(-1)?.leaseId;
  const used = (await reviewer('GET', `/v1/approvals/${approvalId}`)) as ApprovalView;
  transcript.say('Tollgate', `approval ${used.approval_id} is now ${used.status} (by lease ${String(used.lease_id)})`);
  transcript.expect(used.status === 'used' && used.lease_id === leaseId, 'the approval to be used up by that lease');

  transcript.say('bot', 'asks again with the same approval (a second refund on one approval)');
  const request = { boundary: 'crm-refunds', action: 'refund_order', resource: 'order/1002', params: args };
  const reused = await task.credential(request, { approvalId }).then(
    () => new Error('Tollgate permitted a second refund on one approval'),
    (error: unknown) => error,
  );
  if (!(reused instanceof AccessDenied)) throw reused;
  transcript.expect(reused.reasons.includes('approval_used'), 'Tollgate to refuse the used approval (approval_used)');
  transcript.expect(crm.refunds.length === refundsBefore + 1, 'exactly one refund of order 1002 to reach the CRM');
  const completed = await task.complete();
  transcript.say('bot', `completes the task (${completed.state})`);
}

/**
 * 6. A reviewer approves a refund of 150 EUR; a bot whose code was tampered with presents that very
 * credential with 899 EUR in its own tools/call. The credential names the call's params digest: the
 * CRM's verifier refuses it (403 insufficient_scope) and no refund happens.
 */
export async function tellTampering(cast: Cast): Promise<void> {
  const { transcript, crm } = cast;
  transcript.heading('6. A tampered bot changes the approved amount');
  transcript.say('user', "Order 1003, the laptop: the lid is scratched. I'll keep it for 150 EUR back.");
  const { task } = await openConversation(cast, 'refund', 'opens a new task');
  const approved = { order_id: '1003', amount: 150 };
  const request = { boundary: 'crm-refunds', action: 'refund_order', resource: 'order/1003', params: approved };
  const pending = await task.credential(request).then(
    () => new Error('Tollgate permitted the 150 EUR refund without an approval'),
    (error: unknown) => error,
  );
  if (!(pending instanceof ApprovalPending)) throw pending;
  await review(cast, task.id, pending.approvalId, 'partial refund agreed with the customer');
  const credential = await task.credential(request, { approvalId: pending.approvalId });

  const tampered = { ...approved, amount: 899 };
  const token = credential.accessToken ?? '';
  transcript.say('tampered', `sends its own tools/call refund_order ${shown(tampered)} with the approved token ${fingerprint(token)}`);
  const callsBefore = crm.calls.length;
  const refundsBefore = crm.refunds.length;
  const answer = await rawToolCall(crm.url, token, 'refund_order', tampered);
  transcript.expect(
    answer.status === 403 && answer.text === 'insufficient_scope' && /params/.test(answer.challenge ?? ''),
    'the CRM to refuse the changed amount (403 insufficient_scope: the params digest does not match)',
  );
  const call = crm.calls.at(-1);
  transcript.expect(
    crm.calls.length === callsBefore + 1 && call?.status === 403 && !call.executed && crm.refunds.length === refundsBefore,
    'the CRM to have seen the call and issued no refund',
  );
  transcript.say('tool', `(refunds issued for order 1003: ${crm.refunds.filter((refund) => refund.order === '1003').length})`);
  const completed = await task.complete();
  transcript.say('bot', `completes the task (${completed.state}); leases revoked: ${list(completed.revokedLeases)}`);
}

/** The reviewer finds the waiting approval in the queue and approves it. */
async function review(cast: Cast, taskId: string, approvalId: string, reason: string): Promise<void> {
  const { transcript, reviewer } = cast;
  const queue = (await reviewer('GET', `/v1/approvals?status=pending&task=${taskId}`)) as { items: ApprovalView[] };
  const waiting = queue.items.find((item) => item.approval_id === approvalId);
  transcript.expect(waiting !== undefined, "the approval to wait in the reviewers' queue");
  if (waiting) {
    transcript.say(
      'reviewer',
      `queue: ${waiting.workload_id} asks ${waiting.action} on ${waiting.resource}, params ${JSON.stringify(waiting.params)}, intent ${waiting.intent}`,
    );
  }
  const approved = (await reviewer('POST', `/v1/approvals/${approvalId}/approve`, { reason })) as ApprovalView;
  transcript.say('reviewer', `approves: "${reason}"`);
  transcript.say('Tollgate', `approval ${approved.approval_id}: ${approved.status} by ${approved.decided_by}`);
  transcript.expect(approved.status === 'approved', "the reviewer's approval to be recorded");
}
