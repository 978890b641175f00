import { ServiceBusClient, type ServiceBusAdministrationClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdministrationClient } from '../../src/bus/admin';
import { deleteRegionSubscription, ensureRegionSubscription, regionQueue } from '../../src/bus/subscriptions';
import { startServiceBusEmulator, type ServiceBusEmulator } from 'servicebus-emulator';

// A replica region's subscription, managed through the real administration client against the
// emulator: created with its region rule alone, repaired when someone left `$Default` on it.
const topology = { UserConfig: { Namespaces: [{ Name: 'sbemulatorns', Queues: [], Topics: [{ Name: 'replication', Properties: {}, Subscriptions: [] }] }] } };

let emulator: ServiceBusEmulator;
let admin: ServiceBusAdministrationClient;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startServiceBusEmulator({ port: 0, topology });
  admin = createAdministrationClient(emulator.connectionString);
  client = new ServiceBusClient(emulator.connectionString);
});

afterAll(async () => {
  await client?.close();
  await emulator?.close();
});

async function rules(region: string): Promise<Array<[string, string | undefined]>> {
  const out: Array<[string, string | undefined]> = [];
  for await (const r of admin.listRules('replication', region)) out.push([r.name, (r.filter as { sqlExpression?: string }).sqlExpression]);
  return out;
}

describe('region subscriptions', () => {
  it('creates the subscription with only the region rule, and is idempotent', async () => {
    expect(await ensureRegionSubscription(admin, 'replication', 'eastus')).toBe('created');
    expect(await rules('eastus')).toEqual([['region', "region = 'eastus'"]]);
    expect(await ensureRegionSubscription(admin, 'replication', 'eastus')).toBe('existed');
  });

  it("repairs a subscription made by hand with the $Default rule, which would take every region's jobs", async () => {
    await admin.createSubscription('replication', 'westeurope');
    expect((await rules('westeurope')).map(([n]) => n)).toEqual(['$Default']);
    expect(await ensureRegionSubscription(admin, 'replication', 'westeurope')).toBe('repaired');
    expect(await rules('westeurope')).toEqual([['region', "region = 'westeurope'"]]);
  });

  it('counts queued jobs and tells how old the oldest is; undefined and false for a missing subscription', async () => {
    const sender = client.createSender('replication');
    await sender.sendMessages([{ body: 'a', applicationProperties: { region: 'eastus' } }, { body: 'b', applicationProperties: { region: 'westeurope' } }, { body: 'c', applicationProperties: { region: 'eastus' } }]);
    await sender.close();
    const q = await regionQueue(admin, client, 'replication', 'eastus');
    expect(q).toMatchObject({ active: 2, deadLettered: 0 });
    expect(q!.oldestEnqueuedAt!.getTime()).toBeLessThanOrEqual(Date.now());
    expect((await regionQueue(admin, client, 'replication', 'westeurope'))?.active).toBe(1);

    expect(await deleteRegionSubscription(admin, 'replication', 'westeurope')).toBe(true);
    expect(await deleteRegionSubscription(admin, 'replication', 'westeurope')).toBe(false);
    expect(await regionQueue(admin, client, 'replication', 'westeurope')).toBeUndefined();
  });
});
