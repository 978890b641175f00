#!/usr/bin/env node
// Runs the TypeScript CLI without a build step (tsx registers the loader for this process only).
// Built images run the compiled CLI instead: node dist/src/cli/main.js.
require('tsx/cjs/api').register();
require('../src/cli/main.ts')
  .run(process.argv)
  .then((code) => {
    process.exitCode = code;
  });
