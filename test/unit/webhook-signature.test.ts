import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sign, signatureHeaders, verifySignature } from '../../src/webhooks/signature';

const secret = 'whsec-test-secret-0123456789';
const body = JSON.stringify({ id: 'e1', action: 'push', target: { repository: 'web', tag: '1.2' } });
const now = new Date('2025-01-01T00:00:00Z');

describe('webhook signatures', () => {
  it('is HMAC-SHA256 over "<timestamp>.<body>", hex, as the docs tell subscribers', () => {
    const h = signatureHeaders(secret, body, now);
    expect(h['X-Georeg-Timestamp']).toBe('1735689600');
    const expected = createHmac('sha256', secret).update(`1735689600.${body}`).digest('hex');
    expect(h['X-Georeg-Signature']).toBe(`v1=${expected}`);
    expect(sign(secret, 1735689600, Buffer.from(body))).toBe(expected);
  });

  it('verifies an untouched delivery', () => {
    const h = signatureHeaders(secret, body, now);
    expect(verifySignature({ secret, body, timestamp: h['X-Georeg-Timestamp'], signature: h['X-Georeg-Signature'], now })).toEqual({ ok: true });
  });

  it('fails a tampered body, a wrong secret, a moved timestamp and a stale one', () => {
    const h = signatureHeaders(secret, body, now);
    const base = { secret, body, timestamp: h['X-Georeg-Timestamp'], signature: h['X-Georeg-Signature'], now };
    expect(verifySignature({ ...base, body: body.replace('1.2', '6.6') })).toEqual({ ok: false, reason: 'signature does not match the body' });
    expect(verifySignature({ ...base, secret: 'another-secret-0123456789' }).ok).toBe(false);
    expect(verifySignature({ ...base, timestamp: String(Number(base.timestamp) + 1) }).ok).toBe(false);
    const late = verifySignature({ ...base, now: new Date(now.getTime() + 301_000) });
    expect(late).toMatchObject({ ok: false, reason: expect.stringContaining('stale') });
    expect(verifySignature({ ...base, now: new Date(now.getTime() + 301_000), toleranceSeconds: 600 }).ok).toBe(true);
  });

  it('accepts any of several v1 signatures (secret rotation) and refuses missing headers', () => {
    const h = signatureHeaders(secret, body, now);
    const both = `v1=${'0'.repeat(64)}, ${h['X-Georeg-Signature']}`;
    expect(verifySignature({ secret, body, timestamp: h['X-Georeg-Timestamp'], signature: both, now }).ok).toBe(true);
    expect(verifySignature({ secret, body, timestamp: undefined, signature: h['X-Georeg-Signature'], now }).ok).toBe(false);
    expect(verifySignature({ secret, body, timestamp: h['X-Georeg-Timestamp'], signature: undefined, now }).ok).toBe(false);
    expect(verifySignature({ secret, body, timestamp: h['X-Georeg-Timestamp'], signature: 'sha256=abc', now }).ok).toBe(false);
  });
});
