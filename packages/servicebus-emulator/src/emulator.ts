import { createAdminServer } from './admin/http';
import { EmulatorServer } from './amqp/server';
import { listenShared } from './listener';
import type { Logger } from './log';
import type { EntityCounts } from './messages';
import { Namespace } from './namespace';
import { newKey } from './sas';
import { parseTopology, type Topology, type TopologyInput } from './topology';

export interface ServiceBusEmulatorOptions {
  /** 0 (default) picks a free port; 5672 is what `UseDevelopmentEmulator` clients expect by default. */
  port?: number;
  /** Address to listen on; default 127.0.0.1. */
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
