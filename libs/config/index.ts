// libs/config: the service configuration, validated at start with every problem reported at once.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './config.js';
