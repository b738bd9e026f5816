import { describe, expect, it } from 'vitest';
import { humanClaim, isSpiffeIdIn, kubernetesClaimProblem, subjectProblem } from './issuer.js';

describe('isSpiffeIdIn', () => {
  it('accepts a SPIFFE ID with a path in the trust domain, and nothing that only looks like one', () => {
    expect(isSpiffeIdIn('spiffe://acme.test/ns/bots/sa/chatbot', 'acme.test')).toBe(true);
    expect(isSpiffeIdIn('spiffe://acme.test', 'acme.test')).toBe(false);
    expect(isSpiffeIdIn('spiffe://acme.test/', 'acme.test')).toBe(false);
    expect(isSpiffeIdIn('spiffe://acme.testing/x', 'acme.test')).toBe(false);
    expect(isSpiffeIdIn('spiffe://acme.test.evil/x', 'acme.test')).toBe(false);
    expect(isSpiffeIdIn('spiffe://evil.test/acme.test/x', 'acme.test')).toBe(false);
    expect(isSpiffeIdIn('spiffe://acme.test/a/../b', 'acme.test')).toBe(false);
    expect(isSpiffeIdIn('spiffe://acme.test/a//b', 'acme.test')).toBe(false);
    expect(isSpiffeIdIn('spiffe://acme.test/a?b', 'acme.test')).toBe(false);
    expect(isSpiffeIdIn('SPIFFE://acme.test/a', 'acme.test')).toBe(false);
    expect(isSpiffeIdIn(`spiffe://acme.test/${'a'.repeat(2040)}`, 'acme.test')).toBe(false);
  });
});

describe('subjectProblem', () => {
  it('holds spiffe subjects to the trust domain and kubernetes ones to the service-account form; oidc takes any', () => {
    const spiffe = { kind: 'spiffe', trustDomain: 'acme.test' } as const;
    const kubernetes = { kind: 'kubernetes', trustDomain: null } as const;
    expect(subjectProblem(spiffe, 'spiffe://acme.test/bot')).toBeUndefined();
    expect(subjectProblem(spiffe, 'spiffe://other.test/bot')).toMatch(/trust domain acme.test/);
    expect(subjectProblem(kubernetes, 'system:serviceaccount:bots:chatbot')).toBeUndefined();
    expect(subjectProblem(kubernetes, 'system:serviceaccount:bots:chat.bot')).toBeUndefined();
    for (const bad of [
      'system:serviceaccount:bots',
      'system:serviceaccount:Bots:chatbot',
      'system:serviceaccount:bots:chatbot:x',
      'system:node:n1',
      'chatbot',
    ]) {
      expect(subjectProblem(kubernetes, bad), bad).toMatch(/system:serviceaccount/);
    }
    expect(subjectProblem({ kind: 'oidc', trustDomain: null }, '1234567890')).toBeUndefined();
  });
});

describe('humanClaim', () => {
  it('refuses login claims from every issuer, profile claims from SPIFFE and Kubernetes only', () => {
    for (const kind of ['spiffe', 'kubernetes', 'oidc'] as const) {
      for (const claim of ['nonce', 'auth_time', 'at_hash', 'c_hash', 'acr', 'amr', 'sid'])
        expect(humanClaim(kind, { sub: 'x', [claim]: 1 }), `${kind} ${claim}`).toBe(claim);
      expect(humanClaim(kind, { sub: 'x', aud: 'y', exp: 1, iat: 1, jti: 'j' })).toBeUndefined();
    }
    expect(humanClaim('spiffe', { email: 'a@b.test' })).toBe('email');
    expect(humanClaim('kubernetes', { preferred_username: 'alice' })).toBe('preferred_username');
    expect(humanClaim('oidc', { email: 'robot@acme.iam.test', email_verified: true })).toBeUndefined();
  });
});

describe('kubernetesClaimProblem', () => {
  const claims = (k8s: unknown, sub = 'system:serviceaccount:bots:chatbot') => ({ sub, 'kubernetes.io': k8s });
  it('wants the kubernetes.io claim to name the same account as sub', () => {
    expect(kubernetesClaimProblem(claims({ namespace: 'bots', serviceaccount: { name: 'chatbot', uid: 'u' } }))).toBeUndefined();
    expect(kubernetesClaimProblem({ sub: 'system:serviceaccount:bots:chatbot' })).toMatch(/missing/);
    expect(kubernetesClaimProblem(claims(null))).toMatch(/missing/);
    expect(kubernetesClaimProblem(claims(['bots']))).toMatch(/missing/);
    expect(kubernetesClaimProblem(claims({ namespace: 'bots' }))).toMatch(/must name/);
    expect(kubernetesClaimProblem(claims({ namespace: 'bots', serviceaccount: 'chatbot' }))).toMatch(/must name/);
    expect(kubernetesClaimProblem(claims({ namespace: 'default', serviceaccount: { name: 'chatbot' } }))).toMatch(/does not agree/);
    expect(kubernetesClaimProblem(claims({ namespace: 'bots', serviceaccount: { name: 'admin' } }))).toMatch(/does not agree/);
    expect(
      kubernetesClaimProblem(claims({ namespace: 'bots:chatbot', serviceaccount: { name: '' } }, 'system:serviceaccount:bots:chatbot:')),
    ).toMatch(/does not agree|must name/);
  });
});
