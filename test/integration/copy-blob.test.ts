import { createHash, randomBytes } from 'node:crypto';
import diagnostics_channel from 'node:diagnostics_channel';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startAzurite, type Azurite } from '../../src/local/azurite';
import type { StackAccounts } from '../../src/local/stack';
import { DigestMismatchError, digestOf } from '../../src/oci/digest';
import {
  BlobSizeMismatchError,
  copyBlob,
  copyBlobs,
  copyCapabilities,
  resetCopyCapabilities,
  SourceBlobMissingError,
  type CopyProgress,
} from '../../src/replication/copy';
import { regionStorageFrom, type RegionStorage } from '../../src/storage/region-storage';
import { storageAccounts } from '../support/stack';

/**
 * Two Azurite instances: westus and eastus share one (Copy Blob works between them: two accounts
 * lent by the test worker's shared Azurite), westeurope runs alone (nothing server-side can reach
 * westus from there: the copy streams).
 */
let one: StackAccounts;
let other: Azurite;
let west: RegionStorage;
let east: RegionStorage;
let europe: RegionStorage;

beforeAll(async () => {
  [one, other] = await Promise.all([storageAccounts(['westus', 'eastus']), startAzurite({ accounts: ['westeurope'] })]);
  west = regionStorageFrom({ region: 'westus', connectionString: one.connectionString('westus') });
  east = regionStorageFrom({ region: 'eastus', connectionString: one.connectionString('eastus') });
  europe = regionStorageFrom({ region: 'westeurope', connectionString: other.connectionString('westeurope') });
  await Promise.all([west, east, europe].map((s) => s.ensureContainer()));
});

afterAll(async () => {
  await Promise.all([one?.close(), other?.close()]);
});

beforeEach(() => resetCopyCapabilities());

/** A layer in the home region, written as Distribution writes layers: an append blob. */
async function layer(size: number): Promise<{ digest: string; data: Buffer }> {
  const data = randomBytes(size);
  const digest = digestOf(data);
  await west.writeBlob(digest, data, { append: true, contentType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
  return { digest, data };
}

async function content(s: RegionStorage, digest: string): Promise<Buffer> {
  return s.readBlob(digest, { maxBytes: Infinity, verify: false });
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('copyBlob between two accounts of one Azurite', () => {
  it('falls back from Put Blob From URL (NotImplemented) to Copy Blob, keeps the append blob type, verifies', async () => {
    const { digest, data } = await layer(6 * 1024 * 1024 + 7);
    const started = performance.now();
    const result = await copyBlob({ source: west, target: east, digest, expectedSize: data.length, verifyDigest: true });
    const elapsed = performance.now() - started;
    expect(result).toMatchObject({ method: 'copy-blob', bytes: data.length, blobType: 'AppendBlob', fellBackFrom: ['put-blob-from-url'] });
    // The copy's own time: two round trips and 6 MiB at least, and no more than the call took.
    expect(result.durationMs).toBeGreaterThan(0);
    expect(result.durationMs).toBeLessThanOrEqual(Math.ceil(elapsed));
    expect(sha256(await content(east, digest))).toBe(digest);
    expect(await east.blobProperties(digest)).toMatchObject({ size: data.length, blobType: 'AppendBlob', contentType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
    expect(copyCapabilities()).toEqual([{ source: west.url, target: east.url, unsupported: ['put-blob-from-url'] }]);

    // Remembered: the next copy goes straight to Copy Blob.
    const second = await layer(1024);
    const again = await copyBlob({ source: west, target: east, digest: second.digest, expectedSize: 1024, verifyDigest: true });
    expect(again).toMatchObject({ method: 'copy-blob', fellBackFrom: [] });
  });

  it('Put Block From URL is NotImplemented too (the path for blobs over 5,000 MiB)', async () => {
    const { digest, data } = await layer(300 * 1024);
    const result = await copyBlob({ source: west, target: east, digest, expectedSize: data.length, verifyDigest: true, methods: ['put-block-from-url', 'copy-blob'] });
    expect(result).toMatchObject({ method: 'copy-blob', fellBackFrom: ['put-block-from-url'] });
  });

  it('a manifest copied server-side reads back through readBlob', async () => {
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: {}, layers: [] }));
    const digest = digestOf(manifest);
    await west.writeBlob(digest, manifest, { contentType: 'application/vnd.oci.image.manifest.v1+json' });
    const result = await copyBlob({ source: west, target: east, digest, expectedSize: manifest.length, verifyDigest: true });
    expect(result).toMatchObject({ method: 'copy-blob', blobType: 'BlockBlob' });
    expect((await east.readBlob(digest)).equals(manifest)).toBe(true);
  });
});

describe('copyBlob between two Azurite instances', () => {
  it('streams through the worker when nothing server-side can reach the source, writing a block blob', async () => {
    const { digest, data } = await layer(16 * 1024 * 1024 + 3); // three blocks: 8 MiB, 8 MiB and 3 bytes
    const result = await copyBlob({ source: west, target: europe, digest, expectedSize: data.length, verifyDigest: true });
    expect(result).toMatchObject({ method: 'stream', bytes: data.length, blobType: 'BlockBlob', fellBackFrom: ['put-blob-from-url', 'copy-blob'] });
    expect(await europe.blobProperties(digest)).toMatchObject({ contentType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
    // A block blob reads like the append blob it came from: the same bytes (read once).
    expect((await europe.readBlob(digest, { maxBytes: 32 * 1024 * 1024 })).equals(data)).toBe(true);
    expect(copyCapabilities().find((c) => c.target === europe.url)?.unsupported.sort()).toEqual(['copy-blob', 'put-blob-from-url']);
  });

  it('replaces a stale partial append blob in the target', async () => {
    const { digest, data } = await layer(3 * 1024 * 1024);
    await europe.writeBlob(digest, data.subarray(0, 1000), { append: true }); // an interrupted earlier write
    const result = await copyBlob({ source: west, target: europe, digest, expectedSize: data.length, verifyDigest: true });
    expect(result).toMatchObject({ method: 'stream', blobType: 'BlockBlob', bytes: data.length });
    expect((await content(europe, digest)).equals(data)).toBe(true);
  });

  it('streams an empty blob', async () => {
    const { digest } = await layer(0);
    const result = await copyBlob({ source: west, target: europe, digest, expectedSize: 0, verifyDigest: true });
    expect(result).toMatchObject({ method: 'stream', bytes: 0 });
    expect(await europe.blobProperties(digest)).toMatchObject({ size: 0 });
  });
});

describe('copyBlob requests', () => {
  /** The storage requests `fn` makes to the target's account, as "METHOD" strings. */
  async function requestsTo(target: RegionStorage, fn: () => Promise<unknown>): Promise<string[]> {
    const account = target.accountName;
    const seen: string[] = [];
    const onStart = (message: unknown) => {
      const request = (message as { request: { method: string; path: string } }).request;
      if (request.path.startsWith(`/${account}/`)) seen.push(request.method);
    };
    diagnostics_channel.subscribe('http.client.request.start', onStart);
    try {
      await fn();
    } finally {
      diagnostics_channel.unsubscribe('http.client.request.start', onStart);
    }
    return seen;
  }

  it('a verified server-side copy reads the target back once: its size comes from that read, no separate HEAD', async () => {
    const { digest, data } = await layer(300 * 1024);
    const methods = await requestsTo(east, () => copyBlob({ source: west, target: east, digest, expectedSize: data.length, verifyDigest: true, methods: ['copy-blob'] }));
    expect(methods).toEqual(['PUT', 'GET']);
  });

  it('a server-side copy that succeeds asks the home account nothing: the copy reads the source, the read-back checks it', async () => {
    const { digest, data } = await layer(2048);
    expect(await requestsTo(west, () => copyBlob({ source: west, target: east, digest, expectedSize: data.length, verifyDigest: true, methods: ['copy-blob'] }))).toEqual([]);
  });

  it('an unverified server-side copy checks the size with one HEAD', async () => {
    const { digest, data } = await layer(1024);
    const methods = await requestsTo(east, () => copyBlob({ source: west, target: east, digest, expectedSize: data.length, verifyDigest: false, methods: ['copy-blob'] }));
    expect(methods).toEqual(['PUT', 'HEAD']);
  });

  it('ifAbsent: an absent blob costs no more than an unconditional copy; one already there is proven by the conditional copy and one HEAD, not copied', async () => {
    const { digest, data } = await layer(64 * 1024);
    const copy = () => copyBlob({ source: west, target: east, digest, expectedSize: data.length, verifyDigest: true, methods: ['copy-blob'], ifAbsent: true });
    let first;
    expect(await requestsTo(east, async () => (first = await copy()))).toEqual(['PUT', 'GET']);
    expect(first).toMatchObject({ existed: false, bytes: data.length });
    let second;
    expect(await requestsTo(east, async () => (second = await copy()))).toEqual(['PUT', 'HEAD']);
    expect(second).toMatchObject({ existed: true, bytes: data.length });
    expect(await content(east, digest)).toEqual(data);
  });

  it('ifAbsent: a blob of the wrong size at the target (a partial copy) is copied over', async () => {
    const { digest, data } = await layer(64 * 1024);
    await east.writeBlob(digest, data.subarray(0, 1000));
    const result = await copyBlob({ source: west, target: east, digest, expectedSize: data.length, verifyDigest: true, ifAbsent: true });
    expect(result).toMatchObject({ existed: false, bytes: data.length });
    expect(await content(east, digest)).toEqual(data);
  });

  it('ifAbsent on a stream copy: a blob already there is not downloaded into the target again', async () => {
    const { digest, data } = await layer(64 * 1024);
    await europe.writeBlob(digest, data);
    const result = await copyBlob({ source: west, target: europe, digest, expectedSize: data.length, verifyDigest: true, methods: ['stream'], ifAbsent: true });
    expect(result).toMatchObject({ method: 'stream', existed: true });
  });
});

describe('copyBlob failures', () => {
  /** Content that does not hash to its name: a corrupt home blob. Same size as the digest's real content. */
  async function corrupt(size: number): Promise<{ digest: string; size: number }> {
    const real = randomBytes(size);
    const digest = digestOf(real);
    await west.writeBlob(digest, randomBytes(size));
    return { digest, size };
  }

  it('a corrupt source fails verification on a server-side copy and leaves no blob in the target', async () => {
    const { digest, size } = await corrupt(64 * 1024);
    const err = await copyBlob({ source: west, target: east, digest, expectedSize: size, verifyDigest: true }).catch((e) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toContain(digest);
    expect(err.message).toContain('eastus');
    expect(await east.blobProperties(digest)).toBeUndefined();
  });

  it('a corrupt source fails a stream copy before anything is committed', async () => {
    const { digest, size } = await corrupt(10 * 1024 * 1024);
    const err = await copyBlob({ source: west, target: europe, digest, expectedSize: size, verifyDigest: true }).catch((e) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toContain(digest);
    expect(err.message).toContain('westeurope');
    expect(await europe.blobProperties(digest)).toBeUndefined();
  });

  it('without verification a same-size corrupt blob is copied (size is all that is checked)', async () => {
    const { digest, size } = await corrupt(1000);
    const result = await copyBlob({ source: west, target: east, digest, expectedSize: size, verifyDigest: false });
    expect(result.method).toBe('copy-blob');
    expect(await east.blobProperties(digest)).toMatchObject({ size });
  });

  it('a size that differs from the descriptor is a mismatch and copies nothing', async () => {
    const { digest, data } = await layer(2048);
    const err = await copyBlob({ source: west, target: east, digest, expectedSize: 2047, verifyDigest: false }).catch((e) => e);
    expect(err).toBeInstanceOf(BlobSizeMismatchError);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toMatch(/expected 2047 bytes, found 2048/);
    expect(err.message).toContain('westus');
    expect(await east.blobProperties(digest)).toBeUndefined();
    expect(data).toHaveLength(2048);
  });

  it('a missing source is SourceBlobMissingError naming digest and home region', async () => {
    const digest = digestOf('never pushed');
    for (const target of [east, europe]) {
      const err = await copyBlob({ source: west, target, digest, expectedSize: 12, verifyDigest: true }).catch((e) => e);
      expect(err).toBeInstanceOf(SourceBlobMissingError);
      expect(err).toMatchObject({ digest, region: 'westus' });
      expect(err.message).toContain(digest);
      expect(err.message).toContain('westus');
    }
  });

  it('an aborted signal stops the copy', async () => {
    const { digest } = await layer(1024);
    const controller = new AbortController();
    controller.abort();
    await expect(copyBlob({ source: west, target: europe, digest, expectedSize: 1024, verifyDigest: true, signal: controller.signal })).rejects.toThrow();
    expect(await europe.blobProperties(digest)).toBeUndefined();
  });
});

describe('copyBlobs', () => {
  it('copies many blobs with bounded concurrency, reporting progress, results in order', async () => {
    const layers = await Promise.all(Array.from({ length: 9 }, (_, i) => layer(100 * 1024 + i)));
    const items = layers.map((l, i) => ({ source: west, target: i % 2 ? east : europe, digest: l.digest, expectedSize: l.data.length, verifyDigest: true }));
    const progress: CopyProgress[] = [];
    const results = await copyBlobs(items, { concurrency: 3, onProgress: (p) => progress.push(p) });
    expect(results.map((r) => r.bytes)).toEqual(layers.map((l) => l.data.length));
    expect(results.map((r) => r.method)).toEqual(items.map((it) => (it.target === east ? 'copy-blob' : 'stream')));
    expect(progress.map((p) => p.done)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(progress.at(-1)).toMatchObject({ total: 9, bytes: layers.reduce((s, l) => s + l.data.length, 0) });
    for (const [i, l] of layers.entries()) expect((await content(i % 2 ? east : europe, l.digest)).equals(l.data)).toBe(true);
  });

  it('stops starting copies after a failure and rethrows it', async () => {
    const good = await layer(512);
    const missing = digestOf('missing from home');
    const items = [
      { source: west, target: east, digest: missing, expectedSize: 5, verifyDigest: true },
      ...Array.from({ length: 6 }, () => ({ source: west, target: east, digest: good.digest, expectedSize: 512, verifyDigest: true })),
    ];
    let done = 0;
    await expect(copyBlobs(items, { concurrency: 1, onProgress: () => (done += 1) })).rejects.toBeInstanceOf(SourceBlobMissingError);
    expect(done).toBe(0);
  });
});
