import type { Logger } from '../../common/log';
import { createAdminServer } from './admin/http';
import { Namespace, type EntityCounts } from './entities';
import { listenShared } from './listener';
import { EmulatorServer, newKey } from './server';
import { parseTopology, type Topology, type TopologyInput } from './topology';

/**
 * georeg's embedded Service Bus emulator: an AMQP 1.0 server (rhea) that the unmodified
 * @azure/service-bus SDK talks to with an ordinary `UseDevelopmentEmulator=true` connection
 * string, and on the same port the ATOM/XML administration API `ServiceBusAdministrationClient`
 * calls (plain HTTP: src/bus/admin.ts points the client there). Entities come from a
 * Config.json-shaped topology (the same file Microsoft's emulator reads) and can be created,
 * changed and deleted at run time through the administration API. Everything is in memory:
 * closing or restarting it loses every queued message and every entity created at run time.
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
  /** A connection that has not opened an AMQP connection (or sent an HTTP request) by then is closed; default 30 s. */
  handshakeTimeoutMs?: number;
  /** Connections one client address may hold at once; default 1000. */
  maxConnectionsPerAddress?: number;
}

export interface ServiceBusEmulator {
  connectionString: string;
  port: number;
  namespace: Namespace;
  /** Message counts of a queue or `topic/Subscriptions/name` (the administration API reports the same). */
  counts(path: string): EntityCounts;
  close(): Promise<void>;
}

export async function startServiceBusEmulator(options: ServiceBusEmulatorOptions): Promise<ServiceBusEmulator> {
  const host = options.host ?? '127.0.0.1';
  const keyName = options.keyName ?? 'RootManageSharedAccessKey';
  const key = options.key ?? newKey();
  const namespace = Namespace.fromTopology(parseTopology(options.topology));
  const amqp = new EmulatorServer(namespace, { host, keyName, key, log: options.log });
  const admin = createAdminServer({ namespace, sas: { keyName, key }, log: options.log });
  const listener = await listenShared({
    host,
    port: options.port ?? 0,
    amqp: (socket, opts) => amqp.accept(socket, opts),
    http: admin,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress,
    log: options.log,
  });
  return {
    connectionString: `Endpoint=sb://${host}:${listener.port};SharedAccessKeyName=${keyName};SharedAccessKey=${key};UseDevelopmentEmulator=true;`,
    port: listener.port,
    namespace,
    counts: (path) => namespace.counts(path),
    async close() {
      await amqp.close();
      await listener.close();
      namespace.close();
    },
  };
}
