import { ReplicationJob } from '../bus/messages';
import { deadLetterCause, REPLICATION_LANE, type DeadLetter } from '../bus/settlement';
import type { Logger } from '../common/log';
import { recordReplicaFailure } from '../replicas/progress';
import type { ReplicaRegistry } from '../replicas/registry';
import { StateNotFoundError, type StateStore } from '../storage/state-store';
import { StatusStore } from './status';

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
    await new StatusStore(deps.state).updateRegion(job.pushId, job.region, (s) => (s.state === 'complete' || s.state === 'failed' ? s : { ...s, state: 'failed', error: `${reason}: ${description}` }));
  } catch (e) {
    // A job of a push whose record is gone (or never written, for a job sent by hand): nothing to mark.
    if (!(e instanceof StateNotFoundError)) throw e;
  }
  await recordReplicaFailure(job, reason, description, deps);
  deps.log.warn(`${job.jobId}: dead-lettered in ${job.region}: ${reason}: ${description}`);
  return { outcome: 'completed', reason, description };
}
