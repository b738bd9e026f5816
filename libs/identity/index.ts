// libs/identity: who is calling: workloads, trusted issuers, API keys, client authentication, DPoP.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './api-key-store.js';
export * from './api-key.js';
export * from './api-keys.js';
export * from './client-authentication.js';
export * from './dpop-proof-store.js';
export * from './dpop.js';
export * from './federated-verifier.js';
export * from './issuer-cache.js';
export * from './issuer-store.js';
export * from './issuer.js';
export * from './issuers.js';
export * from './workload-authenticator.js';
export * from './workload-cache.js';
export * from './workload-store.js';
export * from './workload.js';
export * from './workloads.js';
