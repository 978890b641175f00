import type { ServiceBusClient, ServiceBusReceivedMessage } from '@azure/service-bus';

/** Everything a queue or subscription holds now, received and deleted, with the real SDK. */
export async function drain(client: ServiceBusClient, entity: string, subscription?: string): Promise<ServiceBusReceivedMessage[]> {
  const receiver = subscription ? client.createReceiver(entity, subscription, { receiveMode: 'receiveAndDelete' }) : client.createReceiver(entity, { receiveMode: 'receiveAndDelete' });
  const all: ServiceBusReceivedMessage[] = [];
  for (;;) {
    const batch = await receiver.receiveMessages(50, { maxWaitTimeInMs: 300 });
    if (!batch.length) break;
    all.push(...batch);
  }
  await receiver.close();
  return all;
}
