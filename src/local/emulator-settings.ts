import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { RegionName } from '../config/settings';
import { DEFAULT_HOME, DEFAULT_REPLICAS } from './topology';

/**
 * What `npm run emulators` writes into local.settings.json so that `npx georeg serve` (or
 * `func start`) runs against the emulators it started. It owns the connection values only
 * (AzureWebJobsStorage, ServiceBusConnection, each GEOREG_REGIONS entry's storage); every other
 * value of an existing file is the user's and stays, region names included. Secrets still at the
 * sample's `change-me...` placeholder get random values, since nothing should run with those.
 */

export interface LocalSettingsJson {
  Values: Record<string, string>;
  [other: string]: unknown;
}

export interface EmulatorRegions {
  home: string;
  /** Home first. Each keeps the fields of its GEOREG_REGIONS entry other than its storage. */
  regions: Array<{ name: string } & Record<string, unknown>>;
}

/** Azurite account names are stricter than region names: the region is the account here. */
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;

const Entries = z.array(z.object({ name: RegionName }).passthrough()).min(1);

/**
 * The regions the emulators serve: those of an existing file's GEOREG_REGIONS, else the local
 * stack's defaults (home westus; eastus, canadacentral, westeurope).
 */
export function emulatorRegions(existing: Record<string, string> | undefined): EmulatorRegions {
  let entries: EmulatorRegions['regions'] = [DEFAULT_HOME, ...DEFAULT_REPLICAS].map((name) => ({ name }));
  let home = DEFAULT_HOME;
  if (existing?.GEOREG_REGIONS) {
    let parsed;
    try {
      parsed = Entries.safeParse(JSON.parse(existing.GEOREG_REGIONS));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) throw new Error('local.settings.json: GEOREG_REGIONS is not a JSON array of {"name": ...} entries; fix it, or delete the file to start from local.settings.sample.json');
    entries = parsed.data;
    home = existing.GEOREG_HOME_REGION ?? entries[0].name;
    if (!entries.some((e) => e.name === home)) throw new Error(`local.settings.json: GEOREG_HOME_REGION "${home}" is not one of GEOREG_REGIONS (${entries.map((e) => e.name).join(', ')})`);
  }
  for (const e of entries) {
    if (!ACCOUNT_NAME.test(e.name)) throw new Error(`local.settings.json: region "${e.name}" cannot be an Azurite account (3-24 lowercase letters and digits): rename it in GEOREG_REGIONS`);
  }
  const regions = [...entries.filter((e) => e.name === home), ...entries.filter((e) => e.name !== home)];
  return { home, regions };
}

export interface EmulatorConnections {
  /** AzureWebJobsStorage: what the Functions host itself needs (`func start`). */
  devStorage: string;
  storage(region: string): string;
  serviceBus: string;
}

/**
 * The file's new content: `base` (the existing file, or the sample when there is none) with the
 * emulators' connection values. `changed` names each value written, for the user to read.
 */
export function withEmulatorConnections(
  base: LocalSettingsJson,
  regions: EmulatorRegions,
  connections: EmulatorConnections,
  secret: () => string = () => randomBytes(24).toString('base64url'),
): { content: LocalSettingsJson; changed: string[] } {
  const values = { ...base.Values };
  const changed = ['AzureWebJobsStorage', 'ServiceBusConnection', 'GEOREG_REGIONS'];
  values.AzureWebJobsStorage = connections.devStorage;
  values.ServiceBusConnection = connections.serviceBus;
  values.GEOREG_REGIONS = JSON.stringify(
    regions.regions.map(({ connectionString: _c, accountUrl: _a, ...rest }) => ({ ...rest, connectionString: connections.storage(rest.name) })),
  );
  if (values.GEOREG_HOME_REGION !== regions.home) {
    values.GEOREG_HOME_REGION = regions.home;
    changed.push('GEOREG_HOME_REGION');
  }
  for (const key of ['GEOREG_PUSH_SECRET', 'GEOREG_ADMIN_SECRET']) {
    if (values[key]?.startsWith('change-me')) {
      values[key] = secret();
      changed.push(`${key} (was the sample's placeholder)`);
    }
  }
  return { content: { ...base, Values: values }, changed };
}
