import { randomBytes } from 'node:crypto';
import type { ServiceBusMessage, ServiceBusSender } from '@azure/service-bus';
import { z } from 'zod';
import { BackfillPage, backfillPageMessage, parseOrDeadLetter, replicationJobMessage, sendInBatches, type ReplicationPlan } from '../bus/messages';
import { deadLetterCause, type DeadLetter } from '../bus/settlement';
import type { Logger } from '../common/log';
import { forEachLimit } from '../common/pool';
import type { Settings } from '../config/settings';
import { claimCheckIfLarge } from '../replication/plan';
import { StatusStore } from '../replication/status';
import { statePaths } from '../storage/paths';
import type { RegionStorage } from '../storage/region-storage';
import { StateConflictError, StateNotFoundError, type StateStore } from '../storage/state-store';
import type { ReplicaRecord, SyncRun } from './definition';
import { hasBit, newRun, setBit, settle } from './progress';
import type { Replica, ReplicaRegistry } from './registry';
import { planTag, type PlannedTag } from './sync';

/**
 * A replica's back-fill as queued work, so `replication create` answers at once and a registry of
 * any size back-fills with bounded memory. The run starts with one message on the back-fill queue:
 * page 0. Each page message lists one page of home's tags (the storage listing resumes from the
 * page's continuation token) and sends the next page at once, so pages are planned side by side
 * (as many as the host runs at once); then it plans a job per tag, adds the page to the run's
 * totals, and sends the jobs. The jobs are ordinary push jobs of the run (replicas/progress.ts
 * counts each once); the replica is Ready when every page up to the last is counted and every job
 * is done.
 *
 * Every step can be redelivered (a worker stopped mid-page): the page's listing is kept as first
 * made, so a redelivered page plans the same tags with the same sequence numbers; the run counts a
 * page once (`planning.counted`, a bit per page) and marks when its jobs are sent
 * (`planning.sent`); pages and jobs have deterministic message ids, and a job the run already
 * counts finished is not sent again.
 */

export interface BackfillDeps {
  settings: Settings;
  registry: ReplicaRegistry;
  home: RegionStorage;
  state: StateStore;
  replicationSender: ServiceBusSender;
  backfillSender: ServiceBusSender;
  log: Logger;
}

/** How many failures a run lists (the count of failed jobs covers all of them). */
const FAILURES_LISTED = 50;

/** A page as first listed, kept for its redeliveries. */
const PageListing = z.object({
  tags: z.array(z.object({ repository: z.string(), tag: z.string(), digest: z.string() })),
  cursor: z.string().optional(),
});
type PageListing = z.infer<typeof PageListing>;

export type BackfillOutcome =
  | { outcome: 'completed'; page: number; tags: number; jobs: number; last?: boolean; skipped?: string }
  | { outcome: 'dead-letter'; reason: string; description: string };

/** Puts an empty run on the replica's record (Syncing, planning) and queues its first page. */
export async function startBackfill(replica: Replica, deps: Pick<BackfillDeps, 'registry' | 'backfillSender' | 'log'>): Promise<ReplicaRecord> {
  const operationId = randomBytes(5).toString('hex');
  const run = newRun(operationId, 'backfill', { planned: false });
  const record = await deps.registry.upsertRecord(replica, (r) => ({ ...r, ...settle(run) }));
  await deps.backfillSender.sendMessages(backfillPageMessage({ version: 1, region: replica.name, operationId, page: 0, seqBase: 0 }));
  deps.log.info(`replica ${replica.name}: backfill ${operationId} queued`);
  return record;
}

export async function handleBackfillPage(body: unknown, deps: BackfillDeps): Promise<BackfillOutcome> {
  const { message: page, deadLetter } = parseOrDeadLetter(BackfillPage, body, 'back-fill page', 'MalformedMessage');
  if (deadLetter) return deadLetter;
  const { region, operationId } = page;
  const skip = (why: string): BackfillOutcome => {
    deps.log.info(`replica ${region}: backfill ${operationId} page ${page.page} skipped: ${why}`);
    return { outcome: 'completed', page: page.page, tags: 0, jobs: 0, skipped: why };
  };
  const before = await deps.registry.record(region);
  const stale = staleness(before, page);
  if (stale) return skip(stale);
  // Counted and its jobs sent (its successor was sent before either): nothing left to do.
  if (hasBit(before!.sync!.planning.sent, page.page)) return skip('page already planned');
  const target = await deps.registry.storageFor(region);
  if (!target) return skip('the region has no storage any more');

  const listing = await pageListing(page, deps);
  // The next page goes at once, so pages are planned side by side; each counts itself (by its bit).
  if (listing.cursor) {
    await deps.backfillSender.sendMessages(backfillPageMessage({ version: 1, region, operationId, page: page.page + 1, cursor: listing.cursor, seqBase: page.seqBase + listing.tags.length }));
  }
  const planned: PlannedTag[] = new Array(listing.tags.length);
  await forEachLimit(
    listing.tags.map((t, i) => ({ ...t, i: page.seqBase + i })),
    PLAN_CONCURRENCY,
    async (t) => {
      const p = await planTag(t, region, target, 'backfill', operationId, deps, { askRegion: false });
      if (p.job) p.job.sync = { operationId, seq: t.i };
      planned[t.i - page.seqBase] = p;
    },
  );

  const counted = await updateRun(page, deps, (run) => (hasBit(run.planning.counted, page.page) ? run : countPage(run, page, planned, !listing.cursor)));
  if (typeof counted === 'string') return skip(counted);

  // Sent: every planned job the run does not already count finished (on a redelivery, some are).
  // Each with its push record; the job's status is created by its first attempt (as a pushed
  // image's is), in one write, rather than here and then read and written again.
  const jobs = planned.flatMap((p) => (p.job && !hasBit(counted.finished, p.job.sync!.seq) ? [p] : []));
  const status = new StatusStore(deps.state);
  await forEachLimit(jobs, PLAN_CONCURRENCY, async (p) => {
    await status.recordPush(p.record!, [], { latestForTag: false });
  });
  const messages: ServiceBusMessage[] = [];
  for (const p of jobs) messages.push(replicationJobMessage(await claimCheckIfLarge(p.job!, deps)));
  await sendInBatches(deps.replicationSender, messages);
  const sent = await updateRun(page, deps, (run) => ({ ...run, planning: { ...run.planning, sent: setBit(run.planning.sent, page.page) } }));
  if (typeof sent === 'string') return skip(sent);
  deps.log.info(`replica ${region}: backfill ${operationId} page ${page.page}: ${listing.tags.length} tag(s), ${jobs.length} job(s) sent${sent.planning.complete ? ', planning complete' : ''}`);
  return { outcome: 'completed', page: page.page, tags: listing.tags.length, jobs: jobs.length, last: !listing.cursor };
}

/**
 * A back-fill page Service Bus gave up on (or the handler refused): counted as planned with the
 * failure, so the run ends Failed, naming the page, once its other pages and jobs are done. If the
 * page was listed, its successor is sent again (it may not have been), so the rest is planned.
 */
export async function handleBackfillDeadLetter(body: unknown, letter: DeadLetter, deps: Pick<BackfillDeps, 'registry' | 'state' | 'backfillSender' | 'log'>): Promise<{ outcome: 'completed' }> {
  const cause = await deadLetterCause(deps.state, BACKFILL_LANE, letter);
  const { message: page } = parseOrDeadLetter(BackfillPage, body, 'back-fill page', 'MalformedMessage');
  if (!page) {
    deps.log.warn(`back-fill dead letter ${letter.messageId ?? ''} names no run (${cause.reason}: ${cause.description}); nothing to record`);
    return { outcome: 'completed' };
  }
  const listing = (await deps.state.get(statePaths.backfillPage(page.region, page.operationId, page.page), PageListing))?.value;
  if (listing?.cursor) {
    await deps.backfillSender.sendMessages(backfillPageMessage({ version: 1, region: page.region, operationId: page.operationId, page: page.page + 1, cursor: listing.cursor, seqBase: page.seqBase + listing.tags.length }));
  }
  const failure = { jobId: `backfill-page-${page.page}`, image: `back-fill page ${page.page}`, reason: cause.reason, description: `its tags were not planned: ${cause.description}; run \`georeg replication resync --region ${page.region}\`` };
  await updateRun(page, deps, (run) => {
    if (!hasBit(run.planning.counted, page.page)) return countPage({ ...run, failures: [...run.failures, failure] }, page, [], !listing?.cursor);
    if (hasBit(run.planning.sent, page.page) || !listing) return run;
    // Counted, its jobs perhaps not all sent: those not finished end as failures, or the run would wait for them for ever.
    const next = { ...run, done: { ...run.done }, failures: [...run.failures, failure].slice(-FAILURES_LISTED) };
    for (let seq = page.seqBase; seq < page.seqBase + listing.tags.length; seq++) {
      if (hasBit(next.finished, seq)) continue;
      next.finished = setBit(next.finished, seq);
      next.done.jobs += 1;
    }
    return next;
  });
  deps.log.warn(`replica ${page.region}: backfill ${page.operationId} page ${page.page} dead-lettered: ${cause.reason}: ${cause.description}`);
  return { outcome: 'completed' };
}

/** Tags planned at once within a page (each a few small reads and HEADs). */
const PLAN_CONCURRENCY = 32;

/** The page's run changed under the record's ETag and settled; or why the page no longer concerns the record. */
async function updateRun(page: BackfillPage, deps: Pick<BackfillDeps, 'registry'>, mutate: (run: SyncRun) => SyncRun): Promise<SyncRun | string> {
  let record: ReplicaRecord;
  try {
    record = await deps.registry.updateRecord(page.region, (r) => (staleness(r, page) ? r : { ...r, ...settle(mutate(r.sync!)) }));
  } catch (e) {
    if (e instanceof StateNotFoundError) return 'the replica was deleted';
    throw e;
  }
  return staleness(record, page) ?? record.sync!;
}

/** The verdicts of back-fill pages (see bus/settlement.ts). */
export const BACKFILL_LANE = 'backfill-pages';

/** Why a page no longer concerns its replica's record, or undefined when it does. */
function staleness(record: ReplicaRecord | undefined, page: BackfillPage): string | undefined {
  if (!record || record.status === 'Deleted') return 'the replica was deleted';
  if (!record.sync || record.sync.operationId !== page.operationId) return `the replica runs ${record.sync ? `${record.sync.kind} ${record.sync.operationId}` : 'no sync'} now`;
  return undefined;
}

/** The page's tags: as first listed (kept in state), or listed now and kept. */
async function pageListing(page: BackfillPage, deps: Pick<BackfillDeps, 'home' | 'state' | 'settings'>): Promise<PageListing> {
  const name = statePaths.backfillPage(page.region, page.operationId, page.page);
  const kept = await deps.state.get(name, PageListing);
  if (kept) return kept.value;
  const listed = await deps.home.listTagsPage({ cursor: page.cursor, maxBlobs: deps.settings.backfill.pageSize });
  // Sorted, as the one-shot planning numbered tags: repository, then tag.
  listed.tags.sort((a, b) => a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
  const listing: PageListing = { tags: listed.tags, ...(listed.cursor ? { cursor: listed.cursor } : {}) };
  try {
    await deps.state.create(name, listing);
  } catch (e) {
    // Two deliveries of the page at once: the first listing kept wins.
    if (!(e instanceof StateConflictError)) throw e;
    return (await deps.state.get(name, PageListing))!.value;
  }
  return listing;
}

/** The run with one more page counted: its tags and jobs in the totals, its unreadable tags finished as failures. Pure. */
export function countPage(run: SyncRun, page: BackfillPage, planned: PlannedTag[], last: boolean): SyncRun {
  const next: SyncRun = { ...run, total: { ...run.total }, done: { ...run.done }, failures: [...run.failures] };
  // The page did not ask the region (each job does): its blobs to move are every digest its images
  // reference, each once (images of a page share layers). Exact for a new region's empty storage;
  // where the region already holds some, `done.blobs` (what the jobs copied) ends below it.
  const missingBlobs = new Map<string, number>();
  planned.forEach((p, i) => {
    const seq = page.seqBase + i;
    next.total.jobs += 1;
    if (p.failure) {
      next.finished = setBit(next.finished, seq);
      next.done.jobs += 1;
      next.failures.push({ jobId: `${p.repository}:${p.tag}`, image: `${p.repository}:${p.tag}`, ...p.failure });
      return;
    }
    const plan = (p.job!.plan as { inline: ReplicationPlan }).inline;
    const sizes = new Map([...plan.blobs, ...plan.manifests].map((d) => [d.digest, d.size]));
    for (const digest of plan.missing) missingBlobs.set(digest, sizes.get(digest) ?? 0);
  });
  next.failures = next.failures.slice(-FAILURES_LISTED);
  next.total.tags += planned.length;
  next.total.blobs += missingBlobs.size;
  next.total.bytes += [...missingBlobs.values()].reduce((a, b) => a + b, 0);
  const counted = setBit(run.planning.counted, page.page);
  const lastPage = last ? page.page : run.planning.last;
  const complete = lastPage !== undefined && Array.from({ length: lastPage + 1 }, (_, n) => n).every((n) => hasBit(counted, n));
  next.planning = { ...run.planning, pages: run.planning.pages + 1, counted, ...(lastPage !== undefined ? { last: lastPage } : {}), complete };
  return next;
}
