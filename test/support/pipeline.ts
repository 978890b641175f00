import { expect } from 'vitest';
import { createAdministrationClient } from '../../src/bus/admin';
import { generated } from './images';
import type { Stack } from '../../src/local/stack';
import { EVENTS_MEDIA_TYPE, pushEnvelope } from '../../src/notifications/sender';
import { writeImage, type ImageToWrite } from '../../src/registry/writer';
import { isFinished, StatusStore, type RegionStatus } from '../../src/replication/status';
import { eventually } from './eventually';
import { onSettlement } from './stack';

/** Test helpers over a running local stack: push like a registry does, wait for regions to settle. */

export interface AcceptedPush {
  pushId: string;
  jobs: Array<{ region: string; jobId: string; missingBlobs?: number; missingBytes?: number }>;
  duplicate: boolean;
}

/** POSTs a notification envelope (or raw text) to the push endpoint with the push secret. */
export async function notify(stack: Stack, envelope: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(stack.pushUrl, {
    method: 'POST',
    headers: { 'Content-Type': EVENTS_MEDIA_TYPE, Authorization: `Bearer ${stack.settings.pushSecret}`, ...headers },
    body: typeof envelope === 'string' ? envelope : JSON.stringify(envelope),
  });
  return { status: res.status, body: (await res.json()) as any };
}

export function envelopeFor(image: ImageToWrite) {
  const root = image.manifests[image.manifests.length - 1];
  return pushEnvelope({ repository: image.repository, tag: image.tag, manifest: root, blobs: image.blobs, references: image.blobs });
}

/** Writes the image into home storage as a registry would, then notifies. */
export async function pushImage(stack: Stack, image: ImageToWrite): Promise<AcceptedPush> {
  await writeImage(stack.runtime.home, image);
  const res = await notify(stack, envelopeFor(image));
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.pushes[0] as AcceptedPush;
}

/**
 * Writes a two-layer image to home storage with its second layer's data corrupted (same size, other
 * bytes: the digest no longer matches), then notifies. Returns the push id, the image, the bad
 * layer, and `repair()`, which writes the right bytes back.
 */
export async function pushCorruptImage(stack: Stack, repository: string, seed: string): Promise<{ pushId: string; image: ImageToWrite; bad: ImageToWrite['blobs'][number]; repair(): Promise<void> }> {
  const image = generated(repository, '1', { generate: { layers: 2, layerSize: 8 * 1024 }, seed });
  await writeImage(stack.runtime.home, image);
  const bad = image.blobs[1];
  await stack.runtime.home.writeBlob(bad.digest, Buffer.alloc(bad.size, 7), { append: true });
  const res = await notify(stack, envelopeFor(image));
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const repair = () => stack.runtime.home.writeBlob(bad.digest, bad.data as Buffer, { append: true }).then(() => undefined);
  return { pushId: res.body.pushes[0].pushId, image, bad, repair };
}

/** Waits until each of `regions` is finished (complete, superseded or failed) for the push. */
export async function settled(stack: Stack, pushId: string, regions: readonly string[], timeoutMs = 30_000): Promise<RegionStatus[]> {
  const store = new StatusStore(stack.runtime.state);
  const mine = async () => ((await store.push(pushId))?.regions ?? []).filter((r) => regions.includes(r.region));
  return eventually(mine, (found) => found.length === regions.length && found.every((r) => isFinished(r.state)), { what: `push ${pushId} to settle in ${regions.join(', ')}`, timeout: timeoutMs, ...woken(stack) });
}

/**
 * Waits until the broker holds nothing for these regions' replication subscriptions and the
 * webhook queue: no message waiting, locked (in a handler) or scheduled (a retry). Subscriptions
 * are read first: a job sends its deliveries before it settles, so once its subscription is empty
 * every delivery it made is already in the queue. After this, nothing more can arrive.
 */
export async function drained(stack: Stack, regions: readonly string[], timeoutMs = 30_000): Promise<void> {
  const admin = createAdministrationClient(stack.serviceBusConnectionString);
  const { replicationTopic, webhookQueue } = stack.settings.serviceBus;
  const held = async () => {
    const counts: Record<string, number> = {};
    for (const region of regions) {
      const p = await admin.getSubscriptionRuntimeProperties(replicationTopic, region);
      counts[`${replicationTopic}/${region}`] = p.activeMessageCount;
    }
    counts[`${replicationTopic} (scheduled)`] = (await admin.getTopicRuntimeProperties(replicationTopic)).scheduledMessageCount;
    const q = await admin.getQueueRuntimeProperties(webhookQueue);
    counts[webhookQueue] = q.activeMessageCount + q.scheduledMessageCount;
    return counts;
  };
  await eventually(held, (counts) => Object.values(counts).every((n) => n === 0), { what: 'the broker to hold no job or delivery', timeout: timeoutMs, ...woken(stack) });
}

/**
 * A wait on a test stack reads again when its host settles an invocation (a job records its status
 * before its message is settled), and otherwise every 250 ms: for what settles elsewhere, e.g. in
 * a second host a test started. A stack started otherwise is polled every 50 ms.
 */
function woken(stack: Stack): { wake?: (wakeUp: () => void) => () => void; interval?: number } {
  const wake = onSettlement(stack);
  return wake ? { wake, interval: 250 } : {};
}
