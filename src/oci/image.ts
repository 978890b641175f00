import { createCipheriv, createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { digestOf } from './digest';
import { MediaTypes } from './mediatypes';

/**
 * Generated images with real content: each layer a valid gzip-compressed tar holding one file of
 * seeded pseudo-random bytes, a valid image config (diff_ids of the uncompressed tars) and the
 * manifest. Same seed, same bytes, same digests: the demo, tests and benchmarks rely on that.
 */

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface GeneratedBlob {
  digest: string;
  mediaType: string;
  size: number;
  bytes: Buffer;
}

export interface GeneratedImage {
  manifest: GeneratedBlob;
  config: GeneratedBlob;
  layers: GeneratedBlob[];
  platform: Platform;
}

export interface GenerateImageOptions {
  layers: number;
  layerSize: number;
  seed?: string;
  platform?: Platform;
  format?: 'oci' | 'docker';
  /** Take the first `sharedLayers` layers from this image (a second tag sharing a base). */
  baseLayersFrom?: GeneratedImage;
  sharedLayers?: number;
}

const LINUX_AMD64: Platform = { os: 'linux', architecture: 'amd64' };

export function generateImage(options: GenerateImageOptions): GeneratedImage {
  const seed = options.seed ?? 'georeg';
  const platform = options.platform ?? LINUX_AMD64;
  const format = options.format ?? 'oci';
  const shared = options.baseLayersFrom ? Math.min(options.sharedLayers ?? 0, options.baseLayersFrom.layers.length, options.layers) : 0;
  const layerType = format === 'oci' ? MediaTypes.ociLayerGzip : MediaTypes.dockerLayer;
  const made: Array<{ blob: GeneratedBlob; diffId: string }> = [];
  for (let i = 0; i < options.layers; i++) {
    if (i < shared) {
      const base = options.baseLayersFrom!;
      made.push({ blob: base.layers[i], diffId: diffIdOf(base, i) });
    } else {
      made.push(makeLayer(`${seed}:layer:${i}`, options.layerSize, layerType));
    }
  }
  return assemble(made, platform, format);
}

export interface GeneratedIndex {
  index: GeneratedBlob;
  images: GeneratedImage[];
}

/** A multi-platform OCI index; the first `sharedBaseLayers` layers are the same blobs on every platform. */
export function generateIndex(options: { platforms: Platform[]; layers: number; layerSize: number; seed?: string; sharedBaseLayers?: number }): GeneratedIndex {
  const seed = options.seed ?? 'georeg';
  const sharedCount = Math.min(options.sharedBaseLayers ?? 0, options.layers);
  const base = Array.from({ length: sharedCount }, (_, i) => makeLayer(`${seed}:base:${i}`, options.layerSize, MediaTypes.ociLayerGzip));
  const images = options.platforms.map((platform) => {
    const own = Array.from({ length: options.layers - sharedCount }, (_, i) => makeLayer(`${seed}:${platformName(platform)}:${i}`, options.layerSize, MediaTypes.ociLayerGzip));
    return assemble([...base, ...own], platform, 'oci');
  });
  const index = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: images.map((img) => ({ mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size, platform: img.platform })),
  };
  return { index: blob(MediaTypes.ociIndex, Buffer.from(JSON.stringify(index))), images };
}

/** Every blob of an image or index in push order: layers and configs, child manifests, root last; deduplicated. */
export function blobsInPushOrder(image: GeneratedImage | GeneratedIndex): GeneratedBlob[] {
  const images = 'index' in image ? image.images : [image];
  const out = new Map<string, GeneratedBlob>();
  for (const img of images) for (const b of [...img.layers, img.config]) out.set(b.digest, b);
  for (const img of images) out.set(img.manifest.digest, img.manifest);
  if ('index' in image) out.set(image.index.digest, image.index);
  return [...out.values()];
}

function platformName(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('-');
}

const diffIds = new WeakMap<GeneratedImage, string[]>();

function diffIdOf(image: GeneratedImage, i: number): string {
  return diffIds.get(image)![i];
}

function assemble(layers: Array<{ blob: GeneratedBlob; diffId: string }>, platform: Platform, format: 'oci' | 'docker'): GeneratedImage {
  const config = {
    created: '2026-01-01T00:00:00Z',
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: '2026-01-01T00:00:00Z', created_by: `georeg generate layer ${i}` })),
  };
  const configBlob = blob(format === 'oci' ? MediaTypes.ociConfig : MediaTypes.dockerConfig, Buffer.from(JSON.stringify(config)));
  const manifestType = format === 'oci' ? MediaTypes.ociManifest : MediaTypes.dockerManifest;
  const manifest = {
    schemaVersion: 2,
    mediaType: manifestType,
    config: { mediaType: configBlob.mediaType, digest: configBlob.digest, size: configBlob.size },
    layers: layers.map((l) => ({ mediaType: l.blob.mediaType, digest: l.blob.digest, size: l.blob.size })),
  };
  const image: GeneratedImage = { manifest: blob(manifestType, Buffer.from(JSON.stringify(manifest))), config: configBlob, layers: layers.map((l) => l.blob), platform };
  diffIds.set(image, layers.map((l) => l.diffId));
  return image;
}

function makeLayer(seed: string, size: number, mediaType: string): { blob: GeneratedBlob; diffId: string } {
  const tar = tarWithOneFile(`data/${createHash('sha256').update(seed).digest('hex').slice(0, 16)}.bin`, keystream(seed, size));
  // Stored (level 0) deflate: random content does not compress, so compressing only costs time.
  return { blob: blob(mediaType, gzipSync(tar, { level: 0 })), diffId: digestOf(tar) };
}

/** Seeded pseudo-random bytes: AES-128-CTR over zeros is fast (GB/s) and deterministic. */
function keystream(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

/** A POSIX ustar archive with one regular file, as `tar` writes it. */
export function tarWithOneFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write(`${Math.floor(Date.UTC(2026, 0, 1) / 1000).toString(8).padStart(11, '0')}\0`, 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024)]);
}

function blob(mediaType: string, bytes: Buffer): GeneratedBlob {
  return { digest: digestOf(bytes), mediaType, size: bytes.length, bytes };
}
