import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startStack, type Stack } from '../support/stack';
import { deleteEnvelope } from '../../src/notifications/sender';
import { deleteManifest, deleteTag } from '../../src/registry/writer';
import type { ImageToWrite } from '../../src/registry/writer';
import type { JobOutcome } from '../../src/replication/replicate';
import type { RegionStatus } from '../../src/replication/status';
import { verifySignature } from '../../src/webhooks/signature';
import { WebhookStore } from '../../src/webhooks/store';
import { DeadLetterLog } from '../support/dead-letters';
import { drained, notify as notifyStack, pushImage, settled as settledIn, type AcceptedPush } from '../support/pipeline';
import { startSubscriber, type Received, type Subscriber } from './subscriber';

/**
 * Regional webhooks end to end: Azurite, the Service Bus emulator through the real SDK, the local
 * host, and real HTTP subscribers on 127.0.0.1. Retry delays are short (50 ms base) and the
 * attempt timeout 1 s so the retry paths run in seconds; nothing asserts a timing.
 */

const REPLICAS = ['eastus', 'westeurope'];
const MAX_ATTEMPTS = 3;
let stack: Stack;
let sbAdmin: ServiceBusClient;
const subscribers: Subscriber[] = [];
const jobs: Array<{ region: string; messageId: string; outcome: JobOutcome | { outcome: 'abandoned'; error: string } }> = [];
const deadLetters = new DeadLetterLog();

beforeAll(async () => {
  stack = await startStack({
    replicas: REPLICAS,
    httpPort: 0,
    log: silentLogger,
    settings: {
      GEOREG_WEBHOOK_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
      GEOREG_WEBHOOK_RETRY_BASE_MS: '50',
      GEOREG_WEBHOOK_RETRY_MAX_MS: '1000',
      GEOREG_WEBHOOK_TIMEOUT_MS: '1000',
    },
    host: {
      onJob: (region, outcome, message) => jobs.push({ region, messageId: String(message.messageId), outcome }),
      onSettled: deadLetters.onSettled,
    },
  });
  sbAdmin = new ServiceBusClient(stack.serviceBusConnectionString);
}, 120_000);

afterAll(async () => {
  await Promise.all(subscribers.map((s) => s.close()));
  await sbAdmin?.close();
  await stack?.close();
});

async function subscriber(options: Parameters<typeof startSubscriber>[0] = {}): Promise<Subscriber> {
  const s = await startSubscriber(options);
  subscribers.push(s);
  return s;
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(`${stack.host.url}/api/webhooks${path}`, { method, headers: { 'Content-Type': 'application/json', ...stack.adminHeaders }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text), text };
}

async function createWebhook(def: Record<string, unknown>): Promise<{ secret: string; body: any }> {
  const res = await api('POST', '', { actions: ['push'], ...def });
  expect(res.status, res.text).toBe(201);
  return { secret: (def.secret as string) ?? res.body.secret, body: res.body };
}

async function notify(envelope: unknown) {
  const res = await notifyStack(stack, envelope);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.pushes[0] as AcceptedPush;
}

const push = (image: ImageToWrite) => pushImage(stack, image);
const settled = (pushId: string): Promise<RegionStatus[]> => settledIn(stack, pushId, REPLICAS);

/** Nothing more can be delivered: every job and delivery, retries included, has been settled. */
const quiet = () => drained(stack, REPLICAS);

/** The delivery for `webhook` that the webhook queue's dead-letter trigger handled. */
async function deadLettered(webhook: string, timeoutMs = 15_000): Promise<ServiceBusReceivedMessage> {
  return (await deadLetters.find((d) => d.function === 'deliverDeadLetters' && d.message.applicationProperties?.webhook === webhook, timeoutMs)).message;
}

function header(r: Received, name: string): string | undefined {
  return r.headers[name.toLowerCase()];
}

describe('regional webhooks', () => {
  it('fires once per region, only after that region has committed every blob, manifest and the tag', async () => {
    const image = generated('hooks/web', '1.0', { generate: { layers: 3, layerSize: 64 * 1024 }, seed: 'hooks-web' });
    const root = image.manifests[image.manifests.length - 1];
    const subs: Record<string, Subscriber> = {};
    for (const region of REPLICAS) {
      const target = stack.runtime.regions.get(region)!;
      // At arrival, the subscriber fetches every blob of the image from the region's own storage.
      subs[region] = await subscriber({
        onEvent: async (req) => {
          const missing: string[] = [];
          for (const b of [...image.blobs, ...image.manifests]) {
            const data = await target.readBlob(b.digest).catch(() => undefined);
            if (data?.length !== b.size) missing.push(b.digest);
          }
          const tag = await target.readLink({ kind: 'tagCurrent', repository: 'hooks/web', tag: '1.0' });
          return { missing, tag, region: req.json?.region };
        },
      });
      await createWebhook({ name: `first${region}`, region, serviceUri: subs[region].url, scope: 'hooks/web:*' });
    }
    const p = await push(image);
    for (const region of REPLICAS) await subs[region].waitFor(1);
    await settled(p.pushId);
    await quiet();
    for (const region of REPLICAS) {
      const got = subs[region].received;
      expect(got).toHaveLength(1);
      expect(got[0].check).toEqual({ missing: [], tag: root.digest, region });
      const event = got[0].json;
      // ACR's payload, plus region and push id.
      expect(Object.keys(event).sort()).toEqual(['action', 'id', 'pushId', 'region', 'request', 'target', 'timestamp']);
      expect(event).toMatchObject({ action: 'push', region, pushId: p.pushId, target: { mediaType: root.mediaType, size: root.size, digest: root.digest, length: root.size, repository: 'hooks/web', tag: '1.0' } });
      expect(Object.keys(event.request).sort()).toEqual(['host', 'id', 'method', 'useragent']);
      expect(event.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(header(got[0], 'content-type')).toBe('application/json');
      expect(header(got[0], 'x-georeg-region')).toBe(region);
    }
    expect(subs.eastus.received[0].json.id).not.toBe(subs.westeurope.received[0].json.id);
  });

  it('filters by scope (wildcards, bare repository = latest) and by action', async () => {
    const s = Object.fromEntries(await Promise.all(['tags1', 'latest', 'other', 'deletes', 'nested'].map(async (k) => [k, await subscriber()] as const)));
    await createWebhook({ name: 'scopetags1', region: 'eastus', serviceUri: s.tags1.url, scope: 'filt/web:1.*' });
    await createWebhook({ name: 'scopelatest', region: 'eastus', serviceUri: s.latest.url, scope: 'filt/web' });
    await createWebhook({ name: 'scopeother', region: 'eastus', serviceUri: s.other.url, scope: 'filt/other:*' });
    await createWebhook({ name: 'scopedeletes', region: 'eastus', serviceUri: s.deletes.url, scope: 'filt/web:*', actions: ['delete'] });
    await createWebhook({ name: 'scopenested', region: 'eastus', serviceUri: s.nested.url, scope: 'filt/*:latest' });
    const a = await push(generated('filt/web', '1.2', { generate: { layers: 1, layerSize: 512 }, seed: 'filt-1' }));
    const b = await push(generated('filt/web', 'latest', { generate: { layers: 1, layerSize: 512 }, seed: 'filt-2' }));
    await Promise.all([settled(a.pushId), settled(b.pushId)]);
    await s.tags1.waitFor(1);
    await s.latest.waitFor(1);
    await s.nested.waitFor(1);
    await quiet();
    expect(s.tags1.received.map((r) => r.json.target.tag)).toEqual(['1.2']);
    expect(s.latest.received.map((r) => r.json.target.tag)).toEqual(['latest']);
    expect(s.nested.received.map((r) => r.json.target.tag)).toEqual(['latest']);
    expect(s.other.received).toHaveLength(0);
    expect(s.deletes.received).toHaveLength(0);
  });

  it('a disabled webhook receives nothing until enabled again', async () => {
    const on = await subscriber();
    const off = await subscriber();
    await createWebhook({ name: 'statuson', region: 'eastus', serviceUri: on.url, scope: 'stat/web:*' });
    await createWebhook({ name: 'statusoff', region: 'eastus', serviceUri: off.url, scope: 'stat/web:*', status: 'disabled' });
    await settled((await push(generated('stat/web', 'a', { generate: { layers: 1, layerSize: 100 }, seed: 'stat-a' }))).pushId);
    await on.waitFor(1);
    await quiet();
    expect(off.received).toHaveLength(0);
    const updated = await api('PATCH', '/statusoff', { status: 'enabled' });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.body.webhook.status).toBe('enabled');
    await settled((await push(generated('stat/web', 'b', { generate: { layers: 1, layerSize: 100 }, seed: 'stat-b' }))).pushId);
    await off.waitFor(1);
    expect(off.received.map((r) => r.json.target.tag)).toEqual(['b']);
  });

  it('sends custom headers (a custom Content-Type replaces the default) and masks them in show and list', async () => {
    const s = await subscriber();
    const customHeaders = { Authorization: 'Bearer subscriber-token-123', 'X-Team': 'web', 'Content-Type': 'application/vnd.team+json' };
    const { secret } = await createWebhook({ name: 'headers1', region: 'westeurope', serviceUri: s.url, scope: 'hdr/web:*', customHeaders });
    await push(generated('hdr/web', 'x', { generate: { layers: 1, layerSize: 100 }, seed: 'hdr' }));
    const [got] = await s.waitFor(1);
    expect(header(got, 'authorization')).toBe('Bearer subscriber-token-123');
    expect(header(got, 'x-team')).toBe('web');
    expect(header(got, 'content-type')).toBe('application/vnd.team+json');
    expect(header(got, 'x-georeg-signature')).toMatch(/^v1=[0-9a-f]{64}$/);
    const shown = await api('GET', '/headers1');
    expect(shown.body.webhook.customHeaders).toEqual({ Authorization: '***', 'X-Team': '***', 'Content-Type': '***' });
    const listed = await api('GET', '');
    for (const text of [shown.text, listed.text, (await api('GET', '/headers1/events')).text]) {
      expect(text).not.toContain('subscriber-token-123');
      expect(text).not.toContain(secret);
    }
  });

  it('signs each delivery: the signature verifies with the secret; a tampered body or a stale timestamp fails', async () => {
    const s = await subscriber();
    const { secret, body } = await createWebhook({ name: 'signed1', region: 'eastus', serviceUri: s.url, scope: 'sig/web:*' });
    expect(secret).toMatch(/^[A-Za-z0-9_-]{40,}$/); // generated, shown once
    expect(JSON.stringify(body.webhook)).not.toContain(secret);
    await push(generated('sig/web', 'x', { generate: { layers: 1, layerSize: 100 }, seed: 'sig' }));
    const [got] = await s.waitFor(1);
    const input = { secret, body: got.body, timestamp: header(got, 'x-georeg-timestamp'), signature: header(got, 'x-georeg-signature') };
    expect(verifySignature(input)).toEqual({ ok: true });
    expect(verifySignature({ ...input, body: got.body.replace('"push"', '"delete"') })).toMatchObject({ ok: false });
    expect(verifySignature({ ...input, secret: 'another-secret-another-secret' })).toMatchObject({ ok: false });
    expect(verifySignature({ ...input, now: new Date(Date.now() + 3600_000) })).toMatchObject({ ok: false, reason: expect.stringContaining('stale') });
    // The delivery log keeps the timestamp but not the signature (with the body it would be a replayable request).
    await expect.poll(async () => (await api('GET', '/signed1/events')).body.events.length, { timeout: 10_000 }).toBe(1);
    const [logged] = (await api('GET', '/signed1/events')).body.events;
    expect(logged.request.headers).toMatchObject({ 'X-Georeg-Signature': 'v1=***', 'X-Georeg-Timestamp': input.timestamp });
  });

  it('retries a 500 and succeeds on the next attempt; list-events shows both attempts, newest first', async () => {
    const s = await subscriber({ answer: (i) => (i === 0 ? { status: 500, body: 'database unavailable' } : { status: 200, body: 'thanks' }) });
    await createWebhook({ name: 'retry500ok', region: 'eastus', serviceUri: s.url, scope: 'retry/web:*' });
    await push(generated('retry/web', 'x', { generate: { layers: 1, layerSize: 100 }, seed: 'retry' }));
    const got = await s.waitFor(2);
    await quiet();
    expect(got).toHaveLength(2);
    expect(got[1].json.id).toBe(got[0].json.id);
    expect(got.map((r) => header(r, 'x-georeg-attempt'))).toEqual(['1', '2']);
    const events = (await api('GET', '/retry500ok/events')).body.events;
    expect(events.map((e: any) => [e.attempt, e.outcome, e.statusCode])).toEqual([
      [2, 'delivered', 200],
      [1, 'retry', 500],
    ]);
    expect(Date.parse(events[0].at)).toBeGreaterThanOrEqual(Date.parse(events[1].at));
    expect(events[1]).toMatchObject({ response: 'database unavailable', maxAttempts: MAX_ATTEMPTS, region: 'eastus', action: 'push', eventId: got[0].json.id });
    // The second attempt ran when the first scheduled it, not before.
    expect(Date.parse(events[0].at)).toBeGreaterThanOrEqual(Date.parse(events[1].nextAttemptAt));
    expect(events[0]).toMatchObject({ response: 'thanks', request: { method: 'POST', uri: s.url } });
    expect(JSON.parse(events[0].request.body)).toEqual(got[1].json);
    // A delivered attempt answered within the webhook timeout (GEOREG_WEBHOOK_TIMEOUT_MS).
    expect(events[0].latencyMs).toBeLessThan(1000);
  });

  it('dead-letters with the reason after the last attempt when the subscriber always answers 500', async () => {
    const s = await subscriber({ answer: () => ({ status: 503, body: 'down' }) });
    await createWebhook({ name: 'always500', region: 'westeurope', serviceUri: s.url, scope: 'fail/web:*' });
    await push(generated('fail/web', 'x', { generate: { layers: 1, layerSize: 100 }, seed: 'fail' }));
    const dead = await deadLettered('always500');
    expect(s.received).toHaveLength(MAX_ATTEMPTS);
    expect(dead.deadLetterReason).toBe('MaxAttemptsExceeded');
    expect(dead.deadLetterErrorDescription).toContain('503');
    expect(dead.deadLetterErrorDescription).toContain(`attempt ${MAX_ATTEMPTS} of ${MAX_ATTEMPTS}`);
    const events = (await api('GET', '/always500/events')).body.events;
    expect(events.map((e: any) => [e.attempt, e.outcome])).toEqual([
      [3, 'failed'],
      [2, 'retry'],
      [1, 'retry'],
    ]);
  });

  it('stops at once on a 4xx other than 408/429, dead-lettering with the answer', async () => {
    const s = await subscriber({ answer: () => ({ status: 410, body: 'this hook is gone' }) });
    await createWebhook({ name: 'gone410', region: 'eastus', serviceUri: s.url, scope: 'gone/web:*' });
    await push(generated('gone/web', 'x', { generate: { layers: 1, layerSize: 100 }, seed: 'gone' }));
    const dead = await deadLettered('gone410');
    expect(dead.deadLetterReason).toBe('SubscriberRejected');
    expect(dead.deadLetterErrorDescription).toContain('410');
    expect(s.received).toHaveLength(1);
  });

  it('refuses a custom header value with a control character (400) and creates nothing', async () => {
    const s = await subscriber();
    const res = await api('POST', '', { name: 'ctrlhead', region: 'eastus', serviceUri: s.url, actions: ['push'], customHeaders: { 'X-Token': 'abc\x01def' } });
    expect(res.status, res.text).toBe(400);
    expect(res.body.error).toMatch(/X-Token.*character HTTP does not allow/);
    expect((await api('GET', '/ctrlhead')).status).toBe(404);
  });

  it('a stored header Node refuses at send time dead-letters after one attempt, with its reason', async () => {
    const s = await subscriber();
    await createWebhook({ name: 'oldheader', region: 'eastus', serviceUri: s.url, scope: 'oldhead/web:*', customHeaders: { 'X-Token': 'fine' } });
    // A definition written before header values were checked as Node checks them.
    await new WebhookStore(stack.runtime.state).update('oldheader', (w) => ({ ...w, customHeaders: { 'X-Token': 'bad\x01value' } }));
    await push(generated('oldhead/web', 'x', { generate: { layers: 1, layerSize: 100 }, seed: 'oldhead' }));
    const dead = await deadLettered('oldheader');
    expect(dead.deadLetterReason).toBe('InvalidRequest');
    expect(dead.deadLetterErrorDescription).toMatch(/ERR_INVALID_CHAR.*X-Token/);
    const events = (await api('GET', '/oldheader/events')).body.events;
    expect(events.map((e: any) => [e.attempt, e.outcome])).toEqual([[1, 'failed']]);
    expect(s.received).toHaveLength(0);
  });

  it('a subscriber slower than the timeout gets the event again', async () => {
    const s = await subscriber({ answer: (i) => (i === 0 ? { delayMs: 3000 } : { status: 204 }) });
    await createWebhook({ name: 'slowhook', region: 'eastus', serviceUri: s.url, scope: 'slow/web:*' });
    await push(generated('slow/web', 'x', { generate: { layers: 1, layerSize: 100 }, seed: 'slow' }));
    await s.waitFor(2);
    await quiet();
    const events = (await api('GET', '/slowhook/events')).body.events;
    expect(events.map((e: any) => [e.attempt, e.outcome, e.statusCode ?? null])).toEqual([
      [2, 'delivered', 204],
      [1, 'retry', null],
    ]);
    expect(events[1].error).toContain('1000 ms');
  });

  it('a redelivered region job does not fire the webhook again', async () => {
    const s = await subscriber();
    await createWebhook({ name: 'redeliver1', region: 'eastus', serviceUri: s.url, scope: 'redel/web:*' });
    const image = generated('redel/web', 'x', { generate: { layers: 1, layerSize: 100 }, seed: 'redel' });
    const p = await push(image);
    await settled(p.pushId);
    await s.waitFor(1);
    const job = p.jobs.find((j) => j.region === 'eastus')!;
    const root = image.manifests[0];
    const body = { version: 1, jobId: job.jobId, pushId: p.pushId, eventId: p.pushId, region: 'eastus', repository: 'redel/web', createdAt: new Date().toISOString(), action: 'push', tag: 'x', manifest: { digest: root.digest, mediaType: root.mediaType, size: root.size }, plan: { inline: { manifests: [], blobs: [], missing: [], foreign: [] } } };
    const sender = sbAdmin.createSender(stack.settings.serviceBus.replicationTopic);
    for (const suffix of ['again', 'and-again']) {
      await sender.sendMessages({ body, messageId: `${job.jobId}:${suffix}`, applicationProperties: { region: 'eastus', action: 'push', repository: 'redel/web' } });
    }
    await sender.close();
    await expect.poll(() => jobs.filter((o) => o.messageId.startsWith(`${job.jobId}:`)).length, { timeout: 15_000 }).toBe(2);
    for (const o of jobs.filter((j) => j.messageId.startsWith(`${job.jobId}:`))) expect(o.outcome).toMatchObject({ outcome: 'completed', alreadyComplete: true });
    await quiet();
    expect(s.received).toHaveLength(1);
  });

  it('fires delete webhooks once the delete is complete in the region: the tag is gone there, the blobs stay', async () => {
    const subs: Record<string, Subscriber> = {};
    const image = generated('del/web', 'old', { generate: { layers: 1, layerSize: 1000 }, seed: 'del-old' });
    for (const region of REPLICAS) {
      const target = stack.runtime.regions.get(region)!;
      subs[region] = await subscriber({
        onEvent: async () => ({
          tag: await target.readLink({ kind: 'tagCurrent', repository: 'del/web', tag: 'old' }),
          blob: (await target.blobProperties(image.blobs[0].digest))?.size,
        }),
      });
      await createWebhook({ name: `deletes${region}`, region, serviceUri: subs[region].url, scope: 'del/web:*', actions: ['delete'] });
    }
    await settled((await push(image)).pushId);
    await deleteTag(stack.runtime.home, 'del/web', 'old');
    const d = await notify(deleteEnvelope({ repository: 'del/web', tag: 'old' }));
    for (const region of REPLICAS) {
      const [got] = await subs[region].waitFor(1);
      expect(got.json).toMatchObject({ action: 'delete', region, pushId: d.pushId, target: { repository: 'del/web', tag: 'old' } });
      expect(got.check).toEqual({ tag: undefined, blob: image.blobs[0].size });
    }
    // A manifest delete by digest: ACR's delete target (mediaType, digest, repository); scope `:*` covers it.
    const second = generated('del/web', 'two', { generate: { layers: 1, layerSize: 1000 }, seed: 'del-two' });
    await settled((await push(second)).pushId);
    const root = second.manifests[0];
    await deleteManifest(stack.runtime.home, 'del/web', root.digest);
    const env = deleteEnvelope({ repository: 'del/web', digest: root.digest }) as any;
    env.events[0].target.mediaType = root.mediaType;
    await notify(env);
    for (const region of REPLICAS) {
      const got = await subs[region].waitFor(2);
      expect(got[1].json.target).toEqual({ mediaType: root.mediaType, digest: root.digest, repository: 'del/web' });
    }
  });

  it('ping sends a ping event through the same path and reports the outcome', async () => {
    const s = await subscriber({ answer: () => ({ status: 200, body: 'pong' }) });
    await createWebhook({ name: 'pinghook', region: 'westeurope', serviceUri: s.url, scope: 'nothing/here' });
    const res = await api('POST', '/pinghook/ping');
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ state: 'delivered', statusCode: 200, response: 'pong' });
    const [got] = await s.waitFor(1);
    expect(got.json).toMatchObject({ action: 'ping', region: 'westeurope', id: res.body.eventId });
    expect(verifySignature({ secret: 'x'.repeat(16), body: got.body, timestamp: header(got, 'x-georeg-timestamp'), signature: header(got, 'x-georeg-signature') }).ok).toBe(false);
    const events = (await api('GET', '/pinghook/events')).body.events;
    expect(events[0]).toMatchObject({ action: 'ping', outcome: 'delivered', statusCode: 200 });

    const failing = await subscriber({ answer: () => ({ status: 500 }) });
    await createWebhook({ name: 'pingfail', region: 'westeurope', serviceUri: failing.url });
    const bad = await api('POST', '/pingfail/ping');
    expect(bad.body).toMatchObject({ state: 'retrying', statusCode: 500 });
  });

  it('manages webhooks: show, list by region, update, delete; refuses bad definitions and unsafe URIs', async () => {
    const s = await subscriber();
    await createWebhook({ name: 'managed1', region: 'eastus', serviceUri: s.url, actions: ['push', 'delete'], scope: 'mgmt/*:*', secret: 'a-secret-of-enough-length' });
    expect((await api('POST', '', { name: 'managed1', region: 'eastus', serviceUri: s.url, actions: ['push'] })).status).toBe(409);
    const shown = (await api('GET', '/managed1')).body.webhook;
    expect(shown).toMatchObject({ name: 'managed1', region: 'eastus', actions: ['delete', 'push'], scope: 'mgmt/*:*', status: 'enabled' });
    expect(shown).not.toHaveProperty('secret');
    const byRegion = (await api('GET', '?region=westeurope')).body.webhooks;
    expect(byRegion.every((w: any) => w.region === 'westeurope')).toBe(true);
    expect(byRegion.some((w: any) => w.name === 'managed1')).toBe(false);
    const rotated = await api('PATCH', '/managed1', { rotateSecret: true, scope: 'mgmt/api' });
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(rotated.body.webhook.scope).toBe('mgmt/api');
    expect((await api('DELETE', '/managed1')).status).toBe(200);
    expect((await api('GET', '/managed1')).status).toBe(404);
    expect((await api('DELETE', '/managed1')).status).toBe(404);

    const base = { region: 'eastus', serviceUri: s.url, actions: ['push'] };
    const refused: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...base, name: 'abcd' }, /5-50 letters and digits/],
      [{ ...base, name: 'has-dash1' }, /5-50 letters and digits/],
      [{ ...base, name: 'homeregion', region: stack.settings.homeRegion.name }, /home region/],
      [{ ...base, name: 'nowhere1', region: 'mars' }, /not a replica region/],
      [{ ...base, name: 'badscheme', serviceUri: 'ftp://example.com/hook' }, /scheme/],
      [{ ...base, name: 'notaurl1', serviceUri: 'not a url' }, /absolute URL/],
      [{ ...base, name: 'metadata1', serviceUri: 'http://169.254.169.254/metadata/instance' }, /link-local/],
      [{ ...base, name: 'wireserver', serviceUri: 'http://168.63.129.16/' }, /wire server/],
      [{ ...base, name: 'metadata6', serviceUri: 'http://[fd00:ec2::254]/' }, /fd00/],
      [{ ...base, name: 'mapped1', serviceUri: 'http://[::ffff:169.254.169.254]/' }, /link-local/],
      [{ ...base, name: 'noaction1', actions: [] }, /at least one action/],
      [{ ...base, name: 'badaction', actions: ['quarantine'] }, /actions/],
      [{ ...base, name: 'badscope1', scope: 'Upper/Case' }, /scope/],
      [{ ...base, name: 'badheader', customHeaders: { 'X-Georeg-Signature': 'x' } }, /set by georeg/],
      [{ ...base, name: 'shortsecret', secret: 'short' }, /16 characters/],
    ];
    for (const [def, message] of refused) {
      const res = await api('POST', '', def);
      expect(res.status, `${JSON.stringify(def)} → ${res.text}`).toBe(400);
      expect(res.body.error).toMatch(message);
    }
    await createWebhook({ name: 'managed2', ...base });
    const moved = await api('PATCH', '/managed2', { serviceUri: 'http://169.254.169.254/' });
    expect(moved.status).toBe(400);
    expect((await api('GET', '/managed2')).body.webhook.serviceUri).toBe(s.url);
  });
});
