import { describe, expect, it } from 'vitest';
import { backoffDelay, decide, DEFAULT_RETRY_POLICY, nominalRetryWindowMs, retrying, type RetryPolicy } from '../../src/webhooks/retry';
import type { AttemptResult, Sink } from '../../src/webhooks/sink';

const policy: RetryPolicy = { maxAttempts: 4, baseDelayMs: 1000, maxDelayMs: 3000, jitter: 0.2 };
const startedAt = new Date('2025-01-01T00:00:00Z');
const request = { method: 'POST' as const, uri: 'https://hooks.example.com/x', headers: {}, body: '{}' };
const result = (r: Partial<AttemptResult>): AttemptResult => ({ verdict: 'delivered', startedAt, latencyMs: 50, request, ...r });

describe('webhook retry policy', () => {
  it('doubles from the base, caps at the maximum, and jitters within ±20 %', () => {
    expect([1, 2, 3, 4].map((a) => backoffDelay(policy, a, () => 0.5))).toEqual([1000, 2000, 3000, 3000]);
    expect(backoffDelay(policy, 1, () => 0)).toBe(800);
    expect(backoffDelay(policy, 1, () => 1)).toBe(1200);
  });

  it('defaults to about an hour of retries in total', () => {
    const total = nominalRetryWindowMs(DEFAULT_RETRY_POLICY);
    expect(total).toBeGreaterThan(50 * 60_000);
    expect(total).toBeLessThan(70 * 60_000);
  });

  it('completes on 2xx', () => {
    expect(decide(result({ verdict: 'delivered', statusCode: 204 }), 1, policy)).toEqual({ outcome: 'completed' });
  });

  it('reschedules retryable failures after the back-off, counted from the end of the attempt', () => {
    const d = decide(result({ verdict: 'retryable', statusCode: 503 }), 2, policy, () => 0.5);
    expect(d).toEqual({ outcome: 'rescheduled', at: new Date(startedAt.getTime() + 50 + 2000) });
  });

  it('dead-letters after the last attempt, and at once for permanent failures, with reasons', () => {
    expect(decide(result({ verdict: 'retryable', error: 'no complete answer within 1000 ms' }), 4, policy)).toMatchObject({ outcome: 'dead-letter', reason: 'MaxAttemptsExceeded', description: expect.stringContaining('attempt 4 of 4') });
    expect(decide(result({ verdict: 'permanent', statusCode: 404, error: 'answered 404 Not Found' }), 1, policy)).toMatchObject({ outcome: 'dead-letter', reason: 'SubscriberRejected', description: expect.stringContaining('404') });
    expect(decide(result({ verdict: 'permanent', error: 'refused target: ...' }), 1, policy)).toMatchObject({ outcome: 'dead-letter', reason: 'TargetRefused' });
  });

  it('wraps a sink without changing what it reports', async () => {
    const sink: Sink = async () => result({ verdict: 'retryable', statusCode: 429 });
    const wrapped = retrying(sink, policy, { random: () => 0.5 });
    const out = await wrapped({ message: { attempt: 1 } as never, webhook: {} as never });
    expect(out.statusCode).toBe(429);
    expect(out.decision).toMatchObject({ outcome: 'rescheduled' });
  });
});
