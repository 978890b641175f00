import cliProgress from 'cli-progress';
import type { PushSummary } from '../replication/status-api';
import { adminHeaders } from './target';

/**
 * Per-region progress of a push, from the status endpoint: one bar per region (bytes copied of
 * bytes the region lacked), with blobs copied and skipped. Falls back to plain lines off a TTY.
 */

export async function fetchPushStatus(apiUrl: string, pushId: string, auth: { key?: string; adminSecret?: string } = {}): Promise<PushSummary> {
  const res = await fetch(`${apiUrl}/pushes/${encodeURIComponent(pushId)}`, { headers: adminHeaders(auth) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${apiUrl}/pushes/${pushId} answered ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as PushSummary;
}

export interface WatchOptions {
  intervalMs?: number;
  timeoutMs?: number;
  out?: NodeJS.WriteStream;
  key?: string;
  /** The status API is an admin API: GEOREG_ADMIN_SECRET, when set. */
  adminSecret?: string;
}

/** Polls until every region is complete or failed; returns the final summary. */
export async function watchPush(apiUrl: string, pushId: string, options: WatchOptions = {}): Promise<PushSummary> {
  const out = options.out ?? process.stdout;
  const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
  const tty = Boolean(out.isTTY);
  const multibar = tty
    ? new cliProgress.MultiBar(
        {
          format: ' {region} [{bar}] {percentage}% | {copiedMiB}/{plannedMiB} MiB | {copied}/{planned} blobs copied, {skipped} skipped | {state}',
          hideCursor: true,
          clearOnComplete: false,
          stream: out,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const bars = new Map<string, cliProgress.SingleBar>();
  const printed = new Map<string, string>();
  for (;;) {
    const summary = await fetchPushStatus(apiUrl, pushId, { key: options.key, adminSecret: options.adminSecret });
    for (const r of summary.regions) {
      const payload = {
        region: r.region.padEnd(14),
        copiedMiB: mib(r.bytes.copied),
        plannedMiB: mib(r.bytes.planned),
        copied: r.blobs.copied,
        planned: r.blobs.planned,
        skipped: r.state === 'complete' ? r.blobs.skipped : r.blobs.total - r.blobs.planned,
        state: r.state + (r.error ? `: ${r.error}` : ''),
      };
      const total = Math.max(r.bytes.planned, 1);
      const value = r.state === 'complete' ? total : Math.min(r.bytes.copied, total);
      if (multibar) {
        const bar = bars.get(r.region) ?? multibar.create(total, 0, payload);
        bars.set(r.region, bar);
        bar.setTotal(total);
        bar.update(value, payload);
      } else {
        const line = `  ${payload.region} ${payload.state.padEnd(9)} ${payload.copied}/${payload.planned} blobs, ${payload.copiedMiB}/${payload.plannedMiB} MiB copied, ${payload.skipped} skipped`;
        if (printed.get(r.region) !== line && (r.state === 'complete' || r.state === 'failed')) out.write(`${line}\n`);
        printed.set(r.region, line);
      }
    }
    if (summary.state === 'complete' || (summary.regions.length > 0 && summary.regions.every((r) => r.state === 'complete' || r.state === 'failed'))) {
      multibar?.stop();
      return summary;
    }
    if (Date.now() > deadline) {
      multibar?.stop();
      throw new Error(`push ${pushId} not complete in every region after ${Math.round((options.timeoutMs ?? 600_000) / 1000)} s: ${summary.regions.map((r) => `${r.region}=${r.state}`).join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 250));
  }
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
