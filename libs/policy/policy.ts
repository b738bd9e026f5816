/** A global Cedar policy set, at one version: it applies to every boundary while enabled. */
export interface GlobalPolicy {
  id: string;
  version: number;
  /** Cedar text, validated against tollgate.cedarschema when written. */
  policy: string;
  description: string | null;
  enabled: boolean;
  createdAt: Date;
}

export type GlobalPolicyDefinition = Pick<GlobalPolicy, 'policy' | 'description' | 'enabled'>;

/** The id under which a boundary's own policy is reported (its version is the boundary's). */
export function boundaryPolicyId(boundaryId: string): string {
  return `boundary:${boundaryId}`;
}
