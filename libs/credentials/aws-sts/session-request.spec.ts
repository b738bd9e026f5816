import { describe, expect, it } from 'vitest';
import {
  SessionPolicyTooLarge,
  buildSessionRequest,
  iamLiteral,
  renderSessionPolicy,
  sessionSeconds,
  stsName,
  tagValue,
} from './session-request.js';
import { awsStsSettings } from './settings.js';

const TEMPLATE = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Action: 's3:GetObject',
      Resource: 'arn:aws:s3:::crm-exports/${subject}/${resource}',
      Condition: { StringEquals: { 's3:ExistingObjectTag/task': '${task_id}' } },
    },
  ],
};
const LEASE = { id: '0196a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', issuedAt: 1_000_000, expiresAt: 1_000_000 + 120_000, resource: 'orders.csv' };
const TASK = { id: '0196a1b2-0000-7000-8000-000000000001', intent: 'order_status', subject: 'user-42' };

describe('AssumeRole request', () => {
  it('carries the lease, task and intent as session tags, the workload as SourceIdentity, and the lease in the session name', () => {
    const request = buildSessionRequest({
      roleArn: 'arn:aws:iam::123456789012:role/crm',
      sessionPolicy: TEMPLATE,
      externalId: 'ext-1',
      lease: LEASE,
      task: TASK,
      workloadId: 'spiffe://acme.test/chatbot',
    });
    expect(request.roleSessionName).toBe(`tg-${LEASE.id}`);
    expect(request.sourceIdentity).toBe('spiffe___acme.test_chatbot');
    expect(request.tags).toEqual([
      { key: 'tollgate-lease', value: LEASE.id },
      { key: 'tollgate-task', value: TASK.id },
      { key: 'tollgate-intent', value: 'order_status' },
    ]);
    expect(request.externalId).toBe('ext-1');
    expect(JSON.parse(request.policy).Statement[0].Resource).toBe('arn:aws:s3:::crm-exports/user-42/orders.csv');
    expect(JSON.parse(request.policy).Statement[0].Condition.StringEquals['s3:ExistingObjectTag/task']).toBe(TASK.id);
  });

  it('asks for at least STS minimum of 900 s, the lease TTL above it, and at most 12 h', () => {
    expect(sessionSeconds(0, 120_000)).toBe(900);
    expect(sessionSeconds(0, 900_000)).toBe(900);
    expect(sessionSeconds(0, 1_800_500)).toBe(1801);
    expect(sessionSeconds(0, 100_000_000)).toBe(43_200);
  });

  it('sanitises names to [\\w+=,.@-], 2 to 64 characters, keeping long ones apart by a hash', () => {
    expect(stsName('a')).toBe('a_');
    expect(stsName('chat bot/é')).toBe('chat_bot__');
    const long1 = stsName(`spiffe://acme.test/${'x'.repeat(80)}/one`);
    const long2 = stsName(`spiffe://acme.test/${'x'.repeat(80)}/two`);
    expect(long1).toHaveLength(64);
    expect(long1).not.toBe(long2);
    expect(long1).toMatch(/^[\w+=,.@-]{2,64}$/);
  });

  it('sanitises tag values to the tag character set and 256 characters', () => {
    expect(tagValue('order status;drop"x')).toBe('order status_drop_x');
    expect(tagValue('ünïcode:ok/=+-@_.')).toBe('ünïcode:ok/=+-@_.');
    expect([...tagValue('é'.repeat(300))]).toHaveLength(256);
  });

  it('substitutes values inside JSON strings: quotes and braces cannot break out of the statement', () => {
    const hostile = 'x", "Effect": "Allow", "Action": "*", "Resource": "*"}, {"a": "';
    const policy = JSON.parse(renderSessionPolicy(TEMPLATE, { resource: hostile, taskId: TASK.id, subject: 'u\n"}' }));
    expect(policy.Statement).toHaveLength(1);
    expect(policy.Statement[0].Action).toBe('s3:GetObject');
    expect(policy.Statement[0].Resource).toBe(`arn:aws:s3:::crm-exports/u\n"}/${hostile.replaceAll('*', '${*}')}`);
  });

  it('escapes IAM wildcards and policy variables in values, leaving the template own variables alone', () => {
    expect(iamLiteral('a*b?c${aws:username}')).toBe('a${*}b${?}c${$}{aws:username}');
    const template = {
      Statement: [{ Resource: 'arn:aws:s3:::b/${resource}', Condition: { StringEquals: { 'aws:userid': '${aws:userid}' } } }],
    };
    const policy = JSON.parse(renderSessionPolicy(template, { resource: '*', taskId: 't', subject: 's' }));
    expect(policy.Statement[0].Resource).toBe('arn:aws:s3:::b/${*}');
    expect(policy.Statement[0].Condition.StringEquals['aws:userid']).toBe('${aws:userid}');
  });

  it('writes characters beyond Latin-1 as \\u escapes (STS takes \\u0020-\\u00FF)', () => {
    const text = renderSessionPolicy(TEMPLATE, { resource: 'naïve-日本', taskId: 't', subject: 's' });
    expect(text).toMatch(/^[\u0020-\u00ff]*$/);
    expect(JSON.parse(text).Statement[0].Resource).toContain('naïve-日本');
  });

  it('refuses a rendered policy longer than 2,048 characters', () => {
    expect(() =>
      buildSessionRequest({
        roleArn: 'arn:aws:iam::123456789012:role/crm',
        sessionPolicy: TEMPLATE,
        lease: { ...LEASE, resource: 'r'.repeat(2100) },
        task: TASK,
        workloadId: 'w',
      }),
    ).toThrow(SessionPolicyTooLarge);
  });
});

describe('aws-sts boundary settings', () => {
  const valid = {
    kind: 'aws-sts',
    role_arn: 'arn:aws:iam::123456789012:role/tollgate/crm-reader',
    region: 'eu-central-1',
    session_policy: TEMPLATE,
  };

  it('accepts a role ARN, a region, a policy object or its JSON text, and an external id', () => {
    expect(awsStsSettings.safeParse(valid).success).toBe(true);
    expect(awsStsSettings.safeParse({ ...valid, session_policy: JSON.stringify(TEMPLATE), external_id: 'acme-7' }).success).toBe(true);
    expect(
      awsStsSettings.safeParse({ ...valid, role_arn: 'arn:aws-us-gov:iam::123456789012:role/x', region: 'us-gov-west-1' }).success,
    ).toBe(true);
  });

  it.each([
    ['role_arn', { role_arn: 'arn:aws:iam::12345:role/x' }],
    ['role_arn', { role_arn: 'arn:aws:iam::123456789012:user/x' }],
    ['region', { region: 'mars' }],
    ['session_policy', { session_policy: '{"Statement": [' }],
    ['session_policy', { session_policy: { Version: '2012-10-17' } }],
    ['session_policy', { session_policy: { Statement: [{ Resource: `${'a'.repeat(1100)}\${resource}` }] } }],
    ['external_id', { external_id: 'has space' }],
    ['extra', { extra: 1 }],
  ])('refuses a bad %s', (field, change) => {
    const result = awsStsSettings.safeParse({ ...valid, ...change });
    expect(result.success).toBe(false);
    const issue = result.error!.issues[0]!;
    expect(issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path[0]).toBe(field);
  });
});
