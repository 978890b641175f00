import { createHash } from 'node:crypto';
import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replicationJobMessage, type ReplicationJob } from '../../src/bus/messages';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startStack, type Stack } from '../support/stack';
import { deleteEnvelope } from '../../src/notifications/sender';
import { deleteManifest, deleteTag, writeImage, type ImageToWrite } from '../../src/registry/writer';
import { ProblemStore } from '../../src/replication/problems';
import { handleReplicationJob, type JobOutcome } from '../../src/replication/replicate';
import { replicateDeps } from '../../src/runtime';
import { isFinished, StatusStore, type RegionState } from '../../src/replication/status';
import type { LinkSpec } from '../../src/storage/paths';
import type { RegionStorage } from '../../src/storage/region-storage';
import { rawContainer } from '../support/raw-storage';
import { WebhookStore } from '../../src/webhooks/store';
import { JobGate, seededRandom } from '../support/gate';
import { envelopeFor, notify as notifyStack } from '../support/pipeline';
import { startSubscriber, type Subscriber } from '../webhooks/subscriber';

/**
 * The convergence invariant: once no notification is in flight, every replica's tags equal home's,
 * whatever order jobs complete in and however often they are redelivered, and a reader of a
 * replica never sees a tag whose manifest or blobs are missing there.
 */

const REPLICAS = ['eastus', 'westeurope'];
/**
 * Operations per randomized run. Each run draws a new seed, so runs together cover far more
 * interleavings than one; 120 holds dozens of jobs at once and redelivers a few dozen, at about
 * half the time 200 took (GEOREG_CONVERGENCE_OPERATIONS for a longer soak).
 */
const OPERATIONS = Number(process.env.GEOREG_CONVERGENCE_OPERATIONS ?? 120);
let stack: Stack;
let sb: ServiceBusClient;
const gate = new JobGate();
const settledJobs: Array<{ region: string; messageId: string; outcome: JobOutcome | { outcome: 'abandoned'; error: string } }> = [];
const subscribers: Subscriber[] = [];

beforeAll(async () => {
  stack = await startStack({
    replicas: REPLICAS,
    httpPort: 0,
    log: silentLogger,
    host: {
      beforeJob: gate.beforeJob,
      onJob: (region, outcome, message) => settledJobs.push({ region, messageId: String(message.messageId), outcome }),
      // Room for many held jobs per region: the randomized test holds dozens at once.
      maxConcurrentCalls: 64,
    },
  });
  sb = new ServiceBusClient(stack.serviceBusConnectionString);
}, 120_000);

afterAll(async () => {
  gate.open();
  await Promise.all(subscribers.map((s) => s.close()));
  await sb?.close();
  await stack?.close();
});

const home = () => stack.runtime.home;
const region = (name: string) => stack.runtime.regions.get(name)!;
const tagIn = (storage: RegionStorage, repository: string, tag: string) => storage.readLink({ kind: 'tagCurrent', repository, tag });

async function notify(envelope: unknown) {
  const res = await notifyStack(stack, envelope);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body as { pushes: Array<{ pushId: string }>; problems: Array<{ reason: string; eventId?: string; description: string }> };
}

/**
 * The blobs written to home (digest → size): a registry pushing an image again mounts what it holds,
 * and nothing here deletes blob data (deletes remove links), so they are not asked about again.
 */
const inHome = new Map<string, number>();

/** Writes the image to home under `tag` (as a registry push does) and notifies; returns the push id. */
async function pushTo(image: ImageToWrite, tag: string): Promise<string> {
  const tagged = { ...image, tag };
  await writeImage(home(), tagged, undefined, { present: inHome });
  for (const b of [...image.blobs, ...image.manifests]) inHome.set(b.digest, b.size);
  return (await notify(envelopeFor(tagged))).pushes[0].pushId;
}

/** Distribution 3's tag delete: empty digest and media type. */
function d3TagDelete(repository: string, tag: string) {
  const env = deleteEnvelope({ repository, tag }) as { events: Array<{ target: Record<string, unknown> }> };
  env.events[0].target = { mediaType: '', digest: '', size: 0, repository, tag };
  return env;
}

/**
 * Waits until every push is finished in every region. Each push is read once (its record and its
 * regions' statuses: three requests); after that, a region's status is read again only when one of
 * that push's jobs for the region settles (a job writes its status before the host settles its
 * message: `settledJobs`, whose message ids start with the push id). One request per job instead
 * of three per push at every poll, with dozens of pushes waited on at once.
 */
async function waitFinished(pushIds: readonly string[], timeout = 60_000) {
  const store = new StatusStore(stack.runtime.state);
  /** What is not finished yet: `<push>@<region>` → its state, or `<push>` → not recorded. */
  const pending = new Map<string, string>();
  const readPush = async (id: string) => {
    const found = await store.push(id);
    if (!found) return void pending.set(id, 'not recorded');
    pending.delete(id);
    for (const r of found.regions) note(id, r.region, r.state);
  };
  const note = (id: string, region: string, state: RegionState | undefined) => {
    if (state && isFinished(state)) pending.delete(`${id}@${region}`);
    else pending.set(`${id}@${region}`, state ?? 'pending');
  };
  let settledSeen = settledJobs.length;
  await Promise.all(pushIds.map(readPush));
  await expect
    .poll(
      async () => {
        const stale = new Set<string>();
        for (const job of settledJobs.slice(settledSeen)) {
          const id = pushIds.find((p) => job.messageId.startsWith(`${p}:`));
          if (id && pending.has(`${id}@${job.region}`)) stale.add(`${id}@${job.region}`);
        }
        settledSeen = settledJobs.length;
        await Promise.all([
          ...[...pending.keys()].filter((k) => !k.includes('@')).map(readPush),
          ...[...stale].map(async (key) => {
            const [id, region] = key.split('@');
            note(id, region, (await store.region(id, region))?.state);
          }),
        ]);
        return [...pending].map(([key, state]) => `${key}:${state}`);
      },
      { timeout, interval: 100 },
    )
    .toEqual([]);
}

describe('convergence', () => {
  it('an older job that commits after a newer one leaves the tag alone: superseded, and only the newer push fires webhooks', async () => {
    const big = generated('conv/order', undefined, { generate: { layers: 3, layerSize: 64 * 1024 }, seed: 'order-big' });
    const small = generated('conv/order', undefined, { generate: { layers: 1, layerSize: 512 }, seed: 'order-small' });
    const hooks: Record<string, Subscriber> = {};
    for (const r of REPLICAS) {
      hooks[r] = await startSubscriber();
      subscribers.push(hooks[r]);
      const res = await fetch(`${stack.host.url}/api/webhooks`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...stack.adminHeaders },
        body: JSON.stringify({ name: `order${r}`, region: r, serviceUri: hooks[r].url, actions: ['push'], scope: 'conv/order:*' }),
      });
      expect(res.status, await res.clone().text()).toBe(201);
    }

    // The big push's jobs are held until the small push has committed everywhere.
    const first = { ...big, tag: 'v1' };
    await writeImage(home(), first);
    const firstEnvelope = envelopeFor(first);
    const firstId = (firstEnvelope.events.at(-1) as { id: string }).id;
    gate.hold(firstId);
    expect((await notify(firstEnvelope)).pushes[0].pushId).toBe(firstId);
    await expect.poll(() => gate.held.filter((h) => h.pushId === firstId).length, { timeout: 15_000 }).toBe(REPLICAS.length);
    const secondId = await pushTo(small, 'v1');
    await waitFinished([secondId]);

    expect(gate.release((h) => h.pushId === firstId)).toBe(REPLICAS.length);
    await waitFinished([firstId]);
    const statuses = (await new StatusStore(stack.runtime.state).push(firstId))!.regions;
    for (const s of statuses) {
      expect(s.state).toBe('superseded');
      expect(s.supersededBy).toEqual({ digest: small.manifests[0].digest, pushId: secondId });
      // The superseded job still copied its blobs (they may be shared with other images).
      expect((await region(s.region).blobProperties(big.blobs[0].digest))?.size).toBe(big.blobs[0].size);
    }
    for (const r of REPLICAS) expect(await tagIn(region(r), 'conv/order', 'v1')).toBe(small.manifests[0].digest);

    // Webhooks: the newer push's event in each region, none for the superseded one.
    const webhooks = new WebhookStore(stack.runtime.state);
    for (const r of REPLICAS) {
      const [got] = await hooks[r].waitFor(1);
      expect(got.json).toMatchObject({ action: 'push', region: r, pushId: secondId, target: { digest: small.manifests[0].digest, tag: 'v1' } });
    }
    // The superseded jobs are settled (the host's onJob ran): had they enqueued a delivery, its record would exist.
    await expect.poll(() => settledJobs.filter((j) => j.messageId.startsWith(`${firstId}:`)).length, { timeout: 10_000 }).toBe(REPLICAS.length);
    for (const r of REPLICAS) {
      expect(await webhooks.delivery(`order${r}`, `${firstId}:${r}:order${r}`)).toBeUndefined();
      expect(hooks[r].received).toHaveLength(1);
    }
    const summary = (await (await fetch(`${stack.host.url}/api/pushes/${firstId}`, { headers: stack.adminHeaders })).json()) as { state: string };
    expect(summary.state).toBe('superseded');
  });

  it('a job that read home just before a newer push committed the tag does not write over it: the write is conditional on the version it read', async () => {
    // The region holds the tag already (this worker wrote it: its write is If-Match on the ETag read).
    const [base, older, newer] = ['base', 'older', 'newer'].map((seed) => generated('conv/race', undefined, { generate: { layers: 1, layerSize: 128 }, seed: `race-${seed}` }));
    await waitFinished([await pushTo(base, 'v1')]);
    const [r] = REPLICAS;

    // The older push's jobs are held; its job for one region then runs here, with a home whose read
    // of the tag answers (the older digest) and then waits until the newer push has committed there.
    const olderImage = { ...older, tag: 'v1' };
    await writeImage(home(), olderImage);
    const olderEnvelope = envelopeFor(olderImage);
    const olderId = (olderEnvelope.events.at(-1) as { id: string }).id;
    gate.hold(olderId);
    await notify(olderEnvelope);
    await expect.poll(() => gate.held.filter((h) => h.pushId === olderId).length, { timeout: 15_000 }).toBe(REPLICAS.length);
    const job = gate.held.find((h) => h.pushId === olderId && h.region === r)!.message.body;

    let readHome!: () => void;
    const homeRead = new Promise<void>((resolve) => (readHome = resolve));
    let go!: () => void;
    const newerCommitted = new Promise<void>((resolve) => (go = resolve));
    const real = home();
    const pausing = new Proxy(real, {
      get(target, key) {
        if (key === 'readLink') {
          return async (spec: LinkSpec) => {
            const digest = await target.readLink(spec);
            if (spec.kind === 'tagCurrent' && spec.repository === 'conv/race' && digest === older.manifests[0].digest) {
              readHome();
              await newerCommitted;
            }
            return digest;
          };
        }
        const value = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const running = handleReplicationJob(job, { ...replicateDeps(stack.runtime, silentLogger), home: pausing });
    await homeRead;
    const newerId = await pushTo(newer, 'v1');
    await waitFinished([newerId]);
    expect(await tagIn(region(r), 'conv/race', 'v1')).toBe(newer.manifests[0].digest);
    go();

    const outcome = await running;
    expect(outcome).toMatchObject({ outcome: 'completed', status: { state: 'superseded', supersededBy: { digest: newer.manifests[0].digest } } });
    expect(await tagIn(region(r), 'conv/race', 'v1')).toBe(newer.manifests[0].digest);
    // The held copies (the other region's job and this one's own message) run now and converge too.
    gate.release((h) => h.pushId === olderId);
    await waitFinished([olderId]);
    for (const name of REPLICAS) expect(await tagIn(region(name), 'conv/race', 'v1')).toBe(newer.manifests[0].digest);
  });

  it("Distribution 3's tag delete (empty digest and media type) is accepted and removes the tag in every replica", async () => {
    const image = generated('acc/app', undefined, { generate: { layers: 1, layerSize: 256 }, seed: 'd3-delete' });
    await waitFinished([await pushTo(image, 'v1')]);
    await deleteTag(home(), 'acc/app', 'v1');
    const res = await notify(d3TagDelete('acc/app', 'v1'));
    expect(res.problems).toEqual([]);
    await waitFinished([res.pushes[0].pushId]);
    for (const r of REPLICAS) {
      expect(await tagIn(region(r), 'acc/app', 'v1')).toBeUndefined();
      expect((await region(r).blobProperties(image.blobs[0].digest))?.size).toBe(image.blobs[0].size);
    }
  });

  it('an envelope whose second event names a manifest missing from home: 202, the first replicated, the second recorded with its reason', async () => {
    const present = { ...generated('conv/mixed', 'ok', { generate: { layers: 1, layerSize: 300 }, seed: 'mixed-ok' }) };
    const absent = generated('conv/mixed', 'lost', { generate: { layers: 1, layerSize: 300 }, seed: 'mixed-lost' });
    await writeImage(home(), present);
    const a = envelopeFor(present);
    const b = envelopeFor(absent);
    const res = await notify({ events: [...a.events, ...b.events] });
    expect(res.pushes).toHaveLength(1);
    const lostEventId = (b.events.at(-1) as { id: string }).id;
    expect(res.problems).toEqual([expect.objectContaining({ eventId: lostEventId, reason: 'ManifestNotInHome', description: expect.stringContaining('GEOREG_REGISTRY_ROOT') })]);
    await waitFinished([res.pushes[0].pushId]);
    for (const r of REPLICAS) expect(await tagIn(region(r), 'conv/mixed', 'ok')).toBe(present.manifests[0].digest);
    const problems = await new ProblemStore(stack.runtime.state).list();
    expect(problems.find((p) => p.eventId === lostEventId)).toMatchObject({ reason: 'ManifestNotInHome', repository: 'conv/mixed', tag: 'lost', digest: absent.manifests[0].digest });
    // The same envelope again (a registry retrying) is recorded once.
    await notify({ events: [...a.events, ...b.events] });
    expect((await new ProblemStore(stack.runtime.state).list()).filter((p) => p.eventId === lostEventId)).toHaveLength(1);
  });

  it(`randomized interleaving (${OPERATIONS} operations) of pushes, tag deletes and digest deletes with held, released and redelivered jobs converges, and no reader ever sees a broken tag`, async () => {
    const seed = Number(process.env.GEOREG_CONVERGENCE_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = seededRandom(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
    const repository = 'conv/random';
    const tags = ['t0', 't1', 't2'];
    const images = ['A', 'B', 'C'].map((name) => generated(repository, undefined, { generate: { layers: 2, layerSize: 200 }, seed: `random-${name}`, seedBase: 'random-base', share: 1 }));
    const context = `seed ${seed} (rerun with GEOREG_CONVERGENCE_SEED=${seed})`;

    // A reader sampling each replica throughout: every tag it sees resolves to a complete image.
    const violations: string[] = [];
    let samples = 0;
    let sampling = true;
    const reader = (async () => {
      while (sampling) {
        for (const r of REPLICAS) {
          for (const { tag, digest, broken } of await pullable(r, repository, tags, images)) {
            samples += 1;
            // Re-read the tag: a delete may have taken it away meanwhile, which is fine.
            if (broken && (await tagIn(region(r), repository, tag)) === digest) violations.push(`${r} ${repository}:${tag} → ${digest}: ${broken}`);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    gate.holdAll = true;
    const pushIds: string[] = [];
    const redelivered: string[] = [];
    const sender = sb.createSender('replication');
    for (let op = 0; op < OPERATIONS; op++) {
      const r = random();
      if (r < 0.3) {
        pushIds.push(await pushTo(pick(images), pick(tags)));
      } else if (r < 0.4) {
        const tag = pick(tags);
        if (!(await tagIn(home(), repository, tag))) continue;
        await deleteTag(home(), repository, tag);
        pushIds.push(...(await notify(d3TagDelete(repository, tag))).pushes.map((p) => p.pushId));
      } else if (r < 0.47) {
        const digest = pick(images).manifests[0].digest;
        if (!(await home().linkExists({ kind: 'revision', repository, digest }))) continue;
        const removedTags = await deleteManifest(home(), repository, digest);
        // Distribution sends the manifest delete, and (3.x) a tag delete per tag it removed.
        const events = [deleteEnvelope({ repository, digest }), ...removedTags.map((t) => d3TagDelete(repository, t))].flatMap((e) => e.events);
        pushIds.push(...(await notify({ events })).pushes.map((p) => p.pushId));
      } else if (r < 0.85) {
        if (gate.held.length) {
          const job = pick(gate.held);
          gate.release((h) => h === job);
        }
      } else {
        const seen = [...gate.seen.entries()];
        if (!seen.length) continue;
        const [messageId, { body }] = pick(seen) as [string, { body: unknown }];
        const again = { ...replicationJobMessage(body as ReplicationJob), messageId: `${messageId}:again${op}` };
        await sender.sendMessages(again);
        redelivered.push(again.messageId);
      }
      if (op % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await sender.close();
    gate.open();
    await waitFinished(pushIds, 120_000);
    await expect.poll(() => redelivered.filter((id) => !settledJobs.some((j) => j.messageId === id)), { timeout: 60_000, message: context }).toEqual([]);
    sampling = false;
    await reader;

    expect(samples, context).toBeGreaterThan(0);
    expect(violations, context).toEqual([]);
    // Every job ran to an outcome: none could not succeed.
    expect(settledJobs.filter((j) => j.outcome.outcome === 'dead-letter'), context).toEqual([]);
    for (const r of REPLICAS) {
      for (const tag of tags) expect(await tagIn(region(r), repository, tag), `${context}: ${r} ${tag}`).toBe(await tagIn(home(), repository, tag));
      // Every manifest home serves by digest, the region serves too.
      for (const image of images) {
        const link = { kind: 'revision', repository, digest: image.manifests[0].digest } as const;
        if (await home().linkExists(link)) expect(await region(r).linkExists(link), `${context}: ${r} revision ${image.manifests[0].digest}`).toBe(true);
      }
    }
  }, 300_000);
});

/**
 * The tags a reader of the region finds, each with why its image cannot be pulled there (undefined
 * when it can): its revision link, manifest and blobs. From one listing of the region's registry
 * root (each blob's size; a tag link's MD5 says which image's digest it holds) instead of a read
 * per tag, link and blob: one request per region and sample instead of up to 18, and one instant's
 * view, which caught a tag committed before its blobs (replicate.ts's order broken on purpose) as
 * the reads did. A tag link without an MD5 in the listing is read.
 */
async function pullable(regionName: string, repository: string, tags: readonly string[], images: readonly ImageToWrite[]): Promise<Array<{ tag: string; digest: string; broken?: string }>> {
  const storage = region(regionName);
  const { layout } = storage;
  const listed = new Map<string, { size?: number; md5?: string }>();
  for await (const item of rawContainer(stack.storageConnectionString(regionName), stack.settings.registry.container).listBlobsFlat({ prefix: layout.prefix({ kind: 'everything' }) })) {
    const md5 = item.properties.contentMD5;
    listed.set(item.name, { size: item.properties.contentLength, md5: md5?.length ? Buffer.from(md5).toString('base64') : undefined });
  }
  const holds = (link: LinkSpec, digest: string) => listed.get(layout.link(link))?.md5 === createHash('md5').update(digest, 'utf8').digest('base64');
  const found: Array<{ tag: string; digest: string; broken?: string }> = [];
  for (const tag of tags) {
    const current: LinkSpec = { kind: 'tagCurrent', repository, tag };
    const link = listed.get(layout.link(current));
    if (!link) continue;
    const image = images.find((i) => holds(current, i.manifests[0].digest));
    const digest = image?.manifests[0].digest ?? (await storage.readLink(current));
    if (!digest) continue;
    const pushed = image ?? images.find((i) => i.manifests[0].digest === digest);
    if (!pushed) {
      found.push({ tag, digest, broken: 'no push wrote this manifest' });
      continue;
    }
    const missing = [...pushed.blobs, ...pushed.manifests].filter((b) => listed.get(layout.blobData(b.digest))?.size !== b.size);
    const broken = !listed.has(layout.link({ kind: 'revision', repository, digest })) ? 'no revision link' : missing.length ? `blobs missing: ${missing.map((b) => b.digest).join(', ')}` : undefined;
    found.push({ tag, digest, broken });
  }
  return found;
}
