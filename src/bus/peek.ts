import type { ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';
import Long from 'long';

/**
 * Peeks an entity from its first message. `peekMessages()` without `fromSequenceNumber` goes on
 * from the last message peeked through the same management link, which the SDK shares between
 * every receiver of one entity in a ServiceBusClient: a second look would start where the first
 * stopped and see nothing. Peeking changes nothing (locked messages are seen too).
 */
export async function peekFromStart(receiver: ServiceBusReceiver, max: number): Promise<ServiceBusReceivedMessage[]> {
  const out: ServiceBusReceivedMessage[] = [];
  let from = Long.ZERO;
  while (out.length < max) {
    const page = await receiver.peekMessages(Math.min(250, max - out.length), { fromSequenceNumber: from });
    if (page.length === 0) break;
    out.push(...page);
    from = (page[page.length - 1].sequenceNumber ?? from).add(1);
  }
  return out;
}
