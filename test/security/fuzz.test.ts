import { randomBytes, randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTopologyFile, startServiceBusEmulator, type ServiceBusEmulator } from 'servicebus-emulator';
import { generated } from '../support/images';
import type { HttpOutput } from '../../src/common/http';
import { silentLogger } from '../../src/common/log';
import { loadSettings } from '../../src/config/settings';
import { defaultTopologyPath, replicationTopology } from '../../src/local/stack';
import { deleteEnvelope, EVENTS_MEDIA_TYPE } from '../../src/notifications/sender';
import { writeImage, type ImageToWrite } from '../../src/registry/writer';
import { handleReplicaAdmin } from '../../src/replicas/admin-api';
import { handlePushNotification } from '../../src/replication/push';
import { createRuntime, pushDeps, replicaAdminDeps, webhookAdminDeps, type Runtime } from '../../src/runtime';
import { handleWebhookAdmin, type WebhookAdminRequest } from '../../src/webhooks/admin-api';
import { envelopeFor } from '../support/pipeline';
import type { StackAccounts } from '../../src/local/stack';
import { storageAccounts } from '../support/stack';

/**
 * Generated inputs — valid, truncated, wrong types, huge strings, prototype keys — to the push
 * handler and the admin handlers, called in-process with real dependencies (Azurite, the Service
 * Bus emulator through the SDK). Whatever comes in: no 5xx, no throw, and a refused input (4xx)
 * puts nothing on the bus. The generator is seeded: a failure prints its seed, and
 * `FUZZ_SEED=<seed>` replays it. Each run draws a new seed, so the cases per run are kept to what
 * `npm test` can afford (1500 push cases were most of this file's time);
 * `FUZZ_CASES=<n>` runs n of each for a longer soak.
 */

const SEED = Number(process.env.FUZZ_SEED ?? randomInt(2 ** 31));
const PUSH_CASES = Number(process.env.FUZZ_CASES ?? 750);
const ADMIN_CASES = Number(process.env.FUZZ_CASES ?? 400);

let azurite: StackAccounts;
let emulator: ServiceBusEmulator;
let runtime: Runtime;
const images: ImageToWrite[] = [];

beforeAll(async () => {
  azurite = await storageAccounts(['westus', 'eastus']);
  emulator = await startServiceBusEmulator({ port: 0, host: '127.0.0.1', topology: replicationTopology(loadTopologyFile(defaultTopologyPath), ['eastus']) });
  runtime = await createRuntime(
    loadSettings({
      GEOREG_HOME_REGION: 'westus',
      GEOREG_REGIONS: JSON.stringify(['westus', 'eastus'].map((name) => ({ name, connectionString: azurite.connectionString(name) }))),
      ServiceBusConnection: emulator.connectionString,
      GEOREG_PUSH_SECRET: 'fuzz-push-secret-0123456789',
      GEOREG_ADMIN_SECRET: 'fuzz-admin-secret-0123456789',
      // Nothing the fuzzer types may reach a network: no private storage, no private webhooks.
      GEOREG_ALLOW_PRIVATE_STORAGE: 'false',
      GEOREG_WEBHOOK_ALLOW_PRIVATE: 'false',
    }),
  );
  await Promise.all([...runtime.regions.values()].map((r) => r.ensureContainer()));
  for (const [i, tag] of ['1.0', '1.1', '2.0'].entries()) {
    const image = generated('fuzz/web', tag, { generate: { layers: 2, layerSize: 1024 }, seed: `fuzz-${i}` });
    await writeImage(runtime.home, image);
    images.push(image);
  }
}, 120_000);

afterAll(async () => {
  await runtime?.close();
  await emulator?.close();
  await azurite?.close();
});

/** Every message anywhere on the bus: each replication subscription and the webhook queue, all states. */
function messagesOnBus(): number {
  let total = 0;
  for (const topic of emulator.namespace.topics.values()) for (const sub of topic.subscriptions.values()) total += emulator.counts(`${topic.name}/Subscriptions/${sub.name}`).total;
  for (const queue of emulator.namespace.queues.values()) total += emulator.counts(queue.name).total;
  return total;
}

// ---- the generator ----

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  return { next, int, pick, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof prng>;

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'];

function text(rng: Rng): string {
  switch (rng.int(8)) {
    case 0:
      return '';
    case 1:
      return 'x'.repeat(rng.pick([1000, 70_000, 300_000]));
    case 2:
      return String.fromCharCode(...Array.from({ length: rng.int(40) + 1 }, () => rng.int(0x2fff)));
    case 3:
      return rng.pick(PROTO_KEYS);
    case 4:
      return rng.pick(['sha256:' + 'a'.repeat(64), 'sha256:zz', 'md5:abc', '../../etc/passwd', 'library/web', 'Web', 'a'.repeat(300), '%zz', '\u0000', 'latest']);
    case 5:
      return rng.pick(['http://169.254.169.254/', 'https://127.0.0.1/', 'AccountName=x;AccountKey=%zz', 'UseDevelopmentStorage=true', 'https://localhost/x', 'http://[::1]/', 'ftp://x']);
    default:
      return randomish(rng);
  }
}

function randomish(rng: Rng): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-_./:@%*';
  return Array.from({ length: rng.int(24) }, () => alphabet[rng.int(alphabet.length)]).join('');
}

/** Any JSON value, sometimes large, sometimes carrying prototype keys. */
function value(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 5 : 7)) {
    case 0:
      return null;
    case 1:
      return rng.pick([0, -1, 1.5, 1e308, Number.MAX_SAFE_INTEGER, true, false]);
    case 2:
    case 3:
      return text(rng);
    case 4:
      return rng.int(2) ? [] : {};
    case 5:
      return Array.from({ length: rng.int(4) }, () => value(rng, depth + 1));
    default:
      return object(rng, depth + 1);
  }
}

function object(rng: Rng, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = rng.int(4); i > 0; i--) {
    // defineProperty: an own key named __proto__, as JSON.parse makes one, not a prototype change.
    Object.defineProperty(out, rng.chance(0.3) ? rng.pick(PROTO_KEYS) : randomish(rng), { value: value(rng, depth), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Replaces, drops or adds one field somewhere in a JSON document. */
function mutate(rng: Rng, doc: unknown): unknown {
  if (doc === null || typeof doc !== 'object' || rng.chance(0.15)) return value(rng);
  const copy: any = Array.isArray(doc) ? [...doc] : { ...(doc as object) };
  const keys = Object.keys(copy);
  const action = rng.int(4);
  if (action === 0 || !keys.length) Object.defineProperty(copy, rng.chance(0.5) ? rng.pick(PROTO_KEYS) : randomish(rng), { value: value(rng), enumerable: true, writable: true, configurable: true });
  else if (action === 1) delete copy[rng.pick(keys)];
  else {
    const key = rng.pick(keys);
    copy[key] = mutate(rng, copy[key]);
  }
  return copy;
}

function validEnvelope(rng: Rng): any {
  const image = rng.pick(images);
  const envelope: any = rng.chance(0.7) ? envelopeFor(image) : deleteEnvelope(rng.chance(0.5) ? { repository: image.repository, tag: image.tag } : { repository: image.repository, digest: image.manifests.at(-1)!.digest });
  // Event ids from the seed, so a replay sends the same ones.
  for (const e of envelope.events) e.id = `fuzz-${rng.int(2 ** 30).toString(36)}`;
  if (rng.chance(0.2)) envelope.events = Array.from({ length: rng.int(6) }, () => rng.pick(envelope.events));
  return envelope;
}

/** A request body: valid JSON, mutated JSON, truncated JSON, or not JSON at all. */
function body(rng: Rng, valid: () => unknown): string {
  let doc = valid();
  const mutations = rng.chance(0.3) ? 0 : rng.int(4) + 1;
  for (let i = 0; i < mutations; i++) doc = mutate(rng, doc);
  const json = JSON.stringify(doc) ?? 'undefined';
  switch (rng.int(10)) {
    case 0:
      return json.slice(0, rng.int(json.length));
    case 1:
      return rng.pick(['', 'null', '[]', '{}', '"events"', '{"events":null}', '{"events":[null]}', '{"events":{"__proto__":{"polluted":1}}}', '\u0000\u0001', '{'.repeat(5000)]);
    case 2:
      return randomBytes(rng.int(64)).toString('latin1');
    default:
      return json;
  }
}

function authorization(rng: Rng, secret: string): string | undefined {
  if (rng.chance(0.85)) return rng.chance(0.5) ? `Bearer ${secret}` : secret;
  return rng.pick([undefined, '', 'Bearer', `Bearer ${secret}x`, `Basic ${secret}`, secret.toUpperCase(), text(rng)]);
}

// ---- the checks ----

interface Outcome {
  status?: number;
  error?: string;
}

async function run(call: () => Promise<HttpOutput>): Promise<Outcome> {
  try {
    return { status: (await call()).status };
  } catch (e) {
    return { error: (e as Error).stack ?? String(e) };
  }
}

function describeInput(input: unknown): string {
  const s = JSON.stringify(input);
  return s.length > 600 ? `${s.slice(0, 600)}... (${s.length} chars)` : s;
}

/** Runs `cases` generated inputs through `handler`; returns the statuses seen, fails naming the seed. */
async function fuzz<T>(name: string, seed: number, cases: number, generate: (rng: Rng) => T, handler: (input: T) => Promise<HttpOutput>): Promise<Map<number, number>> {
  const rng = prng(seed);
  const statuses = new Map<number, number>();
  for (let i = 0; i < cases; i++) {
    const input = generate(rng);
    const before = messagesOnBus();
    const outcome = await run(() => handler(input));
    const refused = outcome.status !== undefined && outcome.status >= 400;
    // The failure message (the input as JSON, up to hundreds of KB) is built for a failing case only.
    if (outcome.error !== undefined || !(outcome.status! < 500) || (refused && messagesOnBus() !== before)) {
      const where = `${name} case ${i} of FUZZ_SEED=${seed}: ${describeInput(input)}`;
      expect(outcome.error, `${where} threw`).toBeUndefined();
      expect(outcome.status, where).toBeLessThan(500);
      expect(messagesOnBus(), `${where} answered ${outcome.status} but enqueued`).toBe(before);
    }
    statuses.set(outcome.status!, (statuses.get(outcome.status!) ?? 0) + 1);
  }
  if (process.env.FUZZ_REPORT) console.info(`${name}: ${cases} cases, FUZZ_SEED=${seed}, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  return statuses;
}

const lower = (headers: Record<string, string | undefined>) => Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));

describe(`fuzzing the handlers (FUZZ_SEED=${SEED})`, () => {
  it(`the push handler: ${PUSH_CASES} envelopes`, async () => {
    const deps = pushDeps(runtime, silentLogger);
    const statuses = await fuzz(
      'push',
      SEED,
      PUSH_CASES,
      (rng) => ({
        headers: lower({
          authorization: authorization(rng, runtime.settings.pushSecret),
          'content-type': rng.chance(0.8) ? EVENTS_MEDIA_TYPE : rng.pick([undefined, 'application/json', 'text/plain', 'application/vnd.docker.distribution.events.v1+json', text(rng)]),
        }),
        body: body(rng, () => validEnvelope(rng)),
      }),
      (input) => handlePushNotification(input, deps),
    );
    // The generator reached both sides: envelopes taken and envelopes refused.
    expect(statuses.get(202) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(50);
    expect(statuses.get(400) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(50);
    expect(statuses.get(401) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(50);
    expect(Object.keys(Object.prototype)).toEqual([]);
  }, 600_000);

  it(`the webhook admin handler: ${ADMIN_CASES} calls`, async () => {
    const deps = { ...webhookAdminDeps(runtime, silentLogger), pingWaitMs: 10 };
    // Mostly good fields, so some definitions are created and later calls find them.
    const valid = (rng: Rng) => ({
      name: rng.pick(['fuzzhook1', 'fuzzhook2', 'fuzzhook3']),
      region: rng.chance(0.8) ? 'eastus' : rng.pick(['westus', 'nowhere']),
      serviceUri: rng.chance(0.8) ? rng.pick(['https://8.8.8.8/hook', 'https://hooks.example.com/h']) : rng.pick(['http://169.254.169.254/', 'https://127.0.0.1/', 'gopher://x']),
      actions: rng.chance(0.9) ? rng.pick([['push'], ['delete'], ['push', 'delete']]) : [],
      scope: rng.chance(0.9) ? rng.pick(['', 'fuzz/*', 'fuzz/web:1.*']) : 'Bad Scope',
      customHeaders: rng.chance(0.6) ? rng.pick([{}, { 'X-Token': 'abc' }]) : rng.pick([{ 'X-Token': 'a\u0001b' }, { 'Bad Name': 'x' }, { 'X-Big': 'x'.repeat(5000) }, { 'X-Caf\u00e9': 'x' }]),
    });
    const statuses = await fuzz(
      'webhook admin',
      SEED + 1,
      ADMIN_CASES,
      (rng): WebhookAdminRequest =>
        // A quarter are well-formed creates, so the other calls meet webhooks that exist.
        rng.chance(0.25)
          ? { method: 'POST', query: {}, headers: { authorization: `Bearer ${runtime.settings.adminSecret}` }, body: JSON.stringify(valid(rng)) }
          : {
              method: rng.pick(['GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'get']),
              name: rng.chance(0.5) ? undefined : rng.pick(['fuzzhook1', 'fuzzhook2', 'nosuchhook', '__proto__', 'constructor', text(rng)]),
              op: rng.chance(0.7) ? undefined : rng.pick(['ping', 'events', 'nope', '__proto__']),
              query: rng.chance(0.8) ? {} : { region: text(rng), top: text(rng) },
              headers: lower({ authorization: authorization(rng, runtime.settings.adminSecret!) }),
              body: body(rng, () => valid(rng)),
            },
      (req) => handleWebhookAdmin(req, deps),
    );
    // Definitions were made (201), or refused as existing (409): the calls after them met real webhooks.
    expect((statuses.get(201) ?? 0) + (statuses.get(409) ?? 0), JSON.stringify([...statuses])).toBeGreaterThan(10);
    expect(statuses.get(400) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(20);
    expect(Object.keys(Object.prototype)).toEqual([]);
  }, 600_000);

  it(`the replica admin handler: ${ADMIN_CASES} calls`, async () => {
    const deps = replicaAdminDeps(runtime, silentLogger);
    const statuses = await fuzz(
      'replica admin',
      SEED + 2,
      ADMIN_CASES,
      (rng) => ({
        // No DELETE of the real replica: the other cases would lose the region they exercise.
        method: rng.pick(['GET', 'POST', 'PATCH', 'DELETE', 'PUT']),
        name: rng.chance(0.4) ? undefined : rng.pick(['eastus', 'westus', 'northeurope', '__proto__', 'constructor', text(rng)]),
        op: rng.chance(0.8) ? undefined : rng.pick(['resync', 'nope', '__proto__']),
        query: rng.chance(0.8) ? {} : { purge: rng.pick(['true', 'false', text(rng)]) },
        headers: lower({ authorization: authorization(rng, runtime.settings.adminSecret!) }),
        body: body(rng, () => ({ name: rng.pick(['northeurope', 'eastus', 'westus', 'Bad-Name']), storage: text(rng), endpointEnabled: rng.chance(0.5), repository: rng.pick(['fuzz/web', 'Nope', text(rng)]) })),
      }),
      (req) => handleReplicaAdmin(req.method === 'DELETE' && req.name === 'eastus' ? { ...req, name: 'northeurope' } : req, deps),
    );
    expect(statuses.get(400) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(20);
    // Calls that reached a replica and succeeded: 34-45 of 400 in most seeds, 20 in FUZZ_SEED=1470385244.
    expect(statuses.get(200) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(10);
    expect(Object.keys(Object.prototype)).toEqual([]);
  }, 600_000);
});
