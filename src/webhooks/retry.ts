import { backoffDelay, type RetryPolicy } from '../common/backoff';
import type { AttemptResult, Delivery, Sink } from './sink';

export { backoffDelay, nominalRetryWindowMs, type RetryPolicy } from '../common/backoff';

/**
 * The retry policy, as a wrapper around a sink: it lets the sink make one attempt and decides what
 * comes next — done, another attempt at a time chosen by exponential back-off with jitter, or the
 * dead-letter queue with a reason. Attempts are counted in the message, so the decision is the same
 * whichever instance handles it. The defaults (8 attempts, 30 s doubling to at most 30 min, ±20 %
 * jitter) spread the attempts over about an hour.
 */

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 8, baseDelayMs: 30_000, maxDelayMs: 30 * 60_000, jitter: 0.2 };

export type Decision =
  | { outcome: 'completed' }
  | { outcome: 'rescheduled'; at: Date }
  | { outcome: 'dead-letter'; reason: string; description: string };

export type Attempted = AttemptResult & { decision: Decision };
export type DecidingSink = (delivery: Delivery) => Promise<Attempted>;

export function retrying(sink: Sink, policy: RetryPolicy, options: { random?: () => number } = {}): DecidingSink {
  return async (delivery) => {
    const result = await sink(delivery);
    return { ...result, decision: decide(result, delivery.message.attempt, policy, options.random) };
  };
}

export function decide(result: Pick<AttemptResult, 'verdict' | 'refusal' | 'statusCode' | 'error' | 'request' | 'startedAt' | 'latencyMs'>, attempt: number, policy: RetryPolicy, random?: () => number): Decision {
  if (result.verdict === 'delivered') return { outcome: 'completed' };
  const what = `POST ${result.request.uri}: ${result.error ?? `answered ${result.statusCode}`}`;
  if (result.verdict === 'permanent') {
    return { outcome: 'dead-letter', reason: result.statusCode ? 'SubscriberRejected' : (result.refusal ?? 'TargetRefused'), description: `${what} (attempt ${attempt}; not retried: only timeouts, network errors, 408, 429 and 5xx are)` };
  }
  if (attempt >= policy.maxAttempts) {
    return { outcome: 'dead-letter', reason: 'MaxAttemptsExceeded', description: `${what} (attempt ${attempt} of ${policy.maxAttempts}, GEOREG_WEBHOOK_MAX_ATTEMPTS)` };
  }
  return { outcome: 'rescheduled', at: new Date(result.startedAt.getTime() + result.latencyMs + backoffDelay(policy, attempt, random)) };
}
