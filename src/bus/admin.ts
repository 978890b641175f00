import type { TokenCredential } from '@azure/identity';
import { parseServiceBusConnectionString, ServiceBusAdministrationClient, type ServiceBusAdministrationClientOptions } from '@azure/service-bus';

/**
 * The one way georeg makes a Service Bus administration client (queues, topics, subscriptions,
 * rules, runtime counts), so the same management code runs against Azure, georeg's embedded
 * emulator and Microsoft's emulator container.
 */

type PipelinePolicy = Parameters<ServiceBusAdministrationClient['pipeline']['addPolicy']>[0];

export type AdministrationTarget = string | { fullyQualifiedNamespace: string; credential: TokenCredential };

export function createAdministrationClient(target: AdministrationTarget, options: ServiceBusAdministrationClientOptions = {}): ServiceBusAdministrationClient {
  if (typeof target !== 'string') return new ServiceBusAdministrationClient(target.fullyQualifiedNamespace, target.credential, options);
  let endpoint: string;
  try {
    endpoint = parseServiceBusConnectionString(target).fullyQualifiedNamespace;
  } catch (e) {
    throw new Error(`Service Bus connection string: ${(e as Error).message} (expected Endpoint=sb://<namespace>/;SharedAccessKeyName=...;SharedAccessKey=...)`);
  }
  const client = new ServiceBusAdministrationClient(target, options);
  // The SDK always calls https://<endpoint>/, but emulators serve the administration API over plain
  // HTTP. (7.9.5 ignores options.additionalPolicies, hence the pipeline's own addPolicy.)
  if (usesDevelopmentEmulator(target)) client.pipeline.addPolicy(plainHttpTo(endpoint));
  return client;
}

export function usesDevelopmentEmulator(connectionString: string): boolean {
  return /(?:^|;)\s*UseDevelopmentEmulator\s*=\s*true\s*(?:;|$)/i.test(connectionString);
}

/** Sends requests for `endpoint` (host[:port]) over http instead of https; nothing else changes. */
function plainHttpTo(endpoint: string): PipelinePolicy {
  const prefix = `https://${endpoint.toLowerCase()}/`;
  return {
    name: 'georegDevelopmentEmulatorHttp',
    sendRequest(request, next) {
      if (request.url.toLowerCase().startsWith(prefix)) {
        request.url = `http://${request.url.slice('https://'.length)}`;
        request.allowInsecureConnection = true;
      }
      return next(request);
    },
  };
}
