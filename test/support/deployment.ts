import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTopologyFile, startServiceBusEmulator, type ServiceBusEmulator } from 'servicebus-emulator';
import type { StackAccounts } from '../../src/local/stack';
import { defaultTopologyPath, replicationTopology } from '../../src/local/topology';
import { regionStorageFrom, type RegionStorage } from '../../src/storage/region-storage';
import { storageAccounts } from './stack';

/**
 * A deployment as an operator has one, for `georeg serve` and `georeg doctor` to run against:
 * storage accounts (one per region, lent by the test worker's shared Azurite) and a Service Bus
 * namespace (the embedded emulator, one subscription per replica), and a folder whose
 * local.settings.json points at them. Nothing of georeg runs here; the test starts what it tests.
 */

export interface Deployment {
  /** A temp folder holding local.settings.json with `values`. */
  dir: string;
  values: Record<string, string>;
  accounts: StackAccounts;
  bus: ServiceBusEmulator;
  /** A region's registry storage as a registry writing `root` in `container` sees it. */
  storage(region: string, options?: { root?: string; container?: string }): RegionStorage;
  close(): Promise<void>;
}

export async function startDeployment(options: { home: string; replicas: string[]; accounts?: string[] }): Promise<Deployment> {
  const regions = [options.home, ...options.replicas];
  const accounts = await storageAccounts([...regions, ...(options.accounts ?? [])]);
  const bus = await startServiceBusEmulator({ port: 0, topology: replicationTopology(loadTopologyFile(defaultTopologyPath), options.replicas) }).catch(async (e) => {
    await accounts.close();
    throw e;
  });
  const dir = mkdtempSync(join(tmpdir(), 'georeg-deployment-'));
  const values = {
    GEOREG_HOME_REGION: options.home,
    GEOREG_REGIONS: JSON.stringify(regions.map((name) => ({ name, connectionString: accounts.connectionString(name) }))),
    ServiceBusConnection: bus.connectionString,
    GEOREG_PUSH_SECRET: randomBytes(18).toString('base64url'),
    GEOREG_ADMIN_SECRET: randomBytes(18).toString('base64url'),
  };
  writeFileSync(join(dir, 'local.settings.json'), JSON.stringify({ IsEncrypted: false, Values: values }, null, 2));
  return {
    dir,
    values,
    accounts,
    bus,
    storage: (region, o = {}) => regionStorageFrom({ region, connectionString: accounts.connectionString(region), container: o.container, root: o.root }),
    async close() {
      await bus.close();
      await accounts.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
