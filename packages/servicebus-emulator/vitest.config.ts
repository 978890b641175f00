import { defineConfig } from 'vitest/config';

// Each suite starts its own emulator on a free port of 127.0.0.1.
export default defineConfig({
  test: {
    name: 'servicebus-emulator',
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
