import { createHash, randomBytes } from 'node:crypto';
import type { Sql } from '../db/database.js';
import { InvalidClient } from '../errors/errors.js';

export type AdminRole = 'admin' | 'reviewer';

/**
 * Admin API keys. Only SHA-256 hashes are stored (the keys are 256-bit random values, so a plain
 * hash is enough; there is nothing to brute-force). The bootstrap key from the environment is held
 * as a hash in memory too.
 */
export class AdminKeys {
  private constructor(private readonly hashes: Map<string, AdminRole>) {}

  /**
   * Loads stored key hashes. With no key in the environment and none stored, a key is generated,
   * its hash stored, and the key itself returned once for the operator (like Vault's dev root token).
   */
  static async load(sql: Sql, bootstrapKey: string | undefined): Promise<{ keys: AdminKeys; generated?: string }> {
    const { rows } = await sql.query<{ key_hash: string; role: AdminRole }>('SELECT key_hash, role FROM admin_keys');
    const hashes = new Map(rows.map((row) => [row.key_hash, row.role] as const));
    let generated: string | undefined;
    if (bootstrapKey !== undefined) {
      hashes.set(hashKey(bootstrapKey), 'admin');
    } else if (hashes.size === 0) {
      generated = `tgadm_${randomBytes(32).toString('base64url')}`;
      await sql.query(`INSERT INTO admin_keys (key_hash, role, label) VALUES ($1, 'admin', 'generated at first start')`, [
        hashKey(generated),
      ]);
      hashes.set(hashKey(generated), 'admin');
    }
    return generated === undefined ? { keys: new AdminKeys(hashes) } : { keys: new AdminKeys(hashes), generated };
  }

  /** The role a presented key grants; 401 invalid_client for anything else. */
  authenticate(presented: string | undefined): AdminRole {
    const role = presented ? this.hashes.get(hashKey(presented)) : undefined;
    if (!role) throw new InvalidClient('a valid admin key is required');
    return role;
  }
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
