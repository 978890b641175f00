import { ReplicationJob } from '../bus/messages';
import { deadLetterCause, REPLICATION_LANE, type DeadLetter } from '../bus/settlement';
import type { Logger } from '../common/log';
import { recordReplicaFailure } from '../replicas/progress';
import type { ReplicaRegistry } from '../replicas/registry';
import { StateNotFoundError, type StateStore } from '../storage/state-store';
import { isFinished, newRegionStatus, StatusStore } from './status';

/**
 * A replication job on its region's dead-letter queue: dead-lettered by the settlement (its reason
 * already recorded, nothing changes) or by Service Bus itself (MaxDeliveryCountExceeded, an
 * expired message), which no handler has recorded. Either way the push's region status ends
 * `failed` (unless it completed) and a back-fill or resync counts the job as failed, so a run ends
 * Failed without anyone reading it. Nothing else fires.
 */

export interface JobDeadLetterDeps {
  state: StateStore;
  registry: ReplicaRegistry;
  log: Logger;
}

export async function handleReplicationDeadLetter(body: unknown, letter: DeadLetter, deps: JobDeadLetterDeps): Promise<{ outcome: 'completed'; reason?: string; description?: string }> {
  const parsed = ReplicationJob.safeParse(body);
  if (!parsed.success) {
    // What does not parse was dead-lettered as MalformedJob and logged by the replicate step; it names no push or region.
    deps.log.warn(`dead-lettered replication message ${letter.messageId ?? '?'} is no replication job (${letter.reason ?? 'no reason'}): nothing to record`);
    return { outcome: 'completed' };
  }
  const job = parsed.data;
  // Where Functions could not dead-letter explicitly, the handler's own reason waits in its verdict.
  const { reason, description } = await deadLetterCause(deps.state, REPLICATION_LANE, letter);
  try {
    await new StatusStore(deps.state).updateRegion(job.pushId, job.region, (s) => (isFinished(s.state) ? s : { ...s, state: 'failed', error: `${reason}: ${description}` }));
  } catch (e) {
    if (!(e instanceof StateNotFoundError)) throw e;
    // The job never started an attempt (its status is created lazily): record it failed.
    const base = { pushId: job.pushId, region: job.region, jobId: job.jobId, action: job.action, repository: job.repository, tag: job.tag, digest: job.action === 'push' ? job.manifest.digest : job.digest };
    await new StatusStore(deps.state).ensureRegion({ ...newRegionStatus(base), state: 'failed', error: `${reason}: ${description}` });
  }
  await recordReplicaFailure(job, reason, description, deps);
  deps.log.warn(`${job.jobId}: dead-lettered in ${job.region}: ${reason}: ${description}`);
  return { outcome: 'completed', reason, description };
}
