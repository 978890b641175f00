import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { expect } from 'vitest';
import type { SettledInvocation } from '../../src/local/host';

/** A dead letter as its trigger (functions/deadletters.ts) handled it: the broker's message and what was recorded. */
export interface HandledDeadLetter {
  function: string;
  region?: string;
  message: ServiceBusReceivedMessage;
  outcome: { outcome: string; reason?: string; description?: string };
}

/**
 * Collects what the local host's dead-letter triggers handle (pass `onSettled` to the host). The
 * triggers consume the dead-letter queues, so tests read dead letters here rather than off the queue.
 */
export class DeadLetterLog {
  readonly handled: HandledDeadLetter[] = [];

  readonly onSettled = (invocation: SettledInvocation): void => {
    if (!/DeadLetters$/.test(invocation.function) || !invocation.message) return;
    this.handled.push({ function: invocation.function, region: invocation.region, message: invocation.message, outcome: invocation.outcome as HandledDeadLetter['outcome'] });
  };

  /** Waits for the first handled dead letter that matches. */
  async find(predicate: (d: HandledDeadLetter) => boolean, timeoutMs = 15_000): Promise<HandledDeadLetter> {
    await expect.poll(() => this.handled.some(predicate), { timeout: timeoutMs, interval: 50 }).toBe(true);
    return this.handled.find(predicate)!;
  }
}
