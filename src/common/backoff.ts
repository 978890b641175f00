/**
 * Exponential back-off with jitter, for retries that go through scheduled Service Bus messages
 * (webhook deliveries, replication jobs): attempts are counted in the message, so every instance
 * decides the same way.
 */

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]. */
  jitter: number;
}

/** The wait after attempt `attempt` (1-based) failed: base × 2^(attempt-1), capped, jittered. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exponential = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const factor = 1 - policy.jitter + 2 * policy.jitter * random();
  return Math.max(0, Math.round(exponential * factor));
}

/** The nominal (un-jittered) total wait across every retry: what the settings add up to. */
export function nominalRetryWindowMs(policy: RetryPolicy): number {
  let total = 0;
  for (let a = 1; a < policy.maxAttempts; a++) total += Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (a - 1));
  return total;
}
