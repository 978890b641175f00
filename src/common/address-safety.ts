import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { lookup as dnsLookupAsync } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';

/**
 * Which network addresses georeg may send a request to, for every target an admin types: webhook
 * URIs and replica storage endpoints. The request comes from inside the Function App's network, so
 * without these rules a target could read the instance metadata service or the platform's wire
 * server. Link-local, metadata and wire-server addresses are refused always; private and loopback
 * ones only when the caller's setting allows them (GEOREG_WEBHOOK_ALLOW_PRIVATE,
 * GEOREG_ALLOW_PRIVATE_STORAGE; the local stack turns both on, everything listens on 127.0.0.1).
 */

/** Who asks: whether private targets are allowed, the setting that allows them, what is refused. */
export interface AddressPolicy {
  allowPrivate: boolean;
  /** The setting that allows private and loopback targets, named in the refusal. */
  setting: string;
  /** What is never sent to a forbidden address, e.g. "webhooks", "storage requests". */
  what: string;
}

export type AddressClass = 'public' | 'private' | 'loopback' | 'forbidden';

export class UnsafeTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeTargetError';
  }
}

interface Range {
  base: bigint;
  bits: number;
  width: 32 | 128;
  cls: Exclude<AddressClass, 'public'>;
  what: string;
}

const RANGES: Range[] = [
  // Always refused: link-local (the metadata services live here), cloud metadata and wire servers, unspecified, multicast, reserved.
  v4('169.254.0.0', 16, 'forbidden', 'link-local / instance metadata'),
  v4('168.63.129.16', 32, 'forbidden', "Azure's platform wire server"),
  v4('100.100.100.200', 32, 'forbidden', 'cloud metadata service'),
  v4('0.0.0.0', 8, 'forbidden', '"this network"'),
  v4('224.0.0.0', 4, 'forbidden', 'multicast'),
  v4('240.0.0.0', 4, 'forbidden', 'reserved / broadcast'),
  v6('fe80::', 10, 'forbidden', 'IPv6 link-local'),
  v6('fd00::', 8, 'forbidden', 'IPv6 unique-local fd00::/8 (metadata services, e.g. fd00:ec2::254)'),
  v6('ff00::', 8, 'forbidden', 'IPv6 multicast'),
  v6('::', 128, 'forbidden', 'unspecified address'),
  // Refused unless private targets are allowed.
  v4('127.0.0.0', 8, 'loopback', 'loopback'),
  v6('::1', 128, 'loopback', 'loopback'),
  v4('10.0.0.0', 8, 'private', 'private (RFC 1918)'),
  v4('172.16.0.0', 12, 'private', 'private (RFC 1918)'),
  v4('192.168.0.0', 16, 'private', 'private (RFC 1918)'),
  v4('100.64.0.0', 10, 'private', 'carrier-grade NAT'),
  v4('198.18.0.0', 15, 'private', 'benchmarking network'),
  v6('fc00::', 8, 'private', 'IPv6 unique-local'),
];

/** The class of an IP address (v4 or v6, with IPv4-mapped and NAT64 forms judged by the IPv4 inside). */
export function classifyAddress(address: string): { cls: AddressClass; what: string } {
  const ip = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(ip);
  if (family === 0) throw new UnsafeTargetError(`"${address}" is not an IP address`);
  if (family === 6) {
    const n = parseV6(ip);
    const embedded = embeddedV4(n);
    if (embedded !== undefined) return classifyV4(embedded);
    for (const r of RANGES) if (r.width === 128 && inRange(n, r)) return { cls: r.cls, what: r.what };
    return { cls: 'public', what: 'public' };
  }
  return classifyV4(parseV4(ip));
}

function classifyV4(n: bigint): { cls: AddressClass; what: string } {
  for (const r of RANGES) if (r.width === 32 && inRange(n, r)) return { cls: r.cls, what: r.what };
  return { cls: 'public', what: 'public' };
}

/** Throws UnsafeTargetError when the address may not be sent to under this policy. */
export function assertAddressAllowed(address: string, policy: AddressPolicy, host = address): void {
  const { cls, what } = classifyAddress(address);
  if (cls === 'forbidden') throw new UnsafeTargetError(`${host} resolves to ${address}, a ${what} address: ${policy.what} are never sent there`);
  if ((cls === 'private' || cls === 'loopback') && !policy.allowPrivate) {
    throw new UnsafeTargetError(`${host} resolves to ${address}, a ${what} address: set ${policy.setting}=true to allow private and loopback targets`);
  }
}

/**
 * The check of a URL's host when the target is defined: an IP literal is judged now, a loopback
 * name (`localhost`) refused unless private targets are allowed; other names are judged when their
 * addresses are known (see resolvesSafely, safeLookup).
 */
export function assertHostAllowed(hostname: string, policy: AddressPolicy): void {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) assertAddressAllowed(host, policy, hostname);
  else if (!policy.allowPrivate && /(^|\.)localhost\.?$/i.test(host)) throw new UnsafeTargetError(`${host} is a loopback name: set ${policy.setting}=true to allow private and loopback targets`);
}

/** Resolves a host name now and checks every address it has (an IP literal is checked as it is). */
export async function assertResolvesSafely(hostname: string, policy: AddressPolicy): Promise<void> {
  assertHostAllowed(hostname, policy);
  const host = hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) return;
  let addresses: LookupAddress[];
  try {
    addresses = await dnsLookupAsync(host, { all: true });
  } catch (e) {
    throw new UnsafeTargetError(`${host} does not resolve (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): check the host name`);
  }
  if (!addresses.length) throw new UnsafeTargetError(`${host} resolves to no address`);
  for (const a of addresses) assertAddressAllowed(a.address, policy, host);
}

/** Every address a name resolves to is checked in the socket's own lookup: nothing can change between check and connect. */
export function safeLookup(policy: AddressPolicy): LookupFunction {
  return ((hostname: string, opts: { all?: boolean; family?: number }, callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void) => {
    dnsLookup(hostname, { ...opts, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      try {
        if (!addresses.length) throw new UnsafeTargetError(`${hostname} resolves to no address`);
        for (const a of addresses) assertAddressAllowed(a.address, policy, hostname);
      } catch (e) {
        return callback(e as Error, '');
      }
      if (opts.all) callback(null, addresses);
      else callback(null, addresses[0].address, addresses[0].family);
    });
  }) as unknown as LookupFunction;
}

function v4(base: string, bits: number, cls: Range['cls'], what: string): Range {
  return { base: parseV4(base), bits, width: 32, cls, what };
}

function v6(base: string, bits: number, cls: Range['cls'], what: string): Range {
  return { base: parseV6(base), bits, width: 128, cls, what };
}

function inRange(n: bigint, r: Range): boolean {
  const shift = BigInt(r.width - r.bits);
  return n >> shift === r.base >> shift;
}

function parseV4(ip: string): bigint {
  return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseV6(ip: string): bigint {
  let text = ip;
  // A dotted IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const n = parseV4(dotted[1]);
    text = `${text.slice(0, -dotted[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

/** IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96, not :: or ::1) and NAT64 (64:ff9b::/96) carry an IPv4 address. */
function embeddedV4(n: bigint): bigint | undefined {
  const high = n >> 32n;
  const low = n & 0xffffffffn;
  if (high === 0xffffn) return low;
  if (high === 0x64ff9b0000000000000000n) return low;
  if (high === 0n && low > 1n) return low;
  return undefined;
}
