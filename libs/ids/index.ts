// libs/ids: identifiers: UUIDv7 and their checks.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './ids.js';
