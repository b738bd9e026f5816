// libs/errors: the typed errors, each with its OAuth error code and reasons (one filter turns them into HTTP answers).
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './errors.js';
