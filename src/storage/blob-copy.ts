import type { BlobBeginCopyFromUrlPollState, BlockBlobClient } from '@azure/storage-blob';
import type { BlobProperties, BlobType } from './region-storage';

/**
 * The storage primitives replication/copy.ts composes into a copy of one blob's data, each one
 * request (or the SDK's poller start) on the blob at `path`. They throw the SDK's errors as they
 * come: the copy tells "this primitive is not offered here" (NotImplemented, CannotVerifyCopySource)
 * from a failure by their codes, and names the region and digest in its own errors.
 */
/** `ifAbsent`: the write succeeds only where no blob is (If-None-Match: *); else it fails 409 BlobAlreadyExists. */
export interface WriteCondition {
  ifAbsent?: boolean;
}

const conditions = (when: WriteCondition | undefined) => (when?.ifAbsent ? { conditions: { ifNoneMatch: '*' } } : {});

export class BlobCopyAccess {
  constructor(
    private readonly blob: BlockBlobClient,
    /** The blob's name in its container (for messages). */
    readonly path: string,
  ) {}

  /** Put Blob From URL: the whole blob in one synchronous server-side request. */
  async putFromUrl(url: string, signal?: AbortSignal, when?: WriteCondition): Promise<void> {
    await this.blob.syncUploadFromURL(url, { abortSignal: signal, ...conditions(when) });
  }

  /** Put Block From URL: one range of the source, staged under `id`. */
  async stageBlockFromUrl(id: string, url: string, offset: number, count: number, signal?: AbortSignal): Promise<void> {
    await this.blob.stageBlockFromURL(id, url, offset, count, { abortSignal: signal });
  }

  async stageBlock(id: string, data: Buffer, signal?: AbortSignal): Promise<void> {
    await this.blob.stageBlock(id, data, data.length, { abortSignal: signal });
  }

  /** Put Block List: the staged blocks become the blob. */
  async commitBlocks(ids: string[], contentType: string | undefined, signal?: AbortSignal, when?: WriteCondition): Promise<void> {
    await this.blob.commitBlockList(ids, { blobHTTPHeaders: { blobContentType: contentType }, abortSignal: signal, ...conditions(when) });
  }

  /** Starts an async Copy Blob; its id, and whether the storage finished it at once. */
  async startCopyFromUrl(url: string, signal?: AbortSignal, when?: WriteCondition): Promise<{ copyId?: string; completed: boolean }> {
    // The SDK's poller starts the copy; the caller polls (with its own back-off) through copyState.
    const poller = await this.blob.beginCopyFromURL(url, { abortSignal: signal, ...conditions(when) });
    const state = poller.getOperationState() as BlobBeginCopyFromUrlPollState;
    return { copyId: state.copyId, completed: Boolean(state.isCompleted) };
  }

  /** The state of the Copy Blob on this blob (one HEAD). */
  async copyState(signal?: AbortSignal): Promise<{ status?: string; description?: string; copyId?: string }> {
    const p = await this.blob.getProperties({ abortSignal: signal });
    return { status: p.copyStatus, description: p.copyStatusDescription, copyId: p.copyId };
  }

  async abortCopy(copyId: string): Promise<void> {
    await this.blob.abortCopyFromURL(copyId);
  }

  /** One GET of the whole blob, resumed by the SDK up to 5 times if the stream breaks. */
  async download(signal?: AbortSignal): Promise<{ properties: BlobProperties; body?: NodeJS.ReadableStream }> {
    const res = await this.blob.download(0, undefined, { abortSignal: signal, maxRetryRequests: 5 });
    return {
      properties: { size: res.contentLength ?? 0, blobType: (res.blobType ?? 'BlockBlob') as BlobType, contentType: res.contentType, etag: res.etag ?? '' },
      body: res.readableStreamBody,
    };
  }
}
