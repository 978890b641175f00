import { z } from 'zod';
import type { ReplicationJob } from '../bus/messages';
import type { Logger } from '../common/log';
import type { RegionStatus } from '../replication/status';
import { statePaths } from '../storage/paths';
import { StateNotFoundError, type StateStore } from '../storage/state-store';
import type { ReplicaRecord, SyncRun } from './definition';
import type { ReplicaRegistry } from './registry';

/**
 * What each finished job tells its region's replica record: the last push synced there, and for a
 * back-fill or resync job, one more job of the run done. The run's `finished` bit set makes a
 * redelivered job count once; the record is updated under its ETag, so concurrent jobs add up.
 * When every job of the run has finished, the replica is Ready, or Failed with the reasons.
 */

export interface ProgressDeps {
  registry: ReplicaRegistry;
  state: StateStore;
  log: Logger;
}

export const LastSynced = z.object({ pushId: z.string(), repository: z.string(), tag: z.string().optional(), digest: z.string().optional(), at: z.string() });
export type LastSynced = z.infer<typeof LastSynced>;

export async function recordReplicaProgress(job: ReplicationJob, status: RegionStatus, alreadyComplete: boolean, deps: ProgressDeps): Promise<void> {
  // A superseded job left the tag to a newer push: it is not what the region last synced.
  if (!alreadyComplete && status.state === 'complete') {
    const last: LastSynced = { pushId: job.pushId, repository: job.repository, tag: job.tag, digest: status.digest, at: status.completedAt ?? new Date().toISOString() };
    await deps.state.put(statePaths.replicaLastSynced(job.region), last);
  }
  if (!job.sync) return;
  const { operationId, seq } = job.sync;
  await updateRun(job.region, operationId, deps, (run) => {
    if (hasBit(run.finished, seq)) return run;
    return { ...run, finished: setBit(run.finished, seq), done: { jobs: run.done.jobs + 1, blobs: run.done.blobs + status.blobs.copied, bytes: run.done.bytes + status.bytes.copied } };
  });
}

export async function recordReplicaFailure(job: ReplicationJob, reason: string, description: string, deps: ProgressDeps): Promise<void> {
  if (!job.sync) return;
  const { operationId, seq } = job.sync;
  const image = `${job.repository}:${job.tag ?? (job.action === 'push' ? job.manifest.digest : job.digest)}`;
  await updateRun(job.region, operationId, deps, (run) => {
    if (hasBit(run.finished, seq)) return run;
    return { ...run, finished: setBit(run.finished, seq), done: { ...run.done, jobs: run.done.jobs + 1 }, failures: [...run.failures, { jobId: job.jobId, image, reason, description }].slice(-50) };
  });
}

async function updateRun(region: string, operationId: string, deps: ProgressDeps, mutate: (run: SyncRun) => SyncRun): Promise<void> {
  let changed: ReplicaRecord | undefined;
  try {
    changed = await deps.registry.updateRecord(region, (record) => {
      // A job of an older run (the region was re-synced since) no longer moves the status.
      if (!record.sync || record.sync.operationId !== operationId || record.status === 'Deleted') return record;
      const run = mutate(record.sync);
      return { ...record, ...settle(run) };
    });
  } catch (e) {
    // The region's record is gone (deleted with `replication delete`): nothing left to report to.
    if (e instanceof StateNotFoundError) return;
    throw e;
  }
  if (changed.sync?.completedAt && changed.sync.operationId === operationId && changed.sync.done.jobs === changed.sync.total.jobs) {
    deps.log.info(`replica ${region}: ${changed.sync.kind} ${operationId} finished, ${changed.status}`);
  }
}

/** A run that has counted nothing yet; `planning` says whether more pages are to come (a back-fill) or not (a resync, planned in one go). */
export function newRun(operationId: string, kind: SyncRun['kind'], options: { repository?: string; planned: boolean }): SyncRun {
  return {
    operationId,
    kind,
    ...(options.repository ? { repository: options.repository } : {}),
    startedAt: new Date().toISOString(),
    total: { jobs: 0, tags: 0, blobs: 0, bytes: 0 },
    done: { jobs: 0, blobs: 0, bytes: 0 },
    finished: '',
    failures: [],
    missing: [],
    missingTruncated: false,
    deleted: [],
    deletedTruncated: false,
    planning: { pages: options.planned ? 1 : 0, counted: '', sent: '', complete: options.planned },
  };
}

/** Ready once every page is planned and every job finished well, Failed when any dead-lettered; Syncing until then. */
export function settle(run: SyncRun): Pick<ReplicaRecord, 'status' | 'error'> & { sync: SyncRun } {
  if (!run.planning.complete || run.done.jobs < run.total.jobs) return { status: 'Syncing', error: undefined, sync: run };
  const completed = { ...run, completedAt: run.completedAt ?? new Date().toISOString() };
  if (run.failures.length) {
    return { status: 'Failed', error: `${run.failures.length} ${run.kind} job(s) failed: ${run.failures.slice(0, 3).map((f) => `${f.image ?? f.jobId}: ${f.reason}: ${f.description}`).join('; ')}`, sync: completed };
  }
  return { status: 'Ready', error: undefined, sync: completed };
}

export function hasBit(bits: string, index: number): boolean {
  const bytes = Buffer.from(bits, 'base64');
  return index >> 3 < bytes.length && (bytes[index >> 3] & (1 << (index & 7))) !== 0;
}

export function setBit(bits: string, index: number): string {
  const old = Buffer.from(bits, 'base64');
  const bytes = Buffer.alloc(Math.max(old.length, (index >> 3) + 1));
  old.copy(bytes);
  bytes[index >> 3] |= 1 << (index & 7);
  return bytes.toString('base64');
}
