import * as rhea from 'rhea';
import type { AmqpMessage, StoredMessage } from '../messages';

/**
 * How Service Bus values look on the wire: the broker annotations a received message carries,
 * lock tokens (UUIDs; delivery tags in .NET GUID byte order), and the loosely typed numbers and
 * arrays of `$management` request bodies.
 */

/** The message as a receiver sees it: broker annotations added, delivery count of earlier attempts. */
export function outgoing(entry: StoredMessage, peek = false): AmqpMessage {
  const annotations: Record<string, unknown> = {
    ...entry.message.message_annotations,
    'x-opt-sequence-number': rhea.types.wrap_long(entry.seq),
    'x-opt-enqueued-time': new Date(entry.enqueuedAt),
  };
  if (entry.lock && !peek) annotations['x-opt-locked-until'] = new Date(entry.lock.until);
  if (entry.state === 'deferred') annotations['x-opt-message-state'] = 1;
  if (entry.state === 'scheduled') annotations['x-opt-message-state'] = 2;
  if (entry.deadLetterSource) annotations['x-opt-deadletter-source'] = entry.deadLetterSource;
  return { ...entry.message, delivery_count: Math.max(0, entry.deliveries - (peek ? 0 : 1)), message_annotations: annotations };
}

/** The scheduled enqueue time a sender set, in ms since the epoch. */
export function scheduledEnqueueTime(m: AmqpMessage): number | undefined {
  const at = m.message_annotations?.['x-opt-scheduled-enqueue-time'];
  return at instanceof Date ? at.getTime() : typeof at === 'number' ? at : undefined;
}

export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (Buffer.isBuffer(v)) return v.length === 8 ? Number(v.readBigInt64BE(0)) : v.readUIntBE(0, Math.min(6, v.length));
  if (v && typeof v === 'object' && 'value' in v) return toNumber((v as { value: unknown }).value);
  return Number(v ?? 0);
}

export function toArray(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (v && typeof v === 'object' && 'value' in v && Array.isArray((v as { value: unknown }).value)) return (v as { value: unknown[] }).value;
  return v === undefined || v === null ? [] : [v];
}

/** An array of AMQP longs (sequence numbers), as the SDK reads them. */
export function longArray(values: number[]): unknown {
  return rhea.types.wrap_array(
    values.map((n) => {
      const b = Buffer.alloc(8);
      b.writeBigInt64BE(BigInt(n));
      return b;
    }),
    0x81,
    undefined,
  );
}

export function uuidToBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

export function bytesToUuid(v: unknown): string {
  const b = Buffer.isBuffer(v) ? v : Buffer.from(String(v).replace(/-/g, ''), 'hex');
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Delivery tags carry the lock token in .NET GUID byte order; the SDK swaps it back. */
export function lockTokenTag(token: string): Buffer {
  const b = uuidToBytes(token);
  return Buffer.from([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], ...b.subarray(8)]);
}
