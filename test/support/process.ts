import { spawn, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';

/**
 * One of georeg's TypeScript entry points as a real process, the way a user starts it. tsx's
 * loader compiles each module once as the process loads it (about a second here; a full `tsc`
 * build of the project takes 25-50 s on this machine), so a test pays that once per process.
 */

const TSX_LOADER = pathToFileURL(require.resolve('tsx')).href;

export interface Spawned {
  child: ChildProcess;
  /** The match of `ready` in the output. */
  ready: RegExpExecArray;
  /** Everything it printed so far, stdout and stderr. */
  output(): string;
  exited: Promise<number | null>;
}

/** Starts `node <script> <args>` and resolves once its output matches `ready` (rejects if it exits first). */
export async function spawnTs(script: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; ready: RegExp }): Promise<Spawned> {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, script, ...args], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
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
    void exited.then((code) => reject(new Error(`${script} exited (${code}) before printing ${options.ready}:\n${output}`)));
  });
  return { child, ready, output: () => output, exited };
}
