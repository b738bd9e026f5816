#!/usr/bin/env node
// `npm run ha:up` / `npm run ha:down` (node scripts/ha.mjs up|down): the highly available topology
// on loopback, from test/ha/support/topology.ts (TypeScript, run through scripts/ts-loader.mjs).
import { register } from 'node:module';

register('./ts-loader-hooks.mjs', import.meta.url);
const { main } = await import('../test/ha/support/topology.ts');
await main(process.argv[2]);
