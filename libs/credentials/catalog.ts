import { z } from 'zod';
import type { ConfigPart, Env } from '../config/index.js';
import { awsStsSettings } from './aws-sts/settings.js';
import { awsStsCredential } from './aws-sts/sts-provider.js';
import { jwtCredential, jwtSettings } from './jwt/jwt-provider.js';
import { vaultCredential, vaultSettings } from './vault/vault-provider.js';
import { CredentialProviders, type CredentialKind, type ProviderContext } from './provider.js';

/**
 * Every credential kind Tollgate can issue. Adding a kind is one folder under libs/credentials
 * (settings schema + provider, and its configuration if its source needs one) and its two entries
 * here: its settings in the union (checked when a boundary is written: a bad field is a 400 naming
 * it) and its entry in the list (configured and built at start).
 */
export const credentialSettings = z.discriminatedUnion('kind', [jwtSettings, vaultSettings, awsStsSettings]);

/** A boundary's `credential`, as checked when it was written. */
export type BoundaryCredential = z.infer<typeof credentialSettings>;

export const CREDENTIAL_KINDS: readonly CredentialKind[] = [jwtCredential, vaultCredential, awsStsCredential];

/** Each kind's own configuration, by kind, as its `configure` read it at start. */
export type CredentialSources = Readonly<Record<string, unknown>>;

/**
 * The kinds' configuration as a part of the start-up configuration (libs/config): read with the
 * rest, so every problem of a deployment is reported at once, and their TOLLGATE_* variables known.
 */
export function credentialConfig(
  kinds: readonly CredentialKind[] = CREDENTIAL_KINDS,
): ConfigPart<{ credentialSources: CredentialSources }> {
  return {
    variables: kinds.flatMap((kind) => kind.variables ?? []),
    read: (env: Env, problems: string[]) => {
      const credentialSources: Record<string, unknown> = {};
      for (const kind of kinds) if (kind.configure) credentialSources[kind.kind] = kind.configure(env, problems);
      return { credentialSources };
    },
  };
}

/** The providers of a running broker, one per kind in the catalog, each given its own configuration. */
export function createProviders(
  context: ProviderContext,
  sources: CredentialSources,
  kinds: readonly CredentialKind[] = CREDENTIAL_KINDS,
): CredentialProviders {
  const providers = new CredentialProviders();
  for (const kind of kinds) providers.register(kind.create(context, sources[kind.kind]));
  return providers;
}
