import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { parseDigest } from './digest';
import { blobsInPushOrder, type GeneratedImage, type GeneratedIndex } from './image';
import { DescriptorSchema } from './manifest';
import { walkReferences } from './references';
import { describeZodError } from '../common/zod';

/**
 * OCI image layouts as `skopeo copy ... oci:DIR[:tag]` and `umoci` write them: `oci-layout`,
 * `index.json` naming manifests (tagged by `org.opencontainers.image.ref.name`), `blobs/<alg>/<hex>`.
 */

const REF_NAME = 'org.opencontainers.image.ref.name';

const OciLayoutFile = z.object({ imageLayoutVersion: z.string() });
const LayoutIndex = z.object({ schemaVersion: z.literal(2), manifests: z.array(DescriptorSchema) }).passthrough();

export interface LayoutBlob {
  digest: string;
  mediaType: string;
  size: number;
  /** Path of the blob's file. */
  path: string;
}

export interface LayoutImage {
  root: LayoutBlob;
  /** Configs and layers (foreign layers excluded), deduplicated. */
  blobs: LayoutBlob[];
  /** Every manifest, children before parents, the root last. */
  manifests: LayoutBlob[];
}

export class LayoutError extends Error {
  constructor(dir: string, message: string) {
    super(`OCI layout ${dir}: ${message}`);
    this.name = 'LayoutError';
  }
}

export async function readOciLayout(dir: string, tag?: string): Promise<LayoutImage> {
  const layoutFile = await readJson(dir, 'oci-layout', OciLayoutFile);
  if (layoutFile.imageLayoutVersion !== '1.0.0') throw new LayoutError(dir, `imageLayoutVersion ${layoutFile.imageLayoutVersion} is not supported (1.0.0)`);
  const index = await readJson(dir, 'index.json', LayoutIndex);
  const tags = index.manifests.map((m) => m.annotations?.[REF_NAME]).filter((t): t is string => Boolean(t));
  let chosen;
  if (tag) {
    chosen = index.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
    if (!chosen) throw new LayoutError(dir, `no manifest tagged "${tag}" (tags: ${tags.join(', ') || 'none'})`);
  } else if (index.manifests.length === 1) {
    chosen = index.manifests[0];
  } else {
    throw new LayoutError(dir, `holds ${index.manifests.length} manifests: name one with DIR:TAG (tags: ${tags.join(', ') || 'none'})`);
  }
  const pathOf = (digest: string) => {
    const { algorithm, hex } = parseDigest(digest);
    return join(dir, 'blobs', algorithm, hex);
  };
  const graph = await walkReferences(chosen.digest, async (digest) => ({ bytes: await readFile(pathOf(digest)), mediaType: digest === chosen.digest ? chosen.mediaType : undefined }));
  const blobs: LayoutBlob[] = [];
  for (const b of graph.blobs) {
    const size = await stat(pathOf(b.digest)).then((s) => s.size, () => undefined);
    if (size === undefined) throw new LayoutError(dir, `blob ${b.digest} (${b.mediaType}) is missing from blobs/`);
    if (size !== b.size) throw new LayoutError(dir, `blob ${b.digest} is ${size} bytes, its descriptor says ${b.size}`);
    blobs.push({ ...b, path: pathOf(b.digest) });
  }
  const manifests = graph.manifests.map((m) => ({ ...m, path: pathOf(m.digest) }));
  return { root: manifests[manifests.length - 1], blobs, manifests };
}

/** Writes an image or index as an OCI layout (for tests and fixtures). */
export async function writeOciLayout(dir: string, image: GeneratedImage | GeneratedIndex, tag: string): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const b of blobsInPushOrder(image)) await writeFile(join(dir, 'blobs', 'sha256', parseDigest(b.digest).hex), b.bytes);
  const root = 'index' in image ? image.index : image.manifest;
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: root.mediaType, digest: root.digest, size: root.size, annotations: { [REF_NAME]: tag } }] }));
}

async function readJson<T>(dir: string, name: string, schema: z.ZodType<T, z.ZodTypeDef, unknown>): Promise<T> {
  let text: string;
  try {
    text = await readFile(join(dir, name), 'utf8');
  } catch {
    throw new LayoutError(dir, `no ${name}: is this an OCI image layout (skopeo copy docker://IMAGE oci:DIR:TAG)?`);
  }
  const parsed = schema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new LayoutError(dir, `${name} is not valid: ${describeZodError(parsed.error, 1)}`);
  return parsed.data;
}
