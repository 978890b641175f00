import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite } from '../../src/local/azurite';
import type { StackAccounts } from '../../src/local/stack';
import { DigestMismatchError, digestOf } from '../../src/oci/digest';
import { RegistryLayout } from '../../src/storage/paths';
import { BlobNotFoundError, regionStorageFrom, RegionStorage } from '../../src/storage/region-storage';
import { compiledEntry } from '../support/process';
import { rawContainer } from '../support/raw-storage';
import { storageAccounts } from '../support/stack';

const ACCOUNTS = ['westus', 'eastus', 'westeurope'];

describe('startAzurite', () => {
  // One Azurite of its own for all it is asked to do, from start to close (each start costs ~1.5 s of CPU).
  it('serves every account on a free port, each with its own key, isolated from the others, instead of devstoreaccount1; close() stops it', async () => {
    const azurite = await startAzurite({ accounts: ACCOUNTS });
    try {
      expect(azurite.port).toBeGreaterThan(0);
      for (const account of ACCOUNTS) {
        expect(azurite.connectionString(account)).toBe(
          `DefaultEndpointsProtocol=http;AccountName=${account};AccountKey=${azurite.accountKey(account)};BlobEndpoint=http://127.0.0.1:${azurite.port}/${account};`,
        );
        expect(Buffer.from(azurite.accountKey(account), 'base64')).toHaveLength(64);
        const container = BlobServiceClient.fromConnectionString(azurite.connectionString(account)).getContainerClient('launcher');
        await container.createIfNotExists();
        await container.getBlockBlobClient('who').upload(account, account.length);
      }
      for (const account of ACCOUNTS) {
        const container = BlobServiceClient.fromConnectionString(azurite.connectionString(account)).getContainerClient('launcher');
        expect((await container.getBlobClient('who').downloadToBuffer()).toString()).toBe(account);
      }

      // The default devstoreaccount1 is replaced, and a wrong key is rejected.
      const wrongKey = new BlobServiceClient(azurite.blobEndpoint('westus'), new StorageSharedKeyCredential('westus', randomBytes(64).toString('base64')), { retryOptions: { maxTries: 1 } });
      await expect(wrongKey.getContainerClient('launcher').getProperties()).rejects.toMatchObject({ statusCode: 403 });
      expect(() => azurite.connectionString('devstoreaccount1')).toThrow(/has no account "devstoreaccount1"/);
    } finally {
      await azurite.close();
    }
    // Nothing answers on the port afterwards; a second close() is a no-op.
    await azurite.close();
    await expect(fetch(`${azurite.url}/westus/launcher?restype=container`)).rejects.toThrow();
  });

  it('refuses account names Azurite would silently ignore', async () => {
    await expect(startAzurite({ accounts: ['West_US'] })).rejects.toThrow(/not a valid storage account name/);
  });
  it('Azurite exits by itself when the process that started it dies without close()', async () => {
    const script = `require(${JSON.stringify(await compiledEntry('src/local/azurite.ts'))}).startAzurite({ accounts: ['orphan'] }).then((a) => { console.log(a.url); process.exit(0); });`;
    const child = spawn(process.execPath, ['-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    await new Promise((resolve) => child.once('exit', resolve));
    const url = out.trim();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await expect.poll(() => fetch(`${url}/orphan?comp=list`).then(() => 'answering', () => 'gone'), { timeout: 10_000, message: `the orphaned Azurite at ${url}` }).toBe('gone');
  });
});

describe('RegionStorage', () => {
  const layout = new RegistryLayout();
  // Accounts lent by the test worker's shared Azurite, one per region.
  let accounts: StackAccounts;
  const raw = (region: string) => rawContainer(accounts.connectionString(region));
  const storage = (region: string, root?: string): RegionStorage => regionStorageFrom({ region, connectionString: accounts.connectionString(region), container: 'registry', root });

  beforeAll(async () => {
    accounts = await storageAccounts(ACCOUNTS);
    await Promise.all(ACCOUNTS.map((a) => storage(a).ensureContainer()));
  });

  afterAll(async () => {
    await accounts?.close();
  });

  it('writes a layer as an append blob in ≤4 MiB blocks and reads it back', async () => {
    const west = storage('westus');
    const data = randomBytes(9 * 1024 * 1024 + 123);
    const digest = digestOf(data);
    await west.writeBlob(digest, data, { append: true, contentType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
    const props = await west.blobProperties(digest);
    expect(props).toMatchObject({ size: data.length, blobType: 'AppendBlob', contentType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
    expect(props!.etag).toMatch(/^"0x[0-9A-F]+"$/);
    const rawProps = await raw('westus').getBlobClient(layout.blobData(digest)).getProperties();
    expect(rawProps.blobCommittedBlockCount).toBe(3);
    expect(west.copyAccess(digest).path).toBe(layout.blobData(digest));
    // readBlob is for manifests: a layer is refused unless the caller raises the limit.
    await expect(west.readBlob(digest)).rejects.toThrow(/over the 4194304-byte limit/);
    expect((await west.readBlob(digest, { maxBytes: 16 * 1024 * 1024 })).equals(data)).toBe(true);
  });

  it('writes manifests as block blobs; readBlob verifies the digest and names region and digest when missing', async () => {
    const west = storage('westus');
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] }));
    const digest = digestOf(manifest);
    await west.writeBlob(digest, manifest, { contentType: 'application/vnd.oci.image.manifest.v1+json' });
    expect(await west.blobProperties(digest)).toMatchObject({ size: manifest.length, blobType: 'BlockBlob' });
    expect((await west.readBlob(digest)).equals(manifest)).toBe(true);

    const liar = digestOf('something else');
    await west.writeBlob(liar, manifest);
    await expect(west.readBlob(liar)).rejects.toBeInstanceOf(DigestMismatchError);
    expect((await west.readBlob(liar, { verify: false })).equals(manifest)).toBe(true);

    const absent = digestOf('never written');
    const err = await west.readBlob(absent).catch((e) => e);
    expect(err).toBeInstanceOf(BlobNotFoundError);
    expect(err.message).toContain(absent);
    expect(err.message).toContain('westus');
    expect(await west.blobProperties(absent)).toBeUndefined();
  });

  it('an empty blob written as an append blob has size 0', async () => {
    const west = storage('westus');
    const digest = digestOf(Buffer.alloc(0));
    await west.writeBlob(digest, Buffer.alloc(0), { append: true });
    expect(await west.blobProperties(digest)).toMatchObject({ size: 0, blobType: 'AppendBlob' });
    expect(await west.readBlob(digest)).toHaveLength(0);
  });

  it('hasBlobs answers size or undefined per digest, in the order asked', async () => {
    const east = storage('eastus');
    const blobs = Array.from({ length: 12 }, (_, i) => Buffer.from(`blob ${i}`));
    const written = blobs.filter((_, i) => i % 3 !== 0);
    for (const b of written) await east.writeBlob(digestOf(b), b);
    const digests = blobs.map((b) => digestOf(b));
    const result = await east.hasBlobs([...digests, digests[1]], 4);
    expect([...result.keys()]).toEqual(digests);
    blobs.forEach((b, i) => expect(result.get(digests[i])).toBe(i % 3 !== 0 ? b.length : undefined));
  });

  it('links hold exactly the digest string, no newline', async () => {
    const east = storage('eastus');
    const digest = digestOf('a manifest');
    const link = { kind: 'tagCurrent', repository: 'library/web', tag: 'latest' } as const;
    const blob = raw('eastus').getBlockBlobClient(layout.link(link));
    expect(blob.name).toBe('docker/registry/v2/repositories/library/web/_manifests/tags/latest/current/link');
    expect(await east.readLink(link)).toBeUndefined();
    expect(await east.linkExists(link)).toBe(false);
    await east.writeLink(link, digest);
    expect(await east.readLink(link)).toBe(digest);
    expect(await east.linkExists(link)).toBe(true);
    expect((await blob.downloadToBuffer()).toString('utf8')).toBe(digest);
    expect((await blob.getProperties()).blobType).toBe('BlockBlob');
    await expect(east.writeLink(link, 'latest')).rejects.toThrow(/invalid digest/);
    await blob.upload('garbage', 7);
    await expect(east.readLink(link)).rejects.toThrow(/not a digest/);
    expect(await east.deleteLink(link)).toBe(true);
    expect(await east.deleteLink(link)).toBe(false);
  });

  it('presentLinks tells, from one listing, which layer links are there holding their digest', async () => {
    const east = storage('eastus');
    const [linked, wrong, absent] = ['layer a', 'layer b', 'layer c'].map((s) => ({ kind: 'layer' as const, repository: 'team/present', digest: digestOf(s) }));
    await east.writeLink(linked, linked.digest);
    // A link holding another digest than its path names is not "present": writing it would change it.
    await east.writeLink(wrong, linked.digest);
    expect(await east.presentLinks([linked, wrong, absent], { kind: 'layers', repository: 'team/present' })).toEqual([true, false, false]);
  });

  it('lists tags and every repository:tag with its digest; deletePrefix removes a tag directory', async () => {
    const we = storage('westeurope');
    const d = (s: string) => digestOf(s);
    const tags: Array<[string, string, string]> = [
      ['library/web', '1.0', d('web 1.0')],
      ['library/web', 'latest', d('web latest')],
      ['team/a/b/deep', 'v1', d('deep')],
      ['solo', 'x_y.z-1', d('solo')],
    ];
    for (const [repo, tag, digest] of tags) {
      await we.writeLink({ kind: 'tagIndex', repository: repo, tag, digest }, digest);
      await we.writeLink({ kind: 'tagCurrent', repository: repo, tag }, digest);
      await we.writeLink({ kind: 'revision', repository: repo, digest }, digest);
      await we.writeLink({ kind: 'layer', repository: repo, digest: d(`${repo} layer`) }, d(`${repo} layer`));
    }
    // A tag directory with history but no current link is not a tag.
    await we.writeLink({ kind: 'tagIndex', repository: 'library/web', tag: 'gone', digest: d('gone') }, d('gone'));

    expect(await we.listTags('library/web')).toEqual(['1.0', 'latest']);
    expect(await we.listTags('nothing/here')).toEqual([]);

    const all = [];
    for await (const entry of we.listRepositoriesWithTags()) all.push(entry);
    expect(all.sort((a, b) => `${a.repository}:${a.tag}`.localeCompare(`${b.repository}:${b.tag}`))).toEqual(
      tags.map(([repository, tag, digest]) => ({ repository, tag, digest })).sort((a, b) => `${a.repository}:${a.tag}`.localeCompare(`${b.repository}:${b.tag}`)),
    );

    expect(await we.deletePrefix({ kind: 'tag', repository: 'library/web', tag: '1.0' })).toBe(2);
    expect(await we.listTags('library/web')).toEqual(['latest']);
    expect(await we.deletePrefix({ kind: 'tagIndex', repository: 'library/web', tag: 'latest' })).toBe(1);
    expect(await we.listTags('library/web')).toEqual(['latest']);
  });

  it('works with Distribution 2.8 names (leading slash) and a 3.x rootdirectory prefix', async () => {
    for (const root of ['/docker/registry/v2', 'myroot/docker/registry/v2']) {
      const s = storage('westeurope', root);
      const data = Buffer.from(`layer under ${root}`);
      const digest = digestOf(data);
      await s.writeBlob(digest, data, { append: true });
      await s.writeLink({ kind: 'tagCurrent', repository: 'library/app', tag: 'v1' }, digest);
      expect((await s.blobProperties(digest))?.size).toBe(data.length);
      expect(s.copyAccess(digest).path).toBe(`${root}/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`);
      const names = [];
      for await (const item of raw('westeurope').listBlobsFlat({ prefix: root })) names.push(item.name);
      expect(names).toContain(s.layout.blobData(digest));
      const entries = [];
      for await (const e of s.listRepositoriesWithTags()) entries.push(e);
      expect(entries).toEqual([{ repository: 'library/app', tag: 'v1', digest }]);
    }
  });

  it('errors name the region and say what to do', async () => {
    const broken = regionStorageFrom({
      region: 'nowhere',
      connectionString: `DefaultEndpointsProtocol=http;AccountName=nowhere;AccountKey=${randomBytes(64).toString('base64')};BlobEndpoint=http://127.0.0.1:1/nowhere;`,
      retryOptions: { maxTries: 1 },
    });
    await expect(broken.ensureContainer()).rejects.toThrow(/container "registry" in nowhere/);
    await expect(broken.blobProperties(digestOf('x'))).rejects.toThrow(/in nowhere/);
    expect(() => regionStorageFrom({ region: 'bad', connectionString: 'nonsense' })).toThrow(/region bad: the storage connection string does not parse/);
    expect(() => regionStorageFrom({ region: 'none' })).toThrow(/give a storage connection string or an account URL/);
  });

  it('signs a read-only URL for a blob (shared key)', async () => {
    const west = storage('westus');
    const data = Buffer.from('readable through a SAS');
    const digest = digestOf(data);
    await west.writeBlob(digest, data);
    const url = await west.readUrl(digest, 60_000);
    expect(url).toMatch(/[?&]sp=r(&|$)/);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    const put = await fetch(url, { method: 'PUT', headers: { 'x-ms-blob-type': 'BlockBlob' }, body: 'overwrite' });
    expect(put.status).toBe(403);
  });
});
