/** Injection token for the composition root (read by the discovery routes only). */
export const BROKER = Symbol('tollgate.broker');

/** Injection token for the OpenAPI document, built once at start. */
export const OPENAPI = Symbol('tollgate.openapi');

/** Injection token for the review console's files, read once at start. */
export const CONSOLE_ASSETS = Symbol('tollgate.console-assets');

/** Injection token for the replica's ServingState (readiness reads whether it is draining). */
export const SERVING_STATE = Symbol('tollgate.serving-state');
