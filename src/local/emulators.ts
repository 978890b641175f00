import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAzurite } from './azurite';
import { defaultTopologyPath, loadTopologyFile, startServiceBusEmulator } from './servicebus';
import { DEFAULT_HOME, DEFAULT_REPLICAS, replicationTopology } from './stack';

/**
 * `npm run emulators`: Azurite (devstoreaccount1 for AzureWebJobsStorage, plus one account per
 * region) and the Service Bus emulator on their usual ports, for `func start` or anything else.
 * Prints both connection strings and fills them into local.settings.json (made from the sample
 * when absent), since the account keys are new each run.
 */

const DEV_ACCOUNT = 'devstoreaccount1';

async function main(): Promise<void> {
  const regions = [DEFAULT_HOME, ...DEFAULT_REPLICAS];
  const azurite = await startAzurite({ accounts: [DEV_ACCOUNT, ...regions], blobPort: Number(process.env.AZURITE_BLOB_PORT ?? 10000) });
  const bus = await startServiceBusEmulator({ port: Number(process.env.SERVICEBUS_PORT ?? 5672), host: '127.0.0.1', topology: replicationTopology(loadTopologyFile(defaultTopologyPath), DEFAULT_REPLICAS) });
  const geRegions = JSON.stringify(regions.map((name) => ({ name, connectionString: azurite.connectionString(name) })));

  console.log(`Azurite blob        ${azurite.url}`);
  for (const r of [DEV_ACCOUNT, ...regions]) console.log(`  ${r.padEnd(17)} ${azurite.connectionString(r)}`);
  console.log(`Service Bus         ${bus.connectionString}`);

  const settingsFile = join(process.cwd(), 'local.settings.json');
  const settings = JSON.parse(readFileSync(existsSync(settingsFile) ? settingsFile : join(process.cwd(), 'local.settings.sample.json'), 'utf8'));
  Object.assign(settings.Values, {
    AzureWebJobsStorage: azurite.connectionString(DEV_ACCOUNT),
    GEOREG_HOME_REGION: DEFAULT_HOME,
    GEOREG_REGIONS: geRegions,
    ServiceBusConnection: bus.connectionString,
  });
  writeFileSync(settingsFile, `${JSON.stringify(settings, null, 2)}\n`);
  console.log(`\nlocal.settings.json updated with these connection strings: \`npm run build && func start\` (REGION_NAME picks the region it replicates to).`);
  console.log('In memory only: stopping the emulators (Ctrl-C) loses their data.');

  const stop = async () => {
    await bus.close();
    await azurite.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e: Error) => {
  console.error(`emulators: ${e.message}`);
  process.exit(1);
});
