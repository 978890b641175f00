import { vi } from 'vitest';
import { ExitCode } from '../../src/cli/exit';
import { run } from '../../src/cli/main';

/**
 * The CLI in-process, as a user runs it from a folder: `georeg <args>` with `cwd` as the current
 * directory and `env` over the environment, output captured. Tests run in forked workers, so the
 * process-wide cwd and environment are theirs to change for the call; both are restored after it.
 */
export async function runCli(args: string[], options: Folder): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const line = (sink: string[]) => (...a: unknown[]) => void sink.push(a.map(String).join(' '));
  const chunk = (sink: string[]) => (text: string | Uint8Array) => (sink.push(String(text).replace(/\n$/, '')), true);
  const spies = [
    vi.spyOn(console, 'log').mockImplementation(line(out)),
    vi.spyOn(console, 'info').mockImplementation(line(out)),
    vi.spyOn(console, 'warn').mockImplementation(line(err)),
    vi.spyOn(console, 'error').mockImplementation(line(err)),
    // Commander writes usage errors and help to the streams itself, then calls process.exit:
    // captured, and the exit becomes the code run() returns, as a spawned CLI's would be.
    vi.spyOn(process.stdout, 'write').mockImplementation(chunk(out)),
    vi.spyOn(process.stderr, 'write').mockImplementation(chunk(err)),
    vi.spyOn(process, 'exit').mockImplementation((code) => {
      throw new ExitCode(Number(code ?? 0));
    }),
  ];
  try {
    const code = await inFolder(options, () => run(['node', 'georeg', ...args]));
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

export interface Folder {
  cwd: string;
  env?: Record<string, string | undefined>;
}

/** Runs `fn` with `cwd` as the current folder and `env` over the environment; restores both after. */
export async function inFolder<T>(options: Folder, fn: () => Promise<T>): Promise<T> {
  const cwd = process.cwd();
  // The whole environment, not just `env`: serve fills it from local.settings.json as func start does.
  const saved = { ...process.env };
  try {
    process.chdir(options.cwd);
    setEnv(options.env ?? {});
    return await fn();
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    setEnv(saved);
    process.chdir(cwd);
  }
}

function setEnv(values: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

/** A name georeg reads as a setting (so a test can keep the environment's out of the way). */
export function isSetting(name: string): boolean {
  return name.startsWith('GEOREG_') || name.startsWith('ServiceBusConnection');
}

/** `env` for runCli: every setting in this process's environment unset for the call. */
export function settingsUnset(): Record<string, undefined> {
  return Object.fromEntries(Object.keys(process.env).filter(isSetting).map((k) => [k, undefined]));
}
