#!/usr/bin/env node
// `npx servicebus-emulator --config Config.json --port 5672`: see README.md or --help.
require('../index.js')
  .runCli(process.argv)
  .then((code) => {
    if (code !== undefined) process.exitCode = code;
  });
