import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startStack, type Stack } from '../support/stack';
import { deleteEnvelope, EVENTS_MEDIA_TYPE } from '../../src/notifications/sender';
import { deleteTag, writeImage, type ImageToWrite } from '../../src/registry/writer';
import type { JobOutcome } from '../../src/replication/replicate';
import { ProblemStore } from '../../src/replication/problems';
import { StatusStore } from '../../src/replication/status';
import type { LinkSpec } from '../../src/storage/paths';
import { DeadLetterLog } from '../support/dead-letters';
import { drained, envelopeFor, notify as notifyStack, pushImage, settled as settledIn } from '../support/pipeline';
import { handlePushNotification } from '../../src/replication/push';
import { pushDeps } from '../../src/runtime';

const REPLICAS = ['eastus', 'westeurope'];
let stack: Stack;
let sbAdmin: ServiceBusClient;
const outcomes: Array<{ region: string; messageId: string; outcome: JobOutcome | { outcome: 'abandoned'; error: string } }> = [];
const deadLetters = new DeadLetterLog();

beforeAll(async () => {
  stack = await startStack({
    replicas: REPLICAS,
    httpPort: 0,
    log: silentLogger,
    host: { onJob: (region, outcome, message) => outcomes.push({ region, messageId: String(message.messageId), outcome }), onSettled: deadLetters.onSettled },
  });
  sbAdmin = new ServiceBusClient(stack.serviceBusConnectionString);
}, 120_000);

afterAll(async () => {
  await sbAdmin?.close();
  await stack?.close();
});

const notify = (envelope: unknown, headers: Record<string, string> = {}) => notifyStack(stack, envelope, headers);
const push = (image: ImageToWrite) => pushImage(stack, image);
const settled = (pushId: string) => settledIn(stack, pushId, REPLICAS);

/** Every blob and link the home holds for the image is in the region, with the same content. */
async function expectRegionMirrorsHome(region: string, image: ImageToWrite) {
  const home = stack.runtime.home;
  const target = stack.runtime.regions.get(region)!;
  const { layout } = home;
  for (const b of [...image.blobs, ...image.manifests]) {
    const [h, r] = await Promise.all([home.blobProperties(b.digest), target.blobProperties(b.digest)]);
    expect(h?.size, `${b.digest} at home`).toBe(b.size);
    expect(r?.size, `${b.digest} in ${region}`).toBe(b.size);
  }
  const links: LinkSpec[] = [
    ...image.blobs.map((b) => ({ kind: 'layer' as const, repository: image.repository, digest: b.digest })),
    ...image.manifests.map((m) => ({ kind: 'revision' as const, repository: image.repository, digest: m.digest })),
  ];
  const root = image.manifests[image.manifests.length - 1];
  if (image.tag) links.push({ kind: 'tagIndex', repository: image.repository, tag: image.tag, digest: root.digest }, { kind: 'tagCurrent', repository: image.repository, tag: image.tag });
  for (const link of links) {
    const [h, r] = await Promise.all([home.readLink(link), target.readLink(link)]);
    expect(h, `${JSON.stringify(link)} at home`).toBeDefined();
    expect(r, `${JSON.stringify(link)} in ${region}`).toBe(h);
  }
  // The manifest in the region is byte-for-byte the home's.
  expect((await target.readBlob(root.digest)).equals(await home.readBlob(root.digest))).toBe(true);
}

describe('push → layer diff → Service Bus → regional copy → commit', () => {
  it('replicates a single image to every region', async () => {
    const image = generated('team/web', '1.0', { generate: { layers: 3, layerSize: 256 * 1024 }, seed: 'single' });
    const p = await push(image);
    expect(p.jobs.map((j) => j.region).sort()).toEqual([...REPLICAS].sort());
    const regions = await settled(p.pushId);
    for (const r of regions) {
      expect(r.state).toBe('complete');
      expect(r.blobs.planned).toBe(5); // 3 layers + config + manifest
      expect(r.blobs.copied).toBe(5);
      expect(r.bytes.copied).toBe([...image.blobs, ...image.manifests].reduce((s, b) => s + b.size, 0));
    }
    for (const region of REPLICAS) await expectRegionMirrorsHome(region, image);
  });

  it('replicates a two-platform OCI index with its child manifests', async () => {
    const image = generated('team/multi', 'v1', { generate: { layers: 2, layerSize: 64 * 1024 }, platforms: 'linux/amd64,linux/arm64', seed: 'index' });
    expect(image.manifests).toHaveLength(3);
    const p = await push(image);
    const regions = await settled(p.pushId);
    for (const r of regions) expect(r.state).toBe('complete');
    for (const region of REPLICAS) await expectRegionMirrorsHome(region, image);
  });

  it('a second push sharing layers copies only the new blobs', async () => {
    const first = generated('team/api', '1', { generate: { layers: 4, layerSize: 128 * 1024 }, seed: 'api-1' });
    await settled((await push(first)).pushId);
    const second = generated('team/api', '2', { generate: { layers: 4, layerSize: 128 * 1024 }, seed: 'api-2', seedBase: 'api-1', share: 3 });
    const shared = second.blobs.filter((b) => first.blobs.some((f) => f.digest === b.digest));
    expect(shared).toHaveLength(3);
    const fresh = [...second.blobs, ...second.manifests].filter((b) => !shared.includes(b));
    const p = await push(second);
    for (const r of await settled(p.pushId)) {
      expect(r.bytes.planned).toBe(fresh.reduce((s, b) => s + b.size, 0));
      expect(r.blobs.copied).toBe(fresh.length);
      expect(r.bytes.copied).toBe(fresh.reduce((s, b) => s + b.size, 0));
      expect(r.blobs.skipped).toBe(3);
    }
    for (const region of REPLICAS) await expectRegionMirrorsHome(region, second);
  });

  it('blobs and a stale tag a region holds that this worker never wrote are found there, not copied again, and the tag is replaced under the guard', async () => {
    // What another worker (or this one before a restart) left in eastus: an older image under the same tag.
    const older = generated('team/cold', '1', { generate: { layers: 3, layerSize: 64 * 1024 }, seed: 'cold-old' });
    await writeImage(stack.runtime.regions.get('eastus')!, older);
    const newer = generated('team/cold', '1', { generate: { layers: 3, layerSize: 64 * 1024 }, seed: 'cold-new', seedBase: 'cold-old', share: 2 });
    const shared = newer.blobs.filter((b) => older.blobs.some((o) => o.digest === b.digest));
    expect(shared).toHaveLength(2);
    const p = await push(newer);
    const byRegion = new Map((await settled(p.pushId)).map((r) => [r.region, r]));
    expect(byRegion.get('eastus')).toMatchObject({ state: 'complete', blobs: { planned: 3, copied: 3, skipped: 2 } });
    expect(byRegion.get('westeurope')).toMatchObject({ state: 'complete', blobs: { planned: 5, copied: 5, skipped: 0 } });
    for (const region of REPLICAS) await expectRegionMirrorsHome(region, newer);
  });

  it('a duplicate notification enqueues one job per region', async () => {
    const image = generated('team/dup', 'x', { generate: { layers: 1, layerSize: 1024 }, seed: 'dup' });
    await writeImage(stack.runtime.home, image);
    const envelope = envelopeFor(image);
    const a = await notify(envelope);
    const b = await notify(envelope);
    expect(b.status).toBe(202);
    expect(b.body.pushes[0].pushId).toBe(a.body.pushes[0].pushId);
    expect(b.body.pushes[0].duplicate).toBe(true);
    const regions = await settled(a.body.pushes[0].pushId);
    const jobIds: string[] = a.body.pushes[0].jobs.map((j: { jobId: string }) => j.jobId);
    // The host records a settlement once the broker has acknowledged it, which can be after the
    // broker shows the message gone: wait for the records before counting them.
    await expect.poll(() => jobIds.every((id) => outcomes.some((o) => o.messageId === id)), { timeout: 15_000 }).toBe(true);
    // Once the broker holds nothing for the regions, a second copy would have been handled.
    await drained(stack, REPLICAS);
    for (const jobId of jobIds) expect(outcomes.filter((o) => o.messageId === jobId)).toHaveLength(1);
    for (const r of regions) expect(r.attempts).toBe(1);
  });

  it('a redelivered job finishes without copying again', async () => {
    const image = generated('team/redeliver', 'x', { generate: { layers: 2, layerSize: 4096 }, seed: 'redeliver' });
    const p = await push(image);
    const before = await settled(p.pushId);
    const sender = sbAdmin.createSender('replication');
    // The job's status is written before its message is settled: wait for the settlement.
    await expect.poll(() => outcomes.find((o) => o.messageId === p.jobs[0].jobId), { timeout: 15_000 }).toBeDefined();
    // The same job body again under a new message id, as a redelivery after a lost lock would be.
    const store = new StatusStore(stack.runtime.state);
    const status = (await store.region(p.pushId, p.jobs[0].region))!;
    const body = { version: 1, jobId: p.jobs[0].jobId, pushId: p.pushId, eventId: p.pushId, region: p.jobs[0].region, repository: 'team/redeliver', createdAt: new Date().toISOString(), action: 'push', tag: 'x', manifest: { digest: image.manifests[0].digest, mediaType: image.manifests[0].mediaType, size: image.manifests[0].size }, plan: { inline: { manifests: [], blobs: [], missing: [], foreign: [] } } };
    await sender.sendMessages({ body, messageId: `${p.jobs[0].jobId}:again`, applicationProperties: { region: p.jobs[0].region, action: 'push', repository: 'team/redeliver' } });
    await sender.close();
    await expect.poll(() => outcomes.some((o) => o.messageId === `${p.jobs[0].jobId}:again`), { timeout: 15_000 }).toBe(true);
    const again = outcomes.find((o) => o.messageId === `${p.jobs[0].jobId}:again`)!;
    expect(again.outcome).toMatchObject({ outcome: 'completed', alreadyComplete: true });
    const after = (await store.region(p.pushId, p.jobs[0].region))!;
    expect(after.bytes.copied).toBe(status.bytes.copied);
    expect(after.attempts).toBe(before.find((r) => r.region === p.jobs[0].region)!.attempts);
  });

  it('a blob missing from home storage dead-letters the job with a reason naming digest and region', async () => {
    const image = generated('team/broken', 'x', { generate: { layers: 2, layerSize: 4096 }, seed: 'broken' });
    await writeImage(stack.runtime.home, image);
    const lost = image.blobs[0].digest;
    await stack.runtime.home.deleteBlob(lost);
    const res = await notify(envelopeFor(image));
    expect(res.status).toBe(202);
    const regions = await settled(res.body.pushes[0].pushId);
    for (const r of regions) {
      expect(r.state).toBe('failed');
      expect(r.error).toContain(lost);
    }
    for (const region of REPLICAS) {
      const { message } = await deadLetters.find((d) => d.region === region && d.message.messageId === `${res.body.pushes[0].pushId}:${region}`);
      expect(message.deadLetterReason).toBe('SourceBlobMissing');
      expect(message.deadLetterErrorDescription).toContain(lost);
      expect(message.deadLetterErrorDescription).toContain(region);
      // Never a tag whose blobs are missing.
      expect(await stack.runtime.regions.get(region)!.readLink({ kind: 'tagCurrent', repository: 'team/broken', tag: 'x' })).toBeUndefined();
    }
  });

  it('lists the replicas once per envelope, and not at all for one with nothing to replicate (a blob event alone, as Distribution sends them)', async () => {
    const image = generated('pipe/lazy', '1', { generate: { layers: 2, layerSize: 100 }, seed: 'pipe-lazy' });
    await writeImage(stack.runtime.home, image);
    let listed = 0;
    const deps = { ...pushDeps(stack.runtime, silentLogger), replicas: () => (listed++, stack.runtime.registry.receivingReplicas()) };
    const call = (envelope: { events: unknown[] }) =>
      handlePushNotification({ headers: { authorization: `Bearer ${stack.settings.pushSecret}`, 'content-type': EVENTS_MEDIA_TYPE }, body: JSON.stringify(envelope) }, deps);
    const { events } = envelopeFor(image);
    const blobs = events.slice(0, -1);
    for (const event of blobs) {
      const res = await call({ events: [event] });
      expect(res.status).toBe(202);
      expect(res.jsonBody).toMatchObject({ pushes: [], ignored: 1 });
    }
    expect(listed).toBe(0);
    const res = await call({ events });
    expect(res.status).toBe(202);
    expect(res.jsonBody).toMatchObject({ pushes: [expect.objectContaining({ repository: 'pipe/lazy', tag: '1' })], ignored: blobs.length });
    expect(listed).toBe(1);
    await settled((res.jsonBody as { pushes: Array<{ pushId: string }> }).pushes[0].pushId);
  });

  it('a body that is no envelope is refused with 400; a malformed event in an envelope is reported, not refused; nothing is enqueued', async () => {
    for (const bad of ['{"events": [', '{"nope": true}', '[]']) {
      const res = await notify(bad);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(/JSON|envelope/);
    }
    const malformed = await notify('{"events": [{"id": "m1", "action": "push", "target": {"repository": "UPPER", "digest": "sha256:x"}}]}');
    expect(malformed.status).toBe(202);
    expect(malformed.body.pushes).toEqual([]);
    expect(malformed.body.problems).toEqual([expect.objectContaining({ eventId: 'm1', reason: 'MalformedEvent', description: expect.stringMatching(/repository/) })]);
    for (const region of REPLICAS) {
      const receiver = sbAdmin.createReceiver('replication', region);
      expect(await receiver.peekMessages(10)).toHaveLength(0);
      await receiver.close();
    }
  });

  it('refuses a notification without the secret (401); an event naming a manifest not in home storage is accepted (202) and recorded as a problem', async () => {
    const image = generated('team/nothere', 'x', { generate: { layers: 1, layerSize: 10 }, seed: 'nothere' });
    const unauth = await fetch(stack.pushUrl, { method: 'POST', headers: { 'Content-Type': EVENTS_MEDIA_TYPE }, body: JSON.stringify(envelopeFor(image)) });
    expect(unauth.status).toBe(401);
    const wrong = await notify(envelopeFor(image), { Authorization: 'Bearer wrong-secret-wrong-secret' });
    expect(wrong.status).toBe(401);
    const missing = await notify(envelopeFor(image));
    expect(missing.status).toBe(202);
    expect(missing.body.problems).toEqual([expect.objectContaining({ reason: 'ManifestNotInHome', repository: 'team/nothere', description: expect.stringContaining(image.manifests[0].digest) })]);
    const recorded = await new ProblemStore(stack.runtime.state).list();
    expect(recorded.find((p) => p.repository === 'team/nothere')).toMatchObject({ reason: 'ManifestNotInHome', tag: 'x', digest: image.manifests[0].digest });
  });

  it('replicates a tag delete: the tag goes, the blobs stay', async () => {
    const image = generated('team/gone', 'old', { generate: { layers: 1, layerSize: 1024 }, seed: 'gone' });
    await settled((await push(image)).pushId);
    await deleteTag(stack.runtime.home, 'team/gone', 'old');
    const res = await notify(deleteEnvelope({ repository: 'team/gone', tag: 'old' }));
    expect(res.status).toBe(202);
    await settled(res.body.pushes[0].pushId);
    for (const region of REPLICAS) {
      const target = stack.runtime.regions.get(region)!;
      expect(await target.readLink({ kind: 'tagCurrent', repository: 'team/gone', tag: 'old' })).toBeUndefined();
      expect((await target.blobProperties(image.blobs[0].digest))?.size).toBe(image.blobs[0].size);
    }
  });
});
