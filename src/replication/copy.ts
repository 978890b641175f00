import { randomBytes } from 'node:crypto';
import { Digester, DigestMismatchError, parseDigest } from '../oci/digest';
import { codeOf, isNotFound, RegionStorageError, statusOf } from '../storage/clients';
import { forEachLimit } from '../common/pool';
import type { BlobProperties, BlobType, RegionStorage } from '../storage/region-storage';
import { recordMetric } from '../telemetry/metrics';
import { inSpan } from '../telemetry/trace';

/**
 * Copies one blob from the home region's storage into a replica region's, using the strongest
 * primitive the two accounts allow:
 *
 *   put-blob-from-url    Put Blob From URL: one synchronous server-side request (≤ 5,000 MiB)
 *   put-block-from-url   Put Block From URL in parallel ranges + Put Block List (larger blobs)
 *   copy-blob            async Copy Blob, polled until done (keeps the blob type: an append blob
 *                        stays one)
 *   stream               through this worker: download → stage blocks → commit, hashed on the way
 *
 * The source is read through a short-lived read-only SAS. A primitive the storage answers
 * NotImplemented, or that cannot reach the source (CannotVerifyCopySource: a firewall, another
 * emulator instance), is remembered per (source, target) for a while, so later copies go straight
 * to the one that works. Azurite 3.35 answers NotImplemented for both URL primitives and supports
 * Copy Blob only between accounts of the same instance.
 *
 * Every copy ends with the target's size checked, and with `verifyDigest` its sha256: server-side
 * copies are read back and hashed; a stream copy is hashed as it passes and is committed only if it
 * matches. A bad copy is deleted before the error is thrown. Transient HTTP failures are retried by
 * the SDK's retry policy (see storage/clients.ts), not here.
 *
 * `ifAbsent` makes the copy conditional on the target having no blob there (If-None-Match: *): the
 * storage's "already exists" answer is then the proof the blob is there, checked by size with one
 * HEAD, so a job need not ask about a blob it expects to be missing before copying it.
 */

export type CopyMethod = 'put-blob-from-url' | 'put-block-from-url' | 'copy-blob' | 'stream';

export interface CopyBlobRequest {
  source: RegionStorage;
  target: RegionStorage;
  digest: string;
  expectedSize: number;
  verifyDigest: boolean;
  signal?: AbortSignal;
  /** Only these methods, in this order (benchmarks, tests); default: the strongest first. */
  methods?: CopyMethod[];
  /**
   * Copy only where the target has no blob: one there already is checked by size (after any Copy
   * Blob still running into it) instead of copied over, and the result says `existed`. One of the
   * wrong size is copied over.
   */
  ifAbsent?: boolean;
}

export interface CopyResult {
  method: CopyMethod;
  bytes: number;
  durationMs: number;
  /** The blob type at the target: Copy Blob keeps the source's, the other methods write block blobs. */
  blobType: BlobType;
  /** Methods tried first and found unsupported for this pair of accounts. */
  fellBackFrom: CopyMethod[];
  /** With `ifAbsent`: the target already held the blob (of the right size), so nothing was copied. */
  existed: boolean;
}

/** Put Blob From URL takes sources up to 5,000 MiB; above that, Put Block From URL. */
export const PUT_BLOB_FROM_URL_MAX_BYTES = 5000 * 1024 * 1024;
/** Range size for Put Block From URL (≤ 4,000 MiB per block; 50,000 blocks). */
export const URL_BLOCK_BYTES = 100 * 1024 * 1024;
/** Block size for stream copies: memory in flight is STREAM_BLOCK_BYTES × (STREAM_PARALLEL + 1). */
export const STREAM_BLOCK_BYTES = 8 * 1024 * 1024;
const STREAM_PARALLEL = 4;
const URL_BLOCK_PARALLEL = 8;
/** How long a "this primitive does not work here" stays remembered. */
const CAPABILITY_TTL_MS = 30 * 60 * 1000;
/** Give up on an async Copy Blob that has not finished after this long (and abort it). */
const COPY_BLOB_TIMEOUT_MS = 2 * 60 * 60 * 1000;
/** The source SAS must outlive the copy: Copy Blob reads the source asynchronously. */
const SOURCE_SAS_TTL_MS = COPY_BLOB_TIMEOUT_MS + 10 * 60 * 1000;

export class SourceBlobMissingError extends Error {
  constructor(readonly digest: string, readonly region: string, path: string) {
    super(`blob ${digest} is not in the home region ${region} (${path}): the push references a blob the registry does not hold; push the image again`);
    this.name = 'SourceBlobMissingError';
  }
}

/** The size differs from the descriptor's: the content cannot match the digest either. */
export class BlobSizeMismatchError extends DigestMismatchError {
  constructor(readonly digest: string, readonly expectedSize: number, readonly actualSize: number, readonly region: string, detail: string) {
    super(digest, `(${actualSize} bytes)`, region);
    this.message = `size mismatch for ${digest} in ${region}: expected ${expectedSize} bytes, found ${actualSize}; ${detail}`;
    this.name = 'BlobSizeMismatchError';
  }
}

/** Copy Blob ended failed or aborted, or did not finish in time. */
export class CopyFailedError extends RegionStorageError {
  constructor(message: string, cause?: unknown) {
    super(message, cause);
    this.name = 'CopyFailedError';
  }
}

class UnsupportedPrimitive extends Error {}

/** The conditional write of an `ifAbsent` copy found a blob at the target. */
class TargetExists extends Error {}

// (source container url → target container url) → method → unsupported until (ms since epoch)
const unsupported = new Map<string, Map<CopyMethod, number>>();

/** What the capability cache holds (for status pages and tests). */
export function copyCapabilities(): Array<{ source: string; target: string; unsupported: CopyMethod[] }> {
  const now = Date.now();
  return [...unsupported].map(([key, methods]) => {
    const [source, target] = key.split(' -> ');
    return { source, target, unsupported: [...methods].filter(([, until]) => until > now).map(([m]) => m) };
  });
}

export function resetCopyCapabilities(): void {
  unsupported.clear();
}

/** One blob home → region, in a span of its own with its bytes and method, counted per region and method. */
export function copyBlob(request: CopyBlobRequest): Promise<CopyResult> {
  const { source, target, digest, expectedSize } = request;
  return inSpan('georeg.copy_blob', { 'georeg.digest': digest, 'georeg.source_region': source.region, 'georeg.region': target.region, 'georeg.blob.size': expectedSize }, async (span) => {
    const result = await copyOneBlob(request);
    span.setAttributes({ 'georeg.copy.method': result.method, 'georeg.copy.bytes': result.bytes, ...(result.fellBackFrom.length ? { 'georeg.copy.fell_back_from': result.fellBackFrom.join(',') } : {}) });
    recordMetric.blobsCopied(target.region, result.method, 1, result.bytes);
    return result;
  });
}

async function copyOneBlob(request: CopyBlobRequest): Promise<CopyResult> {
  const { source, target, digest, signal } = request;
  const started = performance.now();
  parseDigest(digest);
  // The source is asked about (one HEAD) only when needed: by the primitives that use its
  // properties (block ranges, a commit's content type), and after a copy failed or came out the
  // wrong size, to name a missing or different home blob as the cause. A server-side copy that
  // succeeds reads the source itself, and the target's check below covers the rest.
  let sourceProps: BlobProperties | undefined;
  const checkedSource = async () => (sourceProps ??= await homeBlob(request));

  const key = `${source.url} -> ${target.url}`;
  const candidates = request.methods ?? (request.expectedSize <= PUT_BLOB_FROM_URL_MAX_BYTES ? ['put-blob-from-url', 'copy-blob', 'stream'] : ['put-block-from-url', 'copy-blob', 'stream']);
  const fellBackFrom: CopyMethod[] = [];
  let ifAbsent = request.ifAbsent ?? false;
  for (let i = 0; i < candidates.length; i++) {
    const method = candidates[i];
    if (method !== 'stream' && !request.methods && isUnsupported(key, method)) continue;
    signal?.throwIfAborted();
    const checkedBefore = sourceProps !== undefined;
    try {
      await run(method, { ...request, ifAbsent }, checkedSource);
    } catch (e) {
      if (e instanceof TargetExists) {
        const there = await existingTarget(request);
        if (there) return { method, bytes: there.size, durationMs: Math.round(performance.now() - started), blobType: there.blobType, fellBackFrom, existed: true };
        // A partial or failed copy is there: copy over it with the same method.
        ifAbsent = false;
        i -= 1;
        continue;
      }
      // Already the home blob's own error (see homeBlob), or the copy's verdict on its content.
      if ((e as Error)?.name === 'AbortError' || e instanceof SourceBlobMissingError || e instanceof DigestMismatchError) throw e;
      // A source missing (or of another size) is the cause, whatever the primitive answered. One
      // deleted since an earlier check also reads as CannotVerifyCopySource: not a capability.
      if (checkedBefore) {
        if (e instanceof UnsupportedPrimitive && !(await source.blobProperties(digest))) throw new SourceBlobMissingError(digest, source.region, source.copyAccess(digest).path);
      } else {
        await checkedSource();
      }
      if (!(e instanceof UnsupportedPrimitive)) throw e;
      markUnsupported(key, method);
      fellBackFrom.push(method);
      continue;
    }
    let properties: BlobProperties;
    try {
      properties = await verifyTarget(method, request);
    } catch (e) {
      // A server-side copy the wrong size (now deleted) copied a home blob of that size.
      if (e instanceof BlobSizeMismatchError && sourceProps === undefined) await checkedSource();
      throw e;
    }
    return { method, bytes: properties.size, durationMs: Math.round(performance.now() - started), blobType: properties.blobType, fellBackFrom, existed: false };
  }
  throw new RegionStorageError(`no copy method worked for ${digest} from ${source.region} to ${target.region} (tried ${fellBackFrom.join(', ') || 'none'}; allowed ${candidates.join(', ')})`);
}

/** The home blob's properties; throws when it is missing or not the size the descriptor says. */
async function homeBlob(request: CopyBlobRequest): Promise<BlobProperties> {
  const { source, digest, expectedSize } = request;
  const props = await source.blobProperties(digest);
  if (!props) throw new SourceBlobMissingError(digest, source.region, source.copyAccess(digest).path);
  if (props.size !== expectedSize) {
    throw new BlobSizeMismatchError(digest, expectedSize, props.size, source.region, 'the home region holds a different blob than the manifest describes; nothing was copied');
  }
  return props;
}

export interface CopyProgress {
  done: number;
  total: number;
  bytes: number;
  digest: string;
  result: CopyResult;
}

/**
 * Copies many blobs, at most `concurrency` at a time. The first failure stops new copies from
 * starting; the ones running finish, then it is thrown. Results are in the order of `items`.
 */
export async function copyBlobs(
  items: readonly CopyBlobRequest[],
  options: { concurrency: number; onProgress?: (progress: CopyProgress) => void; signal?: AbortSignal },
): Promise<CopyResult[]> {
  const results: CopyResult[] = new Array(items.length);
  let done = 0;
  let bytes = 0;
  await forEachLimit([...items.keys()], options.concurrency, async (index) => {
    const item = items[index];
    const result = await copyBlob({ ...item, signal: item.signal ?? options.signal });
    results[index] = result;
    done += 1;
    bytes += result.bytes;
    options.onProgress?.({ done, total: items.length, bytes, digest: item.digest, result });
  });
  return results;
}

function isUnsupported(key: string, method: CopyMethod): boolean {
  const until = unsupported.get(key)?.get(method);
  return until !== undefined && until > Date.now();
}

function markUnsupported(key: string, method: CopyMethod): void {
  let methods = unsupported.get(key);
  if (!methods) unsupported.set(key, (methods = new Map()));
  methods.set(method, Date.now() + CAPABILITY_TTL_MS);
}

/** The storage does not offer the primitive, or cannot read the source through the SAS from where it is. */
/** The answer to a conditional write (If-None-Match: *) where a blob is: 409 BlobAlreadyExists (412 from some services). */
function alreadyExists(e: unknown): boolean {
  return codeOf(e) === 'BlobAlreadyExists' || codeOf(e) === 'ConditionNotMet' || statusOf(e) === 412;
}

/**
 * The blob an `ifAbsent` copy found at the target, once any Copy Blob into it has finished: its
 * properties when its size is the expected one and no copy into it failed, else undefined (copy
 * over it).
 */
async function existingTarget(request: CopyBlobRequest): Promise<BlobProperties | undefined> {
  const { target, digest, expectedSize, signal } = request;
  const deadline = Date.now() + COPY_BLOB_TIMEOUT_MS;
  for (let delay = 100; ; delay = Math.min(delay * 2, 5_000)) {
    const props = await target.blobProperties(digest);
    if (!props) return undefined;
    if (props.copyStatus !== 'pending') return props.size === expectedSize && (props.copyStatus ?? 'success') === 'success' ? props : undefined;
    if (Date.now() > deadline) throw new CopyFailedError(`a Copy Blob into ${digest} in ${target.region} has been pending for over ${COPY_BLOB_TIMEOUT_MS / 60000} min; the job will be retried`);
    await sleep(delay, signal);
  }
}

function primitiveUnsupported(e: unknown): boolean {
  const code = codeOf(e);
  return statusOf(e) === 501 || code === 'NotImplemented' || code === 'APINotImplemented' || code === 'FeatureNotSupported' || code === 'CannotVerifyCopySource';
}

async function run(method: CopyMethod, request: CopyBlobRequest, homeProps: () => Promise<BlobProperties>): Promise<void> {
  const { target, digest } = request;
  const attempt = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      if (e instanceof TargetExists || (request.ifAbsent && alreadyExists(e))) throw new TargetExists(method);
      if (primitiveUnsupported(e)) throw new UnsupportedPrimitive(method);
      if (e instanceof RegionStorageError || e instanceof DigestMismatchError || e instanceof SourceBlobMissingError) throw e;
      if ((e as Error)?.name === 'AbortError') throw e;
      throw new RegionStorageError(`${what} of ${digest} from ${request.source.region} to ${target.region} failed`, e);
    }
  };
  switch (method) {
    case 'put-blob-from-url':
      return attempt('Put Blob From URL', async () => {
        const url = await request.source.readUrl(digest, SOURCE_SAS_TTL_MS);
        await target.copyAccess(digest).putFromUrl(url, request.signal, { ifAbsent: request.ifAbsent });
      });
    case 'put-block-from-url': {
      const sourceProps = await homeProps();
      return attempt('Put Block From URL', () => putBlocksFromUrl(request, sourceProps));
    }
    case 'copy-blob':
      return attempt('Copy Blob', () => copyBlobAsync(request));
    case 'stream': {
      const sourceProps = await homeProps();
      return attempt('stream copy', () => streamCopy(request, sourceProps));
    }
  }
}

async function putBlocksFromUrl(request: CopyBlobRequest, sourceProps: BlobProperties): Promise<void> {
  const { source, target, digest, signal } = request;
  const url = await source.readUrl(digest, SOURCE_SAS_TTL_MS);
  const blob = target.copyAccess(digest);
  const ranges: Array<{ id: string; offset: number; count: number }> = [];
  const nonce = randomBytes(6).toString('hex');
  for (let offset = 0, i = 0; offset < sourceProps.size; offset += URL_BLOCK_BYTES, i++) {
    ranges.push({ id: blockId(nonce, i), offset, count: Math.min(URL_BLOCK_BYTES, sourceProps.size - offset) });
  }
  await forEachLimit(ranges, URL_BLOCK_PARALLEL, (r) => blob.stageBlockFromUrl(r.id, url, r.offset, r.count, signal));
  await blob.commitBlocks(ranges.map((r) => r.id), sourceProps.contentType, signal, { ifAbsent: request.ifAbsent });
}

async function copyBlobAsync(request: CopyBlobRequest): Promise<void> {
  const { source, target, digest, signal } = request;
  const blob = target.copyAccess(digest);
  const url = await source.readUrl(digest, SOURCE_SAS_TTL_MS);
  let copyId: string | undefined;
  let status: string | undefined;
  let description: string | undefined;
  try {
    // The polling is ours (back-off, and it handles "aborted").
    const started = await blob.startCopyFromUrl(url, signal, { ifAbsent: request.ifAbsent });
    copyId = started.copyId;
    status = started.completed ? 'success' : 'pending';
  } catch (e) {
    // Another job is copying the same blob here (a layer shared by two pushes): wait for that copy.
    if (codeOf(e) !== 'PendingCopyOperation') throw e;
    status = 'pending';
  }
  const deadline = Date.now() + COPY_BLOB_TIMEOUT_MS;
  let delay = 100;
  while (status === 'pending') {
    if (Date.now() > deadline) {
      if (copyId) await blob.abortCopy(copyId).catch(() => {});
      throw new CopyFailedError(`Copy Blob of ${digest} from ${source.region} to ${target.region} did not finish in ${COPY_BLOB_TIMEOUT_MS / 60000} min and was aborted; the job will be retried`);
    }
    try {
      await sleep(delay, signal);
    } catch (e) {
      if (copyId) await blob.abortCopy(copyId).catch(() => {});
      throw e;
    }
    delay = Math.min(delay * 2, 5_000);
    const p = await blob.copyState(signal);
    status = p.status;
    description = p.description;
    copyId ??= p.copyId;
  }
  if (status !== 'success') {
    throw new CopyFailedError(`Copy Blob of ${digest} from ${source.region} to ${target.region} ended "${status}"${description ? `: ${description}` : ''}; the job will be retried`);
  }
}

/** Download → staged blocks → commit. Nothing becomes visible at the target unless the content checks out. */
async function streamCopy(request: CopyBlobRequest, sourceProps: BlobProperties): Promise<void> {
  const { source, target, digest, expectedSize, signal } = request;
  const from = source.copyAccess(digest);
  let body: NodeJS.ReadableStream | undefined;
  try {
    body = (await from.download(signal)).body;
  } catch (e) {
    if (isNotFound(e)) throw new SourceBlobMissingError(digest, source.region, from.path);
    throw e;
  }
  const blob = target.copyAccess(digest);
  // Blocks cannot be staged onto an append blob (409 InvalidBlobType): a stale or partial one from
  // an earlier attempt goes first. Every method overwrites the target; this one just does it early.
  const existing = await target.blobProperties(digest);
  if (existing && request.ifAbsent) {
    (body as { destroy?: () => void } | undefined)?.destroy?.();
    throw new TargetExists('stream');
  }
  if (existing && existing.blobType !== 'BlockBlob') await target.deleteBlob(digest);
  const digester = new Digester(parseDigest(digest).algorithm);
  const nonce = randomBytes(6).toString('hex');
  const ids: string[] = [];
  const inFlight = new Set<Promise<void>>();
  let stageError: { error: unknown } | undefined;
  const stage = async (data: Buffer) => {
    const id = blockId(nonce, ids.length);
    ids.push(id);
    while (inFlight.size >= STREAM_PARALLEL) await Promise.race(inFlight);
    if (stageError) throw stageError.error;
    const p: Promise<void> = blob
      .stageBlock(id, data, signal)
      .then(
        () => undefined,
        (error) => {
          stageError ??= { error };
        },
      )
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  try {
    for await (const raw of body ?? []) {
      const chunk = typeof raw === 'string' ? Buffer.from(raw) : (raw as Buffer);
      digester.update(chunk);
      pending.push(chunk);
      pendingBytes += chunk.length;
      while (pendingBytes >= STREAM_BLOCK_BYTES) {
        const all = Buffer.concat(pending);
        await stage(all.subarray(0, STREAM_BLOCK_BYTES));
        const rest = all.subarray(STREAM_BLOCK_BYTES);
        pending = rest.length ? [rest] : [];
        pendingBytes = rest.length;
      }
    }
    if (pendingBytes > 0) await stage(Buffer.concat(pending));
  } finally {
    await Promise.all(inFlight);
  }
  if (stageError) throw stageError.error;
  if (digester.size !== expectedSize) {
    throw new BlobSizeMismatchError(digest, expectedSize, digester.size, source.region, `the download from the home region ended early or the blob changed; nothing was written to ${target.region}`);
  }
  if (request.verifyDigest) {
    const actual = digester.digest();
    if (actual !== digest) {
      throw new DigestMismatchError(digest, actual, `${source.region} (read while stream-copying to ${target.region}; nothing was written there). The home region's blob is corrupt: push the image again`);
    }
  }
  await blob.commitBlocks(ids, sourceProps.contentType ?? 'application/octet-stream', signal, { ifAbsent: request.ifAbsent });
}

/**
 * Size always; sha256 when asked (server-side copies are read back). A bad copy is deleted. A
 * read-back takes the size from its own response: one GET per blob, not a HEAD and a GET.
 */
async function verifyTarget(method: CopyMethod, request: CopyBlobRequest): Promise<BlobProperties> {
  const { source, target, digest, expectedSize, signal } = request;
  const blob = target.copyAccess(digest);
  const path = blob.path;
  const readBack = request.verifyDigest && method !== 'stream';
  let props: BlobProperties | undefined;
  let body: NodeJS.ReadableStream | undefined;
  if (readBack) {
    try {
      ({ properties: props, body } = await blob.download(signal));
    } catch (e) {
      if ((e as Error)?.name === 'AbortError') throw e;
      if (!isNotFound(e)) throw new RegionStorageError(`cannot read back ${digest} in ${target.region} (${path}) after ${method} from ${source.region}`, e);
    }
  } else {
    props = await target.blobProperties(digest);
  }
  if (!props) throw new RegionStorageError(`${method} of ${digest} from ${source.region} reported success but ${target.region} has no blob at ${path}; the job will be retried`);
  if (props.size !== expectedSize) {
    (body as { destroy?: () => void } | undefined)?.destroy?.();
    await target.deleteBlob(digest);
    throw new BlobSizeMismatchError(digest, expectedSize, props.size, target.region, `after ${method} from ${source.region}; the copy was deleted`);
  }
  if (readBack) {
    const digester = new Digester(parseDigest(digest).algorithm);
    for await (const chunk of body ?? []) digester.update(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    const actual = digester.digest();
    if (actual !== digest) {
      await target.deleteBlob(digest);
      const error = new DigestMismatchError(digest, actual, `${target.region} (${path}) after ${method} from ${source.region}`);
      error.message += `; the copy in ${target.region} was deleted. If the blob in ${source.region} hashes wrong too, it is corrupt there: push the image again`;
      throw error;
    }
  }
  return props;
}

/** Block ids must all have the same length; the nonce keeps two concurrent writers' blocks apart. */
function blockId(nonce: string, index: number): string {
  return Buffer.from(`${nonce}-${String(index).padStart(6, '0')}`).toString('base64');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
