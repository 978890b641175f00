import type { HttpOutput } from './push';
import { StatusStore, type PushRecord, type RegionStatus } from './status';
import type { StateStore } from '../storage/state-store';

/** `GET /api/pushes/{id}` and `GET /api/pushes?repository=&tag=`: each region's state for one push. */
export async function handleStatusRequest(query: { id?: string; repository?: string; tag?: string }, state: StateStore): Promise<HttpOutput> {
  const store = new StatusStore(state);
  let pushId = query.id;
  if (!pushId && query.repository && query.tag) {
    pushId = await store.latestPushId(query.repository, query.tag);
    if (!pushId) return { status: 404, jsonBody: { error: `no push of ${query.repository}:${query.tag} is recorded` } };
  }
  if (!pushId) return { status: 400, jsonBody: { error: 'give a push id (/api/pushes/{id}) or ?repository=<name>&tag=<tag>' } };
  const found = await store.push(pushId);
  if (!found) return { status: 404, jsonBody: { error: `push ${pushId} is not recorded` } };
  return { status: 200, jsonBody: summarize(found.push, found.regions) };
}

export type PushSummary = ReturnType<typeof summarize>;

export function summarize(push: PushRecord, regions: RegionStatus[]) {
  const states = regions.map((r) => r.state);
  const overall = states.every((s) => s === 'complete') ? 'complete' : states.some((s) => s === 'failed') ? 'failed' : states.some((s) => s === 'copying') ? 'copying' : 'pending';
  return { ...push, state: overall, regions: regions };
}
