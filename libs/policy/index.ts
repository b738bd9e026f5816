// libs/policy: what a tool boundary allows: boundaries, the request check, Cedar policies, simulation and what-if.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './boundaries.js';
export * from './boundary-store.js';
export * from './boundary.js';
export * from './cedar-process.js';
export * from './cedar.js';
export * from './check.js';
export * from './params-schema.js';
export * from './policies.js';
export * from './policy-store.js';
export * from './policy.js';
export * from './simulate.js';
export * from './what-if.js';
