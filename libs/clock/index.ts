// libs/clock: time: the injected Clock and the bounded ExpiringMap.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './clock.js';
export * from './expiring-map.js';
