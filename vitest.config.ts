import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Integration tests start their own Azurite and Service Bus emulator on free ports;
// two cores, so at most two test files run at once. `npm test` runs georeg's tests and every
// workspace package's (packages/*, each with its own vitest.config.ts).
// Files share their worker process (isolate: false): each fork loads the Azure SDKs and georeg's
// modules once, not once per file, which was about a third of the suite's CPU. Every file
// starts and closes what it uses.
export default defineConfig({
  test: {
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1, isolate: false } },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        // The workspace package's TypeScript source, as tsconfig.json's `paths` maps it for tsc and tsx.
        resolve: { alias: { 'servicebus-emulator': fileURLToPath(new URL('./packages/servicebus-emulator/src/index.ts', import.meta.url)) } },
        test: { name: 'georeg', include: ['test/**/*.test.ts'] },
      },
      'packages/*',
    ],
  },
});
