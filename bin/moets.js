#!/usr/bin/env node
// The `moets` command. TypeScript sources run through tsx's loader, so there is no build step.
import { register } from 'node:module';
register('tsx/esm', import.meta.url);
await import('../src/cli/main.ts');
