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

  it('reads the whole header: the scheme first, one token, spaces around it only', () => {
    expect(parseAuthorization('Bearer  abc ')).toEqual({ scheme: 'Bearer', token: 'abc' });
    expect(parseAuthorization(`Basic  ${basic('id:s').slice(6)} `)).toEqual({ scheme: 'Basic', clientId: 'id', secret: 's' });
    for (const header of ['XBearer abc', 'Bearer abc def', 'NotBasic YTpi', `${basic('id:s')} extra`]) {
      expect(() => parseAuthorization(header), header).toThrow(InvalidClient);
    }
    // Only a Basic header gets the Basic challenge (RFC 7235): another scheme is simply unsupported.
    expect(() => parseAuthorization('XBasic YTpi')).toThrow(/unsupported Authorization scheme/);
    expect(() => parseAuthorization('Digest abc')).toThrow(/unsupported Authorization scheme/);
  });
});
