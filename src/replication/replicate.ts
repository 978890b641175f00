import { DescriptorRef, ReplicationJob, ReplicationPlan, parseOrDeadLetter, type DeleteJob, type PushJob } from '../bus/messages';
import type { Logger } from '../common/log';
import type { Settings } from '../config/settings';
import { DigestMismatchError } from '../oci/digest';
import { IMAGE_MANIFEST_TYPES } from '../oci/mediatypes';
import { backoffDelay } from '../common/backoff';
import { forEachLimit } from '../common/pool';
import type { LinkSpec } from '../storage/paths';
import type { RegionStorage } from '../storage/region-storage';
import type { StateStore } from '../storage/state-store';
import { copyBlob, SourceBlobMissingError } from './copy';
import { missingBytes, planDescriptors } from './plan';
import { inSpan } from '../telemetry/trace';
import { newRegionStatus, StatusStore, type JobStatus, type RegionStatus } from './status';

/**
 * One region's replication job: copy what the region lacks, then commit links in the order that
 * keeps every reader safe (blobs → child manifests → root manifest → layer and revision links →
 * tag last), and record the region's status. Safe to run twice: a redelivered job re-checks the
 * region and copies nothing it already holds.
 */

export interface ReplicateDeps {
  settings: Settings;
  home: RegionStorage;
  /** The storage of a region (regions are added at run time, so it is looked up per job). */
  regionStorage: (region: string) => Promise<RegionStorage | undefined>;
  state: StateStore;
  log: Logger;
  /** Called once the job's changes are committed in the region (webhooks and replica progress hang here). */
  afterCommit?: (job: ReplicationJob, status: RegionStatus, alreadyComplete: boolean) => Promise<void>;
  /** Called when the job cannot succeed, before the host dead-letters it. */
  afterFailure?: (job: ReplicationJob, reason: string, description: string) => Promise<void>;
  /**
   * Sends the job again at `at` (a scheduled message). With it, a passing failure (storage or
   * the network down for a while) is retried with back-off up to GEOREG_REPLICATE_MAX_ATTEMPTS
   * and then dead-lettered with its last error; without it, the handler throws and Service Bus
   * redelivers at once until MaxDeliveryCount.
   */
  reschedule?: (job: ReplicationJob, at: Date) => Promise<void>;
}

export type JobOutcome =
  | { outcome: 'completed'; status: RegionStatus; alreadyComplete: boolean }
  | { outcome: 'rescheduled'; at: Date; error: string }
  | { outcome: 'dead-letter'; reason: string; description: string };

/** A job that cannot succeed however often it is retried: the host dead-letters it with this reason. */
export class PermanentJobError extends Error {
  constructor(readonly reason: string, description: string) {
    super(description);
    this.name = 'PermanentJobError';
  }
}

/**
 * Settle by the outcome: complete on completed and rescheduled (the retry is already on the bus),
 * dead-letter with the reason. Throws for a passing failure only when it cannot reschedule.
 */
export async function handleReplicationJob(body: unknown, deps: ReplicateDeps): Promise<JobOutcome> {
  const { message: job, deadLetter } = parseOrDeadLetter(ReplicationJob, body, 'replication job', 'MalformedJob');
  if (deadLetter) return deadLetter;
  try {
    return await runJob(job, deps);
  } catch (e) {
    if (!deps.reschedule) throw e;
    return retryLater(job, e as Error, deps, deps.reschedule);
  }
}

async function retryLater(job: ReplicationJob, error: Error, deps: ReplicateDeps, reschedule: NonNullable<ReplicateDeps['reschedule']>): Promise<JobOutcome> {
  const { maxAttempts, retryBaseMs, retryMaxMs } = deps.settings.replicate;
  const attempt = (job.retry ?? 0) + 1;
  const status = new StatusStore(deps.state);
  // The status is best effort here: the failure may be the home account itself.
  const note = (mutate: (s: RegionStatus) => RegionStatus) => status.updateRegion(job.pushId, job.region, mutate).catch(() => undefined);
  if (attempt >= maxAttempts) {
    const reason = 'TransientFailuresExhausted';
    const description = `${error.message} (attempt ${attempt} of ${maxAttempts}, GEOREG_REPLICATE_MAX_ATTEMPTS; job ${job.jobId}, region ${job.region})`;
    await note((s) => ({ ...s, state: 'failed', error: `${reason}: ${description}` }));
    await deps.afterFailure?.(job, reason, description);
    deps.log.error(`${job.jobId}: ${reason}: ${description}`);
    return { outcome: 'dead-letter', reason, description };
  }
  const at = new Date(Date.now() + backoffDelay({ maxAttempts, baseDelayMs: retryBaseMs, maxDelayMs: retryMaxMs, jitter: 0.2 }, attempt));
  // The note first: written after the retry is on the bus, it could land on the retry's own status.
  await note((s) => ({ ...s, state: 'pending', error: `attempt ${attempt} failed, retrying at ${at.toISOString()}: ${error.message}` }));
  await reschedule({ ...job, retry: attempt }, at);
  deps.log.warn(`${job.jobId}: attempt ${attempt} of ${maxAttempts} failed (${error.message}); retrying at ${at.toISOString()}`);
  return { outcome: 'rescheduled', at, error: error.message };
}

async function runJob(job: ReplicationJob, deps: ReplicateDeps): Promise<JobOutcome> {
  const target = await deps.regionStorage(job.region);
  if (!target) {
    const description = `job ${job.jobId} is for region "${job.region}", which is neither in GEOREG_REGIONS nor created with \`georeg replication create\``;
    await deps.afterFailure?.(job, 'UnknownRegion', description);
    return { outcome: 'dead-letter', reason: 'UnknownRegion', description };
  }
  const status = new StatusStore(deps.state);
  // The push records the job's status lazily: the first attempt creates it (with the plan's totals when inline).
  const begun = await status.beginAttempt(initialStatus(job));
  if (begun.alreadyComplete) {
    deps.log.info(`${job.jobId}: already complete in ${job.region}, nothing to do`);
    await deps.afterCommit?.(job, begun.status, true);
    return { outcome: 'completed', status: begun.status, alreadyComplete: true };
  }
  try {
    const done = job.action === 'push' ? await replicatePush(job, target, deps, status, begun.job) : await replicateDelete(job, target, deps, begun.job);
    await deps.afterCommit?.(job, done, false);
    return { outcome: 'completed', status: done, alreadyComplete: false };
  } catch (e) {
    const permanent = asPermanent(e, job);
    if (!permanent) throw e;
    await begun.job.update((s) => ({ ...s, state: 'failed', error: `${permanent.reason}: ${permanent.message}` }));
    deps.log.error(`${job.jobId}: ${permanent.reason}: ${permanent.message}`);
    await deps.afterFailure?.(job, permanent.reason, permanent.message);
    return { outcome: 'dead-letter', reason: permanent.reason, description: permanent.message };
  }
}

function initialStatus(job: ReplicationJob): RegionStatus {
  const base = { pushId: job.pushId, region: job.region, jobId: job.jobId, action: job.action, repository: job.repository, tag: job.tag };
  if (job.action === 'delete') return newRegionStatus({ ...base, digest: job.digest });
  return newRegionStatus({ ...base, digest: job.manifest.digest, ...('inline' in job.plan ? planTotals(job.plan.inline) : {}) });
}

/** What a plan moves in all, and what the region lacked when it was made. */
export function planTotals(plan: ReplicationPlan): { total: { blobs: number; bytes: number }; planned: { blobs: number; bytes: number }; foreign: ReplicationPlan['foreign'] } {
  const all = planDescriptors(plan);
  return { total: { blobs: all.length, bytes: all.reduce((n, d) => n + d.size, 0) }, planned: { blobs: plan.missing.length, bytes: missingBytes(plan) }, foreign: plan.foreign };
}

/**
 * Copies in this process by target container and digest, running or finished in the last minute:
 * concurrent jobs share one copy, and a job that saw the blob missing just before another job's
 * copy finished does not copy it again.
 */
const copies = new Map<string, { copying: Promise<unknown>; finishedAt?: number }>();
const RECENT_COPY_MS = 60_000;

/**
 * What this worker found in (or wrote to) a region lately, by the region's container: a hint of
 * which requests a job can spare, never a substitute for asking. Bounded; the oldest go first.
 */
class SeenInRegion {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}
  has(url: string, what: string): boolean {
    return this.seen.has(`${url}\n${what}`);
  }
  add(url: string, what: string): void {
    const key = `${url}\n${what}`;
    this.seen.delete(key);
    this.seen.add(key);
    if (this.seen.size > this.max) this.seen.delete(this.seen.values().next().value as string);
  }
  forget(url: string, what: string): void {
    this.seen.delete(`${url}\n${what}`);
  }
}
/** Blobs: one seen is asked about with a HEAD; any other is copied `ifAbsent` (its check and copy in one request). */
const blobsSeen = new SeenInRegion(200_000);
/** Tags (`repository:tag`): one never seen is created `If-None-Match: *` without reading the region's link first (see commitTag). */
const tagsSeen = new SeenInRegion(100_000);

/**
 * A job's progress (blobs and bytes copied so far) is written to its status only once it has copied
 * this long: a small job writes its status twice, at the start and at the end, even when a busy
 * worker or storage stretches it to a few seconds.
 */
const PROGRESS_AFTER_MS = 10_000;
const PROGRESS_EVERY_MS = 10_000;

async function replicatePush(job: PushJob, target: RegionStorage, deps: ReplicateDeps, status: StatusStore, jobStatus: JobStatus): Promise<RegionStatus> {
  const plan = await loadPlan(job, deps);
  const all = planDescriptors(plan);
  // The plan may be stale both ways (another push copied a shared layer since; a blob the region
  // had was deleted there since), so the region is asked again about every blob before the tag:
  // a blob this worker saw there lately with one HEAD; any other is copied only if absent
  // (`ifAbsent`), which proves it there either way without a HEAD first (most are new).
  const lookedAt = Date.now();
  const expected = all.filter((d) => blobsSeen.has(target.url, d.digest));
  // What is copied (or found there by a conditional copy): the blobs not seen, then those the HEADs miss.
  const toCopy = all.filter((d) => !expected.includes(d));
  // Layers and configs before manifests: a manifest blob never lands before what it references.
  const manifestDigests = new Set(plan.manifests.map((m) => m.digest));
  const isBlob = (d: DescriptorRef) => !manifestDigests.has(d.digest);

  // A plan that did not ask the region (a notification's): what it lacked is what this check found
  // (less what the conditional copies found there: see `existed`).
  const lackedNow = () => ({ blobs: toCopy.length, bytes: toCopy.reduce((n, d) => n + d.size, 0) });
  const progress = { copied: 0, bytes: 0, methods: {} as Record<string, number> };
  let nextFlush = Date.now() + PROGRESS_AFTER_MS;
  const flush = async () => {
    if (Date.now() < nextFlush) return;
    nextFlush = Date.now() + PROGRESS_EVERY_MS;
    const lacked = lackedNow();
    const planned = plan.unchecked ? { blobs: { planned: lacked.blobs }, bytes: { planned: lacked.bytes } } : { blobs: {}, bytes: {} };
    await jobStatus.update((s) => ({ ...s, blobs: { ...s.blobs, ...planned.blobs, copied: progress.copied }, bytes: { ...s.bytes, ...planned.bytes, copied: progress.bytes }, methods: { ...progress.methods } }));
  };
  const joined = { blobs: 0, bytes: 0 };
  const existed = new Set<string>();
  const copyOne = async (d: DescriptorRef) => {
    const key = `${target.url}\n${d.digest}`;
    const other = copies.get(key);
    // Another job of this worker is copying the same blob (images sharing a base layer, a
    // back-fill), or finished it after this job looked: use that copy and count it as skipped.
    if (other && (other.finishedAt === undefined || other.finishedAt > lookedAt)) {
      await other.copying;
      joined.blobs += 1;
      joined.bytes += d.size;
      return;
    }
    const entry: { copying: Promise<Awaited<ReturnType<typeof copyBlob>>>; finishedAt?: number } = {
      copying: copyBlob({ source: deps.home, target, digest: d.digest, expectedSize: d.size, verifyDigest: deps.settings.verifyDigests, ifAbsent: true }),
    };
    copies.set(key, entry);
    let result;
    try {
      result = await entry.copying;
      entry.finishedAt = Date.now();
      setTimeout(() => copies.get(key) === entry && copies.delete(key), RECENT_COPY_MS).unref();
    } catch (e) {
      copies.delete(key);
      throw e;
    }
    blobsSeen.add(target.url, d.digest);
    if (result.existed) {
      existed.add(d.digest);
      return;
    }
    progress.copied += 1;
    progress.bytes += result.bytes;
    progress.methods[result.method] = (progress.methods[result.method] ?? 0) + 1;
    await flush();
  };
  // The HEADs of the blobs seen before run while the others copy; then the ones the HEADs missed
  // copy, and the repository's layer links are listed while they do.
  let linked: Set<string> = new Set();
  const checkSeen = async () => {
    const inventory = await target.hasBlobs(expected.map((d) => d.digest), deps.settings.copyConcurrency);
    const there = expected.filter((d) => inventory.get(d.digest) === d.size);
    for (const d of expected) {
      if (there.includes(d)) blobsSeen.add(target.url, d.digest);
      else blobsSeen.forget(target.url, d.digest);
    }
    const missing = expected.filter((d) => !there.includes(d));
    toCopy.push(...missing);
    await Promise.all([
      forEachLimit(missing.filter(isBlob), deps.settings.copyConcurrency, copyOne),
      linkedLayers(job.repository, plan, there, target).then((l) => {
        linked = l;
      }),
    ]);
  };
  const unseenBlobs = toCopy.filter(isBlob);
  await Promise.all([checkSeen(), forEachLimit(unseenBlobs, deps.settings.copyConcurrency, copyOne)]);
  // Child manifests before their index: the order is the guarantee.
  await manifestsInOrder(plan.manifests.filter((m) => toCopy.some((d) => d.digest === m.digest)), deps.settings.copyConcurrency, copyOne);

  const copied = toCopy.filter((d) => !existed.has(d.digest));
  const lacked = { blobs: copied.length, bytes: copied.reduce((n, d) => n + d.size, 0) };
  const tag = await inSpan('georeg.commit', { 'georeg.region': job.region, 'georeg.repository': job.repository }, () => commitLinks(job, plan, target, deps.home, linked));

  const completedAt = new Date();
  const skipped = all.length - copied.length + joined.blobs;
  const skippedBytes = all.filter((d) => !copied.includes(d)).reduce((s, d) => s + d.size, 0) + joined.bytes;
  const supersededBy = tag.committed ? undefined : { digest: tag.homeDigest, pushId: job.tag ? await supersedingPush(job.repository, job.tag, tag.homeDigest, status) : undefined };
  const totals = plan.unchecked ? { ...planTotals(plan), planned: lacked } : planTotals(plan);
  const done = await jobStatus.update((s) => ({
    ...s,
    state: supersededBy ? 'superseded' : 'complete',
    supersededBy,
    blobs: { ...s.blobs, total: totals.total.blobs, planned: totals.planned.blobs, foreign: totals.foreign.length, copied: progress.copied, skipped },
    bytes: { ...s.bytes, total: totals.total.bytes, planned: totals.planned.bytes, copied: progress.bytes, skipped: skippedBytes },
    foreign: totals.foreign,
    methods: progress.methods,
    completedAt: completedAt.toISOString(),
    durationMs: completedAt.getTime() - Date.parse(s.createdAt),
  }));
  const what = `${job.repository}:${job.tag ?? job.manifest.digest}`;
  if (supersededBy) {
    deps.log.info(`${job.jobId}: ${what} superseded in ${job.region}: home's tag now ${supersededBy.digest ? `points at ${supersededBy.digest}` : 'is deleted'}; blobs copied (${progress.copied}), tag left to the newer push`);
  } else {
    deps.log.info(`${job.jobId}: ${what} complete in ${job.region}: ${progress.copied} blob(s) / ${progress.bytes} bytes copied, ${skipped} already there`);
  }
  return done;
}

/** The push that set home's tag to `digest`, when the status records it (for the superseded status). */
async function supersedingPush(repository: string, tag: string, digest: string | undefined, status: StatusStore): Promise<string | undefined> {
  const latest = await status.latestPush(repository, tag);
  return latest && latest.digest === digest ? latest.pushId : undefined;
}

/**
 * Layer and revision links (revisions children first, root last; the tag's index link with them),
 * then the tag's current link: readers see the tag last. The tag is written only while home's tag
 * still points at this job's manifest, and only over the version of the region's link read before
 * home was asked, so an older job that commits after a newer one never sets the tag back (see
 * commitTag).
 */
async function commitLinks(job: PushJob, plan: ReplicationPlan, target: RegionStorage, home: RegionStorage, linked: ReadonlySet<string>): Promise<TagCommit> {
  const writeLinks = async () => {
    const { repository } = job;
    // Layer and revision links side by side (revisions children first): the tag goes after all.
    await Promise.all([
      ...plan.blobs.filter(({ digest }) => !linked.has(digest)).map(({ digest }) => target.writeLink({ kind: 'layer', repository, digest }, digest)),
      manifestsInOrder(plan.manifests, 8, ({ digest }) => target.writeLink({ kind: 'revision', repository, digest }, digest)),
    ]);
  };
  if (!job.tag) {
    await writeLinks();
    return { committed: true };
  }
  return commitTag(job.repository, job.tag, job.manifest.digest, target, home, writeLinks);
}

type TagCommit = { committed: true } | { committed: false; homeDigest?: string };

/**
 * The layer links the repository already has in the region, holding the right digest, when that
 * can pay: a blob the region already had is usually linked there too (an incremental push), so
 * one listing can spare a link write per shared layer. Only asked when two or more of the image's
 * layers were there (`there`: found by a HEAD); a link that is present is exactly what writing it
 * would leave.
 */
async function linkedLayers(repository: string, plan: ReplicationPlan, there: readonly DescriptorRef[], target: RegionStorage): Promise<Set<string>> {
  const found = new Set(there.map((d) => d.digest));
  const had = plan.blobs.filter((b) => found.has(b.digest));
  if (had.length < 2) return new Set();
  const present = await target.presentLinks(had.map((b) => ({ kind: 'layer' as const, repository, digest: b.digest })), { kind: 'layers', repository });
  return new Set(had.filter((_, i) => present[i]).map((b) => b.digest));
}

/**
 * Runs `fn` over manifests listed children before parents, never starting a manifest before the
 * ones it references are done: image manifests reference no manifest, so they go first and in
 * parallel (an index's platforms); then each index (or a manifest of unknown type) one at a time,
 * in the order given.
 */
async function manifestsInOrder(manifests: readonly DescriptorRef[], concurrency: number, fn: (m: DescriptorRef) => Promise<unknown>): Promise<void> {
  const leaf = (m: DescriptorRef) => m.mediaType !== undefined && IMAGE_MANIFEST_TYPES.includes(m.mediaType);
  await forEachLimit(manifests.filter(leaf), concurrency, async (m) => {
    await fn(m);
  });
  for (const m of manifests.filter((m) => !leaf(m))) await fn(m);
}

/**
 * The tag guard. Reading the region's link (and its ETag) before asking home is what makes it
 * safe: a newer job that commits after our read changes the ETag, so our conditional write fails
 * and we ask home again; a newer job that committed before our read had already seen home move
 * on, so home answers the newer digest to us too. A delete job removes the tag under the same
 * guard. Costs one read of the region's and one of home's link per job, not per blob.
 *
 * A superseded job still writes the manifest's links when home still serves the manifest by
 * digest (a tag moved to a newer image leaves the older one pullable), and leaves them out when
 * home deleted it.
 */
async function commitTag(repository: string, tag: string, digest: string, target: RegionStorage, home: RegionStorage, writeLinks: () => Promise<void>): Promise<TagCommit> {
  const current: LinkSpec = { kind: 'tagCurrent', repository, tag };
  const seen = `${repository}:${tag}`;
  let linksWritten = false;
  // A tag this worker never saw in the region is usually new there. Its first attempt skips the
  // region's read and assumes it absent: the write is then `If-None-Match: *`, which succeeds only
  // where a read would have found the tag absent and nobody wrote it since (the guard of the
  // write over an absent version, whenever the read happened). If the tag is there, the write
  // fails and the next attempt reads it as usual.
  let assumed: { digest?: string; etag?: string } | undefined = tagsSeen.has(target.url, seen) ? undefined : {};
  const committed = (): TagCommit => {
    tagsSeen.add(target.url, seen);
    return { committed: true };
  };
  for (let attempt = 1; attempt <= 10; attempt++) {
    const region = assumed ?? (await target.readLinkVersion(current));
    assumed = undefined;
    const homeDigest = await home.readLink(current);
    if (homeDigest !== digest) {
      if (!linksWritten && (await home.linkExists({ kind: 'revision', repository, digest }))) await writeLinks();
      return { committed: false, homeDigest };
    }
    // The tag's history with the links (readers resolve a tag by its current link only).
    await Promise.all([linksWritten ? undefined : writeLinks(), target.writeLink({ kind: 'tagIndex', repository, tag, digest }, digest)]);
    linksWritten = true;
    if (region.digest === digest) return committed();
    if (await target.writeLinkIf(current, digest, region.etag)) return committed();
  }
  throw new Error(`tag ${repository}:${tag} in ${target.region} kept changing under 10 guarded writes: too many concurrent jobs for one tag; retrying`);
}

/**
 * Deletes remove links only, never blob data (other repositories and tags may share it; reclaiming
 * space is the registry's garbage collection). A tag delete removes the tag; a digest delete removes
 * the revision or layer link and every tag that points at that manifest, as Distribution does.
 * Each removal is guarded by home: a tag goes only if home no longer has it (or has it at the
 * deleted digest), a link only if home no longer has it, so a delete that runs after a re-push
 * never takes the re-pushed image away. A delete that removed nothing because home moved on is
 * `superseded` (no delete webhook).
 */
async function replicateDelete(job: DeleteJob, target: RegionStorage, deps: ReplicateDeps, jobStatus: JobStatus): Promise<RegionStatus> {
  const { repository } = job;
  const home = deps.home;
  let removed = 0;
  let keptFor: string | undefined;
  let homeHasIt = false;
  const tags = new Set<string>();
  if (job.tag) tags.add(job.tag);
  if (job.digest) {
    for (const tag of await target.listTags(job.repository)) {
      if ((await target.readLink({ kind: 'tagCurrent', repository, tag })) === job.digest) tags.add(tag);
    }
  }
  // The current link goes first, so a reader never resolves a half-removed tag.
  for (const tag of tags) {
    const outcome = await removeTagIfGoneAtHome(repository, tag, job.digest, target, home);
    if (outcome.kept) {
      keptFor ??= outcome.homeDigest;
      homeHasIt = true;
      continue;
    }
    // Only the history after the guarded removal: a re-push's job may already have set `current` again.
    if (outcome.removed) removed += 1 + (await target.deletePrefix({ kind: 'tagIndex', repository, tag }));
  }
  if (job.digest) {
    const { digest } = job;
    for (const link of [{ kind: 'revision', repository, digest }, { kind: 'layer', repository, digest }] as const) {
      const outcome = await removeLinkIfGoneAtHome(link, target, home);
      if (outcome === 'kept') homeHasIt = true;
      if (outcome === 'removed') removed += 1;
    }
  }
  const completedAt = new Date();
  const superseded = homeHasIt && removed === 0;
  deps.log.info(`${job.jobId}: delete ${job.repository}:${job.tag ?? job.digest} ${superseded ? 'superseded (home has it again)' : 'complete'} in ${job.region} (${removed} link(s) removed)`);
  return jobStatus.update((s) => ({
    ...s,
    state: superseded ? 'superseded' : 'complete',
    supersededBy: superseded ? { digest: keptFor } : undefined,
    completedAt: completedAt.toISOString(),
    durationMs: completedAt.getTime() - Date.parse(s.createdAt),
  }));
}

/**
 * Removes a revision or layer link unless home has it again (re-pushed since the delete). Guarded
 * like the tag: the region's version is read before home is asked, so a re-push's job that writes
 * the link after our read makes our delete fail instead of leaving its tag over a missing link.
 */
async function removeLinkIfGoneAtHome(link: Extract<LinkSpec, { kind: 'layer' | 'revision' }>, target: RegionStorage, home: RegionStorage): Promise<'removed' | 'kept' | 'absent'> {
  for (let attempt = 1; attempt <= 10; attempt++) {
    const region = await target.readLinkVersion(link);
    if (await home.linkExists(link)) return 'kept';
    if (!region.etag) return 'absent';
    if (await target.deleteLinkIf(link, region.etag)) return 'removed';
  }
  throw new Error(`${link.kind} link ${link.repository}@${link.digest} in ${target.region} kept changing under 10 guarded deletes: too many concurrent jobs; retrying`);
}

/**
 * Removes the region's tag unless it is home's tag too: the same digest, and a manifest home still
 * serves (a re-push after the delete). A region tag at another digest than home's is stale either
 * way; removing it leaves the tag absent until the newer push's job sets it, never pointing at a
 * manifest being deleted. Guarded like commitTag.
 */
async function removeTagIfGoneAtHome(repository: string, tag: string, deletedDigest: string | undefined, target: RegionStorage, home: RegionStorage): Promise<{ removed: boolean; kept: boolean; homeDigest?: string }> {
  const current: LinkSpec = { kind: 'tagCurrent', repository, tag };
  for (let attempt = 1; attempt <= 10; attempt++) {
    const region = await target.readLinkVersion(current);
    const homeDigest = await home.readLink(current);
    const homeServes = homeDigest !== undefined && (homeDigest !== deletedDigest || (await home.linkExists({ kind: 'revision', repository, digest: homeDigest })));
    if (homeServes && homeDigest === region.digest) return { removed: false, kept: true, homeDigest };
    if (!region.etag) return { removed: false, kept: homeServes, homeDigest };
    if (await target.deleteLinkIf(current, region.etag)) return { removed: true, kept: false };
  }
  throw new Error(`tag ${repository}:${tag} in ${target.region} kept changing under 10 guarded deletes: too many concurrent jobs for one tag; retrying`);
}

async function loadPlan(job: PushJob, deps: ReplicateDeps): Promise<ReplicationPlan> {
  if ('inline' in job.plan) return job.plan.inline;
  const stored = await deps.state.get(job.plan.blobName, ReplicationPlan);
  if (!stored) throw new PermanentJobError('PlanMissing', `plan ${job.plan.blobName} for job ${job.jobId} is not in the state container: re-send the notification to plan again`);
  return stored.value;
}

function asPermanent(e: unknown, job: ReplicationJob): PermanentJobError | undefined {
  if (e instanceof PermanentJobError) return e;
  if (e instanceof SourceBlobMissingError) return new PermanentJobError('SourceBlobMissing', `${(e as Error).message} (job ${job.jobId}, region ${job.region})`);
  if (e instanceof DigestMismatchError) return new PermanentJobError('DigestMismatch', `${e.message} (job ${job.jobId}, region ${job.region})`);
  return undefined;
}
