import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/oci/digest';
import { blobsInPushOrder, generateImage, generateIndex } from '../../src/oci/image';
import { readOciLayout, writeOciLayout } from '../../src/oci/layout';
import { parseManifest } from '../../src/oci/manifest';

describe('generated images', () => {
  it('are deterministic for a seed and carry real tar.gz layers with matching diff_ids', () => {
    const a = generateImage({ layers: 2, layerSize: 3000, seed: 's' });
    const b = generateImage({ layers: 2, layerSize: 3000, seed: 's' });
    expect(a.manifest.digest).toBe(b.manifest.digest);
    expect(generateImage({ layers: 2, layerSize: 3000, seed: 't' }).manifest.digest).not.toBe(a.manifest.digest);
    for (const blob of [...a.layers, a.config, a.manifest]) expect(digestOf(blob.bytes)).toBe(blob.digest);
    const tar = gunzipSync(a.layers[0].bytes);
    expect(tar.subarray(257, 262).toString()).toBe('ustar');
    expect(parseInt(tar.subarray(124, 135).toString(), 8)).toBe(3000);
    const config = JSON.parse(a.config.bytes.toString());
    expect(config.rootfs.diff_ids).toEqual(a.layers.map((l) => digestOf(gunzipSync(l.bytes))));
    const manifest = parseManifest(a.manifest.bytes);
    expect(manifest.kind === 'image' && manifest.layers.map((l) => l.digest)).toEqual(a.layers.map((l) => l.digest));
  });

  it('share layers with a base image, and across the platforms of an index', () => {
    const base = generateImage({ layers: 4, layerSize: 100, seed: 'base' });
    const next = generateImage({ layers: 4, layerSize: 100, seed: 'next', baseLayersFrom: base, sharedLayers: 3 });
    expect(next.layers.slice(0, 3)).toEqual(base.layers.slice(0, 3));
    expect(next.layers[3].digest).not.toBe(base.layers[3].digest);
    const index = generateIndex({ platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }], layers: 2, layerSize: 100, seed: 'i', sharedBaseLayers: 1 });
    expect(index.images[0].layers[0].digest).toBe(index.images[1].layers[0].digest);
    expect(blobsInPushOrder(index).at(-1)!.digest).toBe(index.index.digest);
  });
});

describe('OCI image layout', () => {
  it('round-trips an index and picks the manifest by tag', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'georeg-layout-'));
    const index = generateIndex({ platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }], layers: 2, layerSize: 100, seed: 'layout', sharedBaseLayers: 1 });
    await writeOciLayout(dir, index, 'v1');
    const read = await readOciLayout(dir, 'v1');
    expect(read.root.digest).toBe(index.index.digest);
    expect(read.manifests).toHaveLength(3);
    expect(read.blobs).toHaveLength(5); // shared base + 2 own layers + 2 configs
    await expect(readOciLayout(dir, 'v2')).rejects.toThrow(/no manifest tagged "v2" \(tags: v1\)/);
    await expect(readOciLayout(join(dir, 'nope'))).rejects.toThrow(/no oci-layout: is this an OCI image layout/);
  });
});
