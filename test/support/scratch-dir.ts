import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A temp folder for the run's workers (inject('scratchDir')); removed when the run ends. */
    scratchDir: string;
  }
}

/**
 * Vitest global setup: one temp folder per run for what workers make on demand (the compiled
 * entry points of test/support/process.ts), removed by the run itself, since a worker process is
 * ended without running its exit handlers.
 */
export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'georeg-test-'));
  project.provide('scratchDir', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
