import { readFile } from 'node:fs/promises';
import { forEachLimit } from '../common/pool';
import type { RegionStorage } from '../storage/region-storage';

/**
 * Writes an image into a region's storage exactly as a registry does on push: blob data (layers as
 * append blobs, like Distribution's Azure driver), layer links, manifest blobs and revision links,
 * then the tag. `georeg push`, the demo, the tests and the benchmarks seed the home region with it.
 */

export interface ImageBlob {
  digest: string;
  mediaType: string;
  size: number;
  /** The content, or the path of a file holding it (an OCI layout's blob). */
  data: Buffer | string;
}

export interface ImageToWrite {
  repository: string;
  tag?: string;
  /** Layers and configs, deduplicated. */
  blobs: ImageBlob[];
  /** Manifests, children before parents, the root last. */
  manifests: ImageBlob[];
}

export interface WriteResult {
  written: number;
  skipped: number;
  bytesWritten: number;
}

/**
 * `present`: what the caller knows the storage holds (digest → size), when it wrote the storage
 * itself (a generated registry): then the storage is not asked, and every other blob is written.
 */
export async function writeImage(storage: RegionStorage, image: ImageToWrite, concurrency = 4, options: { present?: ReadonlyMap<string, number | undefined> } = {}): Promise<WriteResult> {
  const result: WriteResult = { written: 0, skipped: 0, bytesWritten: 0 };
  const present = options.present ?? (await storage.hasBlobs([...image.blobs, ...image.manifests].map((b) => b.digest), concurrency));
  const put = async (b: ImageBlob, append: boolean) => {
    if (present.get(b.digest) === b.size) {
      result.skipped += 1; // a registry mounts a blob it already holds
      return;
    }
    const data = typeof b.data === 'string' ? await readFile(b.data) : b.data;
    if (data.length !== b.size) throw new Error(`blob ${b.digest} is ${data.length} bytes, its descriptor says ${b.size}`);
    await storage.writeBlob(b.digest, data, { append, contentType: 'application/octet-stream' });
    result.written += 1;
    result.bytesWritten += data.length;
  };
  await forEachLimit(image.blobs, concurrency, (b) => put(b, true));
  const { repository } = image;
  await Promise.all(image.blobs.map(({ digest }) => storage.writeLink({ kind: 'layer', repository, digest }, digest)));
  for (const m of image.manifests) {
    await put(m, false);
    await storage.writeLink({ kind: 'revision', repository, digest: m.digest }, m.digest);
  }
  const root = image.manifests[image.manifests.length - 1];
  if (image.tag) {
    await storage.writeLink({ kind: 'tagIndex', repository, tag: image.tag, digest: root.digest }, root.digest);
    await storage.writeLink({ kind: 'tagCurrent', repository, tag: image.tag }, root.digest);
  }
  return result;
}

/** Deletes a tag as a registry does (`DELETE /v2/<name>/manifests/<tag>` in Distribution 3): its whole tag directory. */
export async function deleteTag(storage: RegionStorage, repository: string, tag: string): Promise<void> {
  await storage.deletePrefix({ kind: 'tag', repository, tag });
}

/**
 * Deletes a manifest by digest as Distribution does: every tag pointing at it, then its revision
 * link. Blob data stays (garbage collection's job). Returns the tags removed.
 */
export async function deleteManifest(storage: RegionStorage, repository: string, digest: string): Promise<string[]> {
  const removed: string[] = [];
  for (const tag of await storage.listTags(repository)) {
    if ((await storage.readLink({ kind: 'tagCurrent', repository, tag })) !== digest) continue;
    await deleteTag(storage, repository, tag);
    removed.push(tag);
  }
  await storage.deleteLink({ kind: 'revision', repository, digest });
  return removed;
}
