import { createHash } from 'node:crypto';
import type { DescriptorRef, PushJob, ReplicationJob, ReplicationPlan, RequestInfo } from '../bus/messages';
import type { Settings } from '../config/settings';
import { walkReferences } from '../oci/references';
import { statePaths } from '../storage/paths';
import type { RegionStorage } from '../storage/region-storage';
import type { StateStore } from '../storage/state-store';
import { newRegionStatus, type PushRecord, type RegionStatus } from './status';

/**
 * Planning: an image in home storage → a plan per region (the layer diff) → a replication job.
 * Every producer of push jobs plans here: a registry's notification (push.ts), a replica's
 * back-fill and resync (replicas/sync.ts) and reconcile (reconcile.ts).
 *
 * The decisions are pure (planRegion, pushJobFor, pushRecordFor): they take what the image
 * references and what the region holds, and return the plan and the job. The edges that talk to
 * storage are few and named for it: readImage (home), planPushJob (the region's inventory) and
 * claimCheckIfLarge (a plan too large for a message goes to a state blob).
 */

export interface ImageReferences {
  /** All manifests of the image, children before parents, the root last. */
  manifests: DescriptorRef[];
  /** Configs and layers, deduplicated. */
  blobs: DescriptorRef[];
  /** Foreign / non-distributable layers, never copied. */
  foreign: Array<DescriptorRef & { urls?: string[] }>;
}

/** An image as read from home: its references and its root manifest. */
export type Image = ImageReferences & { root: DescriptorRef };

/** Size of each digest in the region, or undefined when it is absent. */
export type RegionInventory = ReadonlyMap<string, number | undefined>;

/** The plan against what the region holds; without an inventory, every digest is to be checked by the job (`unchecked`). */
export function planRegion(image: ImageReferences, inventory: RegionInventory | undefined): ReplicationPlan {
  const missing: string[] = [];
  const seen = new Set<string>();
  // Layers and configs first, manifests after: the order the copy and commit follow.
  for (const d of [...image.blobs, ...image.manifests]) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    // A blob of the wrong size in the region is a partial or corrupt copy: copy it again.
    if (inventory?.get(d.digest) !== d.size) missing.push(d.digest);
  }
  return { manifests: image.manifests, blobs: image.blobs, missing, foreign: image.foreign, ...(inventory ? {} : { unchecked: true as const }) };
}

/** Every digest the plan references that has data to copy (blobs, then manifests), deduplicated. */
export function planDescriptors(plan: ReplicationPlan): DescriptorRef[] {
  const byDigest = new Map<string, DescriptorRef>();
  for (const d of [...plan.blobs, ...plan.manifests]) if (!byDigest.has(d.digest)) byDigest.set(d.digest, d);
  return [...byDigest.values()];
}

export function missingBytes(plan: ReplicationPlan): number {
  const missing = new Set(plan.missing);
  return planDescriptors(plan)
    .filter((d) => missing.has(d.digest))
    .reduce((sum, d) => sum + d.size, 0);
}

export interface PushJobInput {
  image: Image;
  pushId: string;
  eventId: string;
  region: string;
  repository: string;
  tag?: string;
  request?: RequestInfo;
  sync?: PushJob['sync'];
}

export interface PlannedPushJob {
  job: PushJob;
  status: RegionStatus;
  summary: PushRecord['regions'][number];
  plan: ReplicationPlan;
}

/** One region's job for an image, given what the region holds (or not asked: undefined): the layer diff and the job's pending status. */
export function pushJobFor(input: PushJobInput, inventory: RegionInventory | undefined): PlannedPushJob {
  const { image, pushId, region, repository, tag } = input;
  const all = planDescriptors({ ...image, missing: [] });
  const plan = planRegion(image, inventory);
  // Equal to jobIdFor(eventId, region) for a notification's push.
  const jobId = `${pushId}:${region}`;
  const planned = { blobs: plan.missing.length, bytes: missingBytes(plan) };
  const total = { blobs: all.length, bytes: all.reduce((s, d) => s + d.size, 0) };
  const job: PushJob = {
    version: 1,
    jobId,
    pushId,
    eventId: input.eventId,
    region,
    repository,
    createdAt: new Date().toISOString(),
    request: input.request,
    action: 'push',
    tag,
    manifest: image.root,
    plan: { inline: plan },
    ...(input.sync ? { sync: input.sync } : {}),
  };
  const status = newRegionStatus({ pushId, region, jobId, action: 'push', repository, tag, digest: image.root.digest, total, planned, foreign: image.foreign });
  return { job, status, summary: { region, jobId, ...(plan.unchecked ? {} : { missingBlobs: planned.blobs, missingBytes: planned.bytes }) }, plan };
}

/** The record of a push of an image (a notification's, or one a back-fill, resync or reconcile makes), with each region's job. */
export function pushRecordFor(input: { pushId: string; eventId: string; repository: string; tag?: string; image: Image; request?: RequestInfo; regions: PushRecord['regions'] }): PushRecord {
  const { image } = input;
  return {
    pushId: input.pushId,
    eventId: input.eventId,
    action: 'push',
    repository: input.repository,
    tag: input.tag,
    digest: image.root.digest,
    mediaType: image.root.mediaType,
    size: image.root.size,
    createdAt: new Date().toISOString(),
    ...(input.request ? { request: input.request } : {}),
    regions: input.regions,
  };
}

/** An image's manifests (children first, the root last), configs and layers, read from home storage. */
export async function readImage(home: RegionStorage, digest: string, mediaType?: string): Promise<Image> {
  const graph = await walkReferences(digest, async (d) => ({ bytes: await home.readBlob(d), mediaType: d === digest ? mediaType : undefined }));
  return { manifests: graph.manifests, blobs: graph.blobs, foreign: graph.foreign, root: graph.manifests[graph.manifests.length - 1] };
}

/** One region's job for an image: asks the region what it holds (one HEAD per digest), then pushJobFor. */
export async function planPushJob(input: PushJobInput & { storage: RegionStorage; concurrency: number }): Promise<PlannedPushJob> {
  const all = planDescriptors({ ...input.image, missing: [] });
  return pushJobFor(input, await input.storage.hasBlobs(all.map((d) => d.digest), input.concurrency));
}

/**
 * A pushed image's jobs, one per replica region, and the push's record. The regions are not asked
 * what they hold: each job asks its region just before it copies (the check that guards its tag),
 * so asking here too would only repeat the same HEADs seconds earlier, from across regions, while
 * the registry waits for the answer. The region's status says what it lacked.
 */
export function planImagePush(input: Omit<PushJobInput, 'region' | 'sync'> & { replicas: ReadonlyMap<string, RegionStorage> }): { record: PushRecord; jobs: PushJob[] } {
  const { replicas, ...rest } = input;
  const planned = [...replicas.keys()].map((region) => pushJobFor({ ...rest, region }, undefined));
  return { record: pushRecordFor({ ...rest, regions: planned.map((p) => p.summary) }), jobs: planned.map((p) => p.job) };
}

/** A push job whose message would pass the entity's size limit carries its plan in a state blob instead. */
export async function claimCheckIfLarge(job: ReplicationJob, deps: { settings: Pick<Settings, 'maxInlinePlanBytes'>; state: StateStore }): Promise<ReplicationJob> {
  if (job.action !== 'push' || !('inline' in job.plan)) return job;
  const size = Buffer.byteLength(JSON.stringify(job));
  if (size <= deps.settings.maxInlinePlanBytes) return job;
  const blobName = statePaths.plan(job.pushId, job.region);
  await deps.state.put(blobName, job.plan.inline);
  return { ...job, plan: { blobName } };
}

/** Deterministic from the event id, so a duplicate notification maps to the same push and jobs. */
export function pushIdFor(eventId: string): string {
  return /^[A-Za-z0-9-]{1,64}$/.test(eventId) ? eventId : `h-${createHash('sha256').update(eventId).digest('hex').slice(0, 40)}`;
}

export function jobIdFor(eventId: string, region: string): string {
  return `${pushIdFor(eventId)}:${region}`;
}
