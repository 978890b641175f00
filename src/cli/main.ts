import { Command, InvalidArgumentError, Option } from 'commander';
import { SettingsError } from '../config/settings';
import { doctorCommand } from './doctor-command';
import { ExitCode } from './exit';
import { pushCommand } from './push-command';
import { serveCommand } from './serve-command';
import { statusCommand } from './status-command';
import { parseGenerateSpec } from './target';
import { registerReplicationCommands } from './replication-command';
import { registerWebhookCommands } from './webhook-command';
import { registerDlqCommands } from './dlq-command';

/** The whole CLI as a commander program: built per call, so tests can run it in-process. */
export function createProgram(): Command {
  const program = new Command('georeg')
    .description('Geo-replication for container registries on Azure Blob Storage')
    .showHelpAfterError('(run georeg --help for usage)');

  program
    .command('push')
    .description('write an image into the home region (Distribution layout) and send the notification a registry sends')
    .argument('<source-or-target>', 'OCI image layout dir[:tag], or with --generate the target repo:tag')
    .argument('[target]', 'target repo:tag')
    .option('--generate <layers>x<size>', 'generate an image instead of reading a layout, e.g. 3x1MiB', (v) => {
      try {
        return parseGenerateSpec(v);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message);
      }
    })
    .option('--platforms <list>', 'with --generate: an OCI index of these platforms, e.g. linux/amd64,linux/arm64')
    .option('--seed <text>', 'with --generate: content seed (same seed, same layers)')
    .option('--share <n>', 'with --generate and --seed-base: share the first n layers with the image of --seed-base', (v) => Number(v))
    .option('--seed-base <text>', 'seed of the image whose first layers are shared')
    .option('--url <api>', 'API base URL (default: GEOREG_API_URL, the running local stack, or http://127.0.0.1:7071/api)')
    .option('--wait', 'wait until every region is complete, showing progress')
    .option('--no-notify', 'write to home only, as a registry that lost the notification (the reconcile timer replicates it)')
    .action(pushCommand);

  program
    .command('status')
    .description('show each region\'s state for a push')
    .argument('<push-id|repo:tag>')
    .option('--url <api>', 'API base URL')
    .option('--key <function-key>', 'function key for the status API in Azure')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(statusCommand);

  program
    .command('serve')
    .description('run the HTTP API and every trigger (replicate, webhook deliveries, timers) against the settings in the environment or local.settings.json: georeg next to a registry, on a VM, in a container, on Kubernetes')
    .addOption(new Option('--port <port>', 'HTTP port (0: any free port)').default(7071).argParser(port))
    .option('--host <address>', 'address to listen on (0.0.0.0 in a container)', '127.0.0.1')
    .option('--region <name>', 'run the replicate trigger of this replica region only, as one Function App per region does (default: every replica)')
    .addOption(new Option('--drain-timeout <seconds>', 'on SIGTERM/SIGINT, how long in-flight jobs may take to finish before the process exits and leaves them to their lock').default(25).argParser(seconds))
    .action(serveCommand);

  program
    .command('doctor')
    .description('check settings, storage, the registry root, Service Bus entities, secrets and the API; exits non-zero on any failure')
    .option('--api <url>', 'the API to check (default: GEOREG_API_URL, the running local stack, or http://127.0.0.1:7071/api; a silent API fails only when given here or in GEOREG_API_URL)')
    .addOption(new Option('-o, --output <format>', 'lines or json').choices(['lines', 'json']).default('lines'))
    .action(doctorCommand);

  registerWebhookCommands(program);
  registerReplicationCommands(program);
  registerDlqCommands(program);
  return program;
}

/** Runs the CLI with `argv` (as process.argv has it); resolves with the exit code. */
export async function run(argv: string[]): Promise<number> {
  try {
    await createProgram().parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof ExitCode) return e.code;
    console.error(e instanceof SettingsError ? e.message : `georeg: ${(e as Error).message}`);
    return 1;
  }
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port number, 0 to 65535');
  return n;
}

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('a number of seconds, 0 or more');
  return n;
}

if (require.main === module) {
  void run(process.argv).then((code) => {
    process.exitCode = code;
  });
}
