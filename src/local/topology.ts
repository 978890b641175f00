import { join } from 'node:path';
import type { Topology } from 'servicebus-emulator';

/**
 * The local stack's default regions and georeg's Service Bus entities for the emulator: all that
 * `npm run emulators` (src/local/emulators.ts) needs of the stack, in a module that loads neither
 * the Azure SDKs nor the functions (that was most of a second of its start).
 */

export const DEFAULT_HOME = 'westus';
export const DEFAULT_REPLICAS = ['eastus', 'canadacentral', 'westeurope'];

/** georeg's Service Bus entities, in the emulator's Config.json shape (Microsoft's emulator reads the same file). */
export const defaultTopologyPath = join(__dirname, '..', '..', 'config', 'servicebus-emulator.json');

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
