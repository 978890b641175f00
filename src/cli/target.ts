import { Option, type Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireSettingsPresent, settingsEnvironment } from '../config/local-settings';
import { loadSettings, type Settings } from '../config/settings';

/**
 * Where the CLI sends things. Settings: the environment's GEOREG_* settings (the ones the functions
 * read); else a running `npm start` (its `.georeg/local-stack.json`); else the Values of
 * local.settings.json in this folder (the environment wins key by key). The API: `--url`, else
 * GEOREG_API_URL, else the running local stack's, else `http://127.0.0.1:7071/api` (`georeg serve`
 * and `func start` listen there by default).
 */

export const DEFAULT_API_URL = 'http://127.0.0.1:7071/api';

export function localStackFile(cwd = process.cwd()): string {
  return join(cwd, '.georeg', 'local-stack.json');
}

/** What `npm start` writes for the CLI while it runs. */
export interface LocalStackFile {
  apiUrl: string;
  env: Record<string, string>;
  /** The `npm start` process: a file whose process is gone is stale (a killed stack leaves it behind). */
  pid?: number;
  spareStorage?: Record<string, string>;
}

/** The running local stack's file, or undefined when there is none or its process has gone. */
export function runningLocalStack(cwd = process.cwd()): LocalStackFile | undefined {
  const file = localStackFile(cwd);
  if (!existsSync(file)) return undefined;
  const stack = JSON.parse(readFileSync(file, 'utf8')) as LocalStackFile;
  return stack.pid === undefined || processAlive(stack.pid) ? stack : undefined;
}

export interface SettingsSource {
  /** The settings as environment variables (not yet validated). */
  env: Record<string, string | undefined>;
  /** Where they came from, for people reading logs. */
  source: string;
  apiUrl: string;
  /** True when the API URL was asked for (`--url`/`--api`, GEOREG_API_URL), not a default. */
  apiExplicit: boolean;
}

/** The settings and API the CLI uses, by the rules above; throws a SettingsError naming what is missing. */
export function resolveSettingsSource(flags: { url?: string } = {}, cwd = process.cwd()): SettingsSource {
  const merged = settingsEnvironment({ cwd });
  const stack = runningLocalStack(cwd);
  const explicit = flags.url ?? merged.env.GEOREG_API_URL;
  const trim = (u: string) => u.replace(/\/+$/, '');
  if (process.env.GEOREG_REGIONS === undefined && stack) {
    return { env: stack.env, source: `${localStackFile(cwd)} (the running \`npm start\`)`, apiUrl: trim(explicit ?? stack.apiUrl), apiExplicit: explicit !== undefined };
  }
  requireSettingsPresent(merged, cwd);
  return { env: merged.env, source: merged.source, apiUrl: trim(explicit ?? DEFAULT_API_URL), apiExplicit: explicit !== undefined };
}

export interface CliTarget {
  settings: Settings;
  pushUrl: string;
  apiUrl: string;
  source: string;
}

export function resolveTarget(flags: { url?: string }): CliTarget {
  const { env, source, apiUrl } = resolveSettingsSource(flags);
  return { settings: loadSettings(env), apiUrl, pushUrl: `${apiUrl}/push`, source };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A call to an admin API (`/api/webhooks`, `/api/replications`, ...): the function key (`--key`,
 * Azure) and GEOREG_ADMIN_SECRET (from the settings or the local stack) are sent when known.
 * A non-2xx answer throws with the API's own error message.
 */
export async function adminCall(flags: { url?: string; key?: string }, method: string, path: string, body?: unknown): Promise<any> {
  const { apiUrl, settings } = resolveTarget(flags);
  const url = `${apiUrl}${path}`;
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...adminHeaders({ key: flags.key, adminSecret: settings.adminSecret }) };
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) throw new Error(`${method} ${url} answered ${res.status}: ${json?.error ?? text.slice(0, 300)}`);
  return json;
}

/** What an admin or status call sends: the function key (Azure) and GEOREG_ADMIN_SECRET, when known. */
export function adminHeaders(auth: { key?: string; adminSecret?: string }): Record<string, string> {
  return { ...(auth.key ? { 'x-functions-key': auth.key } : {}), ...(auth.adminSecret ? { authorization: `Bearer ${auth.adminSecret}` } : {}) };
}

/** `repo:tag` or `repo@sha256:...` */
export function parseReference(ref: string): { repository: string; tag?: string; digest?: string } {
  const at = ref.indexOf('@');
  if (at >= 0) return { repository: ref.slice(0, at), digest: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(':');
  if (colon > 0 && !ref.slice(colon).includes('/')) return { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repository: ref, tag: 'latest' };
}

/** `3x1MiB`, `10x20MiB`, `2x512KiB`, `4x1000` → layer count and size in bytes. */
export function parseGenerateSpec(spec: string): { layers: number; layerSize: number } {
  const m = /^(\d+)x(\d+(?:\.\d+)?)(B|KiB|MiB|GiB|KB|MB|GB)?$/i.exec(spec.trim());
  if (!m) throw new Error(`--generate "${spec}": expected <layers>x<size>, e.g. 3x1MiB or 10x20MiB`);
  const unit = (m[3] ?? 'B').toLowerCase();
  const mult: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3 };
  const layers = Number(m[1]);
  const layerSize = Math.round(Number(m[2]) * mult[unit]);
  if (layers < 1 || layers > 1000) throw new Error(`--generate "${spec}": 1 to 1000 layers`);
  if (layerSize < 1) throw new Error(`--generate "${spec}": a layer needs at least 1 byte`);
  return { layers, layerSize };
}

/** The flags every admin command takes: where the API is, Azure's function key, and the output format. */
export function apiOptions(c: Command): Command {
  return c
    .option('--url <api>', 'API base URL (default: GEOREG_API_URL, the running local stack, or http://127.0.0.1:7071/api)')
    .option('--key <function-key>', 'function key for the admin API in Azure')
    .addOption(new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table'));
}
