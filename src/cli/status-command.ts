import type { Problem } from '../replication/problems';
import type { PushSummary } from '../replication/status-api';
import { adminHeaders, parseReference, resolveTarget } from './target';

/** `georeg status <push-id | repo:tag>`: each region's state for one push; `--problems`: events georeg could not act on. */
export async function statusCommand(ref: string | undefined, flags: { url?: string; output?: string; key?: string; problems?: boolean }): Promise<void> {
  const target = resolveTarget(flags);
  if (flags.problems) return problemsReport(target.apiUrl, flags);
  if (!ref) throw new Error('usage: georeg status <push-id | repo:tag>, or georeg status --problems');
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
      error: r.error ?? (r.supersededBy ? `superseded by ${r.supersededBy.pushId ? `push ${r.supersededBy.pushId} ` : ''}(${r.supersededBy.digest ?? 'tag deleted at home'})` : ''),
    })),
  );
}

async function problemsReport(apiUrl: string, flags: { output?: string; key?: string }): Promise<void> {
  const res = await fetch(`${apiUrl}/pushes?problems`, { headers: flags.key ? { 'x-functions-key': flags.key } : {} });
  const body = await res.text();
  if (!res.ok) throw new Error(`${apiUrl}/pushes?problems answered ${res.status}: ${body}`);
  const { problems } = JSON.parse(body) as { problems: Problem[] };
  if (flags.output === 'json') return console.log(JSON.stringify(problems, null, 2));
  if (!problems.length) return console.log('no notification event was left unreplicated');
  console.log(`${problems.length} notification event(s) georeg could not act on, newest first:`);
  console.table(problems.map((p) => ({ at: p.at, event: p.eventId ?? `#${p.index}`, image: p.repository ? `${p.repository}${p.tag ? `:${p.tag}` : ''}${p.digest ? `@${p.digest.slice(0, 19)}` : ''}` : '', reason: p.reason, description: p.description })));
}

function byTag(ref: string): string {
  const { repository, tag } = parseReference(ref);
  return `?repository=${encodeURIComponent(repository)}&tag=${encodeURIComponent(tag ?? 'latest')}`;
}
