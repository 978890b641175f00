import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Every delivery is signed: HMAC-SHA256, keyed with the webhook's secret, over
 * `<timestamp>.<body>` — the Unix time in seconds from `X-Georeg-Timestamp`, a dot, and the raw
 * request body — hex-encoded in `X-Georeg-Signature: v1=<hex>`. The timestamp is inside the MAC,
 * so a subscriber that refuses stale timestamps refuses replays. Each attempt is signed afresh.
 * (docs/webhooks.md has the subscriber's side in Node and in openssl.)
 */

export const TIMESTAMP_HEADER = 'X-Georeg-Timestamp';
export const SIGNATURE_HEADER = 'X-Georeg-Signature';
export const SIGNATURE_SCHEME = 'v1';
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function sign(secret: string, timestamp: number, body: string | Buffer): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/** The two headers for one attempt. */
export function signatureHeaders(secret: string, body: string | Buffer, now: Date = new Date()): Record<string, string> {
  const timestamp = Math.floor(now.getTime() / 1000);
  return { [TIMESTAMP_HEADER]: String(timestamp), [SIGNATURE_HEADER]: `${SIGNATURE_SCHEME}=${sign(secret, timestamp, body)}` };
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

/**
 * The subscriber's check: the header value may list several `v1=` signatures (comma-separated),
 * any of which may match; the timestamp must be within `toleranceSeconds` of now.
 */
export function verifySignature(input: {
  secret: string;
  body: string | Buffer;
  timestamp: string | undefined;
  signature: string | undefined;
  toleranceSeconds?: number;
  now?: Date;
}): VerifyResult {
  if (!input.timestamp || !/^\d+$/.test(input.timestamp)) return { ok: false, reason: `missing or malformed ${TIMESTAMP_HEADER}` };
  if (!input.signature) return { ok: false, reason: `missing ${SIGNATURE_HEADER}` };
  const timestamp = Number(input.timestamp);
  const age = Math.abs((input.now ?? new Date()).getTime() / 1000 - timestamp);
  if (age > (input.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return { ok: false, reason: `timestamp is ${Math.round(age)} s away from now: stale or replayed` };
  const expected = Buffer.from(sign(input.secret, timestamp, input.body), 'hex');
  const presented = input.signature
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.startsWith(`${SIGNATURE_SCHEME}=`))
    .map((p) => Buffer.from(p.slice(SIGNATURE_SCHEME.length + 1), 'hex'));
  if (!presented.length) return { ok: false, reason: `${SIGNATURE_HEADER} has no ${SIGNATURE_SCHEME}= signature` };
  return presented.some((p) => p.length === expected.length && timingSafeEqual(p, expected)) ? { ok: true } : { ok: false, reason: 'signature does not match the body' };
}
