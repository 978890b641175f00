import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { startServiceBusEmulator, type ServiceBusEmulator } from './emulator';
import { loadTopologyFile, type TopologyInput } from './topology';

/**
 * The command line: `servicebus-emulator --config Config.json --port 5672`. Starts the emulator,
 * prints the connection string, and runs until SIGINT or SIGTERM. `runCli` returns an exit code
 * when it is done at once (help, a bad option, a bad Config.json) and undefined while it serves.
 */

/** Without --config: one empty namespace, for entities made through the administration API. */
const EMPTY: TopologyInput = { UserConfig: { Namespaces: [{ Name: 'sbemulatorns' }] } };

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Called with the running emulator; by default it is closed on SIGINT/SIGTERM. */
  started?(emulator: ServiceBusEmulator): void;
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  started: (emulator) => {
    const stop = () => void emulator.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  },
};

export async function runCli(argv: string[], io: CliIo = processIo): Promise<number | undefined> {
  const program = new Command('servicebus-emulator')
    .description('An Azure Service Bus emulator in one Node.js process: AMQP 1.0 for the @azure/service-bus SDK and the administration API on one port, entities from a Config.json. In memory only.')
    .option('-c, --config <file>', "entities, in the shape of Microsoft's Service Bus emulator Config.json (default: one empty namespace, sbemulatorns)")
    .option('-p, --port <port>', 'port for AMQP and the administration API (0 picks a free one)', port, 5672)
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--key-name <name>', 'shared access key name', 'RootManageSharedAccessKey')
    .option('--key <base64>', 'shared access key (default: $SERVICEBUS_EMULATOR_KEY, else a new random key each start)')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  try {
    program.parse(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    throw e;
  }
  const options = program.opts<{ config?: string; port: number; host: string; keyName: string; key?: string }>();
  let emulator: ServiceBusEmulator;
  try {
    const topology = options.config ? loadTopologyFile(options.config) : EMPTY;
    const key = options.key ?? (process.env.SERVICEBUS_EMULATOR_KEY || undefined);
    emulator = await startServiceBusEmulator({ topology, port: options.port, host: options.host, keyName: options.keyName, key, log: console });
  } catch (e) {
    io.err(`servicebus-emulator: ${(e as Error).message}\n`);
    return 1;
  }
  const ns = emulator.namespace;
  const subscriptions = [...ns.topics.values()].reduce((n, t) => n + t.subscriptions.size, 0);
  io.out(`Service Bus emulator on ${options.host}:${emulator.port} (AMQP and administration API), namespace ${ns.name}: ${ns.queues.size} queue(s), ${ns.topics.size} topic(s), ${subscriptions} subscription(s)\n`);
  io.out(`${emulator.connectionString}\n`);
  io.out('In memory only: stopping it (Ctrl-C) loses every message.\n');
  io.started?.(emulator);
  return undefined;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number from 0 to 65535');
  return n;
}
