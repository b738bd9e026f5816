import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

/**
 * `npm run test:ha`: the high-availability suite (issue 16). Each file starts broker replicas as
 * processes from dist/ behind HAProxy and loads them: one file at a time, or they would measure
 * each other. The main suite (vitest.config.ts) leaves test/ha out.
 */
export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  test: {
    include: ['test/ha/**/*.e2e.spec.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 180_000,
  },
});
