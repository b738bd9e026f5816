// libs/tracing: OpenTelemetry spans, off unless an exporter is configured.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './tracing.js';
