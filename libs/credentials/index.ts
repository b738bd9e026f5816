// libs/credentials: credential kinds (jwt, vault, aws-sts): the provider contract and the catalog.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './catalog.js';
export * from './jwt/verify.js';
export * from './provider.js';
