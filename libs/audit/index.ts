// libs/audit: the audit log (append, hash chain, signed checkpoints) and the event log tools follow.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './audit-log.js';
export * from './audit-retention.js';
export * from './audit-store.js';
export * from './audit.js';
export * from './canonical-json.js';
export * from './chainer.js';
export * from './checkpoint.js';
export * from './event-log.js';
export * from './params-digest.js';
