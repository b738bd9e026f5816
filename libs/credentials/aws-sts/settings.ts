import { z } from 'zod';
import { SESSION_POLICY_MAX_CHARS, renderSessionPolicy } from './session-request.js';

/**
 * A boundary's `aws-sts` credential settings, checked when the boundary is written: a role ARN, the
 * STS region, the session policy template and an optional external id. The template is checked by
 * rendering it with the longest values a credential request may carry, so a boundary that is
 * accepted never yields a policy STS refuses for its plaintext length.
 */
export const ROLE_ARN = /^arn:aws(?:-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f|-eusc)?:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;
export const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;

/** Samples the template is rendered with at write time: the longest a request can send. */
export const WORST_CASE_SAMPLE = {
  resource: 'r'.repeat(1024),
  taskId: '00000000-0000-7000-8000-000000000000',
  subject: 's'.repeat(256),
};

export const awsStsSettings = z
  .strictObject({
    kind: z.literal('aws-sts'),
    role_arn: z.string().max(2048).regex(ROLE_ARN, 'must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)'),
    region: z.string().max(32).regex(REGION, 'must be an AWS region such as us-east-1'),
    /** An IAM policy document (object) or its JSON text, with ${resource}, ${task_id} and ${subject} in its strings. */
    session_policy: z.union([
      z
        .string()
        .min(2)
        .max(SESSION_POLICY_MAX_CHARS * 4),
      z.record(z.string(), z.unknown()),
    ]),
    external_id: z
      .string()
      .min(2, 'must be 2 to 1224 characters')
      .max(1224, 'must be 2 to 1224 characters')
      .regex(/^[\w+=,.@:/-]+$/, 'must match [\\w+=,.@:/-]+')
      .optional(),
  })
  .superRefine((settings, ctx) => {
    let template: unknown;
    try {
      template = typeof settings.session_policy === 'string' ? JSON.parse(settings.session_policy) : settings.session_policy;
    } catch {
      ctx.addIssue({ code: 'custom', path: ['session_policy'], message: 'must be a JSON policy document' });
      return;
    }
    if (typeof template !== 'object' || template === null || Array.isArray(template) || !('Statement' in template)) {
      ctx.addIssue({ code: 'custom', path: ['session_policy'], message: 'must be a policy document with a Statement' });
      return;
    }
    const rendered = renderSessionPolicy(template, WORST_CASE_SAMPLE);
    if (rendered.length > SESSION_POLICY_MAX_CHARS) {
      ctx.addIssue({
        code: 'custom',
        path: ['session_policy'],
        message: `renders to ${rendered.length} characters with the longest resource and subject a request may send; STS accepts at most ${SESSION_POLICY_MAX_CHARS}`,
      });
    }
  });

export type AwsStsSettings = z.infer<typeof awsStsSettings>;

/** The template as a JSON value, whichever form the boundary stored. */
export function sessionPolicyTemplate(settings: Pick<AwsStsSettings, 'session_policy'>): unknown {
  return typeof settings.session_policy === 'string' ? JSON.parse(settings.session_policy) : settings.session_policy;
}
