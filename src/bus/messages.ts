import { createHash } from 'node:crypto';
import type { ServiceBusMessage, ServiceBusSender } from '@azure/service-bus';
import { z } from 'zod';
import { describeZodError } from '../common/zod';
import { DigestSchema } from '../oci/digest';
import { DescriptorRef } from '../oci/manifest';

/**
 * Every message georeg puts on Service Bus, with its schema. Handlers parse with these and
 * dead-letter what does not parse, with the zod error as the reason. Bodies are versioned.
 */

/** Descriptors in messages are the OCI descriptor's name fields (one schema, in oci/manifest.ts). */
export { DescriptorRef };

/** What a push references and what one region lacks of it: the layer diff. */
export const ReplicationPlan = z.object({
  /** Every manifest of the image, children before parents, the root last. */
  manifests: z.array(DescriptorRef),
  /** Configs and layers of every manifest, deduplicated. */
  blobs: z.array(DescriptorRef),
  /** Digests (blobs and manifests) the region lacked when the plan was made (every digest when `unchecked`). */
  missing: z.array(DigestSchema),
  /**
   * Made without asking the region (a notification's plan): the job's own check of the region,
   * which it makes anyway just before copying, is the diff. Absent: the region was asked.
   */
  unchecked: z.literal(true).optional(),
  /** Foreign / non-distributable layers: referenced, never copied. */
  foreign: z.array(DescriptorRef.extend({ urls: z.array(z.string()).optional() })),
});
export type ReplicationPlan = z.infer<typeof ReplicationPlan>;

export const RequestInfo = z.object({
  id: z.string().optional(),
  host: z.string().optional(),
  method: z.string().optional(),
  useragent: z.string().optional(),
});
export type RequestInfo = z.infer<typeof RequestInfo>;

const JobBase = z.object({
  version: z.literal(1),
  jobId: z.string().min(1),
  pushId: z.string().min(1),
  eventId: z.string().min(1),
  region: z.string().min(1),
  repository: z.string().min(1),
  createdAt: z.string().datetime(),
  request: RequestInfo.optional(),
  /** Retries scheduled so far after passing failures (absent on the first message). */
  retry: z.number().int().positive().optional(),
  /** Set on the jobs of a replica's back-fill or resync: which run, and the job's place in it. */
  sync: z.object({ operationId: z.string().min(1), seq: z.number().int().nonnegative() }).optional(),
  /** Times the job was re-driven from the dead-letter queue (`georeg dlq redrive`); part of its message id. */
  redrive: z.number().int().positive().optional(),
});

export const PushJob = JobBase.extend({
  action: z.literal('push'),
  tag: z.string().min(1).optional(),
  manifest: DescriptorRef,
  /** The plan inline, or a claim check: the blob in the state container that holds it. */
  plan: z.union([z.object({ inline: ReplicationPlan }), z.object({ blobName: z.string().min(1) })]),
});
export type PushJob = z.infer<typeof PushJob>;

export const DeleteJob = JobBase.extend({
  action: z.literal('delete'),
  /** Delete the tag only (manifest stays), or the manifest by digest (its tags go with it). */
  tag: z.string().min(1).optional(),
  digest: DigestSchema.optional(),
  mediaType: z.string().optional(),
}).refine((j) => j.tag || j.digest, { message: 'a delete job names a tag or a digest' });
export type DeleteJob = z.infer<typeof DeleteJob>;

export const ReplicationJob = z.union([PushJob, DeleteJob]);
export type ReplicationJob = z.infer<typeof ReplicationJob>;

/**
 * One page of a replica's back-fill, on the back-fill queue: where the listing of home's tags
 * resumes (`cursor`, the storage listing's continuation token; absent for the first page) and the
 * sequence number its first tag's job takes in the run.
 */
export const BackfillPage = z
  .object({
    version: z.literal(1),
    region: z.string().min(1),
    operationId: z.string().regex(/^[a-z0-9]{6,32}$/, 'a back-fill operation id'),
    page: z.number().int().nonnegative(),
    cursor: z.string().min(1).optional(),
    seqBase: z.number().int().nonnegative(),
  })
  .strict();
export type BackfillPage = z.infer<typeof BackfillPage>;

export function backfillPageMessage(page: BackfillPage): ServiceBusMessage {
  return {
    body: page,
    contentType: 'application/json',
    // Deterministic: a page sent again (a redelivered predecessor) is dropped by duplicate detection.
    messageId: `backfill:${page.region}:${page.operationId}:${page.page}`,
    correlationId: page.operationId,
    subject: `backfill:${page.region}:page-${page.page}`,
    applicationProperties: { region: page.region, action: 'backfill-page', version: page.version },
  };
}

/** The application properties a Service Bus dashboard shows and filters on. */
export interface MessageEnvelope {
  messageId: string;
  correlationId: string;
  subject: string;
  applicationProperties: { region: string; action: string; repository: string; [k: string]: string | number | boolean };
}

export function replicationJobMessage(job: ReplicationJob): ServiceBusMessage {
  const target = job.tag ?? (job.action === 'push' ? job.manifest.digest : job.digest);
  return {
    body: job,
    contentType: 'application/json',
    // A retry or a redrive is a new message (duplicate detection would drop the job id again), and
    // the same retry or redrive sent twice is dropped.
    messageId: jobMessageId(job),
    correlationId: job.pushId,
    subject: `${job.action}:${job.repository}:${target}`,
    applicationProperties: { region: job.region, action: job.action, repository: job.repository, version: job.version },
  };
}

/** In as few batches as fit (a batch is capped by the entity's message size limit). */
export async function sendInBatches(sender: ServiceBusSender, messages: ServiceBusMessage[]): Promise<void> {
  if (!messages.length) return;
  let batch = await sender.createMessageBatch();
  for (const m of messages) {
    if (batch.tryAddMessage(m)) continue;
    if (batch.count === 0) throw new Error(`message ${String(m.messageId)} does not fit in one Service Bus message`);
    await sender.sendMessages(batch);
    batch = await sender.createMessageBatch();
    if (!batch.tryAddMessage(m)) throw new Error(`message ${String(m.messageId)} does not fit in one Service Bus message`);
  }
  if (batch.count) await sender.sendMessages(batch);
}

/** `<jobId>[:redrive:<n>][~retry<m>]`: the id lineage of a job's messages. */
export function jobMessageId(job: Pick<ReplicationJob, 'jobId' | 'retry' | 'redrive'>): string {
  const base = job.redrive ? `${job.jobId}:redrive:${job.redrive}` : job.jobId;
  return job.retry ? `${base}~retry${job.retry}` : base;
}

/** Parses a received body; throws MessageSchemaError (the handler dead-letters with its text). */
export function parseMessage<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const result = schema.safeParse(typeof body === 'string' ? safeJson(body) : Buffer.isBuffer(body) ? safeJson(body.toString('utf8')) : body);
  if (!result.success) throw new MessageSchemaError(what, result.error);
  return result.data;
}

/**
 * The preamble of every handler: the body parsed, or, when it does not match its schema, the
 * dead-letter verdict with `reason` (a message that never parses must not come back). Anything
 * else thrown is passed on.
 */
export function parseOrDeadLetter<T>(
  schema: z.ZodType<T>,
  body: unknown,
  what: string,
  reason: string,
): { message: T; deadLetter?: undefined } | { message?: undefined; deadLetter: { outcome: 'dead-letter'; reason: string; description: string } } {
  try {
    return { message: parseMessage(schema, body, what) };
  } catch (e) {
    if (e instanceof MessageSchemaError) return { deadLetter: { outcome: 'dead-letter', reason, description: e.message } };
    throw e;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class MessageSchemaError extends Error {
  constructor(readonly what: string, readonly zodError: z.ZodError) {
    super(`${what} does not match its schema: ${describeZodError(zodError)}`);
    this.name = 'MessageSchemaError';
  }
}

/**
 * A webhook event as subscribers receive it: Azure Container Registry's payload (`id`,
 * `timestamp`, `action`, `target`, `request`), plus the region the event is complete in and the
 * push id. A subscriber written for ACR webhooks ignores the two extra fields.
 */
export const WebhookEvent = z.object({
  id: z.string().min(1),
  timestamp: z.string().datetime(),
  action: z.enum(['push', 'delete', 'ping']),
  target: z
    .object({
      mediaType: z.string().optional(),
      size: z.number().int().nonnegative().optional(),
      digest: DigestSchema.optional(),
      length: z.number().int().nonnegative().optional(),
      repository: z.string().min(1),
      tag: z.string().optional(),
    })
    .optional(),
  request: RequestInfo.optional(),
  region: z.string().min(1),
  pushId: z.string().optional(),
});
export type WebhookEvent = z.infer<typeof WebhookEvent>;

/**
 * One delivery of one event to one webhook, on queue `webhook-deliveries`. The body carries the
 * event, never the secret or the custom headers: those are read from the webhook's definition at
 * each attempt. A retry is the same body with `attempt` incremented, sent as a scheduled message.
 */
export const WebhookDeliveryMessage = z.object({
  version: z.literal(1),
  /** Deterministic: `<pushId>:<region>:<webhook>` (or `ping-<id>:<region>:<webhook>`). */
  deliveryId: z.string().min(1),
  webhook: z.string().min(1),
  region: z.string().min(1),
  attempt: z.number().int().min(1),
  firstQueuedAt: z.string().datetime(),
  event: WebhookEvent,
  /** Times the delivery was re-driven from the dead-letter queue; part of its message id. */
  redrive: z.number().int().positive().optional(),
});
export type WebhookDeliveryMessage = z.infer<typeof WebhookDeliveryMessage>;

/** Service Bus caps message ids at 128 characters: long delivery ids are hashed. */
export function webhookDeliveryMessageId(deliveryId: string, attempt: number, redrive?: number): string {
  const base = redrive ? `${deliveryId}:redrive:${redrive}` : deliveryId;
  const id = attempt === 1 ? base : `${base}#${attempt}`;
  return id.length <= 128 ? id : `wh-${createHash('sha256').update(id).digest('hex')}`;
}

export function webhookDeliveryMessage(delivery: WebhookDeliveryMessage): ServiceBusMessage {
  const { event } = delivery;
  const target = event.target ? `${event.target.repository}:${event.target.tag ?? event.target.digest ?? ''}` : delivery.webhook;
  return {
    body: delivery,
    contentType: 'application/json',
    messageId: webhookDeliveryMessageId(delivery.deliveryId, delivery.attempt, delivery.redrive),
    correlationId: event.pushId ?? delivery.deliveryId,
    subject: `webhook:${event.action}:${target}`,
    applicationProperties: {
      region: delivery.region,
      action: event.action,
      repository: event.target?.repository ?? '',
      webhook: delivery.webhook,
      attempt: delivery.attempt,
      version: delivery.version,
    },
  };
}
