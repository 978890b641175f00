/**
 * A Service Bus emulator in one Node process: an AMQP 1.0 server (rhea) that the unmodified
 * @azure/service-bus SDK talks to with an ordinary `UseDevelopmentEmulator=true` connection
 * string, and on the same port the ATOM/XML administration API `ServiceBusAdministrationClient`
 * calls (plain HTTP). Entities come from a Config.json-shaped topology (the same file
 * Microsoft's emulator reads) and can be created, changed and deleted at run time through the
 * administration API. Everything is in memory: closing it loses every message and every entity
 * created at run time.
 *
 * Modules: messages.ts (the message lifecycle of a queue or subscription), rules.ts and
 * sql-filter.ts (subscription rules), namespace.ts (entities and addresses), amqp/ (the wire:
 * links, `$cbs`, `$management`, and rhea-adapter.ts, the one place that reaches into rhea),
 * admin/ (the administration API), listener.ts (one port for both protocols).
 */

export { loadTopologyFile, parseTopology, type Topology, type TopologyInput } from './topology';
export { Namespace } from './namespace';
export type { EntityCounts } from './messages';
export type { Logger } from './log';
export { startServiceBusEmulator, type ServiceBusEmulator, type ServiceBusEmulatorOptions } from './emulator';
export { runCli, type CliIo } from './cli';
