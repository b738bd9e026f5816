import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  plugins: [
    // Nest resolves constructor dependencies from decorator metadata, which esbuild does not emit.
    swc.vite({ module: { type: 'es6' } }),
  ],
  test: {
    include: ['libs/**/*.spec.ts', 'apps/**/*.spec.ts', 'packages/**/*.spec.ts', 'test/**/*.spec.ts'],
    // The HA suite starts replica processes behind HAProxy: its own runner, npm run test:ha.
    exclude: ['**/node_modules/**', 'test/ha/**'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: end-to-end files each start a broker and a database.
    maxWorkers: 2,
  },
});
