import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../config/config.js';
import { ConfigurationError } from '../errors/errors.js';
import { credentialConfig, createProviders } from './catalog.js';
import type { CredentialKind, CredentialProvider, ProviderContext } from './provider.js';

const exampleSettings = z.strictObject({ kind: z.literal('example') });

/** A kind whose source needs an address (EXAMPLE_ADDR) and reads one Tollgate-prefixed variable. */
const example: CredentialKind<z.infer<typeof exampleSettings>, { addr: string } | undefined> = {
  kind: 'example',
  settings: exampleSettings,
  variables: ['TOLLGATE_EXAMPLE_MODE'],
  configure(env, problems) {
    if (env.EXAMPLE_ADDR === undefined) return undefined;
    if (!env.EXAMPLE_ADDR.startsWith('https://')) problems.push('EXAMPLE_ADDR: must be an https URL');
    return { addr: env.EXAMPLE_ADDR };
  },
  create: (_context, config) => ({
    kind: 'example',
    external: true,
    issue: async () => ({ credential: { kind: 'example', addr: config?.addr } }),
    revoke: async () => {},
  }),
};

const plain: CredentialKind<{ kind: 'plain' }> = {
  kind: 'plain',
  settings: z.strictObject({ kind: z.literal('plain') }),
  create: (): CredentialProvider<{ kind: 'plain' }> => ({
    kind: 'plain',
    external: false,
    issue: async () => ({ credential: { kind: 'plain' } }),
    revoke: async () => {},
  }),
};

describe('the catalog at start', () => {
  it("reads each kind's own variables with the rest of the configuration, reporting every problem at once", () => {
    const part = credentialConfig([example, plain]);
    const config = loadConfig({ EXAMPLE_ADDR: 'https://source', TOLLGATE_EXAMPLE_MODE: 'x' }, {}, part);
    expect(config.credentialSources).toEqual({ example: { addr: 'https://source' } });

    let error: unknown;
    try {
      loadConfig({ EXAMPLE_ADDR: 'http://source', TOLLGATE_LOG_LEVEL: 'chatty', TOLLGATE_EXAMPLE_MODEL: 'typo' }, {}, part);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'EXAMPLE_ADDR',
      'TOLLGATE_EXAMPLE_MODEL',
      'TOLLGATE_LOG_LEVEL',
    ]);
  });

  it('builds one provider per kind, each from its own configuration', async () => {
    const providers = createProviders({} as ProviderContext, { example: { addr: 'https://source' } }, [example, plain]);
    expect(providers.isExternal('example')).toBe(true);
    expect(providers.isExternal('plain')).toBe(false);
    const issued = await providers.get('example').issue({} as Parameters<CredentialProvider['issue']>[0]);
    expect(issued.credential).toEqual({ kind: 'example', addr: 'https://source' });
  });
});
