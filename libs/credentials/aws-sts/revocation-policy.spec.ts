import { describe, expect, it } from 'vitest';
import {
  BUCKET_MS,
  PRUNE_GRACE_MS,
  ROLE_INLINE_POLICY_LIMIT,
  addRevoked,
  emptyState,
  parseRevocationPolicy,
  planRevocationPolicy,
  policySize,
  pruneExpired,
  renderRevocationPolicy,
  revokedLeases,
} from './revocation-policy.js';

const NOW = Date.UTC(2026, 10, 27, 3, 0, 0);
const lease = (i: number) => `0196${String(i).padStart(4, '0')}-0000-7000-8000-${String(i).padStart(12, '0')}`;

describe('revocation policy', () => {
  it('lists revoked leases by the bucket of their source expiry, as a StringEquals deny on the lease tag', () => {
    const plan = planRevocationPolicy({
      current: undefined,
      revoked: [
        { lease: lease(1), expiresAt: NOW + 60_000 },
        { lease: lease(2), expiresAt: NOW + 61_000 },
      ],
      now: NOW,
    });
    expect(plan.cutoffApplied).toBe(false);
    expect(plan.document!.Statement).toHaveLength(1);
    const statement = plan.document!.Statement[0]!;
    expect(statement).toMatchObject({ Effect: 'Deny', Action: '*', Resource: '*' });
    expect(statement.Condition).toEqual({ StringEquals: { 'aws:PrincipalTag/tollgate-lease': [lease(1), lease(2)] } });
    const until = Number(/^TollgateRevokedUntil(\d+)$/.exec(statement.Sid)![1]) * 1000;
    expect(until).toBeGreaterThanOrEqual(NOW + 61_000);
    expect(until - (NOW + 61_000)).toBeLessThan(BUCKET_MS);
  });

  it('merges into what the role already holds, read back from IAM URL-encoded, without losing or doubling entries', () => {
    const first = planRevocationPolicy({ current: undefined, revoked: [{ lease: lease(1), expiresAt: NOW + 60_000 }], now: NOW });
    const stored = encodeURIComponent(JSON.stringify(first.document));
    const second = planRevocationPolicy({
      current: stored,
      revoked: [
        { lease: lease(2), expiresAt: NOW + 3_600_000 },
        { lease: lease(1), expiresAt: NOW + 60_000 },
      ],
      now: NOW + 1000,
    });
    expect(revokedLeases(parseRevocationPolicy(JSON.stringify(second.document)))).toEqual([lease(1), lease(2)]);
    expect(second.document!.Statement).toHaveLength(2);
  });

  it('prunes entries whose sessions STS has ended, after a grace for clock skew', () => {
    const state = addRevoked(emptyState(), [
      { lease: lease(1), expiresAt: NOW - 2 * BUCKET_MS },
      { lease: lease(2), expiresAt: NOW + 60_000 },
    ]);
    const { state: kept, pruned } = pruneExpired(state, NOW + PRUNE_GRACE_MS);
    expect(pruned).toBe(1);
    expect(revokedLeases(kept)).toEqual([lease(2)]);
    // Just inside the grace it stays.
    const bucket = Math.ceil((NOW + 60_000) / BUCKET_MS) * BUCKET_MS;
    expect(revokedLeases(pruneExpired(kept, bucket + PRUNE_GRACE_MS - 1).state)).toEqual([lease(2)]);
    expect(revokedLeases(pruneExpired(kept, bucket + PRUNE_GRACE_MS).state)).toEqual([]);
  });

  it('writes nothing for a session that has already ended, and an empty policy when everything is pruned', () => {
    const plan = planRevocationPolicy({
      current: undefined,
      revoked: [{ lease: lease(1), expiresAt: NOW - BUCKET_MS - PRUNE_GRACE_MS }],
      now: NOW,
    });
    expect(plan.document).toBeUndefined();
    expect(plan.pruned).toBe(1);
  });

  it('stays within the size limit while the leases fit, counting characters without whitespace', () => {
    const revoked = Array.from({ length: 200 }, (_, i) => ({ lease: lease(i), expiresAt: NOW + 900_000 + (i % 4) * BUCKET_MS }));
    const plan = planRevocationPolicy({ current: undefined, revoked, now: NOW });
    expect(plan.cutoffApplied).toBe(false);
    expect(plan.size).toBeLessThanOrEqual(ROLE_INLINE_POLICY_LIMIT);
    expect(plan.size).toBe(JSON.stringify(plan.document).length);
    expect(policySize(JSON.stringify(plan.document, null, 2))).toBe(plan.size);
    expect(revokedLeases(parseRevocationPolicy(JSON.stringify(plan.document)))).toHaveLength(200);
  });

  it('falls back to a role-wide aws:TokenIssueTime cut-off when the leases would overflow, covering every revoked session', () => {
    const revoked = Array.from({ length: 500 }, (_, i) => ({ lease: lease(i), expiresAt: NOW + 900_000 + (i % 8) * BUCKET_MS }));
    const plan = planRevocationPolicy({ current: undefined, revoked, now: NOW });
    expect(plan.cutoffApplied).toBe(true);
    expect(plan.size).toBeLessThanOrEqual(ROLE_INLINE_POLICY_LIMIT);
    expect(plan.document!.Statement).toHaveLength(1);
    const cutoff = plan.document!.Statement[0]!;
    expect(cutoff.Condition).toEqual({ DateLessThan: { 'aws:TokenIssueTime': '2026-11-27T03:00:00Z' } });
    const until = Number(/^TollgateCutoffUntil(\d+)$/.exec(cutoff.Sid)![1]) * 1000;
    expect(until).toBeGreaterThanOrEqual(Math.max(...revoked.map((r) => r.expiresAt)));
  });

  it('lists later revocations beside a cut-off and skips those the cut-off already denies', () => {
    const cut = planRevocationPolicy({
      current: undefined,
      revoked: [{ lease: lease(1), expiresAt: NOW + 900_000 }],
      now: NOW,
      forceCutoff: true,
    });
    const issued = new Map([
      [lease(2), NOW - 10_000],
      [lease(3), NOW + 60_000],
    ]);
    const next = planRevocationPolicy({
      current: JSON.stringify(cut.document),
      revoked: [
        { lease: lease(2), expiresAt: NOW + 800_000 },
        { lease: lease(3), expiresAt: NOW + 960_000 },
      ],
      now: NOW + 120_000,
      issuedAt: (id) => issued.get(id),
    });
    const state = parseRevocationPolicy(JSON.stringify(next.document));
    expect(state.cutoff?.issuedBefore).toBe(NOW);
    expect(revokedLeases(state)).toEqual([lease(3)]);
  });

  it('a second overflow moves the cut-off forward and keeps the later until', () => {
    const first = planRevocationPolicy({
      current: undefined,
      revoked: [{ lease: lease(1), expiresAt: NOW + 4 * BUCKET_MS }],
      now: NOW,
      forceCutoff: true,
    });
    const second = planRevocationPolicy({
      current: JSON.stringify(first.document),
      revoked: [{ lease: lease(2), expiresAt: NOW + BUCKET_MS }],
      now: NOW + 60_400,
      forceCutoff: true,
    });
    const state = parseRevocationPolicy(JSON.stringify(second.document));
    // Rounded up to the next whole second: TokenIssueTime has no milliseconds.
    expect(state.cutoff!.issuedBefore).toBe(NOW + 61_000);
    expect(state.cutoff!.until).toBe(NOW + 4 * BUCKET_MS);
    // The cut-off is pruned like any entry once its sessions have ended.
    expect(pruneExpired(state, NOW + 4 * BUCKET_MS + PRUNE_GRACE_MS).state.cutoff).toBeUndefined();
  });

  it('refuses a policy holding statements Tollgate did not write, rather than dropping them', () => {
    const foreign = JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'Hand', Effect: 'Deny', Action: 's3:*', Resource: '*' }] });
    expect(() => parseRevocationPolicy(foreign)).toThrow(/did not write/);
  });

  it('renders nothing for an empty state', () => {
    expect(renderRevocationPolicy(emptyState())).toBeUndefined();
  });
});
