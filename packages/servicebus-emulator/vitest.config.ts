import { defineConfig } from 'vitest/config';

// Each suite starts its own emulator on a free port of 127.0.0.1. Files share their worker process
// (isolate: false): the Service Bus SDK loads once per fork, not once per file.
export default defineConfig({
  test: {
    name: 'servicebus-emulator',
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { isolate: false } },
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
