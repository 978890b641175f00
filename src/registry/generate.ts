import { generateImage, generateIndex } from '../oci/image';
import type { ImageBlob, ImageToWrite } from './writer';

/**
 * Generated images, ready to write as a registry push would: what `georeg push --generate`, the
 * demo of `npm start`, the benchmarks and the tests push. The same seed gives the same bytes.
 */

export interface GenerateOptions {
  generate: { layers: number; layerSize: number };
  /** `os/arch[/variant],...`: an index with one image per platform. */
  platforms?: string;
  /** Default `<repository>:<tag>`. */
  seed?: string;
  /** How many base layers come from the image generated with `seedBase`. */
  share?: number;
  seedBase?: string;
}

export function generated(repository: string, tag: string | undefined, flags: GenerateOptions): ImageToWrite {
  const { layers, layerSize } = flags.generate;
  const seed = flags.seed ?? `${repository}:${tag}`;
  if (flags.platforms) {
    const platforms = flags.platforms.split(',').map((p) => {
      const [os, architecture, variant] = p.split('/');
      return { os, architecture, ...(variant ? { variant } : {}) };
    });
    const index = generateIndex({ platforms, layers, layerSize, seed, sharedBaseLayers: Math.min(1, layers) });
    return {
      repository,
      tag,
      blobs: dedupe(index.images.flatMap((img) => [...img.layers, { ...img.config, mediaType: img.config.mediaType, size: img.config.bytes.length }]).map(toBlob)),
      manifests: [...index.images.map((img) => toBlob({ ...img.manifest, size: img.manifest.bytes.length })), toBlob({ ...index.index, size: index.index.bytes.length })],
    };
  }
  const base = flags.seedBase ? generateImage({ layers, layerSize, seed: flags.seedBase }) : undefined;
  const img = generateImage({ layers, layerSize, seed, baseLayersFrom: base, sharedLayers: flags.share });
  return {
    repository,
    tag,
    blobs: [...img.layers, { ...img.config, size: img.config.bytes.length }].map(toBlob),
    manifests: [toBlob({ ...img.manifest, size: img.manifest.bytes.length })],
  };
}

function toBlob(b: { digest: string; mediaType?: string; size: number; bytes: Buffer }): ImageBlob {
  return { digest: b.digest, mediaType: b.mediaType ?? 'application/octet-stream', size: b.size, data: b.bytes };
}

function dedupe(blobs: ImageBlob[]): ImageBlob[] {
  return [...new Map(blobs.map((b) => [b.digest, b])).values()];
}
