import type { ServiceBusMessage, ServiceBusSender } from '@azure/service-bus';
import { webhookDeliveryMessage, type ReplicationJob, type WebhookDeliveryMessage } from '../bus/messages';
import type { Logger } from '../common/log';
import type { RegionStatus } from '../replication/status';
import type { StateStore } from '../storage/state-store';
import { newRecord } from './deliver';
import type { WebhookDefinition } from './definition';
import { deliveryIdFor, describeEvent, regionEvent } from './payload';
import { scopeMatches } from './scope';
import { WebhookStore } from './store';

/**
 * Runs after a region commits a push or delete (the replicate step's `afterCommit`): one message on
 * `webhook-deliveries` per enabled webhook of that region whose actions and scope match. Runs again
 * when a redelivered job finds the region already complete, so it is idempotent twice over: the
 * message id is the delivery id (push, region, webhook) and Service Bus drops a duplicate within
 * its detection window; beyond it, a delivery the log shows as attempted is not enqueued again.
 */

export interface EnqueueDeps {
  state: StateStore;
  webhookSender: ServiceBusSender;
  log: Logger;
}

export function matchingWebhooks(webhooks: readonly WebhookDefinition[], region: string, action: 'push' | 'delete', repository: string, tag: string | undefined): WebhookDefinition[] {
  return webhooks.filter((w) => w.region === region && w.status === 'enabled' && w.actions.includes(action) && scopeMatches(w.scope, repository, tag));
}

export async function enqueueWebhookDeliveries(job: ReplicationJob, status: RegionStatus, deps: EnqueueDeps): Promise<{ enqueued: string[]; skipped: string[] }> {
  if (status.state !== 'complete') return { enqueued: [], skipped: [] };
  const store = new WebhookStore(deps.state);
  const webhooks = matchingWebhooks(await store.list((e) => deps.log.error(`${e.message}: skipped`)), status.region, job.action, job.repository, job.tag);
  if (!webhooks.length) return { enqueued: [], skipped: [] };
  const event = regionEvent(job, status);
  const messages: ServiceBusMessage[] = [];
  const enqueued: string[] = [];
  const skipped: string[] = [];
  for (const webhook of webhooks) {
    const delivery: WebhookDeliveryMessage = { version: 1, deliveryId: deliveryIdFor(event, webhook.name), webhook: webhook.name, region: status.region, attempt: 1, firstQueuedAt: new Date().toISOString(), event };
    const record = await store.ensureDelivery(newRecord(delivery));
    if (record.state !== 'queued' || record.attempts > 0) {
      skipped.push(webhook.name);
      continue;
    }
    messages.push(webhookDeliveryMessage(delivery));
    enqueued.push(webhook.name);
  }
  // Sent even when the record was already queued: a crash between record and send must not lose the event.
  if (messages.length) await deps.webhookSender.sendMessages(messages);
  if (enqueued.length) deps.log.info(`${describeEvent(event)}: webhook(s) ${enqueued.join(', ')} queued`);
  return { enqueued, skipped };
}

/** A ping goes the same road as any event: a message on the queue, the deliver step, the log. */
export async function enqueuePing(webhook: WebhookDefinition, event: WebhookDeliveryMessage['event'], deps: EnqueueDeps): Promise<WebhookDeliveryMessage> {
  const delivery: WebhookDeliveryMessage = { version: 1, deliveryId: deliveryIdFor(event, webhook.name), webhook: webhook.name, region: webhook.region, attempt: 1, firstQueuedAt: new Date().toISOString(), event };
  await new WebhookStore(deps.state).ensureDelivery(newRecord(delivery));
  await deps.webhookSender.sendMessages(webhookDeliveryMessage(delivery));
  return delivery;
}
