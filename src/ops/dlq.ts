import type { ServiceBusSender } from '@azure/service-bus';
import { z } from 'zod';
import { ReplicationJob, replicationJobMessage, WebhookDeliveryMessage, webhookDeliveryMessage } from '../bus/messages';
import type { Logger } from '../common/log';
import { hasBit, settle } from '../replicas/progress';
import type { ReplicaRegistry } from '../replicas/registry';
import { statePaths } from '../storage/paths';
import { StateNotFoundError, type StateStore } from '../storage/state-store';
import { WebhookStore } from '../webhooks/store';
import { describeZodError } from '../common/zod';

/**
 * The dead letters an operator looks after: replication jobs per replica region and webhook
 * deliveries. The dead-letter triggers (functions/deadletters.ts) drain each dead-letter queue as
 * messages arrive, record the failure, and keep the message here (`keepDeadLetter`), in the home
 * account's state container: the queues stay empty, the jobs stay re-drivable.
 *
 * Redrive sends the job again as a new message with a fresh attempt count and a new message id in
 * its lineage (`<id>:redrive:<n>`: the original id would be dropped by duplicate detection), then
 * removes the kept dead letter; send before remove, so a redrive that fails half-way loses
 * nothing, and a second redrive of the same letter is dropped by duplicate detection if the
 * first send did land. Discard removes it.
 */

export type DeadLetterSource = { kind: 'region'; region: string } | { kind: 'webhooks' };

export const KeptDeadLetter = z.object({
  version: z.literal(1),
  /** `region:<name>` or `webhooks`. */
  source: z.string(),
  /** The replication job id, or the webhook delivery id: what `--job` selects. */
  id: z.string(),
  messageId: z.string(),
  reason: z.string(),
  description: z.string(),
  deliveryCount: z.number().optional(),
  deadLetteredAt: z.string(),
  /** The message body as it was dead-lettered: what a redrive sends again. */
  body: z.unknown(),
});
export type KeptDeadLetter = z.infer<typeof KeptDeadLetter>;

export interface DeadLetterView {
  source: string;
  id: string;
  messageId: string;
  reason: string;
  description: string;
  pushId?: string;
  repository?: string;
  tag?: string;
  webhook?: string;
  region?: string;
  deliveryCount?: number;
  deadLetteredAt: string;
  ageSeconds: number;
  /** Times this job was re-driven before. */
  redrives: number;
  /** False for a body that does not parse: it can be discarded, not re-driven. */
  redrivable: boolean;
}

export interface DlqDeps {
  replicationSender: ServiceBusSender;
  webhookSender: ServiceBusSender;
  state: StateStore;
  registry: ReplicaRegistry;
  log: Logger;
}

export type Selection = { all: true } | { ids: string[] };

export interface SettleResult {
  source: string;
  /** Ids acted on: re-driven (sent again, then removed) or discarded (removed). */
  done: Array<{ id: string; messageId: string; newMessageId?: string }>;
  /** Selected ids that were not kept. */
  notFound: string[];
  /** Dead letters that could not be acted on, with why (they are kept). */
  failed: Array<{ id: string; error: string }>;
}

export function sourceName(source: DeadLetterSource): string {
  return source.kind === 'region' ? `region:${source.region}` : 'webhooks';
}

function folder(source: DeadLetterSource): string {
  return source.kind === 'region' ? `region-${source.region}` : 'webhooks';
}

/**
 * Called by the dead-letter triggers after they recorded the failure: keeps the message for
 * redrive. Idempotent (the same dead letter twice is one record).
 */
export async function keepDeadLetter(
  state: StateStore,
  lane: 'replication' | 'webhooks',
  body: unknown,
  letter: { messageId?: string; deliveryCount?: number },
  cause: { reason?: string; description?: string },
): Promise<void> {
  const job = lane === 'replication' ? ReplicationJob.safeParse(body) : undefined;
  const delivery = lane === 'webhooks' ? WebhookDeliveryMessage.safeParse(body) : undefined;
  // What does not parse names no region: it is kept with the webhooks' or under region "unknown".
  const source: DeadLetterSource = lane === 'webhooks' ? { kind: 'webhooks' } : { kind: 'region', region: job?.success ? job.data.region : 'unknown' };
  const id = job?.success ? job.data.jobId : delivery?.success ? delivery.data.deliveryId : (letter.messageId ?? 'unknown');
  const kept: KeptDeadLetter = {
    version: 1,
    source: sourceName(source),
    id,
    messageId: letter.messageId ?? id,
    reason: cause.reason ?? 'DeadLettered',
    description: cause.description ?? '',
    deliveryCount: letter.deliveryCount,
    deadLetteredAt: new Date().toISOString(),
    body,
  };
  await state.put(statePaths.keptDeadLetter(folder(source), id), kept);
}

export async function listDeadLetters(source: DeadLetterSource, deps: Pick<DlqDeps, 'state'>): Promise<DeadLetterView[]> {
  const names = await deps.state.list(statePaths.keptDeadLettersPrefix(folder(source)), 1000);
  const kept = await Promise.all(names.map(async (n) => (await deps.state.get(n, KeptDeadLetter))?.value));
  return kept
    .filter((k): k is KeptDeadLetter => k !== undefined)
    .map((k) => view(source, k))
    .sort((a, b) => a.deadLetteredAt.localeCompare(b.deadLetteredAt));
}

/** Re-sends the selected dead letters as new jobs, then removes them. */
export function redriveDeadLetters(source: DeadLetterSource, selection: Selection, deps: DlqDeps): Promise<SettleResult> {
  return settleDeadLetters(source, selection, deps, (kept) => (source.kind === 'region' ? resendJob(kept, deps) : resendDelivery(kept, deps)));
}

/** Removes the selected dead letters for good. */
export function discardDeadLetters(source: DeadLetterSource, selection: Selection, deps: DlqDeps): Promise<SettleResult> {
  return settleDeadLetters(source, selection, deps, async () => undefined);
}

async function settleDeadLetters(source: DeadLetterSource, selection: Selection, deps: DlqDeps, act: (kept: KeptDeadLetter) => Promise<string | undefined>): Promise<SettleResult> {
  const result: SettleResult = { source: sourceName(source), done: [], notFound: [], failed: [] };
  const ids = 'ids' in selection ? selection.ids : (await listDeadLetters(source, deps)).map((d) => d.id);
  for (const id of ids) {
    const name = statePaths.keptDeadLetter(folder(source), id);
    const kept = (await deps.state.get(name, KeptDeadLetter))?.value;
    if (!kept) {
      result.notFound.push(id);
      continue;
    }
    try {
      const newMessageId = await act(kept);
      await deps.state.delete(name);
      result.done.push({ id, messageId: kept.messageId, ...(newMessageId ? { newMessageId } : {}) });
    } catch (e) {
      result.failed.push({ id, error: (e as Error).message });
    }
  }
  if (result.done.length) deps.log.info(`dead letters of ${result.source}: ${result.done.map((d) => d.id).join(', ')} settled`);
  return result;
}

/** The job again, as its first attempt, with the next redrive number in its message id. */
async function resendJob(kept: KeptDeadLetter, deps: DlqDeps): Promise<string> {
  const parsed = ReplicationJob.safeParse(kept.body);
  if (!parsed.success) throw new Error(`dead letter ${kept.id} is not a replication job (${describeZodError(parsed.error, 1)}): discard it instead`);
  const { retry: _retry, ...job } = parsed.data;
  const again = { ...job, redrive: (job.redrive ?? 0) + 1 } as ReplicationJob;
  // A back-fill or resync job that failed was counted as finished with a failure: count it as
  // running again, so its replica goes back to Syncing and then to Ready when it completes.
  await reopenSyncJob(again, deps);
  const out = replicationJobMessage(again);
  await deps.replicationSender.sendMessages(out);
  return out.messageId as string;
}

async function resendDelivery(kept: KeptDeadLetter, deps: DlqDeps): Promise<string> {
  const parsed = WebhookDeliveryMessage.safeParse(kept.body);
  if (!parsed.success) throw new Error(`dead letter ${kept.id} is not a webhook delivery (${describeZodError(parsed.error, 1)}): discard it instead`);
  const again: WebhookDeliveryMessage = { ...parsed.data, attempt: 1, redrive: (parsed.data.redrive ?? 0) + 1 };
  // The delivery's record says failed (and counts its attempts): the deliver step would dead-letter
  // the new message at once. Start the record over; its attempt log is kept.
  try {
    await new WebhookStore(deps.state).updateDelivery(again.webhook, again.deliveryId, (r) => ({ ...r, state: 'queued', attempts: 0, reason: undefined, description: undefined, nextAttemptAt: undefined }));
  } catch (e) {
    if (!(e instanceof StateNotFoundError)) throw e;
  }
  const out = webhookDeliveryMessage(again);
  await deps.webhookSender.sendMessages(out);
  return out.messageId as string;
}

async function reopenSyncJob(job: ReplicationJob, deps: Pick<DlqDeps, 'registry'>): Promise<void> {
  if (job.action !== 'push' || !job.sync) return;
  const { operationId, seq } = job.sync;
  try {
    await deps.registry.updateRecord(job.region, (record) => {
      const run = record.sync;
      if (!run || run.operationId !== operationId || !hasBit(run.finished, seq) || record.status === 'Deleted') return record;
      const reopened = { ...run, finished: clearBit(run.finished, seq), failures: run.failures.filter((f) => f.jobId !== job.jobId), completedAt: undefined, done: { ...run.done, jobs: Math.max(0, run.done.jobs - 1) } };
      return { ...record, ...settle(reopened) };
    });
  } catch (e) {
    if (!(e instanceof StateNotFoundError)) throw e;
  }
}

function clearBit(bits: string, index: number): string {
  const bytes = Buffer.from(bits, 'base64');
  if (index >> 3 < bytes.length) bytes[index >> 3] &= ~(1 << (index & 7));
  return bytes.toString('base64');
}

function view(source: DeadLetterSource, k: KeptDeadLetter): DeadLetterView {
  const base = {
    source: sourceName(source),
    id: k.id,
    messageId: k.messageId,
    reason: k.reason,
    description: k.description,
    deliveryCount: k.deliveryCount,
    deadLetteredAt: k.deadLetteredAt,
    ageSeconds: Math.max(0, Math.round((Date.now() - Date.parse(k.deadLetteredAt)) / 1000)),
  };
  if (source.kind === 'region') {
    const job = ReplicationJob.safeParse(k.body);
    if (!job.success) return { ...base, redrives: 0, redrivable: false };
    const j = job.data;
    return { ...base, pushId: j.pushId, repository: j.repository, tag: j.tag ?? (j.action === 'push' ? j.manifest.digest : j.digest), region: j.region, redrives: j.redrive ?? 0, redrivable: true };
  }
  const d = WebhookDeliveryMessage.safeParse(k.body);
  if (!d.success) return { ...base, redrives: 0, redrivable: false };
  const { event } = d.data;
  return { ...base, pushId: event.pushId, repository: event.target?.repository, tag: event.target?.tag ?? event.target?.digest, webhook: d.data.webhook, region: d.data.region, redrives: d.data.redrive ?? 0, redrivable: true };
}
