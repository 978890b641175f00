import type { PushSummary } from '../replication/status-api';
import { adminHeaders, parseReference, resolveTarget } from './target';

/** `georeg status <push-id | repo:tag>`: each region's state for one push. */
export async function statusCommand(ref: string, flags: { url?: string; output?: string; key?: string }): Promise<void> {
  const target = resolveTarget(flags);
  const query = ref.includes(':') && !/^[0-9a-f-]{36}$/.test(ref) ? byTag(ref) : `/${encodeURIComponent(ref)}`;
  const res = await fetch(`${target.apiUrl}/pushes${query}`, { headers: adminHeaders({ key: flags.key, adminSecret: target.settings.adminSecret }) });
  const body = await res.text();
  if (!res.ok) throw new Error(`${target.apiUrl}/pushes${query} answered ${res.status}: ${body}`);
  const summary = JSON.parse(body) as PushSummary;
  if (flags.output === 'json') {
    console.log(JSON.stringify(summary, null, 2));
    return;
  }
  console.log(`push ${summary.pushId}  ${summary.action} ${summary.repository}${summary.tag ? `:${summary.tag}` : ''}  ${summary.digest ?? ''}  ${summary.state}`);
  console.table(
    summary.regions.map((r) => ({
      region: r.region,
      state: r.state,
      'blobs copied': r.blobs.copied,
      'blobs skipped': r.blobs.skipped,
      'MiB copied': +(r.bytes.copied / 1048576).toFixed(2),
      'foreign layers': r.blobs.foreign,
      method: Object.entries(r.methods).map(([m, n]) => `${m}×${n}`).join(' ') || '-',
      'push→ready (s)': r.durationMs !== undefined ? +(r.durationMs / 1000).toFixed(2) : '',
      error: r.error ?? '',
    })),
  );
}

function byTag(ref: string): string {
  const { repository, tag } = parseReference(ref);
  return `?repository=${encodeURIComponent(repository)}&tag=${encodeURIComponent(tag ?? 'latest')}`;
}
