import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { TokenCredential } from '@azure/identity';
import { defaultAzureCredential } from '../common/identity';
import { BlobServiceClient, newPipeline, type RequestPolicyFactory, type StorageRetryOptions } from '@azure/storage-blob';
import { assertHostAllowed, safeLookup, type AddressPolicy } from '../common/address-safety';

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
  /**
   * Check every request's address as webhooks are checked: the host when it is an IP literal, and
   * every address a name resolves to inside the socket's own lookup (a DNS answer cannot change
   * between check and connect). For storage an admin gave at run time.
   */
  targets?: AddressPolicy;
}

/** Exponential back-off, 5 tries; no per-try timeout, since a server-side copy of a large blob is one long request. */
export const DEFAULT_RETRY_OPTIONS: StorageRetryOptions = { maxTries: 5, retryDelayInMs: 250, maxRetryDelayInMs: 8_000 };

export function blobServiceClient(access: AccountAccess, what: string): BlobServiceClient {
  const client = unguardedClient(access, what);
  if (!access.targets) return client;
  const pipeline = newPipeline(client.credential, { retryOptions: { ...DEFAULT_RETRY_OPTIONS, ...access.retryOptions } });
  pipeline.factories.push(addressGuard(access.targets));
  return new BlobServiceClient(client.url, pipeline);
}

function unguardedClient(access: AccountAccess, what: string): BlobServiceClient {
  const retryOptions = { ...DEFAULT_RETRY_OPTIONS, ...access.retryOptions };
  if (access.connectionString) {
    try {
      return BlobServiceClient.fromConnectionString(access.connectionString, { retryOptions });
    } catch (e) {
      throw new Error(`${what}: the storage connection string does not parse (${(e as Error).message}); expected DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...[;BlobEndpoint=...]`);
    }
  }
  if (access.accountUrl) {
    return new BlobServiceClient(access.accountUrl, access.credential ?? defaultAzureCredential(), { retryOptions });
  }
  throw new Error(`${what}: give a storage connection string or an account URL (https://<account>.blob.core.windows.net)`);
}

/** Sends each request through an agent whose lookup checks the addresses; refuses an IP literal host it may not reach. */
function addressGuard(policy: AddressPolicy): RequestPolicyFactory {
  const agents: Record<string, HttpAgent> = {
    'http:': new HttpAgent({ keepAlive: true, lookup: safeLookup(policy) }),
    'https:': new HttpsAgent({ keepAlive: true, lookup: safeLookup(policy) }),
  };
  return {
    create: (next) => ({
      sendRequest: async (request) => {
        const url = new URL(request.url);
        assertHostAllowed(url.hostname, policy);
        (request as { agent?: HttpAgent }).agent = agents[url.protocol];
        return next.sendRequest(request);
      },
    }),
  };
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
