import { readOciLayout } from '../oci/layout';
import { pushEnvelope, postNotification } from '../notifications/sender';
import { generated, type GenerateOptions } from '../registry/generate';
import { writeImage, type ImageToWrite } from '../registry/writer';
import { regionStorageFrom } from '../storage/region-storage';
import { watchPush } from './progress';
import { parseReference, resolveTarget } from './target';

export interface PushFlags extends Partial<GenerateOptions> {
  url?: string;
  wait?: boolean;
  /** false with --no-notify: write to home only. */
  notify?: boolean;
}

/** `georeg push`: seed the home region as a registry would, then notify the push endpoint. */
export async function pushCommand(first: string, second: string | undefined, flags: PushFlags): Promise<void> {
  const target = resolveTarget(flags);
  const refText = flags.generate ? first : second;
  if (!refText) throw new Error('usage: georeg push <oci-layout-dir>[:tag] <repo:tag>  or  georeg push --generate 3x1MiB <repo:tag>');
  const ref = parseReference(refText);
  if (ref.digest) throw new Error(`push to a tag (repo:tag), not a digest: ${refText}`);
  const image = flags.generate ? generated(ref.repository, ref.tag, { ...flags, generate: flags.generate }) : await fromLayout(first, ref.repository, ref.tag);

  const { settings } = target;
  const home = regionStorageFrom({
    region: settings.homeRegion.name,
    connectionString: settings.homeRegion.connectionString,
    accountUrl: settings.homeRegion.accountUrl,
    container: settings.registry.container,
    root: settings.registry.root,
  });
  await home.ensureContainer();
  const written = await writeImage(home, image);
  const root = image.manifests[image.manifests.length - 1];
  if (flags.notify === false) {
    console.log(`wrote ${image.repository}:${image.tag} ${root.digest} to ${settings.homeRegion.name} only (${written.written} blobs written, ${written.skipped} already there); no notification sent: the reconcile timer (GEOREG_RECONCILE_SCHEDULE) replicates it`);
    return;
  }
  const response = (await postNotification(target.pushUrl, settings.pushSecret, pushEnvelope({
    repository: image.repository,
    tag: image.tag,
    manifest: root,
    blobs: image.blobs,
    references: [...image.blobs, ...image.manifests.slice(0, -1)].map(({ digest, mediaType, size }) => ({ digest, mediaType, size })),
  }))) as { pushes: Array<{ pushId: string; jobs: Array<{ region: string; missingBlobs?: number; missingBytes?: number }> }> };
  const push = response.pushes[0];
  console.log(`pushed ${image.repository}:${image.tag} ${root.digest} to ${settings.homeRegion.name} (${written.written} blobs written, ${written.skipped} already there)`);
  console.log(`push ${push.pushId}: ${push.jobs.map((j) => (j.missingBlobs === undefined ? `${j.region} queued` : `${j.region} lacks ${j.missingBlobs} blob(s)`)).join(', ')}`);
  if (flags.wait) await watchPush(target.apiUrl, push.pushId, { adminSecret: target.settings.adminSecret });
  else console.log(`follow it with: npx georeg status ${push.pushId}`);
}

async function fromLayout(source: string, repository: string, tag: string | undefined): Promise<ImageToWrite> {
  const colon = source.lastIndexOf(':');
  const [dir, layoutTag] = colon > 0 && !source.slice(colon).includes('/') ? [source.slice(0, colon), source.slice(colon + 1)] : [source, undefined];
  const layout = await readOciLayout(dir, layoutTag);
  const manifestDigests = new Set(layout.manifests.map((m) => m.digest));
  return {
    repository,
    tag,
    blobs: layout.blobs.filter((b) => !manifestDigests.has(b.digest)).map((b) => ({ digest: b.digest, mediaType: b.mediaType, size: b.size, data: b.path })),
    manifests: layout.manifests.map((b) => ({ digest: b.digest, mediaType: b.mediaType, size: b.size, data: b.path })),
  };
}
