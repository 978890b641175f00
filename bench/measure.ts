import diagnostics_channel from 'node:diagnostics_channel';
import { readdirSync, readFileSync } from 'node:fs';
import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { BlobClient, BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import type { DescriptorRef } from '../src/bus/messages';
import { forEachLimit } from '../src/common/pool';
import type { Stack } from '../src/local/stack';
import { pushEnvelope, postNotification } from '../src/notifications/sender';
import { verifyDigest } from '../src/oci/digest';
import type { ImageToWrite } from '../src/registry/writer';
import { copyBlobs, type CopyMethod } from '../src/replication/copy';
import { StatusStore, type RegionStatus } from '../src/replication/status';
import { regionStorageFrom, type RegionStorage } from '../src/storage/region-storage';

/**
 * The three ways the benchmark moves an image to the replica regions, each measured the same way:
 *
 *   pipeline  the notification → push → Service Bus → replicate → commit → status, as deployed
 *   raw       the blobs each region lacked, copied by a bare loop: the pipeline's own copyBlobs()
 *             with the primitive the pipeline chose, the same per-region parallelism, no bus, no
 *             planning, no commit — the floor the pipeline can approach
 *   naive     every blob of the image downloaded from home and uploaded to each region, no diff:
 *             what `skopeo sync` per region does
 *   links     only the image's link files written to each region (layer, revision, tag index, tag
 *             current), as a registry needs them to serve it: raw + links is what a complete copy
 *             a registry can serve costs at the least (informational; the targets are against raw)
 *
 * raw and naive write into fresh containers of the same replica accounts (same Azurite), so they
 * move exactly the bytes the pipeline had to move, against the same storage.
 */

export interface JobEvent {
  region: string;
  messageId: string;
  deliveryCount: number;
  outcome: string;
  reason?: string;
  at: number;
}

/**
 * What the replicate and deliver triggers received, by push id (a message's correlationId): real
 * deliveries from the emulator, counted where the local host settles them.
 */
export class BusTracker {
  private readonly events = new Map<string, JobEvent[]>();
  private readonly deliveries = new Map<string, number>();
  private readonly waiters = new Map<string, () => void>();

  onJob = (region: string, outcome: { outcome: string; reason?: string; error?: string }, message: ServiceBusReceivedMessage): void => {
    const pushId = String(message.correlationId);
    const list = this.events.get(pushId) ?? [];
    list.push({ region, messageId: String(message.messageId), deliveryCount: message.deliveryCount ?? 0, outcome: outcome.outcome, reason: outcome.reason ?? outcome.error, at: Date.now() });
    this.events.set(pushId, list);
    this.waiters.get(pushId)?.();
  };

  onDelivery = (_outcome: unknown, message: ServiceBusReceivedMessage): void => {
    const pushId = String(message.correlationId);
    this.deliveries.set(pushId, (this.deliveries.get(pushId) ?? 0) + 1);
  };

  /** Resolves once every region settled its job for the push (completed or dead-lettered). */
  async settled(pushId: string, regions: readonly string[], timeoutMs: number): Promise<JobEvent[]> {
    const done = () => {
      const final = (this.events.get(pushId) ?? []).filter((e) => e.outcome === 'completed' || e.outcome === 'dead-letter');
      return regions.every((r) => final.some((e) => e.region === r)) ? final : undefined;
    };
    const ready = done();
    if (ready) return ready;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(pushId);
        reject(new Error(`push ${pushId} did not settle in every region within ${timeoutMs} ms: ${JSON.stringify(this.events.get(pushId) ?? [])}`));
      }, timeoutMs);
      this.waiters.set(pushId, () => {
        const final = done();
        if (!final) return;
        clearTimeout(timer);
        this.waiters.delete(pushId);
        resolve(final);
      });
    });
  }

  /** Replication messages (distinct ids), their deliveries (redeliveries included) and webhook deliveries for these pushes. */
  counts(pushIds: readonly string[]): { messages: number; deliveries: number; webhookDeliveries: number } {
    const all = pushIds.flatMap((id) => this.events.get(id) ?? []);
    return {
      messages: new Set(all.map((e) => e.messageId)).size,
      deliveries: all.length,
      webhookDeliveries: pushIds.reduce((s, id) => s + (this.deliveries.get(id) ?? 0), 0),
    };
  }
}

export function descriptorsOf(image: ImageToWrite): DescriptorRef[] {
  const byDigest = new Map<string, DescriptorRef>();
  for (const b of [...image.blobs, ...image.manifests]) byDigest.set(b.digest, { digest: b.digest, mediaType: b.mediaType, size: b.size });
  return [...byDigest.values()];
}

/**
 * What each region lacks of each image, found independently of the pipeline's diff: one listing of
 * the region's registry container, matched against the paths of the image's blobs (a blob of the
 * wrong size counts as missing, as the pipeline treats it).
 */
export async function listMissing(stack: Stack, regions: readonly string[], images: readonly ImageToWrite[]): Promise<Map<string, DescriptorRef[][]>> {
  const out = new Map<string, DescriptorRef[][]>();
  await Promise.all(
    regions.map(async (region) => {
      const storage = stack.runtime.regions.get(region)!;
      const present = new Map<string, number>();
      for await (const item of rawContainer(stack, region, stack.settings.registry.container).listBlobsFlat()) present.set(item.name, item.properties.contentLength ?? 0);
      out.set(region, images.map((image) => descriptorsOf(image).filter((d) => present.get(storage.layout.blobData(d.digest)) !== d.size)));
    }),
  );
  return out;
}

export interface PipelinePush {
  pushId: string;
  sentAt: number;
  /** Notification sent → the last region's trigger settled its message. */
  settledMs: number;
}

/** Sends the push notification and waits until every region's trigger settled its job; reads nothing. */
export async function pushThroughPipeline(stack: Stack, tracker: BusTracker, image: ImageToWrite, regions: readonly string[], timeoutMs: number): Promise<PipelinePush> {
  const root = image.manifests[image.manifests.length - 1];
  const envelope = pushEnvelope({
    repository: image.repository,
    tag: image.tag,
    manifest: root,
    blobs: image.blobs,
    references: [...image.blobs, ...image.manifests.slice(0, -1)].map(({ digest, mediaType, size }) => ({ digest, mediaType, size })),
  });
  const sentAt = Date.now();
  const response = (await postNotification(stack.pushUrl, stack.settings.pushSecret, envelope)) as { pushes: Array<{ pushId: string }> };
  const pushId = response.pushes[0].pushId;
  const events = await tracker.settled(pushId, regions, timeoutMs);
  return { pushId, sentAt, settledMs: Math.max(...events.map((e) => e.at)) - sentAt };
}

export interface PushOutcome extends PipelinePush {
  /** Notification sent → the last region's status says complete (its tag was committed just before). */
  readyMs: number;
  /** Per region: sent → planned and recorded, → job started, → job complete. */
  phases: Array<{ region: string; planMs: number; queueMs: number; jobMs: number }>;
  statuses: RegionStatus[];
}

/** Reads each region's status of a settled push (after the clock stopped, so it adds no load). */
export async function outcomeOf(stack: Stack, push: PipelinePush, regions: readonly string[]): Promise<PushOutcome> {
  const found = await new StatusStore(stack.runtime.state).push(push.pushId);
  const statuses = found?.regions ?? [];
  const failed = statuses.filter((s) => s.state !== 'complete');
  if (failed.length || statuses.length !== regions.length) {
    throw new Error(`push ${push.pushId} did not complete everywhere: ${JSON.stringify(statuses.map((s) => [s.region, s.state, s.error]))}`);
  }
  const readyAt = Math.max(...statuses.map((s) => Date.parse(s.completedAt!)));
  const phases = statuses.map((s) => {
    const [created, started, completed] = [s.createdAt, s.startedAt!, s.completedAt!].map(Date.parse);
    return { region: s.region, planMs: created - push.sentAt, queueMs: started - created, jobMs: completed - started };
  });
  return { ...push, readyMs: readyAt - push.sentAt, phases, statuses };
}

/** Requests by what they were: `<where> <operation> <what>`, e.g. `region HEAD blob`, `state PUT pushes`. */
export type RequestBreakdown = Record<string, number>;

/**
 * Counts the HTTP requests this process makes to Azurite, as registry storage or pipeline state
 * (the state container): Node's http client reports every request it starts on a diagnostics channel.
 * Each is also classified (see `classify`) so a run shows where its requests went.
 */
export class StorageRequests {
  private counts = { registry: 0, state: 0 };
  private byKind: RequestBreakdown = {};
  private readonly onStart = (message: unknown) => {
    const request = (message as { request: RequestLike }).request;
    if (String(request.getHeader('host') ?? '') !== this.host) return;
    const kind = classify(request, this.homeAccount, this.stateContainer);
    if (kind.startsWith('state ')) this.counts.state += 1;
    else this.counts.registry += 1;
    this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
  };

  constructor(private readonly host: string, private readonly stateContainer: string, private readonly homeAccount: string) {
    diagnostics_channel.subscribe('http.client.request.start', this.onStart);
  }

  /** Counts since the last take. */
  take(): { registry: number; state: number; byKind: RequestBreakdown } {
    const out = { ...this.counts, byKind: sortedByCount(this.byKind) };
    this.counts = { registry: 0, state: 0 };
    this.byKind = {};
    return out;
  }

  close(): void {
    diagnostics_channel.unsubscribe('http.client.request.start', this.onStart);
  }
}

interface RequestLike {
  method: string;
  path: string;
  getHeader(name: string): unknown;
}

/**
 * `<where> <operation> <what>` of one request to Azurite (path-style: /<account>/<container>/<blob>):
 * where is `home`, `region` (a replica's account) or `state` (the pipeline's documents); the
 * operation is the HTTP method, `copy` for a server-side copy, `list` for a listing; what is the
 * registry path's kind (blob data, layer/revision/tag link) or the state document's folder.
 */
export function classify(request: RequestLike, homeAccount: string, stateContainer: string): string {
  const [pathname, query = ''] = request.path.split('?');
  const [account = '', container = '', ...rest] = pathname.replace(/^\//, '').split('/').map(decodeURIComponent);
  const params = new URLSearchParams(query);
  // A listing's subject is its prefix.
  const blob = rest.join('/') || (params.get('prefix') ?? '');
  const operation =
    params.get('comp') === 'list' ? 'list' : request.method === 'PUT' && request.getHeader('x-ms-copy-source') !== undefined ? 'copy' : params.get('restype') === 'container' ? `${request.method} container` : request.method;
  if (container === stateContainer) return `state ${operation} ${blob.split('/')[0] || '-'}`;
  const where = account === homeAccount ? 'home' : 'region';
  const what = /\/_layers\//.test(blob) ? 'layer-link' : /\/_manifests\/revisions\//.test(blob) ? 'revision-link' : /\/_manifests\/tags\/.*\/index\//.test(blob) ? 'tag-index-link' : /\/_manifests\/tags\//.test(blob) ? 'tag-link' : /\/_manifests\//.test(blob) ? 'manifest-links' : /\/blobs\//.test(blob) ? 'blob' : 'other';
  return `${where} ${operation} ${what}`;
}

function sortedByCount(counts: RequestBreakdown): RequestBreakdown {
  return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

/** A fresh container with this name in each region's account, for raw or naive copies. */
export async function freshTargets(stack: Stack, regions: readonly string[], container: string): Promise<Map<string, RegionStorage>> {
  const out = new Map<string, RegionStorage>();
  for (const region of regions) {
    const storage = regionStorageFrom({ region, connectionString: stack.storageConnectionString(region), container, root: stack.settings.registry.root });
    const raw = rawContainer(stack, region, container);
    await raw.deleteIfExists();
    await storage.ensureContainer();
    out.set(region, storage);
    containers.set(storage, raw);
  }
  return out;
}

export async function dropTargets(targets: Map<string, RegionStorage>): Promise<void> {
  await Promise.all([...targets.values()].map((t) => containers.get(t)?.deleteIfExists()));
}

/** The containers freshTargets made, for dropTargets (RegionStorage keeps its container to itself). */
const containers = new WeakMap<RegionStorage, ContainerClient>();

function rawContainer(stack: Stack, region: string, container: string): ContainerClient {
  return BlobServiceClient.fromConnectionString(stack.storageConnectionString(region)).getContainerClient(container);
}

/** The raw limit for one image: each region's missing blobs through copyBlobs(), regions in parallel. */
export async function rawCopy(
  home: RegionStorage,
  targets: Map<string, RegionStorage>,
  missing: Map<string, DescriptorRef[]>,
  options: { concurrency: number; verifyDigest: boolean; method?: CopyMethod },
): Promise<{ ms: number; bytes: Map<string, number> }> {
  const started = performance.now();
  const bytes = new Map<string, number>();
  await Promise.all(
    [...targets].map(async ([region, target]) => {
      const items = (missing.get(region) ?? []).map((d) => ({ source: home, target, digest: d.digest, expectedSize: d.size, verifyDigest: options.verifyDigest, methods: options.method ? [options.method] : undefined }));
      const results = await copyBlobs(items, { concurrency: options.concurrency });
      bytes.set(region, results.reduce((s, r) => s + r.bytes, 0));
    }),
  );
  return { ms: performance.now() - started, bytes };
}

/**
 * The link files of one image in each region, in the pipeline's commit order (layers, revisions
 * children first, tag index, tag current): the layer and revision links of the blobs the region
 * lacked (a blob it had is linked already, as the incremental push's shared layers are), and the tag.
 */
export async function linkWrites(targets: Map<string, RegionStorage>, image: ImageToWrite, missing: Map<string, DescriptorRef[]>): Promise<{ ms: number; links: number }> {
  const started = performance.now();
  const { repository, tag } = image;
  const root = image.manifests[image.manifests.length - 1];
  let links = 0;
  await Promise.all(
    [...targets].map(async ([region, target]) => {
      const lacked = new Set((missing.get(region) ?? []).map((d) => d.digest));
      const write = async (link: Parameters<RegionStorage['writeLink']>[0], digest: string) => {
        await target.writeLink(link, digest);
        links += 1;
      };
      await Promise.all(image.blobs.filter((b) => lacked.has(b.digest)).map(({ digest }) => write({ kind: 'layer', repository, digest }, digest)));
      for (const m of image.manifests.filter((m) => lacked.has(m.digest))) await write({ kind: 'revision', repository, digest: m.digest }, m.digest);
      if (tag) {
        await write({ kind: 'tagIndex', repository, tag, digest: root.digest }, root.digest);
        await write({ kind: 'tagCurrent', repository, tag }, root.digest);
      }
    }),
  );
  return { ms: performance.now() - started, links };
}

/** The naive replicator for one image: every blob downloaded from home and uploaded, per region, no diff. */
export async function naiveCopy(
  home: RegionStorage,
  targets: Map<string, RegionStorage>,
  blobs: readonly DescriptorRef[],
  options: { concurrency: number; verifyDigest: boolean },
): Promise<{ ms: number; bytes: Map<string, number> }> {
  const started = performance.now();
  const bytes = new Map<string, number>();
  await Promise.all(
    [...targets].map(async ([region, target]) => {
      let moved = 0;
      await forEachLimit(blobs, options.concurrency, async (d) => {
        // As a replicator outside georeg reads home: through a read URL (signed locally: no request).
        const data = await new BlobClient(await home.readUrl(d.digest)).downloadToBuffer();
        if (options.verifyDigest) verifyDigest(d.digest, data, `${home.region} (naive download)`);
        // A dropped connection (EPIPE under load, seen once) costs a repetition of this upload, not the whole bench.
        for (let attempt = 1; ; attempt++) {
          try {
            await target.writeBlob(d.digest, data);
            break;
          } catch (e) {
            if (attempt >= 3) throw e;
            console.warn(`  ! naive upload of ${d.digest} to ${region} failed (${(e as Error).message}); again`);
          }
        }
        moved += data.length;
      });
      bytes.set(region, moved);
    }),
  );
  return { ms: performance.now() - started, bytes };
}

/**
 * CPU seconds used so far by this process (the functions, the Service Bus emulator, the bench) and
 * by its child processes (Azurite), from /proc; `children` is NaN where /proc is not there.
 */
export function cpuSeconds(): { ours: number; children: number } {
  const usage = process.cpuUsage();
  let children = 0;
  try {
    for (const task of readdirSync(`/proc/${process.pid}/task`)) {
      for (const pid of readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) {
        // utime and stime are fields 14 and 15, after the parenthesised command name.
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
        children += (Number(fields[11]) + Number(fields[12])) / 100;
      }
    }
  } catch {
    children = NaN;
  }
  return { ours: (usage.user + usage.system) / 1e6, children };
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}
