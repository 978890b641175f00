import { assertHostAllowed, UnsafeTargetError, type AddressPolicy } from '../common/address-safety';

/**
 * Where a webhook may point: the address rules shared with replica storage (common/address-safety),
 * checked twice — when the webhook is defined (IP literals, loopback names) and when connecting
 * (every address the name resolves to, in the socket's own lookup, so a DNS answer cannot change
 * between check and use).
 */

export { UnsafeTargetError } from '../common/address-safety';

export function webhookTargets(allowPrivate: boolean): AddressPolicy {
  return { allowPrivate, setting: 'GEOREG_WEBHOOK_ALLOW_PRIVATE', what: 'webhooks' };
}

/** The definition-time check: an absolute http(s) URL without fragments. Returns the normalized URL. */
export function checkServiceUri(uri: string, allowPrivate: boolean): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new UnsafeTargetError(`service URI "${redactUri(uri)}" is not an absolute URL (e.g. https://hooks.example.com/georeg)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UnsafeTargetError(`service URI scheme "${url.protocol}" is not allowed: use http or https`);
  if (!url.hostname) throw new UnsafeTargetError('service URI has no host');
  assertHostAllowed(url.hostname, webhookTargets(allowPrivate));
  url.hash = '';
  return url.toString();
}

/** A URI fit for logs and listings: no password, no query values (tokens often travel there). */
export function redactUri(uri: string): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return uri.replace(/\/\/[^/@]*@/, '//***@').replace(/\?.*$/, '?***');
  }
  if (url.username || url.password) {
    url.username = url.username ? '***' : '';
    url.password = '';
  }
  for (const key of [...url.searchParams.keys()]) url.searchParams.set(key, '***');
  return url.toString();
}
