import { z } from 'zod';
import { DescriptorRef, RequestInfo } from '../bus/messages';
import { statePaths } from '../storage/paths';
import { StateConflictError, type StateStore } from '../storage/state-store';

/**
 * The pipeline's record of each push and of each region's progress on it, as small JSON blobs in
 * the home account's state container, updated under ETag conditions (no lost update).
 */

/**
 * `superseded`: the job copied its blobs but left the tag alone, because home's tag had moved on
 * (a newer push, or a delete) by the time it committed; the newer push's job sets the tag.
 */
export const RegionState = z.enum(['pending', 'copying', 'complete', 'superseded', 'failed']);
export type RegionState = z.infer<typeof RegionState>;

export const RegionStatus = z.object({
  pushId: z.string(),
  region: z.string(),
  jobId: z.string(),
  action: z.enum(['push', 'delete']),
  repository: z.string(),
  tag: z.string().optional(),
  digest: z.string().optional(),
  state: RegionState,
  blobs: z.object({ total: z.number(), planned: z.number(), copied: z.number(), skipped: z.number(), foreign: z.number() }),
  bytes: z.object({ total: z.number(), planned: z.number(), copied: z.number(), skipped: z.number() }),
  /** How many blobs each copy primitive moved (put-blob-from-url, copy-blob, stream, ...). */
  methods: z.record(z.number()),
  foreign: z.array(DescriptorRef.extend({ urls: z.array(z.string()).optional() })),
  attempts: z.number(),
  error: z.string().optional(),
  /** When superseded: what home's tag pointed at when the job committed (absent: deleted), and that push when known. */
  supersededBy: z.object({ digest: z.string().optional(), pushId: z.string().optional() }).optional(),
  createdAt: z.string(),
  startedAt: z.string().optional(),
  completedAt: z.string().optional(),
  durationMs: z.number().optional(),
  updatedAt: z.string(),
});
export type RegionStatus = z.infer<typeof RegionStatus>;

export const PushRecord = z.object({
  pushId: z.string(),
  eventId: z.string(),
  action: z.enum(['push', 'delete']),
  repository: z.string(),
  tag: z.string().optional(),
  digest: z.string().optional(),
  mediaType: z.string().optional(),
  size: z.number().optional(),
  createdAt: z.string(),
  request: RequestInfo.optional(),
  /** What each region lacked when the push was planned; absent when the plan did not ask the region (its job's check did: see the region's status). */
  regions: z.array(z.object({ region: z.string(), jobId: z.string(), missingBlobs: z.number().optional(), missingBytes: z.number().optional() })),
});
export type PushRecord = z.infer<typeof PushRecord>;

export const LatestPush = z.object({ pushId: z.string(), digest: z.string().optional(), at: z.string() });

function isDone(s: RegionStatus): boolean {
  return s.state === 'complete' || s.state === 'superseded';
}

/**
 * One job's region status as that job last wrote it. The job is its only writer while it runs, so
 * each write is one conditional PUT over the version it holds; only when another writer got in
 * between (a redelivered copy of the job, a dead-letter note) is the document read again.
 */
export class JobStatus {
  constructor(private readonly state: StateStore, private readonly path: string, private held: { value: RegionStatus; etag: string }) {}

  get value(): RegionStatus {
    return this.held.value;
  }

  async update(mutate: (current: RegionStatus) => RegionStatus): Promise<RegionStatus> {
    const stamp = (s: RegionStatus): RegionStatus => ({ ...mutate(s), updatedAt: new Date().toISOString() });
    const next = stamp(this.held.value);
    const etag = await this.state.replace(this.path, next, this.held.etag, RegionStatus);
    this.held = etag !== undefined ? { value: next, etag } : await this.state.updateVersioned(this.path, stamp, RegionStatus);
    return this.held.value;
  }
}

/** Region states after which a job has nothing more to do. */
export function isFinished(state: RegionState): boolean {
  return state === 'complete' || state === 'superseded' || state === 'failed';
}

export class StatusStore {
  constructor(private readonly state: StateStore) {}

  /**
   * Records a push once; a duplicate notification finds the first record and gets it back. The
   * push record is created conditionally, so its creation is the "first time" signal (a duplicate
   * costs one extra read). Region statuses given here are created first; a notification's push
   * gives none: each job creates its own on its first attempt (one write per event instead of one
   * per region), and until then `push()` reports the region pending from the record.
   */
  async recordPush(push: PushRecord, regions: RegionStatus[], options: { latestForTag?: boolean } = {}): Promise<{ push: PushRecord; duplicate: boolean }> {
    await Promise.all(regions.map((r) => this.createIfAbsent(statePaths.regionStatus(r.pushId, r.region), r)));
    const existing = await this.createIfAbsent(statePaths.push(push.pushId), push);
    if (existing) return { push: existing, duplicate: true };
    // A replica's back-fill job is not the tag's latest push (`status repo:tag` keeps showing every
    // region), nor one of the recent pushes the dashboard lists.
    if (options.latestForTag !== false) {
      await Promise.all([
        push.tag ? this.state.put(statePaths.latestPushForTag(push.repository, push.tag), { pushId: push.pushId, digest: push.digest, at: push.createdAt }) : undefined,
        this.state.put(statePaths.recentPush(new Date(push.createdAt), push.pushId), { pushId: push.pushId }),
      ]);
    }
    return { push, duplicate: false };
  }

  async ensureRegion(status: RegionStatus): Promise<void> {
    await this.createIfAbsent(statePaths.regionStatus(status.pushId, status.region), status);
  }

  /**
   * Starts an attempt: the status moves to copying with the attempt counted, unless the region is
   * complete already (then nothing is written). A notification's job has no status yet (the push
   * records none), so its first attempt creates it, started, in one write; a redelivery or a
   * back-fill job (whose status the planner created) reads and writes. A status that is missing
   * (the state container was cleared, a job re-sent by hand) is created from `init`.
   */
  async beginAttempt(init: RegionStatus): Promise<{ status: RegionStatus; alreadyComplete: boolean; job: JobStatus }> {
    const path = statePaths.regionStatus(init.pushId, init.region);
    const start = (s: RegionStatus): RegionStatus =>
      isDone(s) ? s : { ...s, state: 'copying', attempts: s.attempts + 1, startedAt: s.startedAt ?? new Date().toISOString(), error: undefined, updatedAt: new Date().toISOString() };
    let held: { value: RegionStatus; etag: string };
    try {
      const value = start(init);
      held = { value, etag: await this.state.create(path, value) };
    } catch (e) {
      if (!(e instanceof StateConflictError)) throw e;
      held = await this.state.updateVersioned(path, start, RegionStatus);
    }
    return { status: held.value, alreadyComplete: isDone(held.value), job: new JobStatus(this.state, path, held) };
  }

  async region(pushId: string, region: string): Promise<RegionStatus | undefined> {
    return (await this.state.get(statePaths.regionStatus(pushId, region), RegionStatus))?.value;
  }

  async updateRegion(pushId: string, region: string, mutate: (current: RegionStatus) => RegionStatus): Promise<RegionStatus> {
    return this.state.update(statePaths.regionStatus(pushId, region), (current: RegionStatus) => ({ ...mutate(current), updatedAt: new Date().toISOString() }), RegionStatus);
  }

  async push(pushId: string): Promise<{ push: PushRecord; regions: RegionStatus[] } | undefined> {
    const push = await this.state.get(statePaths.push(pushId), PushRecord);
    if (!push) return undefined;
    // A region whose job has not started yet has no status document: pending, as planned.
    const regions = await Promise.all(push.value.regions.map(async (r) => (await this.region(pushId, r.region)) ?? pendingFromRecord(push.value, r)));
    return { push: push.value, regions };
  }

  /** Push ids newest first, back to `since` (at most `max`): the dashboard's recent pushes. */
  async recentPushIds(since: Date, max: number): Promise<Array<{ pushId: string; at: Date }>> {
    const out: Array<{ pushId: string; at: Date }> = [];
    for (const name of await this.state.list(statePaths.recentPushesPrefix(), max)) {
      const entry = statePaths.recentPushOf(name);
      if (!entry) continue;
      if (entry.at < since) break;
      out.push(entry);
    }
    return out;
  }

  async latestPushId(repository: string, tag: string): Promise<string | undefined> {
    return (await this.latestPush(repository, tag))?.pushId;
  }

  /** The last notification recorded for repository:tag (push or delete), if any. */
  async latestPush(repository: string, tag: string): Promise<z.infer<typeof LatestPush> | undefined> {
    return (await this.state.get(statePaths.latestPushForTag(repository, tag), LatestPush))?.value;
  }

  /** Returns the existing value when the blob was already there, undefined when this call created it. */
  private async createIfAbsent<T>(name: string, value: T): Promise<T | undefined> {
    try {
      await this.state.create(name, value);
      return undefined;
    } catch (e) {
      const existing = await this.state.get(name, z.any());
      if (existing) return existing.value as T;
      throw e;
    }
  }
}

function pendingFromRecord(push: PushRecord, r: PushRecord['regions'][number]): RegionStatus {
  const status = newRegionStatus({ pushId: push.pushId, region: r.region, jobId: r.jobId, action: push.action, repository: push.repository, tag: push.tag, digest: push.digest, ...(r.missingBlobs !== undefined ? { planned: { blobs: r.missingBlobs, bytes: r.missingBytes ?? 0 } } : {}) });
  return { ...status, createdAt: push.createdAt, updatedAt: push.createdAt };
}

export function newRegionStatus(init: Pick<RegionStatus, 'pushId' | 'region' | 'jobId' | 'action' | 'repository' | 'tag' | 'digest'> & {
  total?: { blobs: number; bytes: number };
  planned?: { blobs: number; bytes: number };
  foreign?: RegionStatus['foreign'];
}): RegionStatus {
  const now = new Date().toISOString();
  const { total, planned, foreign, ...rest } = init;
  return {
    ...rest,
    state: 'pending',
    blobs: { total: total?.blobs ?? 0, planned: planned?.blobs ?? 0, copied: 0, skipped: 0, foreign: foreign?.length ?? 0 },
    bytes: { total: total?.bytes ?? 0, planned: planned?.bytes ?? 0, copied: 0, skipped: 0 },
    methods: {},
    foreign: foreign ?? [],
    attempts: 0,
    createdAt: now,
    updatedAt: now,
  };
}
