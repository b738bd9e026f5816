// libs/leases: the hot path and everything a lease goes through: decisions, leases, outbox, revocation, expiry, introspection, events, rate limits.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './decision-ledger.js';
export * from './drift-guard.js';
export * from './event-feed.js';
export * from './event-stream.js';
export * from './introspection.js';
export * from './lease-reads.js';
export * from './lease-store.js';
export * from './lease.js';
export * from './outbox-store.js';
export * from './outbox.js';
export * from './rate-bucket-store.js';
export * from './rate-limit.js';
export * from './request-context-cache.js';
export * from './request-context.js';
export * from './request-credential.js';
export * from './revocation.js';
export * from './sweeper.js';
export * from './token-revocation.js';
export * from './history-retention.js';
