import { expect } from 'vitest';
import { generated } from '../../src/cli/push-command';
import type { Stack } from '../../src/local/stack';
import { EVENTS_MEDIA_TYPE, pushEnvelope } from '../../src/notifications/sender';
import { writeImage, type ImageToWrite } from '../../src/registry/writer';
import { isFinished, StatusStore, type RegionStatus } from '../../src/replication/status';

/** Test helpers over a running local stack: push like a registry does, wait for regions to settle. */

export interface AcceptedPush {
  pushId: string;
  jobs: Array<{ region: string; jobId: string; missingBlobs: number; missingBytes: number }>;
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
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await store.push(pushId);
    const mine = found?.regions.filter((r) => regions.includes(r.region)) ?? [];
    if (mine.length === regions.length && mine.every((r) => isFinished(r.state))) return mine;
    if (Date.now() > deadline) throw new Error(`push ${pushId} did not settle: ${JSON.stringify(found?.regions.map((r) => [r.region, r.state]))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
