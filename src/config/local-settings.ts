import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { describeZodError } from '../common/zod';
import { SettingsError } from './settings';

/**
 * Where settings come from outside Azure: the environment, else the `Values` of
 * `local.settings.json` in the current folder, read as `func start` reads them (each value becomes
 * an environment variable unless the environment already has it: the environment wins). So one
 * file serves `func start`, `georeg serve` and the CLI.
 */

export const LOCAL_SETTINGS_FILE = 'local.settings.json';

const LocalSettingsFile = z
  .object({
    IsEncrypted: z.boolean().optional(),
    Values: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).default({}),
  })
  .passthrough();

export interface SettingsEnvironment {
  /** The environment with the file's values under it. */
  env: Record<string, string | undefined>;
  /** The file read, when there was one. */
  file?: string;
  /** Said in logs and by doctor: where the settings came from. */
  source: string;
}

/** The environment merged over local.settings.json's Values (environment wins, key by key). */
export function settingsEnvironment(options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SettingsEnvironment {
  const env = options.env ?? process.env;
  const file = join(options.cwd ?? process.cwd(), LOCAL_SETTINGS_FILE);
  const values = readLocalSettingsValues(file);
  if (!values) return { env: { ...env }, source: 'environment' };
  const fromFile = Object.keys(values).filter((k) => env[k] === undefined).length;
  const overridden = Object.keys(values).length - fromFile;
  return {
    env: { ...values, ...definedOnly(env) },
    file,
    source: `${file} (${fromFile} value(s)${overridden ? `, ${overridden} more set by the environment, which wins` : ''})`,
  };
}

/**
 * Fills process.env from local.settings.json as `func start` does, so that everything reading the
 * environment later (the runtime, `%SETTING%` binding expressions in the host) sees one picture.
 */
export function applyLocalSettings(options: { cwd?: string } = {}): SettingsEnvironment {
  const merged = settingsEnvironment({ cwd: options.cwd, env: process.env });
  for (const [k, v] of Object.entries(merged.env)) if (process.env[k] === undefined && v !== undefined) process.env[k] = v;
  return merged;
}

/** The file's `Values`, or undefined when there is no file. A file that does not parse throws, naming it. */
export function readLocalSettingsValues(file: string): Record<string, string> | undefined {
  if (!existsSync(file)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new SettingsError([`${file}: not valid JSON (${(e as Error).message})`]);
  }
  const parsed = LocalSettingsFile.safeParse(json);
  if (!parsed.success) {
    throw new SettingsError([`${file}: expected {"Values": {"NAME": "value", ...}} as local.settings.sample.json has it (${describeZodError(parsed.error)})`]);
  }
  return parsed.data.Values;
}

/** The settings every georeg process needs; named when neither the environment nor the file has them. */
export const REQUIRED_SETTINGS = ['GEOREG_HOME_REGION', 'GEOREG_REGIONS', 'GEOREG_PUSH_SECRET', 'ServiceBusConnection'] as const;

/** Throws a SettingsError naming the missing settings and both places to put them. */
export function requireSettingsPresent(merged: SettingsEnvironment, cwd = process.cwd()): void {
  const missing = REQUIRED_SETTINGS.filter(
    (k) => merged.env[k] === undefined && !(k === 'ServiceBusConnection' && merged.env.ServiceBusConnection__fullyQualifiedNamespace !== undefined),
  );
  if (missing.length === 0) return;
  const where = merged.file
    ? `neither the environment nor ${merged.file} sets them`
    : `the environment does not set them and there is no ${LOCAL_SETTINGS_FILE} in ${cwd}`;
  throw new SettingsError([
    `${missing.join(', ')}: missing (${where}). Set them as environment variables, or copy local.settings.sample.json to ${LOCAL_SETTINGS_FILE} (\`npm run emulators\` fills one for the local emulators)`,
  ]);
}

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}
