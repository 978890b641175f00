import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Topology } from 'servicebus-emulator';

/**
 * The local stack's default regions and georeg's Service Bus entities for the emulator: all that
 * `npm run emulators` (src/local/emulators.ts) needs of the stack, in a module that loads neither
 * the Azure SDKs nor the functions (that was most of a second of its start).
 */

export const DEFAULT_HOME = 'westus';
export const DEFAULT_REPLICAS = ['eastus', 'canadacentral', 'westeurope'];

/**
 * georeg's Service Bus entities, in the emulator's Config.json shape (Microsoft's emulator reads the
 * same file): `config/` at the repository's root, found from here whether this runs as source
 * (src/local), compiled by `npm run build` (dist/src/local) or bundled.
 */
export const defaultTopologyPath = nearestAbove(__dirname, join('config', 'servicebus-emulator.json'));

function nearestAbove(from: string, file: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, file))) return join(dir, file);
    // Not found: the path from the source tree, so the error that follows names where it belongs.
    if (dirname(dir) === dir) return join(from, '..', '..', file);
  }
}

/**
 * georeg's topology file with one subscription per replica region: each copies the properties and
 * rule of the file's first subscription, with the region name substituted.
 */
export function replicationTopology(file: Topology, replicas: string[]): Topology {
  const copy = JSON.parse(JSON.stringify(file)) as Topology;
  for (const ns of copy.UserConfig.Namespaces) {
    for (const topic of ns.Topics ?? []) {
      if (topic.Name !== 'replication' || !topic.Subscriptions?.length) continue;
      const template = topic.Subscriptions[0];
      topic.Subscriptions = replicas.map((region) => ({
        ...template,
        Name: region,
        Rules: (template.Rules ?? []).map((rule) => ({ ...rule, Properties: JSON.parse(JSON.stringify(rule.Properties).replaceAll(`'${template.Name}'`, `'${region}'`)) })),
      }));
    }
  }
  return copy;
}
