import { Command, InvalidArgumentError } from 'commander';
import { SettingsError } from '../config/settings';
import { pushCommand } from './push-command';
import { statusCommand } from './status-command';
import { parseGenerateSpec } from './target';
import { registerReplicationCommands } from './replication-command';
import { registerWebhookCommands } from './webhook-command';

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
  .option('--url <api>', 'API base URL (default: the running local stack, or GEOREG_API_URL)')
  .option('--wait', 'wait until every region is complete, showing progress')
  .option('--no-notify', 'write the image to home storage only, sending no notification (as when a registry loses one; the reconcile timer repairs it)')
  .action(pushCommand);

program
  .command('status')
  .description('show each region\'s state for a push, or (--problems) the notification events georeg could not act on')
  .argument('[push-id|repo:tag]')
  .option('--problems', 'list the notification events recorded as not replicated, with their reasons')
  .option('--url <api>', 'API base URL')
  .option('--key <function-key>', 'function key for the status API in Azure')
  .option('-o, --output <format>', 'table or json', 'table')
  .action(statusCommand);

registerWebhookCommands(program);
registerReplicationCommands(program);

program.parseAsync(process.argv).catch((e: Error) => {
  console.error(e instanceof SettingsError ? e.message : `georeg: ${e.message}`);
  process.exitCode = 1;
});
