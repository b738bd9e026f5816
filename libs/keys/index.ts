// libs/keys: signing keys: the ring, KEK sealing, rotation, compact JWS.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './compact-sign.js';
export * from './key-ring.js';
export * from './signing-keys.js';
