import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// Mutation testing (`npm run test:mutation`) runs only the unit specs next to the code: each mutant
// reruns the specs that cover it, and the end-to-end files (a broker and a database each) are too slow.
export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  test: {
    include: ['libs/**/*.spec.ts'],
    pool: 'forks',
    testTimeout: 30_000,
  },
});
