import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSettings, type Settings } from '../config/settings';

/**
 * Where the CLI sends things: settings from the environment (the same GEOREG_* settings the
 * functions read), or else the file `npm start` writes for the running local stack.
 */

export const LOCAL_STACK_FILE = join(process.cwd(), '.georeg', 'local-stack.json');

export interface CliTarget {
  settings: Settings;
  pushUrl: string;
  apiUrl: string;
  source: string;
}

export function resolveTarget(flags: { url?: string }): CliTarget {
  if (process.env.GEOREG_REGIONS) {
    const settings = loadSettings(process.env);
    const apiUrl = (flags.url ?? process.env.GEOREG_API_URL ?? 'http://127.0.0.1:7071/api').replace(/\/+$/, '');
    return { settings, apiUrl, pushUrl: `${apiUrl}/push`, source: 'environment (GEOREG_* settings)' };
  }
  if (existsSync(LOCAL_STACK_FILE)) {
    const stack = JSON.parse(readFileSync(LOCAL_STACK_FILE, 'utf8')) as { env: Record<string, string>; apiUrl: string };
    const apiUrl = (flags.url ?? stack.apiUrl).replace(/\/+$/, '');
    return { settings: loadSettings(stack.env), apiUrl, pushUrl: `${apiUrl}/push`, source: LOCAL_STACK_FILE };
  }
  throw new Error(
    'no registry to talk to: start the local stack (`npm start`, which writes .georeg/local-stack.json) or set GEOREG_HOME_REGION, GEOREG_REGIONS and GEOREG_PUSH_SECRET (see local.settings.sample.json)',
  );
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
