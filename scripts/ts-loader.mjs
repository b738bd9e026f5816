// `node --import ./scripts/ts-loader.mjs file.ts`: runs Tollgate's TypeScript from source (the Cedar
// child process under vitest). The hooks transpile each .ts module with @swc/core.
import { register } from 'node:module';

register('./ts-loader-hooks.mjs', import.meta.url);
