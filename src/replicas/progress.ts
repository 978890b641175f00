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
 * redelivered job count once. When every job of the run has finished, the replica is Ready, or
 * Failed with the reasons.
 *
 * A back-fill finishes many small jobs at once, and they all report to the one record. Written one
 * by one, under its ETag, they collided (two to three 412s per job at 16 jobs in flight, and the
 * jobs waited their turn). Here they are committed as a group: per region and process, one write
 * is in flight, and the jobs that finish meanwhile go together in the next one (one read and one
 * write of the record, one write of the last synced push). Each job still waits until its own mark
 * is written before its message is completed, so a stopped worker loses no mark; several
 * processes still add up under the ETag.
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
  const last: LastSynced | undefined =
    !alreadyComplete && status.state === 'complete' ? { pushId: job.pushId, repository: job.repository, tag: job.tag, digest: status.digest, at: status.completedAt ?? new Date().toISOString() } : undefined;
  const mark = job.sync && { ...job.sync, blobs: status.blobs.copied, bytes: status.bytes.copied };
  if (last || mark) await progressOf(job.region, deps).add({ last, mark }, deps);
}

export async function recordReplicaFailure(job: ReplicationJob, reason: string, description: string, deps: ProgressDeps): Promise<void> {
  if (!job.sync) return;
  const image = `${job.repository}:${job.tag ?? (job.action === 'push' ? job.manifest.digest : job.digest)}`;
  await progressOf(job.region, deps).add({ mark: { ...job.sync, blobs: 0, bytes: 0, failure: { jobId: job.jobId, image, reason, description } } }, deps);
}

/** One finished job of a run: what it copied, or why it failed. */
interface Mark {
  operationId: string;
  seq: number;
  blobs: number;
  bytes: number;
  failure?: SyncRun['failures'][number];
}

interface Waiting {
  last?: LastSynced;
  mark?: Mark;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** The group commit of one region's progress in this process. */
class RegionProgress {
  private waiting: Waiting[] = [];
  private writing = false;

  constructor(private readonly region: string, private deps: ProgressDeps) {}

  /** Resolves once the entry is written (with the others that finished meanwhile); rejects when that write failed. */
  add(entry: { last?: LastSynced; mark?: Mark }, deps: ProgressDeps): Promise<void> {
    // The latest caller's logger (an invocation's) reports the write.
    this.deps = deps;
    return new Promise((resolve, reject) => {
      this.waiting.push({ ...entry, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.waiting.length) {
      const group = this.waiting.splice(0);
      try {
        await this.write(group);
        for (const w of group) w.resolve();
      } catch (e) {
        for (const w of group) w.reject(e);
      }
    }
    this.writing = false;
  }

  private async write(group: Waiting[]): Promise<void> {
    const last = [...group].reverse().find((w) => w.last)?.last;
    const marks = group.flatMap((w) => (w.mark ? [w.mark] : []));
    await Promise.all([last && this.deps.state.put(statePaths.replicaLastSynced(this.region), last), marks.length && this.count(marks)]);
  }

  private async count(marks: Mark[]): Promise<void> {
    let changed: ReplicaRecord | undefined;
    try {
      changed = await this.deps.registry.updateRecord(this.region, (record) => {
        // Jobs of an older run (the region was re-synced since) no longer move the status.
        if (!record.sync || record.status === 'Deleted') return record;
        const mine = marks.filter((m) => m.operationId === record.sync!.operationId);
        return mine.length ? { ...record, ...settle(mine.reduce(countJob, record.sync)) } : record;
      });
    } catch (e) {
      // The region's record is gone (deleted with `replication delete`): nothing left to report to.
      if (e instanceof StateNotFoundError) return;
      throw e;
    }
    const run = changed.sync;
    if (run?.completedAt && run.done.jobs === run.total.jobs && marks.some((m) => m.operationId === run.operationId)) {
      this.deps.log.info(`replica ${this.region}: ${run.kind} ${run.operationId} finished, ${changed.status}`);
    }
  }
}

/** The run with one more job finished, unless it counts it already. Pure. */
function countJob(run: SyncRun, mark: Mark): SyncRun {
  if (hasBit(run.finished, mark.seq)) return run;
  const finished = setBit(run.finished, mark.seq);
  if (mark.failure) return { ...run, finished, done: { ...run.done, jobs: run.done.jobs + 1 }, failures: [...run.failures, mark.failure].slice(-50) };
  return { ...run, finished, done: { jobs: run.done.jobs + 1, blobs: run.done.blobs + mark.blobs, bytes: run.done.bytes + mark.bytes } };
}

const groups = new WeakMap<ReplicaRegistry, Map<string, RegionProgress>>();

/** The region's group commit in this process (per registry: tests run several stacks in one process). */
function progressOf(region: string, deps: ProgressDeps): RegionProgress {
  let byRegion = groups.get(deps.registry);
  if (!byRegion) groups.set(deps.registry, (byRegion = new Map()));
  let progress = byRegion.get(region);
  if (!progress) byRegion.set(region, (progress = new RegionProgress(region, deps)));
  return progress;
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
