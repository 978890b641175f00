import type { Logger } from '../../common/log';
import { Namespace, type EntityCounts } from './entities';
import { EmulatorServer, newKey } from './server';
import { parseTopology, type Topology, type TopologyInput } from './topology';

/**
 * georeg's embedded Service Bus emulator: an AMQP 1.0 server (rhea) that the unmodified
 * @azure/service-bus SDK talks to with an ordinary `UseDevelopmentEmulator=true` connection
 * string. Entities come from a Config.json-shaped topology (the same file Microsoft's emulator
 * reads). Everything is in memory: closing or restarting it loses every queued message.
 */

export { defaultTopologyPath, loadTopologyFile, parseTopology, type Topology } from './topology';
export { Namespace, type EntityCounts } from './entities';

export interface ServiceBusEmulatorOptions {
  /** 0 (default) picks a free port; 5672 is what `UseDevelopmentEmulator` clients expect by default. */
  port?: number;
  host?: string;
  /** A Config.json-shaped object (validated here; a bad one throws naming the field). */
  topology: Topology | TopologyInput | Record<string, unknown>;
  keyName?: string;
  /** The namespace's shared access key; a new random one when omitted. */
  key?: string;
  log?: Logger;
}

export interface ServiceBusEmulator {
  connectionString: string;
  port: number;
  namespace: Namespace;
  /** Message counts of a queue or `topic/Subscriptions/name`. */
  counts(path: string): EntityCounts;
  close(): Promise<void>;
}

export async function startServiceBusEmulator(options: ServiceBusEmulatorOptions): Promise<ServiceBusEmulator> {
  const host = options.host ?? '127.0.0.1';
  const keyName = options.keyName ?? 'RootManageSharedAccessKey';
  const key = options.key ?? newKey();
  const namespace = Namespace.fromTopology(parseTopology(options.topology));
  const server = new EmulatorServer(namespace, { host, port: options.port ?? 0, keyName, key, log: options.log });
  const port = await server.listen();
  return {
    connectionString: `Endpoint=sb://${host}:${port};SharedAccessKeyName=${keyName};SharedAccessKey=${key};UseDevelopmentEmulator=true;`,
    port,
    namespace,
    counts: (path) => namespace.counts(path),
    async close() {
      await server.close();
      namespace.close();
    },
  };
}
