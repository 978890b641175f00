import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replicationJobMessage, type ReplicationJob } from '../../src/bus/messages';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startStack, type Stack } from '../support/stack';
import { deleteEnvelope } from '../../src/notifications/sender';
import { deleteManifest, deleteTag, writeImage, type ImageToWrite } from '../../src/registry/writer';
import { readImage } from '../../src/replication/plan';
import { ProblemStore } from '../../src/replication/problems';
import type { JobOutcome } from '../../src/replication/replicate';
import { isFinished, StatusStore } from '../../src/replication/status';
import type { RegionStorage } from '../../src/storage/region-storage';
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

/** Writes the image to home under `tag` (as a registry push does) and notifies; returns the push id. */
async function pushTo(image: ImageToWrite, tag: string): Promise<string> {
  const tagged = { ...image, tag };
  await writeImage(home(), tagged);
  return (await notify(envelopeFor(tagged))).pushes[0].pushId;
}

/** Distribution 3's tag delete: empty digest and media type. */
function d3TagDelete(repository: string, tag: string) {
  const env = deleteEnvelope({ repository, tag }) as { events: Array<{ target: Record<string, unknown> }> };
  env.events[0].target = { mediaType: '', digest: '', size: 0, repository, tag };
  return env;
}

async function waitFinished(pushIds: readonly string[], timeout = 60_000) {
  const store = new StatusStore(stack.runtime.state);
  await expect
    .poll(
      async () => {
        const pending: string[] = [];
        for (const id of pushIds) {
          const found = await store.push(id);
          for (const r of found?.regions ?? []) if (!isFinished(r.state)) pending.push(`${id}@${r.region}:${r.state}`);
          if (!found) pending.push(`${id}: not recorded`);
        }
        return pending;
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
    await expect.poll(() => gate.held.filter((h) => h.pushId === firstId).length).toBe(REPLICAS.length);
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
    await expect.poll(() => settledJobs.filter((j) => j.messageId.startsWith(`${firstId}:`)).length).toBe(REPLICAS.length);
    for (const r of REPLICAS) {
      expect(await webhooks.delivery(`order${r}`, `${firstId}:${r}:order${r}`)).toBeUndefined();
      expect(hooks[r].received).toHaveLength(1);
    }
    const summary = (await (await fetch(`${stack.host.url}/api/pushes/${firstId}`, { headers: stack.adminHeaders })).json()) as { state: string };
    expect(summary.state).toBe('superseded');
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
          const storage = region(r);
          for (const tag of tags) {
            const digest = await tagIn(storage, repository, tag);
            if (!digest) continue;
            samples += 1;
            const broken = await brokenImage(storage, repository, digest);
            // Re-read the tag: a delete may have taken it away meanwhile, which is fine.
            if (broken && (await tagIn(storage, repository, tag)) === digest) violations.push(`${r} ${repository}:${tag} → ${digest}: ${broken}`);
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

/** Why the image a tag points at cannot be pulled from the region, or undefined when it can. */
async function brokenImage(storage: RegionStorage, repository: string, digest: string): Promise<string | undefined> {
  if (!(await storage.linkExists({ kind: 'revision', repository, digest }))) return 'no revision link';
  let image;
  try {
    image = await readImage(storage, digest);
  } catch (e) {
    return `manifest unreadable: ${(e as Error).message}`;
  }
  const sizes = await storage.hasBlobs(image.blobs.map((b) => b.digest));
  const missing = image.blobs.filter((b) => sizes.get(b.digest) !== b.size);
  return missing.length ? `blobs missing: ${missing.map((b) => b.digest).join(', ')}` : undefined;
}
