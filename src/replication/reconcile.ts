import { createHash } from 'node:crypto';
import type { ServiceBusMessage, ServiceBusSender } from '@azure/service-bus';
import { z } from 'zod';
import { replicationJobMessage, sendInBatches, type DeleteJob, type ReplicationJob } from '../bus/messages';
import type { Logger } from '../common/log';
import { forEachLimit } from '../common/pool';
import type { Settings } from '../config/settings';
import type { ReplicaRegistry } from '../replicas/registry';
import { statePaths } from '../storage/paths';
import type { RegionStorage } from '../storage/region-storage';
import type { StateStore } from '../storage/state-store';
import { claimCheckIfLarge, planPushJob, pushRecordFor, readImage } from './plan';
import { newRegionStatus, StatusStore, type PushRecord, type RegionStatus } from './status';

/**
 * Anti-entropy: the timer (`GEOREG_RECONCILE_SCHEDULE`) compares each replica's tags with home's
 * and sends replication jobs for the drift that lost notifications leave behind (a registry
 * restarted while georeg was down loses its in-memory queue): tags missing or stale in the region,
 * and tags deleted at home but still in the region.
 *
 * Cheap by listing: a flat listing of the repositories prefix returns each `current/link` with
 * the MD5 the storage service computed for it, and a link is the digest string and nothing else,
 * so equal MD5s mean equal tags. Only drifted tags are read. A run costs one listing of home and
 * one of each region (5,000 names a page) plus a few reads per drifted tag.
 *
 * Jobs are the ordinary push and delete jobs, so the tag guard, the commit order and the region
 * status work as for a notification. Their ids come from the region, tag and digest, so two runs
 * that see the same drift send one job (duplicate detection, and the job's recorded status). A
 * job already in flight for the tag is left alone, and a job that failed for the same digest is
 * not sent again (it is on the dead-letter queue, with its reason, for an operator).
 * One run at a time per region: a blob lease in the state container.
 */

export interface ReconcileDeps {
  settings: Settings;
  home: RegionStorage;
  registry: ReplicaRegistry;
  state: StateStore;
  replicationSender: ServiceBusSender;
  log: Logger;
}

export const ReconcileReport = z.object({
  region: z.string(),
  startedAt: z.string(),
  durationMs: z.number(),
  homeTags: z.number().int(),
  regionTags: z.number().int(),
  /** Tags the region lacks, points elsewhere than home, or has though home deleted it. */
  drift: z.object({ missing: z.number().int(), stale: z.number().int(), deleted: z.number().int() }),
  sent: z.array(z.object({ jobId: z.string(), action: z.enum(['push', 'delete']), repository: z.string(), tag: z.string(), digest: z.string().optional() })),
  /** Drifted tags left alone: a job for them is in flight, or failed (see the dead-letter queue). */
  skipped: z.array(z.object({ repository: z.string(), tag: z.string(), why: z.string() })),
  /** Storage requests the run made for this region: listing pages (home's and the region's) and reads of links, state and manifests. */
  requests: z.object({ listPages: z.number().int(), reads: z.number().int() }),
});
export type ReconcileReport = z.infer<typeof ReconcileReport>;

/** How many drifted tags one run lists in its report (the counts cover all). */
const LISTED = 200;
/** A notification's job still pending after this long is taken as lost (its message expired or was purged). */
const IN_FLIGHT_MS = 30 * 60_000;
/** How long a lease on a region's reconcile lasts unless renewed (a dead worker frees it after this). */
const LEASE_SECONDS = 60;

type Prepared = { job: ReplicationJob; status: RegionStatus; record: PushRecord };

interface TagLink {
  repository: string;
  tag: string;
  md5?: string;
}

/** Every replica region (or the one named) that is Ready or Failed (a back-fill in progress covers a Syncing one). */
export async function reconcileAll(deps: ReconcileDeps, options: { region?: string } = {}): Promise<ReconcileReport[]> {
  const regions = (await deps.registry.list()).filter((r) => !r.home && (r.status === 'Ready' || r.status === 'Failed') && (!options.region || r.name === options.region));
  if (!regions.length) return [];
  const homeListing = { listPages: 0 };
  const home = await listTags(deps.home, homeListing);
  const reports: ReconcileReport[] = [];
  for (const replica of regions) {
    const target = deps.registry.storageOf(replica);
    try {
      const held = await deps.state.withLease(statePaths.reconcileLease(replica.name), LEASE_SECONDS, () => reconcileRegion(replica.name, target, home, homeListing.listPages, deps));
      if (!held) {
        deps.log.info(`reconcile ${replica.name}: another reconcile holds the region's lease; skipped`);
        continue;
      }
      reports.push(held.value);
    } catch (e) {
      // One unreachable region must not stop the others from converging.
      deps.log.error(`reconcile ${replica.name}: ${(e as Error).message}`);
    }
  }
  return reports;
}

async function listTags(storage: RegionStorage, requests: { listPages: number }): Promise<Map<string, TagLink>> {
  const tags = new Map<string, TagLink>();
  for await (const t of storage.listTagLinks({ onPage: () => (requests.listPages += 1) })) tags.set(`${t.repository}:${t.tag}`, t);
  return tags;
}

async function reconcileRegion(region: string, target: RegionStorage, home: Map<string, TagLink>, homeListPages: number, deps: ReconcileDeps): Promise<ReconcileReport> {
  const startedAt = new Date();
  const requests = { listPages: 0, reads: 0 };
  const replica = await listTags(target, requests);
  const readHome = async (t: TagLink) => {
    requests.reads += 1;
    return deps.home.readLink({ kind: 'tagCurrent', repository: t.repository, tag: t.tag });
  };
  const readRegion = async (t: TagLink) => {
    requests.reads += 1;
    return target.readLink({ kind: 'tagCurrent', repository: t.repository, tag: t.tag });
  };

  const drift = { missing: 0, stale: 0, deleted: 0 };
  const work: Array<{ action: 'push'; repository: string; tag: string; digest: string } | { action: 'delete'; repository: string; tag: string; digest: string }> = [];
  const candidates: Array<() => Promise<void>> = [];
  for (const [key, h] of home) {
    const r = replica.get(key);
    if (r && h.md5 && r.md5 && h.md5 === r.md5) continue;
    candidates.push(async () => {
      const homeDigest = await readHome(h);
      if (!homeDigest) return; // deleted since the listing
      const regionDigest = r ? await readRegion(r) : undefined;
      if (regionDigest === homeDigest) return;
      if (regionDigest) drift.stale += 1;
      else drift.missing += 1;
      work.push({ action: 'push', repository: h.repository, tag: h.tag, digest: homeDigest });
    });
  }
  for (const [key, r] of replica) {
    if (home.has(key)) continue;
    candidates.push(async () => {
      const regionDigest = await readRegion(r);
      if (!regionDigest) return;
      drift.deleted += 1;
      work.push({ action: 'delete', repository: r.repository, tag: r.tag, digest: regionDigest });
    });
  }
  await forEachLimit(candidates, deps.settings.copyConcurrency, (c) => c());

  const status = new StatusStore(deps.state);
  const sent: ReconcileReport['sent'] = [];
  const skipped: ReconcileReport['skipped'] = [];
  const messages: ServiceBusMessage[] = [];
  await forEachLimit(work, deps.settings.copyConcurrency, async (w) => {
    const decision = await nextJobId(region, w, status, requests);
    if ('skip' in decision) {
      skipped.push({ repository: w.repository, tag: w.tag, why: decision.skip });
      return;
    }
    // The drift was read before the status said no job is in flight: a notification's job that
    // wrote the tag (and then recorded itself complete) in between is not drift, and a second job
    // for it would fire the region's webhooks twice. Read the region's tag again, after the status.
    requests.reads += 1;
    const now = await target.readLink({ kind: 'tagCurrent', repository: w.repository, tag: w.tag });
    if (w.action === 'push' ? now === w.digest : now !== w.digest) {
      skipped.push({ repository: w.repository, tag: w.tag, why: 'the region caught up since the listing' });
      return;
    }
    const prepared = w.action === 'push' ? await preparePush(region, target, w, decision.pushId, deps, requests) : prepareDelete(region, w, decision.pushId);
    if ('skip' in prepared) {
      skipped.push({ repository: w.repository, tag: w.tag, why: prepared.skip });
      return;
    }
    await status.recordPush(prepared.record, [prepared.status], { latestForTag: false });
    messages.push(replicationJobMessage(await claimCheckIfLarge(prepared.job, deps)));
    sent.push({ jobId: prepared.job.jobId, action: w.action, repository: w.repository, tag: w.tag, digest: w.digest });
  });
  await sendInBatches(deps.replicationSender, messages);

  const report: ReconcileReport = {
    region,
    startedAt: startedAt.toISOString(),
    durationMs: Date.now() - startedAt.getTime(),
    homeTags: home.size,
    regionTags: replica.size,
    drift,
    sent: sent.slice(0, LISTED),
    skipped: skipped.slice(0, LISTED),
    requests: { listPages: homeListPages + requests.listPages, reads: requests.reads },
  };
  await deps.state.put(statePaths.reconcileReport(region), report);
  const total = drift.missing + drift.stale + drift.deleted;
  if (total) {
    deps.log.info(`reconcile ${region}: ${total} tag(s) drifted (${drift.missing} missing, ${drift.stale} stale, ${drift.deleted} deleted at home): ${sent.length} job(s) sent, ${skipped.length} left alone`);
  }
  return report;
}

/**
 * The job id for a drifted tag: derived from region, tag and digest, so a repeat is the same job.
 * If that job is recorded complete, the drift came back after it (someone removed the tag in the
 * region): the next id in the chain is derived from that completion, still deterministic.
 */
async function nextJobId(region: string, w: { action: string; repository: string; tag: string; digest: string }, status: StatusStore, requests: { reads: number }): Promise<{ pushId: string } | { skip: string }> {
  // A notification's job for this very digest still running: it will set the tag.
  if (w.action === 'push') {
    requests.reads += 1;
    const latest = await status.latestPush(w.repository, w.tag);
    if (latest?.digest === w.digest) {
      // A job that has not started has no status yet: the push record reports it pending.
      requests.reads += 2;
      const s = (await status.push(latest.pushId))?.regions.find((r) => r.region === region);
      const recent = Date.now() - Date.parse(latest.at) < IN_FLIGHT_MS;
      if (s && (s.state === 'copying' || (s.state === 'pending' && recent))) return { skip: `push ${latest.pushId} is in flight` };
    }
  }
  let link = '';
  for (let generation = 0; generation < 20; generation++) {
    const pushId = `rc-${createHash('sha256').update(`${region}\n${w.action}\n${w.repository}\n${w.tag}\n${w.digest}\n${link}`).digest('hex').slice(0, 32)}`;
    requests.reads += 1;
    const s = await status.region(pushId, region);
    if (!s) return { pushId };
    if (s.state === 'pending' || s.state === 'copying') return { skip: `reconcile job ${pushId} is in flight` };
    if (s.state === 'failed') return { skip: `reconcile job ${pushId} failed (${s.error ?? 'see the dead-letter queue'}): fix it, then redrive or resync` };
    link = s.completedAt ?? s.updatedAt;
  }
  return { skip: 'drifted again after 20 reconcile jobs: something keeps changing this tag in the region' };
}

async function preparePush(region: string, target: RegionStorage, w: { repository: string; tag: string; digest: string }, pushId: string, deps: ReconcileDeps, requests: { reads: number }): Promise<Prepared | { skip: string }> {
  let image;
  try {
    image = await readImage(deps.home, w.digest);
  } catch (e) {
    return { skip: `home's ${w.repository}:${w.tag} (${w.digest}) cannot be read: ${(e as Error).message}` };
  }
  requests.reads += image.manifests.length;
  const planned = await planPushJob({ image, storage: target, pushId, eventId: pushId, region, repository: w.repository, tag: w.tag, concurrency: 4 });
  requests.reads += planned.plan.blobs.length + planned.plan.manifests.length;
  return { job: planned.job, status: planned.status, record: pushRecordFor({ pushId, eventId: pushId, repository: w.repository, tag: w.tag, image, regions: [planned.summary] }) };
}

function prepareDelete(region: string, w: { repository: string; tag: string; digest: string }, pushId: string): Prepared {
  const jobId = `${pushId}:${region}`;
  const createdAt = new Date().toISOString();
  // A tag delete (not a digest delete): the manifest may still be live under another tag.
  const job: DeleteJob = { version: 1, jobId, pushId, eventId: pushId, region, repository: w.repository, createdAt, action: 'delete', tag: w.tag };
  const status = newRegionStatus({ pushId, region, jobId, action: 'delete', repository: w.repository, tag: w.tag, digest: w.digest });
  const record: PushRecord = { pushId, eventId: pushId, action: 'delete', repository: w.repository, tag: w.tag, digest: w.digest, createdAt, regions: [{ region, jobId, missingBlobs: 0, missingBytes: 0 }] };
  return { job, status, record };
}
