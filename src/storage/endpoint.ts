import { BlobServiceClient } from '@azure/storage-blob';
import { assertResolvesSafely, UnsafeTargetError, type AddressPolicy } from '../common/address-safety';

/**
 * Where a region's storage is, as a comparable value: the blob service endpoint a connection string
 * or account URL leads to, and the identity of the registry data under it. Two regions on the same
 * identity are one copy of the data: a replica there would replicate onto its source, and purging
 * it would delete the other region's registry. Also the endpoint check for storage an admin types,
 * with the address rules webhooks use (common/address-safety).
 */

export interface StorageEndpoint {
  /** The blob service URL, without SAS or credentials (e.g. https://acct.blob.core.windows.net). */
  url: string;
  scheme: 'http' | 'https';
  /** Lower case, no trailing dot, no IPv6 brackets. */
  host: string;
  /** The port when it is not the scheme's default (URL drops a default one). */
  port?: number;
  account: string;
  /** The account is the first path segment (Azurite, IP endpoints), not the first label of the host. */
  pathStyle: boolean;
  /** Reached with an Entra ID token (an account URL): every request carries a bearer token for Azure Storage. */
  sendsToken: boolean;
}

/**
 * Where a Microsoft Entra ID token for Azure Storage may be sent: the storage endpoints of Azure's
 * clouds (private endpoints keep these names). The token's audience is every account the identity
 * may use, home included, so it must never reach a host that is not Azure Storage.
 */
const AZURE_STORAGE_HOSTS = /\.(blob\.core\.windows\.net|blob\.core\.chinacloudapi\.cn|blob\.core\.usgovcloudapi\.net|z\d+\.blob\.storage\.azure\.net)$/;

export class StorageEndpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StorageEndpointError';
  }
}

/** The endpoint a connection string or account URL leads to. Throws StorageEndpointError when it does not parse. */
export function storageEndpoint(access: { connectionString?: string; accountUrl?: string }): StorageEndpoint {
  let raw: string;
  if (access.connectionString) {
    try {
      // The SDK's own parser: the endpoint georeg compares is the one it will call.
      raw = BlobServiceClient.fromConnectionString(access.connectionString).url;
    } catch (e) {
      throw new StorageEndpointError(
        `the storage connection string does not parse (${(e as Error).message}): expected DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>[;EndpointSuffix=...] or BlobEndpoint=<url>;SharedAccessSignature=<sas>`,
      );
    }
  } else if (access.accountUrl) {
    raw = access.accountUrl;
  } else {
    throw new StorageEndpointError('give a storage connection string or an account URL (https://<account>.blob.core.windows.net)');
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new StorageEndpointError('the storage endpoint is not an absolute URL: use https://<account>.blob.core.windows.net');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new StorageEndpointError(`the storage endpoint's scheme "${url.protocol}" is not one storage answers on: use https`);
  if (url.username || url.password) throw new StorageEndpointError('the storage endpoint carries a user name or password: give the account key or SAS in the connection string instead');
  const host = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  const segments = url.pathname.split('/').filter(Boolean);
  const pathStyle = segments.length > 0;
  const account = (pathStyle ? segments[0] : host.split('.')[0]).toLowerCase();
  return {
    url: `${url.protocol}//${url.host}${pathStyle ? `/${segments.join('/')}` : ''}`,
    scheme: url.protocol === 'https:' ? 'https' : 'http',
    host,
    port: url.port ? Number(url.port) : undefined,
    account,
    pathStyle,
    sendsToken: !access.connectionString,
  };
}

/**
 * The identity of a region's registry data: host, port, account (when path-style), container and
 * root. The scheme is left out on purpose: http and https reach the same account, so a replica on
 * `http://` of home's account is home's storage all the same.
 */
export function storageIdentity(endpoint: StorageEndpoint, container: string, root: string): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  const authority = endpoint.port === undefined ? host : `${host}:${endpoint.port}`;
  return `${authority}/${endpoint.pathStyle ? `${endpoint.account}/` : ''}${container}/${root.replace(/\/+$/, '')}`;
}

export function storageTargets(allowPrivate: boolean): AddressPolicy {
  return { allowPrivate, setting: 'GEOREG_ALLOW_PRIVATE_STORAGE', what: 'storage requests' };
}

/**
 * The check of storage an admin gives (`replication create`): https on a public address, or, with
 * GEOREG_ALLOW_PRIVATE_STORAGE, http and private or loopback addresses too (Azurite). Link-local,
 * metadata and wire-server addresses are refused either way. Nothing is sent to the endpoint here.
 */
export async function checkStorageEndpoint(endpoint: StorageEndpoint, allowPrivate: boolean): Promise<void> {
  if (endpoint.sendsToken && !AZURE_STORAGE_HOSTS.test(endpoint.host)) {
    throw new StorageEndpointError(
      `${endpoint.url}: an account URL is reached with the identity's token for Azure Storage, which only Azure Storage hosts receive (https://<account>.blob.core.windows.net, or another Azure cloud's); for any other endpoint give a connection string`,
    );
  }
  if (endpoint.scheme !== 'https' && !allowPrivate) {
    throw new StorageEndpointError(`${endpoint.url}: storage is reached over https only (the account key or token would cross the network in the clear); set GEOREG_ALLOW_PRIVATE_STORAGE=true to allow http to a local emulator`);
  }
  try {
    await assertResolvesSafely(endpoint.host, storageTargets(allowPrivate));
  } catch (e) {
    if (e instanceof UnsafeTargetError) throw new StorageEndpointError(`${endpoint.url}: ${e.message}`);
    throw e;
  }
}
