import { randomBytes } from 'node:crypto';
import { loadTopologyFile, startServiceBusEmulator } from 'servicebus-emulator';
import type { Logger } from '../common/log';
import { loadSettings, type Settings } from '../config/settings';
import { createRuntime, type Runtime } from '../runtime';
import { startAzurite } from './azurite';
import { startLocalHost, type LocalHost, type LocalHostOptions } from './host';
import { DEFAULT_HOME, DEFAULT_REPLICAS, defaultTopologyPath, replicationTopology } from './topology';

/**
 * The embedded stack: Azurite with one storage account per region, the Service Bus emulator with
 * one subscription per replica region, and the local host running the functions. No Docker, no
 * Azure account. Used by `npm start`, the integration tests and the benchmarks.
 */

export { DEFAULT_HOME, DEFAULT_REPLICAS, defaultTopologyPath, replicationTopology } from './topology';

export interface StackOptions {
  home?: string;
  replicas?: string[];
  /** More Azurite accounts, not in GEOREG_REGIONS: storage for regions added with `replication create`. */
  spareAccounts?: string[];
  /** Port of the push endpoint: 7071 like `func start`; 0 for any free port (tests). */
  httpPort?: number;
  log: Logger;
  /** Extra settings (environment-variable form) over the stack's own. */
  settings?: Record<string, string>;
  host?: Omit<LocalHostOptions, 'log' | 'port'>;
  /**
   * Where the regions' storage accounts come from (every region and spare account is asked for at
   * once). Default: an Azurite of the stack's own, one account per region, ended with the stack.
   */
  accounts?: (names: string[]) => Promise<StackAccounts>;
}

/** Storage accounts for a stack: one per name asked for, given back on close. */
export interface StackAccounts {
  connectionString(name: string): string;
  close(): Promise<void>;
}

const ownAzurite = (names: string[]): Promise<StackAccounts> => startAzurite({ accounts: names });

export interface Stack {
  settings: Settings;
  runtime: Runtime;
  host: LocalHost;
  env: Record<string, string>;
  pushUrl: string;
  /** What the admin APIs ask of a caller here (GEOREG_ADMIN_SECRET as a Bearer token). */
  adminHeaders: Record<string, string>;
  storageConnectionString(region: string): string;
  serviceBusConnectionString: string;
  close(): Promise<void>;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const home = options.home ?? DEFAULT_HOME;
  const replicas = options.replicas ?? DEFAULT_REPLICAS;
  const regions = [home, ...replicas];
  const azurite = await (options.accounts ?? ownAzurite)([...regions, ...(options.spareAccounts ?? [])]);
  const topology = replicationTopology(loadTopologyFile(defaultTopologyPath), replicas);
  let bus: Awaited<ReturnType<typeof startServiceBusEmulator>> | undefined;
  let runtime: Runtime | undefined;
  try {
    bus = await startServiceBusEmulator({ port: 0, host: '127.0.0.1', topology });
    const env: Record<string, string> = {
      GEOREG_HOME_REGION: home,
      GEOREG_REGIONS: JSON.stringify(regions.map((name) => ({ name, connectionString: azurite.connectionString(name) }))),
      ServiceBusConnection: bus.connectionString,
      GEOREG_PUSH_SECRET: randomBytes(18).toString('base64url'),
      // The local host has no function keys: the admin APIs ask for this instead (the CLI reads it from .georeg/local-stack.json).
      GEOREG_ADMIN_SECRET: randomBytes(18).toString('base64url'),
      // The local stack's webhook subscribers listen on 127.0.0.1, and so does Azurite (plain http).
      GEOREG_WEBHOOK_ALLOW_PRIVATE: 'true',
      GEOREG_ALLOW_PRIVATE_STORAGE: 'true',
      ...options.settings,
    };
    const settings = loadSettings(env);
    runtime = await createRuntime(settings);
    await Promise.all([...runtime.regions.values()].map((r) => r.ensureContainer()));
    const host = await startLocalHost(runtime, { env, ...options.host, port: options.httpPort ?? 0, log: options.log });
    const rt = runtime;
    const sb = bus;
    return {
      settings,
      runtime,
      host,
      env,
      pushUrl: `${host.url}/api/push`,
      adminHeaders: { Authorization: `Bearer ${settings.adminSecret}` },
      storageConnectionString: (region) => azurite.connectionString(region),
      serviceBusConnectionString: bus.connectionString,
      async close() {
        await host.close();
        await rt.close();
        await sb.close();
        await azurite.close();
      },
    };
  } catch (e) {
    await runtime?.close().catch(() => {});
    await bus?.close().catch(() => {});
    await azurite.close().catch(() => {});
    throw e;
  }
}
