import { loadConfig, type Config, type Env, type LoadOptions } from '../../libs/config/index.js';
import { credentialConfig, type CredentialSources } from '../../libs/credentials/index.js';

/** The broker's configuration: the kernel's, and each credential kind's own (Vault's login, …). */
export type BrokerConfig = Config & { credentialSources: CredentialSources };

/**
 * Reads the whole start-up configuration: the kernel settings (libs/config) and the credential
 * kinds' own, into one list of problems, so a bad deployment is reported in one pass.
 */
export function loadBrokerConfig(env: Env, options: LoadOptions = {}): BrokerConfig {
  return loadConfig(env, options, credentialConfig());
}
