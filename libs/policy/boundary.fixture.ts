import type { ToolBoundary } from './boundary.js';

/** A tool boundary for unit tests: reads orders, for the order_status intent. */
export function exampleBoundary(overrides: Partial<ToolBoundary> = {}): ToolBoundary {
  return {
    id: 'crm-read',
    version: 1,
    tool: 'https://crm.acme.test',
    actions: ['orders:read'],
    intents: ['order_status'],
    defaultTtl: 60,
    maxTtl: 300,
    credential: { kind: 'jwt' },
    sensitivity: 'low',
    driftThreshold: null,
    enabled: true,
    approval: null,
    policy: null,
    paramsSchemas: null,
    createdAt: new Date(0),
    ...overrides,
  };
}
