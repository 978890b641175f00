#!/usr/bin/env node
// Runs the TypeScript CLI without a build step (tsx registers the loader for this process only).
require('tsx/cjs/api').register();
require('../src/cli/main.ts');
