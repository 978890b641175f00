import { ServiceBusAdministrationClient, type ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import type { ServiceBusEmulator } from '../src';

/**
 * Everything a queue or subscription holds now, received and deleted with the real SDK: as many
 * messages as the emulator counts there, so the wait ends on the last one, not on a timeout.
 */
export async function drain(emulator: ServiceBusEmulator, client: ServiceBusClient, entity: string, subscription?: string): Promise<ServiceBusReceivedMessage[]> {
  const expected = emulator.counts(subscription ? `${entity}/Subscriptions/${subscription}` : entity).active;
  const receiver = subscription ? client.createReceiver(entity, subscription, { receiveMode: 'receiveAndDelete' }) : client.createReceiver(entity, { receiveMode: 'receiveAndDelete' });
  const all: ServiceBusReceivedMessage[] = [];
  while (all.length < expected) all.push(...(await receiver.receiveMessages(expected - all.length, { maxWaitTimeInMs: 10_000 })));
  await receiver.close();
  return all;
}

/**
 * The real administration client, pointed at the emulator. The SDK always calls https://, and the
 * emulator serves its administration API over plain HTTP: one pipeline policy rewrites the scheme.
 */
export function administrationClient(connectionString: string): ServiceBusAdministrationClient {
  const admin = new ServiceBusAdministrationClient(connectionString);
  admin.pipeline.addPolicy({
    name: 'emulatorPlainHttp',
    sendRequest: (request, next) => {
      request.url = request.url.replace(/^https:/, 'http:');
      request.allowInsecureConnection = true;
      return next(request);
    },
  });
  return admin;
}
