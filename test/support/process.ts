import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { inject } from 'vitest';

/**
 * georeg's TypeScript entry points as real processes, the way a user starts them, from JavaScript
 * compiled once per test process. Through tsx's loader every module, the Azure SDKs' hundreds
 * included, passes the loader's hooks in each spawned process: `npm run emulators` took 16 s to
 * start that way on this 2-core machine with the suite running, 3 s compiled.
 */

const ROOT = join(__dirname, '..', '..');
/** The entry points tests spawn, compiled together on first use. */
const ENTRIES = ['src/cli/main.ts', 'src/local/emulators.ts', 'src/local/azurite.ts'];

let compiled: Promise<string> | undefined;

/**
 * The compiled JavaScript of one of ENTRIES (a path relative to the repository). esbuild bundles
 * each with georeg's modules and the workspace emulator (tsconfig `paths`); npm packages stay
 * external and load from node_modules as installed. The bundles sit at their source's place in a
 * folder of the run's scratch folder (test/support/scratch-dir.ts), which links what the code finds
 * by path from `__dirname`: config/ (the emulators' topology), node_modules/, and the dashboard's
 * files next to the CLI.
 */
export async function compiledEntry(entry: string): Promise<string> {
  if (!ENTRIES.includes(entry)) throw new Error(`compiledEntry: "${entry}" is not compiled for tests; add it to ENTRIES in test/support/process.ts`);
  compiled ??= (async () => {
    const dir = mkdtempSync(join(inject('scratchDir'), 'entries-'));
    await build({
      entryPoints: ENTRIES.map((e) => join(ROOT, e)),
      outbase: ROOT,
      outdir: dir,
      bundle: true,
      packages: 'external',
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      sourcemap: 'inline',
      logLevel: 'error',
    });
    symlinkSync(join(ROOT, 'config'), join(dir, 'config'));
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    mkdirSync(join(dir, 'src', 'cli'), { recursive: true });
    symlinkSync(join(ROOT, 'src', 'ops', 'dashboard'), join(dir, 'src', 'cli', 'dashboard'));
    return dir;
  })();
  return join(await compiled, entry.replace(/\.ts$/, '.js'));
}

export interface Spawned {
  child: ChildProcess;
  /** The match of `ready` in the output. */
  ready: RegExpExecArray;
  /** Everything it printed so far, stdout and stderr. */
  output(): string;
  exited: Promise<number | null>;
}

/** Starts `node <entry, compiled> <args>` and resolves once its output matches `ready` (rejects if it exits first). */
export async function spawnEntry(entry: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; ready: RegExp }): Promise<Spawned> {
  const script = await compiledEntry(entry);
  const child = spawn(process.execPath, ['--enable-source-maps', script, ...args], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = options.ready.exec(output);
      if (m) resolve(m);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => reject(new Error(`${entry} exited (${code}) before printing ${options.ready}:\n${output}`)));
  });
  return { child, ready, output: () => output, exited };
}
