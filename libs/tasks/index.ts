// libs/tasks: tasks: their intent, journey and end.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './task-store.js';
export * from './task.js';
export * from './tasks.js';
