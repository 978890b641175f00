import { z } from 'zod';
import type { Logger } from '../common/log';
import { statePaths } from '../storage/paths';
import type { StateStore } from '../storage/state-store';

/**
 * The one settlement of a Service Bus handler's outcome, run by functions/ in Azure and under the
 * local host alike: `completed` and `rescheduled` (the retry is already on the bus) complete the
 * message, `dead-letter` dead-letters it with its reason and description, a throw abandons it.
 *
 * How a handler can settle depends on the host:
 * - With message actions (the local host's receiver; in Azure, the Service Bus SDK-type binding)
 *   the message is settled here, and a job that cannot succeed dead-letters on its first delivery
 *   with its own reason.
 * - Without them (Azure Functions for Node today, host.json `autoCompleteMessages: true`) the host
 *   completes on return and abandons on a throw. A dead-letter verdict is then recorded under the
 *   message id and the invocation throws; every redelivery finds the verdict and throws at once,
 *   before any work (no second copy, no second digest check), so Service Bus dead-letters the
 *   message after MaxDeliveryCount quick deliveries. The dead-letter trigger (functions/deadletters.ts)
 *   takes the verdict back, so what is recorded is the handler's reason, not MaxDeliveryCountExceeded.
 *
 * Why not `@azure/functions-extensions-servicebus` (checked with 0.2.0-preview, the only version
 * published, on Node 20 with @azure/functions 4.16.5): it installs, but it depends on
 * @azure/functions-extensions-base ^0.2.0 while @azure/functions 4.16.5 uses 0.3.0, so npm installs
 * two copies and the extension registers its message factory in a singleton @azure/functions never
 * reads (`hasResourceFactory('AzureServiceBusReceivedMessage')` is false on the copy
 * @azure/functions uses). Its message actions call the Functions host's gRPC settlement service at
 * the address the host passes the worker on its command line (`--host`, `--port`), so without the
 * host it throws "Missing required arguments" and cannot be exercised here at all. A preview that
 * cannot bind with the pinned @azure/functions and cannot be tested is not sound for the pipeline.
 * When it is, its `actions` (complete / abandon / deadletter(message, props, reason, description))
 * fit `MessageActions` below and the verdict path falls away.
 */

/** The verdicts of replication jobs and of webhook deliveries (their message ids never collide within a lane). */
export const REPLICATION_LANE = 'replication';
export const WEBHOOK_LANE = 'webhook-deliveries';

export type HandlerOutcome = { outcome: 'completed' } | { outcome: 'rescheduled' } | { outcome: 'dead-letter'; reason: string; description: string };

/** Settles the message being handled (bound to it: no message argument). */
export interface MessageActions {
  complete(): Promise<void>;
  abandon(): Promise<void>;
  deadLetter(reason: string, description: string): Promise<void>;
}

/** Which message is being handled, as the trigger metadata says. */
export interface Delivery {
  /** Names the verdicts of one kind of message ('replication', 'webhook-deliveries'). */
  lane: string;
  messageId: string;
  /** Stable across redeliveries of one message, different for a later message with the same id. */
  sequenceNumber?: string;
  deliveryCount: number;
}

export const Verdict = z.object({
  version: z.literal(1),
  lane: z.string(),
  messageId: z.string(),
  sequenceNumber: z.string().optional(),
  reason: z.string(),
  description: z.string(),
  recordedAt: z.string(),
});
export type Verdict = z.infer<typeof Verdict>;

/** Thrown so the Functions host abandons a message whose handler decided to dead-letter it. */
export class DeadLetterPendingError extends Error {
  constructor(readonly verdict: Verdict) {
    super(`${verdict.reason}: ${verdict.description} (dead-letter pending: without message actions Service Bus dead-letters this message after MaxDeliveryCount deliveries; each redelivery stops here without redoing the work)`);
    this.name = 'DeadLetterPendingError';
  }
}

export interface SettleDeps {
  state: StateStore;
  log: Logger;
  /** Absent when the host settles by the invocation's result (Azure Functions for Node). */
  actions?: MessageActions;
}

export async function settle<O extends HandlerOutcome>(delivery: Delivery, handle: () => Promise<O>, deps: SettleDeps): Promise<O> {
  const { actions } = deps;
  // A first delivery cannot have a verdict yet: no read on the common path.
  if (!actions && delivery.deliveryCount > 1) {
    const found = (await deps.state.get(statePaths.deadLetterVerdict(delivery.lane, delivery.messageId), Verdict))?.value;
    if (found && found.sequenceNumber === delivery.sequenceNumber) throw new DeadLetterPendingError(found);
  }
  let outcome: O;
  try {
    outcome = await handle();
  } catch (e) {
    if (actions) {
      await actions.abandon().catch((abandonError: Error) => deps.log.warn(`${delivery.messageId}: cannot abandon (${abandonError.message}); its lock expires and Service Bus redelivers it`));
    }
    throw e;
  }
  if (outcome.outcome !== 'dead-letter') {
    await actions?.complete();
    return outcome;
  }
  if (actions) {
    await actions.deadLetter(outcome.reason, outcome.description);
    return outcome;
  }
  const verdict: Verdict = {
    version: 1,
    lane: delivery.lane,
    messageId: delivery.messageId,
    sequenceNumber: delivery.sequenceNumber,
    reason: outcome.reason,
    description: outcome.description,
    recordedAt: new Date().toISOString(),
  };
  await deps.state.put(statePaths.deadLetterVerdict(delivery.lane, delivery.messageId), verdict);
  throw new DeadLetterPendingError(verdict);
}

/** What a dead-letter trigger knows of a dead letter (the broker's reason and description). */
export interface DeadLetter {
  messageId?: string;
  reason?: string;
  description?: string;
  deliveryCount?: number;
}

/**
 * Why a message was dead-lettered: the handler's own verdict where one was recorded (taken: the
 * dead letter is handled once), else what Service Bus says (MaxDeliveryCountExceeded, an expiry).
 */
export async function deadLetterCause(state: StateStore, lane: string, letter: DeadLetter): Promise<{ reason: string; description: string }> {
  let verdict: Verdict | undefined;
  if (letter.messageId) {
    const name = statePaths.deadLetterVerdict(lane, letter.messageId);
    verdict = (await state.get(name, Verdict))?.value;
    if (verdict) await state.delete(name);
  }
  return {
    reason: verdict?.reason ?? letter.reason ?? 'DeadLettered',
    description: verdict?.description ?? letter.description ?? `dead-lettered by Service Bus after ${letter.deliveryCount ?? '?'} deliveries`,
  };
}
