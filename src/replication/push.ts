import { createHash } from 'node:crypto';
import type { ServiceBusSender } from '@azure/service-bus';
import { replicationJobMessage, type DeleteJob, type DescriptorRef, type PushJob, type ReplicationJob, type ReplicationPlan, type RequestInfo } from '../bus/messages';
import { secretMatches, type HttpOutput } from '../common/http';
import type { Logger } from '../common/log';
import type { Settings } from '../config/settings';
import { EnvelopeError, parseEnvelope, type ClassifiedEvent, type NotificationEvent } from '../notifications/envelope';
import { DigestMismatchError } from '../oci/digest';
import { ManifestError } from '../oci/manifest';
import { walkReferences } from '../oci/references';
import { statePaths } from '../storage/paths';
import { BlobNotFoundError, type RegionStorage } from '../storage/region-storage';
import type { StateStore } from '../storage/state-store';
import { missingBytes, planDescriptors, planRegion, type ImageReferences } from './plan';
import { newRegionStatus, StatusStore, type PushRecord, type RegionStatus } from './status';
import { inSpan } from '../telemetry/trace';

/**
 * The push endpoint: a registry's notification in, one replication job per replica region out.
 * Everything is checked before anything is enqueued, so a 400 or 404 leaves the bus untouched.
 */

export interface PushDeps {
  settings: Settings;
  home: RegionStorage;
  /** The replicas a new push goes to, as they are now (regions are added and removed at run time). */
  replicas: () => Promise<ReadonlyMap<string, RegionStorage>>;
  state: StateStore;
  replicationSender: ServiceBusSender;
  log: Logger;
}

export interface HttpInput {
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
  body: string;
}

export type { HttpOutput } from '../common/http';

export interface AcceptedPush {
  pushId: string;
  action: 'push' | 'delete';
  repository: string;
  tag?: string;
  digest?: string;
  duplicate: boolean;
  jobs: Array<{ region: string; jobId: string; missingBlobs: number; missingBytes: number }>;
}

export async function handlePushNotification(input: HttpInput, deps: PushDeps): Promise<HttpOutput> {
  // Distribution's endpoint `headers` send the value as configured: bare, or as a Bearer token.
  if (!secretMatches(input.headers.authorization, deps.settings.pushSecret)) {
    return { status: 401, jsonBody: { error: 'missing or wrong Authorization header: send the push secret (GEOREG_PUSH_SECRET) as Distribution endpoint headers do' }, headers: { 'WWW-Authenticate': 'Bearer realm="georeg"' } };
  }
  let events: ClassifiedEvent[];
  try {
    events = parseEnvelope(input.body, input.headers['content-type']);
  } catch (e) {
    if (e instanceof EnvelopeError) return { status: 400, jsonBody: { error: e.message } };
    throw e;
  }

  const prepared: Array<{ record: PushRecord; jobs: ReplicationJob[]; statuses: ReturnType<typeof newRegionStatus>[] }> = [];
  for (const event of events) {
    if (event.kind === 'manifest-push') {
      const result = await inSpan('georeg.plan', { 'georeg.repository': event.repository }, () => preparePush(event, deps));
      if ('status' in result) return result;
      prepared.push(result);
    } else if (event.kind === 'delete') {
      prepared.push(prepareDelete(event, deps, await deps.replicas()));
    }
  }

  const status = new StatusStore(deps.state);
  const accepted: AcceptedPush[] = [];
  for (const p of prepared) {
    // Large plans go to a blob first, so the message stays under the entity's size limit.
    const messages = [];
    for (const job of p.jobs) messages.push(replicationJobMessage(await claimCheckIfLarge(job, deps)));
    const { duplicate } = await status.recordPush(p.record, p.statuses);
    // Sent even when the record exists: a crash between record and send must not lose the jobs;
    // Service Bus duplicate detection drops a second copy of the same message id.
    if (messages.length) await deps.replicationSender.sendMessages(messages);
    accepted.push({
      pushId: p.record.pushId,
      action: p.record.action,
      repository: p.record.repository,
      tag: p.record.tag,
      digest: p.record.digest,
      duplicate,
      jobs: p.record.regions,
    });
    deps.log.info(`${p.record.action} ${p.record.repository}:${p.record.tag ?? p.record.digest} → ${p.jobs.length} region job(s), push ${p.record.pushId}${duplicate ? ' (duplicate notification)' : ''}`);
  }
  const ignored = events.filter((e) => e.kind === 'ignored').length;
  return { status: 202, jsonBody: { pushes: accepted, ignored } };
}

async function preparePush(event: Extract<ClassifiedEvent, { kind: 'manifest-push' }>, deps: PushDeps) {
  const { repository, digest, tag } = event;
  const root = await deps.home.blobProperties(digest);
  if (!root) {
    return {
      status: 404,
      jsonBody: { error: `manifest ${digest} of ${repository} is not in the home region's storage (${deps.settings.homeRegion.name}): push it to the registry first, or check GEOREG_REGISTRY_ROOT` },
    } as HttpOutput;
  }
  let image: ImageReferences & { root: DescriptorRef };
  try {
    image = await readImage(deps.home, digest, event.mediaType);
  } catch (e) {
    // A manifest that does not parse or does not match its digest is the caller's to fix;
    // anything else (storage unreachable) is ours and propagates as a 500.
    if (e instanceof ManifestError || e instanceof DigestMismatchError || e instanceof BlobNotFoundError) {
      return { status: 400, jsonBody: { error: `${repository}@${digest}: ${e.message}` } } as HttpOutput;
    }
    throw e;
  }
  const root_ = image.root;
  const pushId = pushIdFor(event.event.id);
  const planned = await Promise.all(
    [...(await deps.replicas())].map(([region, storage]) =>
      planPushJob({ image, storage, pushId, eventId: event.event.id, region, repository, tag, request: requestInfo(event.event), concurrency: deps.settings.copyConcurrency }),
    ),
  );
  const jobs = planned.map((p) => p.job);
  const statuses = planned.map((p) => p.status);
  const regions = planned.map((p) => p.summary);
  const record: PushRecord = {
    pushId,
    eventId: event.event.id,
    action: 'push',
    repository,
    tag,
    digest,
    mediaType: root_.mediaType,
    size: root_.size,
    createdAt: new Date().toISOString(),
    request: requestInfo(event.event),
    regions,
  };
  return { record, jobs, statuses };
}

/** An image's manifests (children first, the root last), configs and layers, read from home storage. */
export async function readImage(home: RegionStorage, digest: string, mediaType?: string): Promise<ImageReferences & { root: DescriptorRef }> {
  const graph = await walkReferences(digest, async (d) => ({ bytes: await home.readBlob(d), mediaType: d === digest ? mediaType : undefined }));
  return { manifests: graph.manifests, blobs: graph.blobs, foreign: graph.foreign, root: graph.manifests[graph.manifests.length - 1] };
}

/** One region's job for an image: the layer diff against what the region holds now, and its pending status. */
export async function planPushJob(input: {
  image: ImageReferences & { root: DescriptorRef };
  storage: RegionStorage;
  pushId: string;
  eventId: string;
  region: string;
  repository: string;
  tag?: string;
  request?: RequestInfo;
  sync?: PushJob['sync'];
  concurrency: number;
}): Promise<{ job: PushJob; status: RegionStatus; summary: PushRecord['regions'][number]; plan: ReplicationPlan }> {
  const { image, pushId, region, repository, tag } = input;
  const all = planDescriptors({ ...image, missing: [] });
  const plan = planRegion(image, await input.storage.hasBlobs(all.map((d) => d.digest), input.concurrency));
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
  return { job, status, summary: { region, jobId, missingBlobs: planned.blobs, missingBytes: planned.bytes }, plan };
}

function prepareDelete(event: Extract<ClassifiedEvent, { kind: 'delete' }>, deps: PushDeps, replicas: ReadonlyMap<string, RegionStorage>) {
  const { repository, digest, tag } = event;
  const pushId = pushIdFor(event.event.id);
  const jobs: DeleteJob[] = [];
  const statuses = [];
  const regions: PushRecord['regions'] = [];
  for (const region of replicas.keys()) {
    const jobId = jobIdFor(event.event.id, region);
    jobs.push({ version: 1, jobId, pushId, eventId: event.event.id, region, repository, createdAt: new Date().toISOString(), request: requestInfo(event.event), action: 'delete', tag, digest, mediaType: event.event.target.mediaType });
    statuses.push(newRegionStatus({ pushId, region, jobId, action: 'delete', repository, tag, digest }));
    regions.push({ region, jobId, missingBlobs: 0, missingBytes: 0 });
  }
  const record: PushRecord = { pushId, eventId: event.event.id, action: 'delete', repository, tag, digest, createdAt: new Date().toISOString(), request: requestInfo(event.event), regions };
  return { record, jobs, statuses };
}

export async function claimCheckIfLarge(job: ReplicationJob, deps: Pick<PushDeps, 'settings' | 'state'>): Promise<ReplicationJob> {
  if (job.action !== 'push' || !('inline' in job.plan)) return job;
  const size = Buffer.byteLength(JSON.stringify(job));
  if (size <= deps.settings.maxInlinePlanBytes) return job;
  const blobName = statePaths.plan(job.pushId, job.region);
  await deps.state.put(blobName, job.plan.inline);
  return { ...job, plan: { blobName } };
}

function requestInfo(event: NotificationEvent): RequestInfo | undefined {
  const r = event.request;
  return r ? { id: r.id, host: r.host, method: r.method, useragent: r.useragent } : undefined;
}

/** Deterministic from the event id, so a duplicate notification maps to the same push and jobs. */
export function pushIdFor(eventId: string): string {
  return /^[A-Za-z0-9-]{1,64}$/.test(eventId) ? eventId : `h-${createHash('sha256').update(eventId).digest('hex').slice(0, 40)}`;
}

export function jobIdFor(eventId: string, region: string): string {
  return `${pushIdFor(eventId)}:${region}`;
}
