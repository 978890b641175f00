import { fileURLToPath } from 'node:url';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/**
 * The files that take longest, longest first. They start first, so that the two forks finish
 * together instead of one running a long file alone at the end. Vitest orders by the durations it
 * cached from the previous run, or, without a cache (a fresh clone, CI), by file size, which put
 * the back-fill test (a small file, the longest run) last. Keep the list to the files over ~5 s.
 */
const LONGEST_FIRST = [
  'test/replicas/backfill.test.ts',
  'test/integration/convergence.test.ts',
  'test/replicas/replicas.test.ts',
  'test/cli/serve.test.ts',
  'test/ops/dashboard.test.ts',
  'test/webhooks/webhooks.test.ts',
  'test/integration/storage-region.test.ts',
  'test/local/host.test.ts',
  'test/integration/copy-blob.test.ts',
  'test/integration/reconcile.test.ts',
  'test/security/fuzz.test.ts',
  'packages/servicebus-emulator/test/emulator.test.ts',
];

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = LONGEST_FIRST.findIndex((name) => f.moduleId.endsWith(`/${name}`));
      return i < 0 ? LONGEST_FIRST.length : i;
    };
    const byVitest = await super.sort(files);
    return byVitest.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}

// Integration tests start their own Azurite and Service Bus emulator on free ports;
// two cores, so at most two test files run at once.
// Files share their worker process (isolate: false): each fork loads the Azure SDKs and georeg's
// modules once, not once per file, which was about a third of the suite's CPU. Every file
// starts and closes what it uses.
// One project for georeg's tests and the workspace packages' (packages/*, each also runnable alone
// with its own vitest.config.ts): without isolation Vitest runs projects one after the other, and
// the emulator package's files waited for georeg's last file while one fork stood idle.
export default defineConfig({
  // The workspace package's TypeScript source, as tsconfig.json's `paths` maps it for tsc and tsx.
  resolve: { alias: { 'servicebus-emulator': fileURLToPath(new URL('./packages/servicebus-emulator/src/index.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1, isolate: false } },
    sequence: { sequencer: LongestFirst },
    globalSetup: ['test/support/scratch-dir.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
