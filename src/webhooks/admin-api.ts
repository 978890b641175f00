import type { ServiceBusSender } from '@azure/service-bus';
import type { Logger } from '../common/log';
import type { Settings } from '../config/settings';
import { adminDenied, json, notAllowed, parseJsonBody, type AdminRequest, type HttpOutput } from '../common/http';
import type { StateStore } from '../storage/state-store';
import { applyUpdate, CreateWebhookInput, generateSecret, newWebhook, publicView, UpdateWebhookInput, WebhookDefinitionError, WebhookName, type DefinitionContext } from './definition';
import { enqueuePing } from './enqueue';
import { pingEvent } from './payload';
import { WebhookStore, type DeliveryAttempt } from './store';
import { describeZodError } from '../common/zod';

/**
 * The admin API, as `az acr webhook` has it:
 *
 *   GET    /api/webhooks[?region=]          list
 *   POST   /api/webhooks                    create   (201; a generated secret is returned once)
 *   GET    /api/webhooks/{name}             show
 *   PATCH  /api/webhooks/{name}             update   (rotateSecret: true returns the new secret once)
 *   DELETE /api/webhooks/{name}             delete   (with its delivery log)
 *   POST   /api/webhooks/{name}/ping        ping     (waits for the first attempt and reports it)
 *   GET    /api/webhooks/{name}/events[?top=]  list-events, newest first
 *
 * Secrets never leave except in the create/rotate answer; header values and URI credentials are masked.
 */

export type WebhookAdminRequest = AdminRequest;

export interface WebhookAdminDeps {
  settings: Settings;
  state: StateStore;
  webhookSender: ServiceBusSender;
  /** The replica regions now (created ones included): a webhook belongs to one of them. */
  replicaNames: () => Promise<string[]>;
  log: Logger;
  /** How long ping waits for the first attempt's outcome (default: the webhook timeout + 15 s). */
  pingWaitMs?: number;
}

export async function handleWebhookAdmin(req: WebhookAdminRequest, deps: WebhookAdminDeps): Promise<HttpOutput> {
  const denied = adminDenied(req.headers, deps.settings.adminSecret);
  if (denied) return denied;
  const method = req.method.toUpperCase();
  const store = new WebhookStore(deps.state);
  try {
    if (!req.name) {
      if (method === 'GET') {
        const all = await store.list();
        return json(200, { webhooks: all.filter((w) => !req.query.region || w.region === req.query.region).map(publicView) });
      }
      if (method === 'POST') return await create(req.body, store, deps);
      return notAllowed(method, '/webhooks', 'GET, POST');
    }
    const name = WebhookName.safeParse(req.name);
    if (!name.success) return json(400, { error: `webhook name "${req.name}": ${describeZodError(name.error, 1)}` });
    if (!req.op) {
      if (method === 'GET') {
        const w = await store.get(req.name);
        return w ? json(200, { webhook: publicView(w) }) : notFound(req.name);
      }
      if (method === 'PATCH' || method === 'PUT') return await update(req.name, req.body, store, deps);
      if (method === 'DELETE') {
        const existed = await store.delete(req.name);
        if (existed) deps.log.info(`webhook ${req.name} deleted`);
        return existed ? json(200, { deleted: req.name }) : notFound(req.name);
      }
      return notAllowed(method, `/webhooks/${req.name}`, 'GET, PATCH, DELETE');
    }
    if (req.op === 'ping') return method === 'POST' ? await ping(req.name, store, deps) : notAllowed(method, `/webhooks/${req.name}/ping`, 'POST');
    if (req.op === 'events') {
      if (method !== 'GET') return notAllowed(method, `/webhooks/${req.name}/events`, 'GET');
      if (!(await store.get(req.name))) return notFound(req.name);
      const top = Math.min(Math.max(Number(req.query.top ?? 50) || 50, 1), 500);
      return json(200, { webhook: req.name, events: await store.listAttempts(req.name, top) });
    }
    return json(404, { error: `no webhook operation "${req.op}": use ping or events` });
  } catch (e) {
    if (e instanceof WebhookDefinitionError) return json(400, { error: e.message });
    throw e;
  }
}

async function create(body: string, store: WebhookStore, deps: WebhookAdminDeps): Promise<HttpOutput> {
  const input = parseJsonBody(CreateWebhookInput, body, 'webhook');
  if ('error' in input) return json(400, input);
  const { definition, generatedSecret } = newWebhook(input.value, await context(deps));
  if (!(await store.create(definition))) return json(409, { error: `webhook ${definition.name} exists: update it, or delete it first` });
  deps.log.info(`webhook ${definition.name} created (${definition.region}, ${definition.actions.join('+')}, scope "${definition.scope}")`);
  return json(201, { webhook: publicView(definition), ...(generatedSecret ? { secret: generatedSecret, note: 'the signing secret is shown this once: store it with the subscriber' } : {}) });
}

async function update(name: string, body: string, store: WebhookStore, deps: WebhookAdminDeps): Promise<HttpOutput> {
  const input = parseJsonBody(UpdateWebhookInput, body, 'webhook update');
  if ('error' in input) return json(400, input);
  if (!(await store.get(name))) return notFound(name);
  const generatedSecret = input.value.rotateSecret && !input.value.secret ? generateSecret() : undefined;
  const ctx = { ...(await context(deps)), generatedSecret };
  // Validate once outside the ETag loop, so a bad input is a 400 and not a thrown error mid-update.
  applyUpdate((await store.get(name))!, input.value, ctx);
  const updated = await store.update(name, (current) => applyUpdate(current, input.value, ctx));
  deps.log.info(`webhook ${name} updated`);
  return json(200, { webhook: publicView(updated), ...(generatedSecret ? { secret: generatedSecret, note: 'the new signing secret is shown this once' } : {}) });
}

async function ping(name: string, store: WebhookStore, deps: WebhookAdminDeps): Promise<HttpOutput> {
  const webhook = await store.get(name);
  if (!webhook) return notFound(name);
  const delivery = await enqueuePing(webhook, pingEvent(webhook.region), deps);
  const deadline = Date.now() + (deps.pingWaitMs ?? deps.settings.webhooks.timeoutMs + 15_000);
  let attempt: DeliveryAttempt | undefined;
  for (;;) {
    const record = await store.delivery(name, delivery.deliveryId);
    if (record && record.attempts > 0) {
      attempt = (await store.listAttempts(name, 20)).find((a) => a.deliveryId === delivery.deliveryId);
      return json(200, { eventId: delivery.event.id, deliveryId: delivery.deliveryId, state: record.state, statusCode: record.lastStatusCode, error: record.lastError, latencyMs: attempt?.latencyMs, response: attempt?.response, nextAttemptAt: record.nextAttemptAt });
    }
    if (Date.now() > deadline) {
      return json(202, { eventId: delivery.event.id, deliveryId: delivery.deliveryId, state: record?.state ?? 'queued', note: 'queued; no attempt yet (is the deliver function running?): see list-events' });
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function context(deps: WebhookAdminDeps): Promise<DefinitionContext> {
  return { regions: await deps.replicaNames(), homeRegion: deps.settings.homeRegion.name, allowPrivateTargets: deps.settings.webhooks.allowPrivateTargets };
}

function notFound(name: string): HttpOutput {
  return json(404, { error: `webhook ${name} does not exist (georeg webhook list shows the defined ones)` });
}
