import type { TokenCredential } from '@azure/identity';
import type { ContainerClient, StorageRetryOptions } from '@azure/storage-blob';
import type { z } from 'zod';
import { readAll } from '../common/streams';
import { blobServiceClient, codeOf, isNotFound, RegionStorageError, statusOf } from './clients';
import { describeZodError } from '../common/zod';

/**
 * The pipeline's own state: small JSON documents in the home account's `georeg` container (names
 * from `statePaths` in paths.ts). Every read is validated with the caller's zod schema; every
 * read-modify-write is conditional on the ETag read, so concurrent writers never lose an update:
 * the loser re-reads and re-applies its change.
 */

/** The state container (home account) could not be reached or written: management needs it. */
export class StateUnavailableError extends RegionStorageError {
  constructor(message: string, cause?: unknown) {
    super(message, cause);
    this.name = 'StateUnavailableError';
  }
}

export class StateConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateConflictError';
  }
}

export class StateNotFoundError extends Error {
  constructor(readonly blobName: string, container: string) {
    super(`state document ${blobName} is not in container "${container}": it was never created or was deleted`);
    this.name = 'StateNotFoundError';
  }
}

export class StateSchemaError extends Error {
  constructor(readonly blobName: string, detail: string) {
    super(`state document ${blobName} does not match its schema (${detail}): it was written by another version of georeg or edited by hand; fix or delete it`);
    this.name = 'StateSchemaError';
  }
}

export interface StateStoreOptions {
  /** How many read-modify-write rounds `update` tries before giving up (default 50). */
  maxUpdateAttempts?: number;
}

type Schema<T> = z.ZodType<T, z.ZodTypeDef, unknown>;

/** A listing reports ETags bare, a read's header quoted. */
function sameEtag(a: string, b: string): boolean {
  return a.replace(/"/g, '') === b.replace(/"/g, '');
}

/** Documents `listDocuments` read in this process, by container URL and name: the ETag read at, the value, the schema it was parsed with. */
const documentsRead = new Map<string, { value: unknown; etag: string; schema: Schema<unknown> }>();

export class StateStore {
  private readonly maxUpdateAttempts: number;

  constructor(readonly container: ContainerClient, options: StateStoreOptions = {}) {
    this.maxUpdateAttempts = options.maxUpdateAttempts ?? 50;
  }

  static forAccount(config: {
    connectionString?: string;
    accountUrl?: string;
    credential?: TokenCredential;
    /** Default `georeg`. */
    container?: string;
    retryOptions?: StorageRetryOptions;
  } & StateStoreOptions): StateStore {
    const service = blobServiceClient(config, 'state store (home region)');
    return new StateStore(service.getContainerClient(config.container ?? 'georeg'), config);
  }

  async ensureContainer(): Promise<void> {
    try {
      await this.container.createIfNotExists();
    } catch (e) {
      throw new StateUnavailableError(`cannot create or reach the state container "${this.container.containerName}" (${this.container.url}) in the home account`, e);
    }
  }

  /** The document and its ETag, or undefined when absent. Throws StateSchemaError when it does not parse. */
  async get<T>(name: string, schema: Schema<T>): Promise<{ value: T; etag: string } | undefined> {
    let text: string;
    let etag: string;
    try {
      const res = await this.container.getBlobClient(name).download();
      etag = res.etag ?? '';
      text = (await readAll(res.readableStreamBody)).toString('utf8');
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw new StateUnavailableError(`cannot read state document ${name}`, e);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new StateSchemaError(name, `not JSON: ${(e as Error).message}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new StateSchemaError(name, describeZodError(parsed.error, Infinity));
    return { value: parsed.data, etag };
  }

  /** Creates the document; StateConflictError when it already exists. Returns the new ETag. */
  async create(name: string, value: unknown): Promise<string> {
    try {
      return await this.write(name, value, { ifNoneMatch: '*' });
    } catch (e) {
      if (statusOf(e) === 409 || statusOf(e) === 412) throw new StateConflictError(`state document ${name} already exists`);
      throw new StateUnavailableError(`cannot create state document ${name}`, e);
    }
  }

  /** Writes the document whatever is there (last writer wins: only for documents with one writer). */
  async put(name: string, value: unknown): Promise<string> {
    try {
      return await this.write(name, value, {});
    } catch (e) {
      throw new StateUnavailableError(`cannot write state document ${name}`, e);
    }
  }

  /**
   * Read, apply `mutate`, write back only if nobody wrote in between (If-Match on the ETag);
   * otherwise read again and re-apply. `mutate` may run several times, so it must only compute.
   * Returns the value written; when `mutate` returns the very object it was given, nothing is written.
   *
   * One caveat of every ETag loop: if a write lands but its response is lost, the SDK's retry sees
   * 412 and the change is applied again on the new value. Keep mutations idempotent where that
   * matters (set absolute values, add to sets) rather than blind increments.
   */
  async update<T>(name: string, mutate: (current: T) => T | Promise<T>, schema: Schema<T>): Promise<T> {
    return (await this.updateVersioned(name, mutate, schema)).value;
  }

  /** `update`, returning the ETag of the version written (or read, when nothing changed) too. */
  async updateVersioned<T>(name: string, mutate: (current: T) => T | Promise<T>, schema: Schema<T>): Promise<{ value: T; etag: string }> {
    for (let attempt = 1; attempt <= this.maxUpdateAttempts; attempt++) {
      const current = await this.get(name, schema);
      if (!current) throw new StateNotFoundError(name, this.container.containerName);
      const next = await mutate(current.value);
      // Nothing to change: no write (callers return the value they were given to say so).
      if (next === current.value) return current;
      const etag = await this.replace(name, next, current.etag, schema);
      if (etag !== undefined) return { value: next, etag };
      // Someone else won the round: back off a little (jittered, growing) and re-read.
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 5 * attempt)));
    }
    throw new StateConflictError(`state document ${name} changed under ${this.maxUpdateAttempts} consecutive updates: too many concurrent writers; retry later`);
  }

  /**
   * Writes `value` only over the version `etag` (If-Match): the write half of `update`, for a
   * writer that still holds the version it last wrote and so needs no read. Returns the new ETag,
   * or undefined when the document changed since (read it again and decide again).
   */
  async replace<T>(name: string, value: T, etag: string, schema: Schema<T>): Promise<string | undefined> {
    const checked = schema.safeParse(value);
    if (!checked.success) throw new StateSchemaError(name, `the update would write an invalid document: ${describeZodError(checked.error, Infinity)}`);
    try {
      return await this.write(name, value, { ifMatch: etag });
    } catch (e) {
      if (statusOf(e) === 412 || codeOf(e) === 'ConditionNotMet') return undefined;
      throw new StateUnavailableError(`cannot update state document ${name}`, e);
    }
  }

  /** Names of the documents under `prefix`, sorted; the first `max` only (blob listings come in name order). */
  async list(prefix: string, max = Infinity): Promise<string[]> {
    return (await this.listVersions(prefix, max)).map((d) => d.name);
  }

  /** `list` with each document's ETag, as the listing reports it (no document is read). */
  async listVersions(prefix: string, max = Infinity): Promise<Array<{ name: string; etag: string }>> {
    const found: Array<{ name: string; etag: string }> = [];
    try {
      for await (const item of this.container.listBlobsFlat({ prefix })) {
        if (found.length >= max) break;
        found.push({ name: item.name, etag: item.properties.etag });
      }
    } catch (e) {
      throw new StateUnavailableError(`cannot list state documents under ${prefix}`, e);
    }
    return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Every document under `prefix` that parses, with its ETag, sorted by name: one listing, and a
   * read only of a document this process has not read at the ETag the listing reports (every push
   * lists the replica records, every replication job the webhooks; they rarely change). A document
   * that does not parse (edited by hand, written by another version) is reported to `onInvalid`
   * and left out. The values are shared between callers: never change them in place.
   */
  async listDocuments<T>(prefix: string, schema: Schema<T>, onInvalid: (error: StateSchemaError) => void = () => {}): Promise<Array<{ name: string; value: T; etag: string }>> {
    const listed = await this.listVersions(prefix);
    const scope = `${this.container.url}\n`;
    const names = new Set(listed.map((l) => scope + l.name));
    for (const key of documentsRead.keys()) if (key.startsWith(scope + prefix) && !names.has(key)) documentsRead.delete(key);
    const found = await Promise.all(
      listed.map(async ({ name, etag }) => {
        const known = documentsRead.get(scope + name);
        if (known && known.schema === schema && sameEtag(known.etag, etag)) return { name, value: known.value as T, etag: known.etag };
        try {
          const read = await this.get(name, schema);
          if (!read) return undefined;
          documentsRead.set(scope + name, { ...read, schema });
          return { name, ...read };
        } catch (e) {
          if (!(e instanceof StateSchemaError)) throw e;
          onInvalid(e);
          return undefined;
        }
      }),
    );
    return found.filter((d): d is { name: string; value: T; etag: string } => d !== undefined);
  }

  /** False when the document was not there. */
  async delete(name: string): Promise<boolean> {
    try {
      return (await this.container.getBlobClient(name).deleteIfExists()).succeeded;
    } catch (e) {
      throw new StateUnavailableError(`cannot delete state document ${name}`, e);
    }
  }

  /**
   * Runs `fn` while holding a blob lease on `name` (created empty if absent), renewed as it runs:
   * one holder at a time across every process. Undefined, without running `fn`, when another
   * holder has it; a holder that dies frees it when the lease expires (`seconds`, 15-60).
   */
  async withLease<T>(name: string, seconds: number, fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    const blob = this.container.getBlockBlobClient(name);
    try {
      await blob.upload('', 0, { conditions: { ifNoneMatch: '*' } });
    } catch (e) {
      if (statusOf(e) !== 409 && statusOf(e) !== 412) throw new StateUnavailableError(`cannot create lease blob ${name}`, e);
    }
    const lease = blob.getBlobLeaseClient();
    try {
      await lease.acquireLease(seconds);
    } catch (e) {
      if (statusOf(e) === 409) return undefined;
      throw new StateUnavailableError(`cannot take the lease on ${name}`, e);
    }
    const renew = setInterval(() => lease.renewLease().catch(() => undefined), (seconds * 1000) / 3);
    renew.unref();
    try {
      return { value: await fn() };
    } finally {
      clearInterval(renew);
      await lease.releaseLease().catch(() => undefined);
    }
  }

  private async write(name: string, value: unknown, conditions: { ifMatch?: string; ifNoneMatch?: string }): Promise<string> {
    const body = Buffer.from(JSON.stringify(value));
    const res = await this.container.getBlockBlobClient(name).upload(body, body.length, {
      conditions,
      blobHTTPHeaders: { blobContentType: 'application/json' },
    });
    return res.etag ?? '';
  }
}
