// Mutation testing of the security-critical modules (issue 13, part 8): `npm run test:mutation`.
// Not part of `npm test`: it reruns the unit specs once per mutant.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: true },
  mutate: [
    'libs/policy/check.ts',
    'libs/identity/workload-authenticator.ts',
    'libs/identity/dpop.ts',
    'libs/identity/api-keys.ts',
    'libs/identity/client-authentication.ts',
    'libs/leases/introspection.ts',
    'libs/approvals/approval.ts',
    'libs/audit/chain.ts',
    'libs/audit/canonical-json.ts',
    'libs/audit/params-digest.ts',
    'libs/leases/rate-limit.ts',
    'libs/leases/token-revocation.ts',
  ],
  coverageAnalysis: 'perTest',
  // The machine is shared: two cores at most.
  concurrency: 2,
  timeoutMS: 20_000,
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  ignoreStatic: true,
};
