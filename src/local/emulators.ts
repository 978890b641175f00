import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { loadTopologyFile, startServiceBusEmulator } from 'servicebus-emulator';
import { LOCAL_SETTINGS_FILE } from '../config/local-settings';
import { startAzurite } from './azurite';
import { emulatorRegions, withEmulatorConnections, type LocalSettingsJson } from './emulator-settings';
import { defaultTopologyPath, replicationTopology } from './topology';

/**
 * `npm run emulators`: Azurite (devstoreaccount1 for AzureWebJobsStorage, plus one account per
 * region) and the Service Bus emulator, and nothing else, for `npx georeg serve` or `func start`.
 *
 *   AZURITE_BLOB_PORT   Azurite's blob port (default 10000)
 *   SERVICEBUS_PORT     the Service Bus emulator's AMQP and administration port (default 5672)
 *
 * It fills local.settings.json in the current folder (made from local.settings.sample.json when
 * absent; otherwise only its connection values change, see emulator-settings.ts), since the
 * account keys are new each run, and creates each region's registry container.
 */

const DEV_ACCOUNT = 'devstoreaccount1';

async function main(): Promise<void> {
  const settingsFile = join(process.cwd(), LOCAL_SETTINGS_FILE);
  const existed = existsSync(settingsFile);
  const base = JSON.parse(readFileSync(existed ? settingsFile : join(process.cwd(), 'local.settings.sample.json'), 'utf8')) as LocalSettingsJson;
  base.Values ??= {};
  const regions = emulatorRegions(existed ? base.Values : undefined);
  const names = regions.regions.map((r) => r.name);

  const azurite = await startAzurite({ accounts: [DEV_ACCOUNT, ...names], blobPort: port('AZURITE_BLOB_PORT', 10000) });
  const replicas = names.filter((n) => n !== regions.home);
  const bus = await startServiceBusEmulator({ port: port('SERVICEBUS_PORT', 5672), host: '127.0.0.1', topology: replicationTopology(loadTopologyFile(defaultTopologyPath), replicas) });
  const container = base.Values.GEOREG_REGISTRY_CONTAINER ?? 'registry';
  await Promise.all(names.map((n) => BlobServiceClient.fromConnectionString(azurite.connectionString(n)).getContainerClient(container).createIfNotExists()));

  console.log(`Azurite blob        ${azurite.url}   (AZURITE_BLOB_PORT)`);
  for (const r of [DEV_ACCOUNT, ...names]) console.log(`  ${r.padEnd(17)} ${azurite.connectionString(r)}`);
  console.log(`Service Bus         ${bus.connectionString}   (SERVICEBUS_PORT)`);

  const { content, changed } = withEmulatorConnections(base, regions, {
    devStorage: azurite.connectionString(DEV_ACCOUNT),
    storage: (name) => azurite.connectionString(name),
    serviceBus: bus.connectionString,
  });
  writeFileSync(settingsFile, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  console.log(`\n${existed ? 'updated' : 'created from local.settings.sample.json'}: ${settingsFile} (${changed.join(', ')})`);
  console.log(`home ${regions.home}, replicas ${replicas.join(', ')}; registry container "${container}" made in each.`);
  console.log('\nIn another terminal, in this folder:');
  console.log('  npx georeg serve                               the functions against these emulators (http://127.0.0.1:7071/api)');
  console.log('  npx georeg doctor                              check the setup');
  console.log('  npx georeg push --generate 3x1MiB demo/app:v1 --wait');
  console.log('  (or `npm run build && func start`: REGION_NAME picks the region it replicates to)');
  console.log('In memory only: stopping the emulators (Ctrl-C) loses their data.');

  const stop = async () => {
    await bus.close();
    await azurite.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name}="${raw}": expected a port number (0 picks a free one)`);
  return n;
}

main().catch((e: Error) => {
  console.error(`emulators: ${e.message}`);
  process.exit(1);
});
