import { describe, expect, it } from 'vitest';
import { DigestMismatchError, digestOf } from '../../src/oci/digest';
import { ManifestError, parseManifest } from '../../src/oci/manifest';
import { blobReferences, walkReferences } from '../../src/oci/references';

const d = (s: string) => digestOf(s);
const json = (o: unknown) => Buffer.from(JSON.stringify(o));

// As `docker push` writes a schema 2 manifest.
const dockerV2 = {
  schemaVersion: 2,
  mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
  config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: 7023, digest: d('config') },
  layers: [
    { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 32654, digest: d('l1') },
    { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 16724, digest: d('l2') },
  ],
};

// A Windows image: the base layer is foreign and lives at Microsoft's URLs.
const windows = {
  ...dockerV2,
  layers: [
    { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', size: 1_500_000_000, digest: d('win'), urls: ['https://mcr.microsoft.com/v2/windows/servercore/blobs/x'] },
    { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 100, digest: d('app') },
  ],
};

describe('parseManifest', () => {
  it('reads a Docker v2 schema 2 manifest', () => {
    const m = parseManifest(json(dockerV2));
    expect(m.kind).toBe('image');
    if (m.kind !== 'image') return;
    expect(m.config?.digest).toBe(d('config'));
    expect(m.layers.map((l) => l.size)).toEqual([32654, 16724]);
  });

  it('reads a Docker manifest list and an OCI index with a BuildKit attestation manifest', () => {
    const list = parseManifest(json({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', manifests: [{ mediaType: dockerV2.mediaType, size: 528, digest: d('amd64'), platform: { architecture: 'amd64', os: 'linux' } }] }));
    expect(list).toMatchObject({ kind: 'index', manifests: [{ platform: { architecture: 'amd64' } }] });
    const index = parseManifest(
      json({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 480, digest: d('arm64'), platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 566, digest: d('att'), platform: { architecture: 'unknown', os: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': d('arm64') } },
        ],
      }),
    );
    expect(index.kind === 'index' && index.manifests).toHaveLength(2);
  });

  it('reads an OCI artifact manifest with artifactType and subject; blobs become layers', () => {
    const m = parseManifest(json({ mediaType: 'application/vnd.oci.artifact.manifest.v1+json', artifactType: 'application/vnd.cncf.notary.signature', blobs: [{ mediaType: 'application/jose+json', size: 2000, digest: d('sig') }], subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 400, digest: d('subject') } }));
    expect(m).toMatchObject({ kind: 'image', artifactType: 'application/vnd.cncf.notary.signature', subject: { digest: d('subject') } });
    expect(m.kind === 'image' && m.layers[0].digest).toBe(d('sig'));
  });

  it('detects an OCI manifest without mediaType by its shape', () => {
    const { mediaType: _, ...bare } = { ...dockerV2, mediaType: undefined };
    expect(parseManifest(json(bare)).mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  });

  it('refuses schema 1, unknown types, bad JSON and bad digests with reasons', () => {
    expect(() => parseManifest(json({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }))).toThrow(/schema 1 manifests are not supported: re-push/);
    expect(() => parseManifest(json({ schemaVersion: 2, mediaType: 'application/vnd.example+json' }))).toThrow(/unknown manifest media type "application\/vnd.example\+json"/);
    expect(() => parseManifest(Buffer.from('{"schemaVersion": 2,'))).toThrow(ManifestError);
    expect(() => parseManifest(json({ ...dockerV2, layers: [{ mediaType: 'x', size: 1, digest: 'sha256:nothex' }] }))).toThrow(/layers.0.digest/);
  });
});

describe('references', () => {
  it('keeps foreign layers out of the blobs to copy', () => {
    const refs = blobReferences(parseManifest(json(windows)));
    expect(refs.blobs.map((b) => b.digest)).toEqual([d('config'), d('app')]);
    expect(refs.foreign.map((b) => b.digest)).toEqual([d('win')]);
  });

  it('walks an index: children before the root, shared layers once, verified digests', async () => {
    const shared = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: 10, digest: d('shared') };
    const child = (n: string) => json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: 5, digest: d(`cfg-${n}`) }, layers: [shared, { ...shared, digest: d(`own-${n}`) }] });
    const a = child('a');
    const b = child('b');
    const index = json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', size: a.length, digest: digestOf(a) }, { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: b.length, digest: digestOf(b) }] });
    const store = new Map([a, b, index].map((x) => [digestOf(x), x]));
    const graph = await walkReferences(digestOf(index), async (dg) => ({ bytes: store.get(dg)! }));
    expect(graph.manifests.map((m) => m.digest)).toEqual([digestOf(a), digestOf(b), digestOf(index)]);
    expect(graph.blobs.filter((x) => x.digest === d('shared'))).toHaveLength(1);
    expect(graph.blobs).toHaveLength(5);

    const tampered = new Map(store);
    tampered.set(digestOf(a), json({ ...JSON.parse(a.toString()), annotations: { x: 'y' } }));
    await expect(walkReferences(digestOf(index), async (dg) => ({ bytes: tampered.get(dg)! }))).rejects.toThrow(DigestMismatchError);
  });
});
