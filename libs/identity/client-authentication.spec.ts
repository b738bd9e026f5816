import { describe, expect, it } from 'vitest';
import { InvalidClient } from '../errors/errors.js';
import { parseAuthorization } from './client-authentication.js';

const basic = (text: string) => `Basic ${Buffer.from(text, 'utf8').toString('base64')}`;

describe('parseAuthorization', () => {
  it('reads a Bearer token', () => {
    expect(parseAuthorization('Bearer abc.def')).toEqual({ scheme: 'Bearer', token: 'abc.def' });
    expect(parseAuthorization('bearer abc')).toEqual({ scheme: 'Bearer', token: 'abc' });
    expect(parseAuthorization(undefined)).toBeUndefined();
  });

  it('form-decodes both halves of Basic credentials (RFC 6749 §2.3.1)', () => {
    expect(parseAuthorization(basic('my+client:p%3Ass+w%25rd'))).toEqual({ scheme: 'Basic', clientId: 'my client', secret: 'p:ss w%rd' });
    expect(parseAuthorization(basic('id:a:b'))).toEqual({ scheme: 'Basic', clientId: 'id', secret: 'a:b' });
  });

  it('refuses malformed Basic credentials with a Basic challenge', () => {
    for (const header of ['Basic', 'Basic !!!', basic('no-colon'), basic(':secret'), basic('id:'), basic('id:%zz'), basic('%E0%A4%A:x')]) {
      let error: unknown;
      try {
        parseAuthorization(header);
      } catch (caught) {
        error = caught;
      }
      expect(error, header).toBeInstanceOf(InvalidClient);
      expect((error as InvalidClient).challenge, header).toBe('Basic');
    }
  });

  it('refuses other schemes', () => {
    expect(() => parseAuthorization('Digest abc')).toThrow(InvalidClient);
    expect(() => parseAuthorization('abc')).toThrow(InvalidClient);
  });
});
