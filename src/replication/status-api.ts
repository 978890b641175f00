import type { HttpOutput } from './push';
import { ProblemStore } from './problems';
import { StatusStore, type PushRecord, type RegionStatus } from './status';
import type { StateStore } from '../storage/state-store';

/**
 * `GET /api/pushes/{id}` and `GET /api/pushes?repository=&tag=`: each region's state for one push.
 * `GET /api/pushes?problems[&limit=]`: the newest notification events georeg could not act on.
 */
export async function handleStatusRequest(query: { id?: string; repository?: string; tag?: string; problems?: boolean; limit?: string }, state: StateStore): Promise<HttpOutput> {
  if (query.problems && !query.id) {
    const limit = query.limit === undefined ? 50 : Number(query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return { status: 400, jsonBody: { error: `limit "${query.limit}": a whole number from 1 to 1000` } };
    return { status: 200, jsonBody: { problems: await new ProblemStore(state).list(limit) } };
  }
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
  const finished = states.every((s) => s === 'complete' || s === 'superseded');
  // Superseded everywhere or in part: the push was overtaken by a newer one (or a delete) of its tag.
  const overall = finished
    ? states.every((s) => s === 'complete')
      ? 'complete'
      : 'superseded'
    : states.some((s) => s === 'failed')
      ? 'failed'
      : states.some((s) => s === 'copying')
        ? 'copying'
        : 'pending';
  return { ...push, state: overall, regions: regions };
}
