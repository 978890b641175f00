import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { BlobServiceClient, type StorageRetryOptions } from '@azure/storage-blob';

/**
 * How georeg reaches a storage account: a connection string (Azurite, or a key-based account), or an
 * account URL with Microsoft Entra ID (`DefaultAzureCredential`: managed identity in a Function App,
 * `az login` on a laptop). Transient failures are retried by the SDK's own policy, configured here
 * once; no caller hand-rolls retries.
 */

export interface AccountAccess {
  connectionString?: string;
  accountUrl?: string;
  /** With accountUrl; DefaultAzureCredential when absent. */
  credential?: TokenCredential;
  retryOptions?: StorageRetryOptions;
}

/** Exponential back-off, 5 tries; no per-try timeout, since a server-side copy of a large blob is one long request. */
export const DEFAULT_RETRY_OPTIONS: StorageRetryOptions = { maxTries: 5, retryDelayInMs: 250, maxRetryDelayInMs: 8_000 };

export function blobServiceClient(access: AccountAccess, what: string): BlobServiceClient {
  const retryOptions = { ...DEFAULT_RETRY_OPTIONS, ...access.retryOptions };
  if (access.connectionString) {
    try {
      return BlobServiceClient.fromConnectionString(access.connectionString, { retryOptions });
    } catch (e) {
      throw new Error(`${what}: the storage connection string does not parse (${(e as Error).message}); expected DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...[;BlobEndpoint=...]`);
    }
  }
  if (access.accountUrl) {
    return new BlobServiceClient(access.accountUrl, access.credential ?? new DefaultAzureCredential(), { retryOptions });
  }
  throw new Error(`${what}: give a storage connection string or an account URL (https://<account>.blob.core.windows.net)`);
}

/** HTTP status of an Azure SDK RestError, if it is one. */
export function statusOf(e: unknown): number | undefined {
  return typeof e === 'object' && e !== null && typeof (e as { statusCode?: unknown }).statusCode === 'number' ? (e as { statusCode: number }).statusCode : undefined;
}

/** Storage error code (`BlobNotFound`, `ConditionNotMet`, ...) of an Azure SDK RestError, if it has one. */
export function codeOf(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const err = e as { code?: unknown; details?: { errorCode?: unknown } };
  if (typeof err.details?.errorCode === 'string') return err.details.errorCode;
  return typeof err.code === 'string' ? err.code : undefined;
}

export function isNotFound(e: unknown): boolean {
  return statusOf(e) === 404;
}

/** A storage failure with what a person needs to act on it: the region, the blob, and a hint. */
export class RegionStorageError extends Error {
  readonly statusCode?: number;
  readonly code?: string;
  constructor(message: string, override readonly cause?: unknown) {
    const status = statusOf(cause);
    const code = codeOf(cause);
    const detail = cause instanceof Error ? `: ${status ? `${status} ${code ?? ''} `.trimEnd() + ' ' : ''}${firstLine(cause.message)}` : '';
    super(`${message}${detail}`);
    this.name = 'RegionStorageError';
    this.statusCode = status;
    this.code = code;
  }
}

function firstLine(s: string): string {
  const line = s.split('\n')[0];
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}
