// The architecture, enforced (docs/architecture.md explains it). `npm test` runs this over libs/ and
// apps/ (test/architecture.spec.ts): a forbidden edge, a cycle or a reach past a lib's entry file
// fails the suite.
//
// Layers, bottom to top; a lib may import the libs of the layers below it, never above or beside:
//   kernel (errors, clock, ids, tracing, db, config) → keys → audit → identity | policy →
//   credentials → tasks → approvals → leases → review → apps
// A lib that needs something from above declares a small port that apps/broker/broker.ts fills.

const KERNEL = ['errors', 'clock', 'ids', 'tracing', 'db', 'config'];
const LAYERS = [KERNEL, ['keys'], ['audit'], ['identity', 'policy'], ['credentials'], ['tasks'], ['approvals'], ['leases'], ['review']];

/** For each server lib, the libs it may import (besides itself). */
function allowedImports() {
  const allowed = {};
  LAYERS.forEach((layer, rank) => {
    const below = LAYERS.slice(0, rank).flat();
    // Kernel libs may use each other (no cycle allowed, as everywhere); other libs only what is below.
    for (const lib of layer) allowed[lib] = rank === 0 ? KERNEL.filter((other) => other !== lib) : below;
  });
  return allowed;
}

const layerRules = Object.entries(allowedImports()).map(([lib, may]) => ({
  name: `layer-${lib}`,
  comment: `libs/${lib} may import only ${may.length ? may.map((m) => `libs/${m}`).join(', ') : 'no other lib'} (lower layers; see docs/architecture.md)`,
  severity: 'error',
  from: { path: `^libs/${lib}/` },
  to: { path: '^libs/', pathNot: [`^libs/${lib}/`, ...may.map((m) => `^libs/${m}/`)] },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycle, between libs or between the files of one lib.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'lib-entry-file',
      comment: 'Outside a lib, import it through its entry file (libs/<lib>/index.ts), never a file inside it.',
      severity: 'error',
      from: { path: '^libs/([^/]+)/', pathNot: '\\.(spec|fixture)\\.ts$' },
      to: { path: '^libs/[^/]+/.+', pathNot: ['^libs/[^/]+/index\\.ts$', '^libs/$1/'] },
    },
    {
      name: 'lib-entry-file-from-apps',
      comment: 'Apps import a lib through its entry file (libs/<lib>/index.ts).',
      severity: 'error',
      from: { path: '^apps/' },
      to: { path: '^libs/[^/]+/.+', pathNot: '^libs/[^/]+/index\\.ts$' },
    },
    {
      name: 'clients-import-no-server-code',
      comment: 'The SDK, the CLI and the verifier are packages of their own: they reach the server over HTTP only.',
      severity: 'error',
      from: { path: '^(libs/sdk|apps/cli|packages/verifier)/' },
      to: { path: '^(libs|apps|migrations|packages)/', pathNot: ['^libs/sdk/', '^apps/cli/', '^packages/verifier/'] },
    },
    {
      name: 'server-libs-do-not-import-clients-or-apps',
      comment: 'Server libs never import an app or the client packages.',
      severity: 'error',
      from: { path: '^libs/', pathNot: '^libs/sdk/' },
      to: { path: '^(apps/|libs/sdk/)' },
    },
    {
      name: 'domain-without-frameworks',
      comment: 'The domain core is plain TypeScript: Nest lives in apps/, TypeORM only behind libs/db.',
      severity: 'error',
      from: { path: '^libs/', pathNot: '^libs/db/' },
      to: {
        dependencyTypes: ['npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg', 'npm-unknown'],
        path: '(^|/)node_modules/(@nestjs|typeorm|typeorm-pglite|fastify)/',
      },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.d.ts'],
    },
  },
};
