import { randomBytes } from 'node:crypto';
import type { ServiceBusMessage, ServiceBusSender } from '@azure/service-bus';
import { replicationJobMessage, sendInBatches, type DeleteJob, type PushJob, type ReplicationPlan } from '../bus/messages';
import type { Logger } from '../common/log';
import { forEachLimit } from '../common/pool';
import type { Settings } from '../config/settings';
import { claimCheckIfLarge, planPushJob, pushJobFor, pushRecordFor, readImage } from '../replication/plan';
import { newRegionStatus, StatusStore, type PushRecord, type RegionStatus } from '../replication/status';
import type { LinkSpec } from '../storage/paths';
import type { RegionStorage } from '../storage/region-storage';
import type { StateStore } from '../storage/state-store';
import type { ReplicaRecord, SyncRun } from './definition';
import { newRun, setBit, settle } from './progress';
import type { Replica, ReplicaRegistry } from './registry';

/**
 * Back-fill and resync: every tag in home storage (or one repository's), diffed against the
 * region, and a replication job for each tag the region does not hold complete. Back-fill sends a
 * job for every tag (a new region must get every link); resync sends jobs only where blobs or
 * links are missing, and reports what was missing. The jobs are ordinary push jobs tagged with the
 * run, so the replicate step copies and commits them exactly as it does a push, and reports each
 * one back to the replica record (src/replicas/progress.ts).
 */

export interface SyncDeps {
  settings: Settings;
  registry: ReplicaRegistry;
  home: RegionStorage;
  state: StateStore;
  replicationSender: ServiceBusSender;
  log: Logger;
}

/** How many tags of a run list what they missed; the counts cover all of them. */
const MISSING_LISTED = 200;

export interface PlannedTag {
  repository: string;
  tag: string;
  job?: PushJob;
  status?: RegionStatus;
  record?: PushRecord;
  missing: { blobs: number; bytes: number; links: number };
  failure?: { reason: string; description: string };
}

export async function startSync(replica: Replica, kind: SyncRun['kind'], deps: SyncDeps, options: { repository?: string } = {}): Promise<ReplicaRecord> {
  const operationId = randomBytes(5).toString('hex');
  const target = deps.registry.storageOf(replica);
  const tags: Array<{ repository: string; tag: string; digest: string }> = [];
  for await (const t of deps.home.listRepositoriesWithTags()) {
    if (!options.repository || t.repository === options.repository) tags.push(t);
  }
  tags.sort((a, b) => a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));

  const planned: PlannedTag[] = new Array(tags.length);
  await forEachLimit(
    tags.map((t, i) => ({ ...t, i })),
    deps.settings.copyConcurrency,
    async (t) => {
      planned[t.i] = await planTag(t, replica.name, target, kind, operationId, deps);
    },
  );

  // Jobs are numbered in the order they are sent; a tag that could not be planned counts as a
  // finished, failed job, so the run ends Failed naming it.
  let seq = 0;
  const jobs: PlannedTag[] = [];
  const run = newRun(operationId, kind, { repository: options.repository, planned: true });
  run.total.tags = tags.length;
  for (const p of planned) {
    const missedSomething = p.missing.blobs + p.missing.links > 0;
    if (missedSomething) {
      if (run.missing.length < MISSING_LISTED) run.missing.push({ repository: p.repository, tag: p.tag, ...p.missing });
      else run.missingTruncated = true;
    }
    if (p.failure) {
      const n = seq++;
      run.finished = setBit(run.finished, n);
      run.done.jobs += 1;
      run.failures.push({ jobId: `${p.repository}:${p.tag}`, image: `${p.repository}:${p.tag}`, ...p.failure });
      continue;
    }
    if (!p.job || (kind === 'resync' && !missedSomething)) continue;
    p.job.sync = { operationId, seq: seq++ };
    jobs.push(p);
  }
  // Resync also takes away what home deleted: a tag delete job (guarded by home at commit, like any delete).
  const deletes: Array<{ job: DeleteJob; status: RegionStatus; record: PushRecord }> = [];
  if (kind === 'resync') {
    const atHome = new Set(tags.map((t) => `${t.repository}:${t.tag}`));
    for await (const t of target.listTagLinks({ repository: options.repository })) {
      if (atHome.has(`${t.repository}:${t.tag}`)) continue;
      if (run.deleted.length < MISSING_LISTED) run.deleted.push({ repository: t.repository, tag: t.tag });
      else run.deletedTruncated = true;
      deletes.push(tagDeleteJob(t, replica.name, operationId, seq++));
    }
  }
  // Images share layers: the run moves each missing blob once, so totals count each digest once.
  const missingBlobs = new Map<string, number>();
  for (const p of jobs) {
    const plan = (p.job!.plan as { inline: ReplicationPlan }).inline;
    const sizes = new Map([...plan.blobs, ...plan.manifests].map((d) => [d.digest, d.size]));
    for (const digest of plan.missing) missingBlobs.set(digest, sizes.get(digest) ?? 0);
  }
  run.total.blobs = missingBlobs.size;
  run.total.bytes = [...missingBlobs.values()].reduce((a, b) => a + b, 0);
  run.total.jobs = seq;

  // The run is on the record before any job is sent: a job that finishes at once finds it.
  const record = await deps.registry.upsertRecord(replica, (r) => ({ ...r, ...settle(run) }));

  const status = new StatusStore(deps.state);
  await forEachLimit([...jobs.map((p) => ({ record: p.record!, status: p.status! })), ...deletes], deps.settings.copyConcurrency, async (p) => {
    await status.recordPush(p.record, [p.status], { latestForTag: false });
  });
  const messages: ServiceBusMessage[] = [];
  for (const p of jobs) messages.push(replicationJobMessage(await claimCheckIfLarge(p.job!, deps)));
  for (const d of deletes) messages.push(replicationJobMessage(d.job));
  await sendInBatches(deps.replicationSender, messages);
  deps.log.info(
    `replica ${replica.name}: ${kind} ${operationId}: ${tags.length} tag(s), ${jobs.length} job(s), ${run.total.blobs} blob(s) / ${run.total.bytes} bytes missing${deletes.length ? `, ${deletes.length} tag(s) deleted at home` : ''}${run.failures.length ? `, ${run.failures.length} tag(s) unreadable at home` : ''}`,
  );
  return record;
}

/** One tag's job for the region (its push id numbered `i` in the run), what the region lacks of it, or why it cannot be planned. */
export async function planTag(
  t: { repository: string; tag: string; digest: string; i: number },
  region: string,
  target: RegionStorage,
  kind: SyncRun['kind'],
  operationId: string,
  deps: Pick<SyncDeps, 'home'>,
  options: { askRegion?: boolean } = {},
): Promise<PlannedTag> {
  const base = { repository: t.repository, tag: t.tag };
  let image;
  try {
    image = await readImage(deps.home, t.digest);
  } catch (e) {
    return { ...base, missing: { blobs: 0, bytes: 0, links: 0 }, failure: { reason: 'HomeImageUnreadable', description: `${t.repository}:${t.tag} (${t.digest}) in the home region: ${(e as Error).message}` } };
  }
  const pushId = `${kind === 'backfill' ? 'bf' : 'rs'}-${operationId}-${t.i}`;
  const input = { image, pushId, eventId: pushId, region, repository: t.repository, tag: t.tag };
  // A back-fill sends every tag's job whatever the region holds, and each job asks the region just
  // before it copies (the check that guards its tag): asking here too only doubles the HEADs. Only
  // a resync, which reports what was missing and sends jobs for that alone, asks.
  if (options.askRegion === false) {
    const { job, status, summary } = pushJobFor(input, undefined);
    const record = pushRecordFor({ ...input, regions: [summary] });
    return { ...base, job, status, record, missing: { blobs: status.blobs.planned, bytes: status.bytes.planned, links: 0 } };
  }
  const { job, status, summary, plan } = await planPushJob({ ...input, storage: target, concurrency: 4 });
  const links = await missingLinks(plan, t, target);
  const record = pushRecordFor({ ...input, regions: [summary] });
  return { ...base, job, status, record, missing: { blobs: status.blobs.planned, bytes: status.bytes.planned, links } };
}

function tagDeleteJob(t: { repository: string; tag: string }, region: string, operationId: string, seq: number): { job: DeleteJob; status: RegionStatus; record: PushRecord } {
  const pushId = `rs-${operationId}-d${seq}`;
  const jobId = `${pushId}:${region}`;
  const createdAt = new Date().toISOString();
  return {
    job: { version: 1, jobId, pushId, eventId: pushId, region, repository: t.repository, createdAt, action: 'delete', tag: t.tag, sync: { operationId, seq } },
    status: newRegionStatus({ pushId, region, jobId, action: 'delete', repository: t.repository, tag: t.tag }),
    record: { pushId, eventId: pushId, action: 'delete', repository: t.repository, tag: t.tag, createdAt, regions: [{ region, jobId, missingBlobs: 0, missingBytes: 0 }] },
  };
}

/** Links the region lacks for the tag: layer links, manifest revision links, and the tag itself. */
async function missingLinks(plan: ReplicationPlan, t: { repository: string; tag: string; digest: string }, target: RegionStorage): Promise<number> {
  const { repository } = t;
  const links: LinkSpec[] = [...plan.blobs.map(({ digest }) => ({ kind: 'layer' as const, repository, digest })), ...plan.manifests.map(({ digest }) => ({ kind: 'revision' as const, repository, digest }))];
  let missing = 0;
  await forEachLimit(links, 8, async (link) => {
    if (!(await target.linkExists(link))) missing += 1;
  });
  if ((await target.readLink({ kind: 'tagCurrent', repository, tag: t.tag })) !== t.digest) missing += 1;
  return missing;
}
