import type { ServiceBusSender } from '@azure/service-bus';
import { parseOrDeadLetter, WebhookDeliveryMessage, webhookDeliveryMessage } from '../bus/messages';
import type { Logger } from '../common/log';
import type { Settings } from '../config/settings';
import type { StateStore } from '../storage/state-store';
import { describeEvent } from './payload';
import { retrying, type DecidingSink, type RetryPolicy } from './retry';
import { httpSink } from './sink';
import { WebhookStore, type DeliveryOf, type DeliveryRecord } from './store';

/**
 * The deliver step: one message from `webhook-deliveries` = one attempt to deliver one event to one
 * webhook. Composed as Distribution composes its notification sinks — the HTTP sink, wrapped by
 * the retry policy, wrapped by the delivery log — and settled by the caller from the outcome:
 * complete, dead-letter with the reason, or (after this handler scheduled the next attempt as a
 * scheduled message) complete this one.
 */

export type DeliveryOutcome =
  | { outcome: 'completed'; note?: string }
  | { outcome: 'dead-letter'; reason: string; description: string }
  | { outcome: 'rescheduled'; at: Date };

export interface DeliverDeps {
  settings: Settings;
  state: StateStore;
  /** Sender on the webhook queue: schedules the next attempt. */
  webhookSender: ServiceBusSender;
  log: Logger;
  /** Jitter source (tests pin it). */
  random?: () => number;
}

export function retryPolicyFrom(settings: Settings): RetryPolicy {
  const w = settings.webhooks;
  return { maxAttempts: w.maxAttempts, baseDelayMs: w.retryBaseMs, maxDelayMs: w.retryMaxMs, jitter: 0.2 };
}

/** Throws on transient trouble of our own (state store, Service Bus): the host abandons and the message comes back. */
export async function handleWebhookDelivery(body: unknown, deps: DeliverDeps): Promise<DeliveryOutcome> {
  const { message, deadLetter } = parseOrDeadLetter(WebhookDeliveryMessage, body, 'webhook delivery', 'MalformedMessage');
  if (deadLetter) return deadLetter;
  const store = new WebhookStore(deps.state);
  const what = `webhook ${message.webhook}: ${describeEvent(message.event)} (delivery ${message.deliveryId}, attempt ${message.attempt})`;
  const webhook = await store.get(message.webhook);
  if (!webhook) {
    deps.log.warn(`${what}: the webhook was deleted; dropped`);
    return { outcome: 'completed', note: 'webhook deleted' };
  }
  if (webhook.status === 'disabled' && message.event.action !== 'ping') {
    deps.log.info(`${what}: the webhook is disabled; dropped`);
    return { outcome: 'completed', note: 'webhook disabled' };
  }

  const record = await store.ensureDelivery(newRecord(message));
  if (record.state === 'delivered') return { outcome: 'completed', note: 'already delivered' };
  if (record.state === 'failed') return { outcome: 'dead-letter', reason: record.reason ?? 'DeliveryFailed', description: record.description ?? `${what}: failed earlier` };
  if (record.attempts >= message.attempt) {
    // This attempt already happened (a duplicate of its message): make sure the next one is
    // scheduled — a crash may have come between logging the attempt and scheduling — and stop.
    if (record.state === 'retrying' && record.attempts === message.attempt && record.nextAttemptAt) {
      const at = new Date(Math.max(Date.parse(record.nextAttemptAt), Date.now()));
      await schedule(message, at, deps);
      return { outcome: 'rescheduled', at };
    }
    return { outcome: 'completed', note: `attempt ${message.attempt} already made` };
  }

  const sink = logged(retrying(httpSink({ timeoutMs: deps.settings.webhooks.timeoutMs, allowPrivateTargets: deps.settings.webhooks.allowPrivateTargets }), retryPolicyFrom(deps.settings), { random: deps.random }), store, deps.settings.webhooks.maxAttempts);
  const attempted = await sink({ message, webhook });
  const { decision } = attempted;
  const summary = attempted.statusCode ? `${attempted.statusCode}` : attempted.error;
  if (decision.outcome === 'completed') {
    deps.log.info(`${what}: delivered (${summary}, ${attempted.latencyMs} ms)`);
    return decision;
  }
  if (decision.outcome === 'dead-letter') {
    deps.log.warn(`${what}: ${decision.reason}: ${decision.description}`);
    return decision;
  }
  await schedule(message, decision.at, deps);
  deps.log.info(`${what}: ${summary}; attempt ${message.attempt + 1} at ${decision.at.toISOString()}`);
  return decision;
}

/** The delivery log as a wrapper: every attempt is written down, and the delivery's record follows. */
export function logged(inner: DecidingSink, store: WebhookStore, maxAttempts: number): DecidingSink {
  return async (delivery) => {
    const attempted = await inner(delivery);
    const { message } = delivery;
    const { decision } = attempted;
    const nextAttemptAt = decision.outcome === 'rescheduled' ? decision.at.toISOString() : undefined;
    await store.recordAttempt({
      ...deliveryOf(message),
      attempt: message.attempt,
      maxAttempts,
      at: attempted.startedAt.toISOString(),
      latencyMs: attempted.latencyMs,
      outcome: decision.outcome === 'completed' ? 'delivered' : decision.outcome === 'rescheduled' ? 'retry' : 'failed',
      statusCode: attempted.statusCode,
      error: attempted.error,
      response: attempted.response,
      nextAttemptAt,
      request: attempted.request,
    });
    await store.updateDelivery(message.webhook, message.deliveryId, (r) => ({
      ...r,
      state: decision.outcome === 'completed' ? 'delivered' : decision.outcome === 'rescheduled' ? 'retrying' : 'failed',
      attempts: Math.max(r.attempts, message.attempt),
      lastStatusCode: attempted.statusCode,
      lastError: attempted.error,
      nextAttemptAt,
      reason: decision.outcome === 'dead-letter' ? decision.reason : undefined,
      description: decision.outcome === 'dead-letter' ? decision.description : undefined,
    }));
    return attempted;
  };
}

async function schedule(message: WebhookDeliveryMessage, at: Date, deps: DeliverDeps): Promise<void> {
  await deps.webhookSender.scheduleMessages(webhookDeliveryMessage({ ...message, attempt: message.attempt + 1 }), at);
}

type DeliveryMessage = Pick<WebhookDeliveryMessage, 'deliveryId' | 'webhook' | 'region' | 'event'>;

/** The fields naming the delivery a message is an attempt of. */
function deliveryOf(message: DeliveryMessage): DeliveryOf {
  return { version: 1, deliveryId: message.deliveryId, webhook: message.webhook, region: message.region, eventId: message.event.id, action: message.event.action, pushId: message.event.pushId };
}

export function newRecord(message: DeliveryMessage): DeliveryRecord {
  const now = new Date().toISOString();
  return {
    ...deliveryOf(message),
    state: 'queued',
    attempts: 0,
    createdAt: now,
    updatedAt: now,
  };
}

