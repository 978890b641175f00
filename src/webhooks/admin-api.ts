import type { ServiceBusSender } from '@azure/service-bus';
import type { z } from 'zod';
import { summarizeZodError } from '../bus/messages';
import type { Logger } from '../common/log';
import type { Settings } from '../config/settings';
import type { HttpOutput } from '../replication/push';
import type { StateStore } from '../storage/state-store';
import { applyUpdate, CreateWebhookInput, generateSecret, newWebhook, publicView, UpdateWebhookInput, WebhookDefinitionError, WebhookName, type DefinitionContext } from './definition';
import { enqueuePing } from './enqueue';
import { pingEvent } from './payload';
import { WebhookStore, type DeliveryAttempt } from './store';

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

export interface WebhookAdminRequest {
  method: string;
  name?: string;
  op?: string;
  query: Record<string, string | undefined>;
  body: string;
}

export interface WebhookAdminDeps {
  settings: Settings;
  state: StateStore;
  webhookSender: ServiceBusSender;
  log: Logger;
  /** How long ping waits for the first attempt's outcome (default: the webhook timeout + 15 s). */
  pingWaitMs?: number;
}

export async function handleWebhookAdmin(req: WebhookAdminRequest, deps: WebhookAdminDeps): Promise<HttpOutput> {
  const method = req.method.toUpperCase();
  const store = new WebhookStore(deps.state);
  try {
    if (!req.name) {
      if (method === 'GET') {
        const all = await store.list();
        return ok(200, { webhooks: all.filter((w) => !req.query.region || w.region === req.query.region).map(publicView) });
      }
      if (method === 'POST') return await create(req.body, store, deps);
      return notAllowed(method, '/webhooks', 'GET, POST');
    }
    const name = WebhookName.safeParse(req.name);
    if (!name.success) return ok(400, { error: `webhook name "${req.name}": ${name.error.issues[0].message}` });
    if (!req.op) {
      if (method === 'GET') {
        const w = await store.get(req.name);
        return w ? ok(200, { webhook: publicView(w) }) : notFound(req.name);
      }
      if (method === 'PATCH' || method === 'PUT') return await update(req.name, req.body, store, deps);
      if (method === 'DELETE') {
        const existed = await store.delete(req.name);
        if (existed) deps.log.info(`webhook ${req.name} deleted`);
        return existed ? ok(200, { deleted: req.name }) : notFound(req.name);
      }
      return notAllowed(method, `/webhooks/${req.name}`, 'GET, PATCH, DELETE');
    }
    if (req.op === 'ping') return method === 'POST' ? await ping(req.name, store, deps) : notAllowed(method, `/webhooks/${req.name}/ping`, 'POST');
    if (req.op === 'events') {
      if (method !== 'GET') return notAllowed(method, `/webhooks/${req.name}/events`, 'GET');
      if (!(await store.get(req.name))) return notFound(req.name);
      const top = Math.min(Math.max(Number(req.query.top ?? 50) || 50, 1), 500);
      return ok(200, { webhook: req.name, events: await store.listAttempts(req.name, top) });
    }
    return ok(404, { error: `no webhook operation "${req.op}": use ping or events` });
  } catch (e) {
    if (e instanceof WebhookDefinitionError) return ok(400, { error: e.message });
    throw e;
  }
}

async function create(body: string, store: WebhookStore, deps: WebhookAdminDeps): Promise<HttpOutput> {
  const input = parseBody(CreateWebhookInput, body, 'webhook');
  if ('error' in input) return ok(400, input);
  const { definition, generatedSecret } = newWebhook(input.value, context(deps));
  if (!(await store.create(definition))) return ok(409, { error: `webhook ${definition.name} exists: update it, or delete it first` });
  deps.log.info(`webhook ${definition.name} created (${definition.region}, ${definition.actions.join('+')}, scope "${definition.scope}")`);
  return ok(201, { webhook: publicView(definition), ...(generatedSecret ? { secret: generatedSecret, note: 'the signing secret is shown this once: store it with the subscriber' } : {}) });
}

async function update(name: string, body: string, store: WebhookStore, deps: WebhookAdminDeps): Promise<HttpOutput> {
  const input = parseBody(UpdateWebhookInput, body, 'webhook update');
  if ('error' in input) return ok(400, input);
  if (!(await store.get(name))) return notFound(name);
  const generatedSecret = input.value.rotateSecret && !input.value.secret ? generateSecret() : undefined;
  const ctx = { ...context(deps), generatedSecret };
  // Validate once outside the ETag loop, so a bad input is a 400 and not a thrown error mid-update.
  applyUpdate((await store.get(name))!, input.value, ctx);
  const updated = await store.update(name, (current) => applyUpdate(current, input.value, ctx));
  deps.log.info(`webhook ${name} updated`);
  return ok(200, { webhook: publicView(updated), ...(generatedSecret ? { secret: generatedSecret, note: 'the new signing secret is shown this once' } : {}) });
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
      return ok(200, { eventId: delivery.event.id, deliveryId: delivery.deliveryId, state: record.state, statusCode: record.lastStatusCode, error: record.lastError, latencyMs: attempt?.latencyMs, response: attempt?.response, nextAttemptAt: record.nextAttemptAt });
    }
    if (Date.now() > deadline) {
      return ok(202, { eventId: delivery.event.id, deliveryId: delivery.deliveryId, state: record?.state ?? 'queued', note: 'queued; no attempt yet (is the deliver function running?): see list-events' });
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

function context(deps: WebhookAdminDeps): DefinitionContext {
  return { regions: deps.settings.replicaRegions.map((r) => r.name), homeRegion: deps.settings.homeRegion.name, allowPrivateTargets: deps.settings.webhooks.allowPrivateTargets };
}

function parseBody<T extends z.ZodTypeAny>(schema: T, body: string, what: string): { value: z.output<T> } | { error: string } {
  let json: unknown;
  try {
    json = body.trim() ? JSON.parse(body) : {};
  } catch (e) {
    return { error: `${what}: the body is not JSON (${(e as Error).message})` };
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? { value: parsed.data } : { error: `${what}: ${summarizeZodError(parsed.error)}` };
}

function ok(status: number, jsonBody: unknown): HttpOutput {
  return { status, jsonBody };
}

function notFound(name: string): HttpOutput {
  return ok(404, { error: `webhook ${name} does not exist (georeg webhook list shows the defined ones)` });
}

function notAllowed(method: string, path: string, allowed: string): HttpOutput {
  return { status: 405, jsonBody: { error: `${method} is not supported on ${path}: use ${allowed}` }, headers: { Allow: allowed } };
}
