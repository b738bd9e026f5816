/** The Tollgate bot SDK: import from here (files inside libs/sdk import each other directly). */
export { TollgateClient, Task } from './client.js';
export type {
  ClientOptions,
  OpenTaskRequest,
  CredentialRequest,
  CredentialOptions,
  Credential,
  TaskState,
  TaskDetails,
  TaskChange,
  TaskEvent,
  LeaseSummary,
} from './client.js';
export {
  TollgateError,
  AccessDenied,
  ApprovalPending,
  InvalidClient,
  TaskNotActive,
  NotFound,
  InvalidRequest,
  TollgateUnavailable,
} from './errors.js';
export { generateDpopKey, DpopProver } from './dpop.js';
export type { DpopKey } from './dpop.js';
export type { RetryOptions } from './transport.js';
export type { RegisteredKey, TokenFunction, TokenSource } from './workload-assertion.js';
export { mcpFetch, MCP_REFUSAL_PREFIX } from './mcp.js';
export type { McpFetchOptions, McpDenial } from './mcp.js';
