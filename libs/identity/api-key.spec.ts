import { describe, expect, it } from 'vitest';
import { InsufficientScope } from '../errors/errors.js';
import { API_KEY_ROLES, audienceScope, hashKey, newApiKeySecret, permits, requireAccess, type Access } from './api-key.js';

describe('API key roles', () => {
  it('grants each role exactly its accesses', () => {
    const table = Object.fromEntries(
      API_KEY_ROLES.map((role) => [
        role,
        (['read', 'write', 'introspect', 'revoke', 'events'] as Access[]).filter((access) => permits(role, access)),
      ]),
    );
    expect(table).toEqual({
      admin: ['read', 'write', 'introspect', 'revoke', 'events'],
      reviewer: ['read', 'introspect', 'events'],
      resource_server: ['introspect', 'revoke', 'events'],
    });
  });

  it('refuses with 403 insufficient_scope, naming the role', () => {
    expect(() => requireAccess({ role: 'reviewer' }, 'write')).toThrow(InsufficientScope);
    expect(() => requireAccess({ role: 'reviewer' }, 'write')).toThrow(/reviewer/);
    expect(() => requireAccess({ role: 'admin' }, 'write')).not.toThrow();
  });

  it('holds only a resource server to its audience', () => {
    expect(audienceScope({ role: 'resource_server', audience: 'https://crm.test' })).toBe('https://crm.test');
    expect(audienceScope({ role: 'admin', audience: null })).toBeUndefined();
    expect(audienceScope({ role: 'reviewer', audience: null })).toBeUndefined();
  });

  it('makes 256-bit keys with a prefix per role, stored as their SHA-256', () => {
    expect(newApiKeySecret('admin')).toMatch(/^tgadm_[A-Za-z0-9_-]{43}$/);
    expect(newApiKeySecret('reviewer')).toMatch(/^tgrev_[A-Za-z0-9_-]{43}$/);
    expect(newApiKeySecret('resource_server')).toMatch(/^tgrs_[A-Za-z0-9_-]{43}$/);
    expect(newApiKeySecret('admin')).not.toBe(newApiKeySecret('admin'));
    expect(hashKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
