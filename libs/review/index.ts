// libs/review: reads for reviewers: a task's story.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './task-history.js';
export * from './timeline.js';
