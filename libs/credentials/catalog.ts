import { z } from 'zod';
import { awsStsSettings } from './aws-sts/settings.js';
import { awsStsCredential } from './aws-sts/sts-provider.js';
import { jwtCredential, jwtSettings } from './jwt/jwt-provider.js';
import { vaultCredential, vaultSettings } from './vault/vault-provider.js';
import { CredentialProviders, type CredentialKind, type ProviderContext } from './provider.js';

/**
 * Every credential kind Tollgate can issue. Adding a kind is one folder under libs/credentials
 * (settings schema + provider) and its two entries here: its settings in the union (checked when a
 * boundary is written: a bad field is a 400 naming it) and its entry in the list (built at start).
 */
export const credentialSettings = z.discriminatedUnion('kind', [jwtSettings, vaultSettings, awsStsSettings]);

/** A boundary's `credential`, as checked when it was written. */
export type BoundaryCredential = z.infer<typeof credentialSettings>;

export const CREDENTIAL_KINDS: readonly CredentialKind[] = [jwtCredential, vaultCredential, awsStsCredential];

/** The providers of a running broker, one per kind in the catalog. */
export function createProviders(context: ProviderContext, kinds: readonly CredentialKind[] = CREDENTIAL_KINDS): CredentialProviders {
  const providers = new CredentialProviders();
  for (const kind of kinds) providers.register(kind.create(context));
  return providers;
}
