import { defineConfig } from 'vitest/config';

// Integration tests start their own Azurite and Service Bus emulator on free ports;
// two cores, so at most two test files run at once.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
