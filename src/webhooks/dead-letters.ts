import { WebhookDeliveryMessage } from '../bus/messages';
import { deadLetterCause, WEBHOOK_LANE, type DeadLetter } from '../bus/settlement';
import type { Logger } from '../common/log';
import { StateNotFoundError, type StateStore } from '../storage/state-store';
import { WebhookStore } from './store';

/**
 * A delivery on the webhook queue's dead-letter queue: the delivery's record ends `failed` with the
 * reason (what `georeg webhook list-events` and the status show) unless it was delivered or already
 * failed. Nothing is sent.
 */
export async function handleDeliveryDeadLetter(body: unknown, letter: DeadLetter, deps: { state: StateStore; log: Logger }): Promise<{ outcome: 'completed'; reason?: string; description?: string }> {
  const parsed = WebhookDeliveryMessage.safeParse(body);
  if (!parsed.success) {
    deps.log.warn(`dead-lettered webhook message ${letter.messageId ?? '?'} is no delivery (${letter.reason ?? 'no reason'}): nothing to record`);
    return { outcome: 'completed' };
  }
  const message = parsed.data;
  const { reason, description } = await deadLetterCause(deps.state, WEBHOOK_LANE, letter);
  try {
    await new WebhookStore(deps.state).updateDelivery(message.webhook, message.deliveryId, (r) =>
      r.state === 'delivered' || r.state === 'failed' ? r : { ...r, state: 'failed', reason, description, nextAttemptAt: undefined },
    );
  } catch (e) {
    // No record: the webhook was deleted, or the message died before its first attempt was logged.
    if (!(e instanceof StateNotFoundError)) throw e;
  }
  deps.log.warn(`webhook ${message.webhook}: delivery ${message.deliveryId} dead-lettered: ${reason}: ${description}`);
  return { outcome: 'completed', reason, description };
}
