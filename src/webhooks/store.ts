import { z } from 'zod';
import { WebhookEvent } from '../bus/messages';
import { statePaths } from '../storage/paths';
import { StateConflictError, StateSchemaError, type StateStore } from '../storage/state-store';
import { WebhookDefinition } from './definition';

/**
 * Webhook definitions, the state of each delivery (one event to one webhook), and the log of every
 * attempt, as JSON documents in the home account's state container (names from `statePaths`).
 */

export const DeliveryState = z.enum(['queued', 'retrying', 'delivered', 'failed']);
export type DeliveryState = z.infer<typeof DeliveryState>;

/** What names one delivery (one event to one webhook): its record and the log of each attempt start with it. */
export const DeliveryOf = z.object({
  version: z.literal(1),
  deliveryId: z.string(),
  webhook: z.string(),
  region: z.string(),
  eventId: z.string(),
  action: WebhookEvent.shape.action,
  pushId: z.string().optional(),
});
export type DeliveryOf = z.infer<typeof DeliveryOf>;

export const DeliveryRecord = DeliveryOf.extend({
  state: DeliveryState,
  /** Attempts that finished (got an answer or failed trying). */
  attempts: z.number().int().nonnegative(),
  lastStatusCode: z.number().int().optional(),
  lastError: z.string().optional(),
  nextAttemptAt: z.string().optional(),
  reason: z.string().optional(),
  description: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type DeliveryRecord = z.infer<typeof DeliveryRecord>;

/** One attempt, as `list-events` shows it (ACR's eventRequestMessage / eventResponseMessage, flattened). */
export const DeliveryAttempt = DeliveryOf.extend({
  attempt: z.number().int().min(1),
  maxAttempts: z.number().int().min(1),
  at: z.string(),
  latencyMs: z.number().nonnegative(),
  /** delivered (2xx), retry (timeout, network error, 429, 5xx, with another attempt left), failed (other 4xx, refused target, or the last attempt). */
  outcome: z.enum(['delivered', 'retry', 'failed']),
  statusCode: z.number().int().optional(),
  error: z.string().optional(),
  /** The first bytes of the subscriber's answer. */
  response: z.string().optional(),
  nextAttemptAt: z.string().optional(),
  request: z.object({ method: z.literal('POST'), uri: z.string(), headers: z.record(z.string()), body: z.string() }),
});
export type DeliveryAttempt = z.infer<typeof DeliveryAttempt>;

export class WebhookStore {
  constructor(readonly state: StateStore) {}

  async get(name: string): Promise<WebhookDefinition | undefined> {
    return (await this.state.get(statePaths.webhook(name), WebhookDefinition))?.value;
  }

  /**
   * Every definition that parses. One that does not (edited by hand, written by another version)
   * is reported to `onInvalid` and skipped, so it cannot hold up the other webhooks' events.
   */
  async list(onInvalid: (error: StateSchemaError) => void = () => {}): Promise<WebhookDefinition[]> {
    return (await this.state.listDocuments(statePaths.webhooksPrefix(), WebhookDefinition, onInvalid)).map((d) => d.value);
  }

  /** False when a webhook of that name exists. */
  async create(definition: WebhookDefinition): Promise<boolean> {
    try {
      await this.state.create(statePaths.webhook(definition.name), definition);
      return true;
    } catch (e) {
      if (e instanceof StateConflictError) return false;
      throw e;
    }
  }

  async update(name: string, mutate: (w: WebhookDefinition) => WebhookDefinition): Promise<WebhookDefinition> {
    return this.state.update(statePaths.webhook(name), mutate, WebhookDefinition);
  }

  /** Removes the definition and its delivery records and log. False when it was not there. */
  async delete(name: string): Promise<boolean> {
    const existed = await this.state.delete(statePaths.webhook(name));
    for (const prefix of [statePaths.webhookDeliveriesPrefix(name), statePaths.webhookAttemptsPrefix(name)]) {
      for (const doc of await this.state.list(prefix)) await this.state.delete(doc);
    }
    return existed;
  }

  async delivery(webhook: string, deliveryId: string): Promise<DeliveryRecord | undefined> {
    return (await this.state.get(statePaths.webhookDelivery(webhook, deliveryId), DeliveryRecord))?.value;
  }

  /** Creates the record unless one exists; returns what is stored. */
  async ensureDelivery(record: DeliveryRecord): Promise<DeliveryRecord> {
    const name = statePaths.webhookDelivery(record.webhook, record.deliveryId);
    try {
      await this.state.create(name, record);
      return record;
    } catch (e) {
      if (!(e instanceof StateConflictError)) throw e;
      const existing = await this.state.get(name, DeliveryRecord);
      if (!existing) throw e;
      return existing.value;
    }
  }

  async updateDelivery(webhook: string, deliveryId: string, mutate: (r: DeliveryRecord) => DeliveryRecord): Promise<DeliveryRecord> {
    return this.state.update(statePaths.webhookDelivery(webhook, deliveryId), (r: DeliveryRecord) => ({ ...mutate(r), updatedAt: new Date().toISOString() }), DeliveryRecord);
  }

  async recordAttempt(attempt: DeliveryAttempt): Promise<void> {
    const key = `${attempt.eventId.slice(0, 36)}-${attempt.attempt}`;
    await this.state.put(statePaths.webhookAttempt(attempt.webhook, new Date(attempt.at), key.replace(/[^A-Za-z0-9._:-]/g, '_')), attempt);
  }

  /** Attempts to this webhook, newest first. */
  async listAttempts(webhook: string, top = 50): Promise<DeliveryAttempt[]> {
    const names = (await this.state.list(statePaths.webhookAttemptsPrefix(webhook))).slice(0, top);
    const found = await Promise.all(names.map(async (n) => (await this.state.get(n, DeliveryAttempt))?.value));
    return found.filter((a): a is DeliveryAttempt => a !== undefined);
  }
}
