import type { AddressPolicy } from '../common/address-safety';
import { forEachLimit } from '../common/pool';
import { createHash } from 'node:crypto';
import { readAll } from '../common/streams';
import type { TokenCredential } from '@azure/identity';
import {
  BlobSASPermissions,
  StorageSharedKeyCredential,
  type AppendBlobClient,
  type BlobServiceClient,
  type ContainerClient,
  type StorageRetryOptions,
  type UserDelegationKey,
} from '@azure/storage-blob';
import { isDigest, parseDigest, verifyDigest } from '../oci/digest';
import { blobServiceClient, codeOf, isNotFound, RegionStorageError, statusOf } from './clients';
import { BlobCopyAccess } from './blob-copy';
import { RegistryLayout, type LinkSpec, type PrefixSpec } from './paths';

/**
 * One region's registry storage: the Distribution layout (see paths.ts) inside one container of the
 * region's storage account. Everything georeg reads or writes in a registry goes through here, so
 * every failure names the region, the blob, and what to do.
 *
 * Blobs are written as Distribution's Azure driver writes them: layer data as append blobs (created,
 * then appended in ≤4 MiB blocks), manifests, configs and links as block blobs. Readers accept any
 * blob type, as Distribution's reader does: a server-side copy may turn an append blob into a block
 * blob.
 */

export type BlobType = 'BlockBlob' | 'AppendBlob' | 'PageBlob';

export interface BlobProperties {
  size: number;
  blobType: BlobType;
  contentType?: string;
  etag: string;
  /** The state of the last Copy Blob into it (`pending` while one still runs); absent when none. */
  copyStatus?: string;
}

export interface RegionStorageOptions {
  /** The account's service client: needed to sign read URLs with a user delegation key (Entra ID access). */
  service?: BlobServiceClient;
}

export interface WriteBlobOptions {
  /** Write as an append blob (layer data, as Distribution does); default a block blob. */
  append?: boolean;
  contentType?: string;
}

/** Manifests are small (registries cap them at 4 MiB); anything larger is not one. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** The largest block an append blob accepts. */
export const APPEND_BLOCK_BYTES = 4 * 1024 * 1024;

export class BlobNotFoundError extends RegionStorageError {
  constructor(readonly region: string, readonly digest: string, path: string, cause?: unknown) {
    super(`blob ${digest} is not in ${region}'s registry storage (${path}): push it again, or check the registry container and root`, cause);
    this.name = 'BlobNotFoundError';
  }
}

export class RegionStorage {
  private delegationKey?: { key: UserDelegationKey; expiresOn: number };

  constructor(
    private readonly container: ContainerClient,
    readonly layout: RegistryLayout,
    readonly region: string,
    private readonly options: RegionStorageOptions = {},
  ) {}

  /** The account name, e.g. for logs and for telling accounts apart. */
  get accountName(): string {
    return this.container.accountName;
  }

  /** Where this region's storage is, without credentials: `<account url>/<container>`. */
  get url(): string {
    return this.container.url;
  }

  async ensureContainer(): Promise<void> {
    try {
      await this.container.createIfNotExists();
    } catch (e) {
      throw new RegionStorageError(`cannot create or reach container "${this.container.containerName}" in ${this.region} (${this.container.url}): check the account's connection string or the identity's role (Storage Blob Data Contributor)`, e);
    }
  }

  /** The primitives a copy of the digest's blob data is made of (replication/copy.ts). */
  copyAccess(digest: string): BlobCopyAccess {
    const path = this.layout.blobData(digest);
    return new BlobCopyAccess(this.container.getBlockBlobClient(path), path);
  }

  /** Properties of a blob's data, or undefined when the region does not have it. */
  async blobProperties(digest: string): Promise<BlobProperties | undefined> {
    const path = this.layout.blobData(digest);
    try {
      const p = await this.container.getBlobClient(path).getProperties();
      return { size: p.contentLength ?? 0, blobType: (p.blobType ?? 'BlockBlob') as BlobType, contentType: p.contentType, etag: p.etag ?? '', ...(p.copyStatus ? { copyStatus: p.copyStatus } : {}) };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw new RegionStorageError(`cannot read properties of ${digest} in ${this.region} (${path})`, e);
    }
  }

  /** Size of each digest's blob in this region, undefined where it is missing; at most `concurrency` HEADs at once. */
  async hasBlobs(digests: readonly string[], concurrency = 8): Promise<Map<string, number | undefined>> {
    const unique = [...new Set(digests)];
    const sizes = new Map<string, number | undefined>();
    await forEachLimit(unique, concurrency, async (d) => {
      sizes.set(d, (await this.blobProperties(d))?.size);
    });
    // In the order asked, whatever order the HEADs finished in.
    return new Map(unique.map((d) => [d, sizes.get(d)]));
  }

  /**
   * A manifest's (or config's) bytes. Refuses blobs over `maxBytes` (a layer is never read whole),
   * and by default refuses content that does not hash to its digest.
   */
  async readBlob(digest: string, options: { maxBytes?: number; verify?: boolean } = {}): Promise<Buffer> {
    const maxBytes = options.maxBytes ?? MAX_MANIFEST_BYTES;
    const path = this.layout.blobData(digest);
    let data: Buffer;
    try {
      const res = await this.container.getBlobClient(path).download();
      const size = res.contentLength ?? 0;
      if (size > maxBytes) {
        res.readableStreamBody?.destroy();
        throw new RegionStorageError(`blob ${digest} in ${this.region} is ${size} bytes, over the ${maxBytes}-byte limit for manifests: it is a layer, or the digest in the notification is wrong`);
      }
      data = await readAll(res.readableStreamBody);
    } catch (e) {
      if (isNotFound(e)) throw new BlobNotFoundError(this.region, digest, path, e);
      if (e instanceof RegionStorageError) throw e;
      throw new RegionStorageError(`cannot read blob ${digest} in ${this.region} (${path})`, e);
    }
    if (options.verify ?? true) verifyDigest(digest, data, `${this.region} (${path})`);
    return data;
  }

  /**
   * Writes blob data. `append`: an append blob, created and then appended in ≤4 MiB blocks, as
   * Distribution's Azure driver writes layers; otherwise a block blob. Overwrites what is there.
   */
  async writeBlob(digest: string, data: Buffer, options: WriteBlobOptions = {}): Promise<void> {
    parseDigest(digest);
    const path = this.layout.blobData(digest);
    const blobHTTPHeaders = { blobContentType: options.contentType ?? 'application/octet-stream' };
    try {
      if (options.append) {
        const blob = this.container.getAppendBlobClient(path);
        await blob.create({ blobHTTPHeaders });
        for (let offset = 0; offset < data.length; offset += APPEND_BLOCK_BYTES) {
          const chunk = data.subarray(offset, offset + APPEND_BLOCK_BYTES);
          await appendOnce(blob, chunk, offset);
        }
      } else {
        await this.container.getBlockBlobClient(path).uploadData(data, { blobHTTPHeaders, blockSize: APPEND_BLOCK_BYTES, concurrency: 4 });
      }
    } catch (e) {
      throw new RegionStorageError(`cannot write blob ${digest} (${data.length} bytes) to ${this.region} (${path}): retry the push`, e);
    }
  }

  /** The digest a link holds, or undefined when the link is absent. */
  async readLink(link: LinkSpec): Promise<string | undefined> {
    return this.readLinkAt(this.layout.link(link));
  }

  private async readLinkAt(path: string): Promise<string | undefined> {
    return (await this.linkVersionAt(path)).digest;
  }

  private checkLinkContent(path: string, text: string): void {
    if (!isDigest(text)) {
      throw new RegionStorageError(`link ${path} in ${this.region} holds ${JSON.stringify(text.slice(0, 100))}, not a digest: the registry storage is corrupt there; rewrite or delete the link`);
    }
  }

  /** Writes a link: the digest string and nothing else (no newline), exactly as Distribution does. */
  async writeLink(link: LinkSpec, digest: string): Promise<void> {
    parseDigest(digest);
    const path = this.layout.link(link);
    const body = Buffer.from(digest, 'utf8');
    try {
      await this.container.getBlockBlobClient(path).upload(body, body.length, { blobHTTPHeaders: { blobContentType: 'application/octet-stream' } });
    } catch (e) {
      throw new RegionStorageError(`cannot write link ${path} -> ${digest} in ${this.region}`, e);
    }
  }

  /** A link's digest and ETag (both undefined when absent): the read half of a guarded write. */
  async readLinkVersion(link: LinkSpec): Promise<{ digest?: string; etag?: string }> {
    return this.linkVersionAt(this.layout.link(link));
  }

  /** One GET (downloadToBuffer would HEAD for the size first: two requests for a 71-byte link). */
  private async linkVersionAt(path: string): Promise<{ digest?: string; etag?: string }> {
    let res;
    try {
      res = await this.container.getBlobClient(path).download();
    } catch (e) {
      if (isNotFound(e)) return {};
      throw new RegionStorageError(`cannot read link ${path} in ${this.region}`, e);
    }
    const text = (await readAll(res.readableStreamBody)).toString('utf8').trim();
    this.checkLinkContent(path, text);
    return { digest: text, etag: res.etag };
  }

  /**
   * Writes a link only if it is still as read: unchanged since `etag`, or still absent when `etag`
   * is undefined. False when another writer got there first (read again and decide again).
   */
  async writeLinkIf(link: LinkSpec, digest: string, etag: string | undefined): Promise<boolean> {
    parseDigest(digest);
    const path = this.layout.link(link);
    const body = Buffer.from(digest, 'utf8');
    try {
      await this.container.getBlockBlobClient(path).upload(body, body.length, {
        blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
        conditions: etag ? { ifMatch: etag } : { ifNoneMatch: '*' },
      });
      return true;
    } catch (e) {
      if (isConditionFailure(e)) return false;
      throw new RegionStorageError(`cannot write link ${path} -> ${digest} in ${this.region}`, e);
    }
  }

  /** Deletes a link only if it is unchanged since `etag`; false when it changed (or is gone). */
  async deleteLinkIf(link: LinkSpec, etag: string): Promise<boolean> {
    const path = this.layout.link(link);
    try {
      await this.container.getBlobClient(path).delete({ conditions: { ifMatch: etag } });
      return true;
    } catch (e) {
      if (isConditionFailure(e) || isNotFound(e)) return false;
      throw new RegionStorageError(`cannot delete link ${path} in ${this.region}`, e);
    }
  }

  async linkExists(link: LinkSpec): Promise<boolean> {
    return this.exists(this.layout.link(link));
  }

  /** Deletes a link; false when it was not there. */
  async deleteLink(link: LinkSpec): Promise<boolean> {
    return this.deletePath(this.layout.link(link));
  }

  private async exists(path: string): Promise<boolean> {
    try {
      return await this.container.getBlobClient(path).exists();
    } catch (e) {
      throw new RegionStorageError(`cannot check ${path} in ${this.region}`, e);
    }
  }

  /** Writes the identity marker `nonce` (see RegistryLayout.identityMarker). */
  async writeMarker(nonce: string): Promise<void> {
    const path = this.layout.identityMarker(nonce);
    try {
      await this.container.getBlockBlobClient(path).upload('', 0);
    } catch (e) {
      throw new RegionStorageError(`cannot write ${path} in ${this.region}: the storage must be writable`, e);
    }
  }

  /** Whether this region's storage holds the identity marker `nonce`: then it is the storage that wrote it. */
  async hasMarker(nonce: string): Promise<boolean> {
    return this.exists(this.layout.identityMarker(nonce));
  }

  async deleteMarker(nonce: string): Promise<void> {
    await this.deletePath(this.layout.identityMarker(nonce));
  }

  /** Deletes the digest's blob data; false when it was not there. */
  async deleteBlob(digest: string): Promise<boolean> {
    return this.deletePath(this.layout.blobData(digest));
  }

  private async deletePath(path: string): Promise<boolean> {
    try {
      return (await this.container.getBlobClient(path).deleteIfExists()).succeeded;
    } catch (e) {
      throw new RegionStorageError(`cannot delete ${path} in ${this.region}`, e);
    }
  }

  /** Deletes every blob under the prefix; returns how many. */
  async deletePrefix(spec: PrefixSpec): Promise<number> {
    const prefix = this.layout.prefix(spec);
    const names: string[] = [];
    try {
      for await (const item of this.container.listBlobsFlat({ prefix })) names.push(item.name);
    } catch (e) {
      throw new RegionStorageError(`cannot list ${prefix} in ${this.region}`, e);
    }
    let deleted = 0;
    await forEachLimit(names, 8, async (name) => {
      if (await this.deletePath(name)) deleted += 1;
    });
    return deleted;
  }

  /** Tags of a repository that have a `current/link`, sorted. */
  async listTags(repository: string): Promise<string[]> {
    const prefix = this.layout.prefix({ kind: 'tags', repository });
    const tags: string[] = [];
    try {
      for await (const item of this.container.listBlobsFlat({ prefix })) {
        const parsed = this.layout.parseTagCurrentLink(item.name);
        if (parsed && parsed.repository === repository) tags.push(parsed.tag);
      }
    } catch (e) {
      throw new RegionStorageError(`cannot list tags of ${repository} in ${this.region} (${prefix})`, e);
    }
    return tags.sort();
  }

  /**
   * Every tag in the registry with the manifest digest it points at: a flat listing under the
   * repositories prefix, keeping the `current/link` blobs. A tag deleted between listing and
   * reading is skipped.
   */
  async *listRepositoriesWithTags(options: { concurrency?: number } = {}): AsyncIterable<{ repository: string; tag: string; digest: string }> {
    const prefix = this.layout.prefix({ kind: 'repositories' });
    const pages = this.container.listBlobsFlat({ prefix }).byPage({ maxPageSize: 5000 });
    for (;;) {
      let page;
      try {
        page = await pages.next();
      } catch (e) {
        throw new RegionStorageError(`cannot list repositories in ${this.region} (${prefix})`, e);
      }
      if (page.done) return;
      const found: Array<{ repository: string; tag: string; path: string; digest?: string }> = [];
      for (const item of page.value.segment.blobItems) {
        const parsed = this.layout.parseTagCurrentLink(item.name);
        if (parsed) found.push({ ...parsed, path: item.name });
      }
      await forEachLimit(found, options.concurrency ?? 8, async (f) => {
        f.digest = await this.readLinkAt(f.path);
      });
      for (const f of found) if (f.digest) yield { repository: f.repository, tag: f.tag, digest: f.digest };
    }
  }

  /**
   * One page of the listing listRepositoriesWithTags walks: the tags among `maxBlobs` listed
   * blobs, with their digests, and the continuation token of the next page (absent after the
   * last). A page resumes where the token says, so a caller can stop and carry on later.
   */
  async listTagsPage(options: { cursor?: string; maxBlobs: number; concurrency?: number }): Promise<{ tags: Array<{ repository: string; tag: string; digest: string }>; cursor?: string }> {
    const prefix = this.layout.prefix({ kind: 'repositories' });
    let page;
    try {
      page = (await this.container.listBlobsFlat({ prefix }).byPage({ maxPageSize: options.maxBlobs, continuationToken: options.cursor }).next()).value;
    } catch (e) {
      throw new RegionStorageError(`cannot list repositories in ${this.region} (${prefix})`, e);
    }
    const found: Array<{ repository: string; tag: string; path: string; digest?: string }> = [];
    for (const item of page?.segment.blobItems ?? []) {
      const parsed = this.layout.parseTagCurrentLink(item.name);
      if (parsed) found.push({ ...parsed, path: item.name });
    }
    await forEachLimit(found, options.concurrency ?? 8, async (f) => {
      f.digest = await this.readLinkAt(f.path);
    });
    const tags = found.filter((f) => f.digest).map((f) => ({ repository: f.repository, tag: f.tag, digest: f.digest! }));
    return { tags, cursor: page?.continuationToken || undefined };
  }

  /**
   * Every tag's `current/link` with the MD5 the listing reports for it, without reading one link:
   * two links with the same MD5 hold the same digest (a link is the digest string and nothing
   * else). The MD5 is absent for a link written in blocks; the caller reads those.
   */
  async *listTagLinks(options: { repository?: string; onPage?: () => void } = {}): AsyncIterable<{ repository: string; tag: string; md5?: string }> {
    const prefix = this.layout.prefix(options.repository ? { kind: 'tags', repository: options.repository } : { kind: 'repositories' });
    try {
      for await (const page of this.container.listBlobsFlat({ prefix }).byPage({ maxPageSize: 5000 })) {
        options.onPage?.();
        for (const item of page.segment.blobItems) {
          const parsed = this.layout.parseTagCurrentLink(item.name);
          if (!parsed || (options.repository && parsed.repository !== options.repository)) continue;
          const md5 = item.properties.contentMD5;
          yield { ...parsed, md5: md5 && md5.length ? Buffer.from(md5).toString('base64') : undefined };
        }
      }
    } catch (e) {
      throw new RegionStorageError(`cannot list tags in ${this.region} (${prefix})`, e);
    }
  }

  /**
   * Which of `links` (all under `within`) are present and hold their digest, from the first page
   * (5,000 blobs) of one listing of `within`: the listing's MD5 of a link is the MD5 of the digest
   * string it holds, so no link is read. A link past the first page, or written in blocks (no
   * MD5), counts as absent.
   */
  async presentLinks(links: ReadonlyArray<LinkSpec & { digest: string }>, within: PrefixSpec): Promise<boolean[]> {
    const prefix = this.layout.prefix(within);
    const listed = new Map<string, string | undefined>();
    try {
      const page = await this.container.listBlobsFlat({ prefix }).byPage({ maxPageSize: 5000 }).next();
      for (const item of page.done ? [] : page.value.segment.blobItems) {
        const md5 = item.properties.contentMD5;
        listed.set(item.name, md5 && md5.length ? Buffer.from(md5).toString('base64') : undefined);
      }
    } catch (e) {
      throw new RegionStorageError(`cannot list ${prefix} in ${this.region}`, e);
    }
    return links.map((l) => {
      const md5 = listed.get(this.layout.link(l));
      return md5 !== undefined && md5 === createHash('md5').update(l.digest, 'utf8').digest('base64');
    });
  }

  /**
   * A URL that reads the digest's blob for `ttlMs`, for server-side copies into another account:
   * a service SAS signed with the account key, or with a user delegation key under Entra ID.
   */
  async readUrl(digest: string, ttlMs = 60 * 60 * 1000): Promise<string> {
    const blob = this.container.getBlobClient(this.layout.blobData(digest));
    // Started a few minutes back: the target's clock may be behind ours.
    const startsOn = new Date(Date.now() - 5 * 60 * 1000);
    const expiresOn = new Date(Date.now() + ttlMs);
    const permissions = BlobSASPermissions.parse('r');
    // A connection string with a SAS token: the blob's URL already carries it.
    if (new URL(blob.url).searchParams.has('sig')) return blob.url;
    try {
      if (this.container.credential instanceof StorageSharedKeyCredential) {
        return await blob.generateSasUrl({ permissions, startsOn, expiresOn });
      }
      const key = await this.userDelegationKey(startsOn, expiresOn);
      return await blob.generateUserDelegationSasUrl({ permissions, startsOn, expiresOn }, key);
    } catch (e) {
      throw new RegionStorageError(
        `cannot sign a read URL for ${digest} in ${this.region}: with Entra ID the identity needs "Storage Blob Delegator" (or Data Contributor) on the account`,
        e,
      );
    }
  }

  private async userDelegationKey(startsOn: Date, expiresOn: Date): Promise<UserDelegationKey> {
    if (this.delegationKey && this.delegationKey.expiresOn > expiresOn.getTime()) return this.delegationKey.key;
    if (!this.options.service) {
      throw new RegionStorageError(`no account key and no service client for ${this.region}: build it with regionStorageFrom() to sign read URLs with a user delegation key`);
    }
    // A day's key (the maximum is 7), reused for every URL signed within it.
    const keyExpires = new Date(Math.max(expiresOn.getTime(), Date.now()) + 24 * 60 * 60 * 1000);
    const key = await this.options.service.getUserDelegationKey(startsOn, keyExpires);
    this.delegationKey = { key, expiresOn: keyExpires.getTime() };
    return key;
  }
}

export interface RegionStorageConfig {
  region: string;
  /** Connection string (key-based account or Azurite), or ... */
  connectionString?: string;
  /** ... the account URL, reached with DefaultAzureCredential (or `credential`). */
  accountUrl?: string;
  credential?: TokenCredential;
  /** Registry container; default `registry`. */
  container?: string;
  /** Registry root inside the container; default `docker/registry/v2`. */
  root?: string;
  retryOptions?: StorageRetryOptions;
  /** Check the address of every request (storage an admin gave at run time; see clients.ts). */
  targets?: AddressPolicy;
}

export function regionStorageFrom(config: RegionStorageConfig): RegionStorage {
  const service = blobServiceClient(config, `region ${config.region}`);
  return new RegionStorage(service.getContainerClient(config.container ?? 'registry'), new RegistryLayout(config.root), config.region, { service });
}

/**
 * Appends a block at `offset`. The appendPosition condition stops the SDK's retry of a block whose
 * first attempt landed (response lost) from appending it twice; that retry's 412 is then a success.
 */
async function appendOnce(blob: AppendBlobClient, chunk: Buffer, offset: number): Promise<void> {
  try {
    await blob.appendBlock(chunk, chunk.length, { conditions: { appendPosition: offset } });
  } catch (e) {
    if (codeOf(e) !== 'AppendPositionConditionNotMet') throw e;
    const size = (await blob.getProperties()).contentLength;
    if (size !== offset + chunk.length) throw e;
  }
}

/** A conditional request lost: 412 on If-Match, 409 BlobAlreadyExists on If-None-Match: *. */
function isConditionFailure(e: unknown): boolean {
  return statusOf(e) === 412 || codeOf(e) === 'ConditionNotMet' || codeOf(e) === 'BlobAlreadyExists' || statusOf(e) === 409;
}
