import { z } from 'zod';
import { adminDenied, json, notAllowed, parseJsonBody, type AdminRequest, type HttpOutput } from '../common/http';
import type { Settings } from '../config/settings';
import { discardDeadLetters, listDeadLetters, redriveDeadLetters, sourceName, type DeadLetterSource, type DeadLetterView, type DlqDeps } from './dlq';

/**
 * The dead-letter admin API (`georeg dlq`, the dashboard's buttons), over the dead letters the
 * dead-letter triggers keep (src/ops/dlq.ts):
 *
 *   GET  /api/deadletters[?region=<r> | ?webhooks=true]   dead letters per queue (peeked: nothing changes)
 *   POST /api/deadletters/redrive  {region | webhooks: true, all: true | jobs: [id...]}
 *   POST /api/deadletters/discard  {region | webhooks: true, all: true | jobs: [id...]}
 */

export interface DlqApiDeps extends DlqDeps {
  settings: Settings;
}

export interface DeadLetterQueueView {
  source: string;
  region?: string;
  count: number;
  messages: DeadLetterView[];
  error?: string;
}

const Target = z
  .object({
    region: z.string().min(1).optional(),
    webhooks: z.boolean().optional(),
    all: z.boolean().optional(),
    jobs: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict()
  .refine((b) => Boolean(b.region) !== Boolean(b.webhooks), { message: 'give exactly one of "region" or "webhooks": true' })
  .refine((b) => Boolean(b.all) !== Boolean(b.jobs), { message: 'give exactly one of "all": true or "jobs": [ids]' });

export async function handleDeadLetterAdmin(req: Pick<AdminRequest, 'method' | 'op' | 'query' | 'body' | 'headers'>, deps: DlqApiDeps): Promise<HttpOutput> {
  const denied = adminDenied(req.headers, deps.settings.adminSecret);
  if (denied) return denied;
  const method = req.method.toUpperCase();
  if (req.op === undefined) {
    if (method !== 'GET') return notAllowed(method, '/deadletters', 'GET');
    const { region, webhooks } = req.query;
    const sources: DeadLetterSource[] = region ? [{ kind: 'region', region }] : webhooks === 'true' ? [{ kind: 'webhooks' }] : await allSources(deps);
    if (region && !(await isReplica(region, deps))) return unknownRegion(region, deps);
    return json(200, { queues: await Promise.all(sources.map((s) => queueView(s, deps))) });
  }
  if (req.op !== 'redrive' && req.op !== 'discard') return json(404, { error: `no dead-letter operation "${req.op}": use redrive or discard` });
  if (method !== 'POST') return notAllowed(method, `/deadletters/${req.op}`, 'POST');
  const input = parseJsonBody(Target, req.body, req.op);
  if ('error' in input) return json(400, input);
  const { region, all, jobs } = input.value;
  if (region && !(await isReplica(region, deps))) return unknownRegion(region, deps);
  const source: DeadLetterSource = region ? { kind: 'region', region } : { kind: 'webhooks' };
  const selection = all ? { all: true as const } : { ids: jobs! };
  const result = req.op === 'redrive' ? await redriveDeadLetters(source, selection, deps) : await discardDeadLetters(source, selection, deps);
  // Nothing done and something asked for that is not there: say so with 404, naming what is.
  if (!result.done.length && result.notFound.length && !result.failed.length) {
    return json(404, { ...result, error: `no dead letter ${result.notFound.join(', ')} in ${sourceName(source)}: \`georeg dlq list\` shows what is there` });
  }
  return json(result.failed.length ? 207 : 200, result);
}

/** Every replica region's dead letters and the webhook queue's, home excluded (it has no subscription). */
export async function allSources(deps: Pick<DlqDeps, 'registry'>): Promise<DeadLetterSource[]> {
  const replicas = (await deps.registry.list()).filter((r) => !r.home);
  return [...replicas.map((r): DeadLetterSource => ({ kind: 'region', region: r.name })), { kind: 'webhooks' }];
}

export async function queueView(source: DeadLetterSource, deps: DlqDeps): Promise<DeadLetterQueueView> {
  const base = { source: sourceName(source), ...(source.kind === 'region' ? { region: source.region } : {}) };
  try {
    const messages = await listDeadLetters(source, deps);
    return { ...base, count: messages.length, messages };
  } catch (e) {
    return { ...base, count: 0, messages: [], error: `cannot read the kept dead letters of ${base.source}: ${(e as Error).message}` };
  }
}

async function isReplica(region: string, deps: Pick<DlqDeps, 'registry'>): Promise<boolean> {
  const r = await deps.registry.get(region);
  return Boolean(r && !r.home);
}

async function unknownRegion(region: string, deps: Pick<DlqDeps, 'registry'>): Promise<HttpOutput> {
  const known = (await deps.registry.list()).filter((r) => !r.home).map((r) => r.name);
  return json(404, { error: `region ${region} is not a replica (replicas: ${known.join(', ') || 'none'}); the home region has no replication queue` });
}
