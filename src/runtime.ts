import { ServiceBusClient, type ServiceBusSender } from '@azure/service-bus';
import { DefaultAzureCredential } from '@azure/identity';
import type { Logger } from './common/log';
import { loadSettings, type Settings } from './config/settings';
import type { PushDeps } from './replication/push';
import type { ReplicateDeps } from './replication/replicate';
import { regionStorageFrom, type RegionStorage } from './storage/region-storage';
import { StateStore } from './storage/state-store';
import type { WebhookAdminDeps } from './webhooks/admin-api';
import type { DeliverDeps } from './webhooks/deliver';
import { enqueueWebhookDeliveries } from './webhooks/enqueue';

/**
 * The composition root: settings in, the clients every handler needs out. Built once per process
 * (a Function App instance or the local host) and shared by every invocation.
 */
export interface Runtime {
  settings: Settings;
  home: RegionStorage;
  regions: Map<string, RegionStorage>;
  replicas: Map<string, RegionStorage>;
  state: StateStore;
  bus: ServiceBusClient;
  replicationSender: ServiceBusSender;
  /** Queue `webhook-deliveries`: the replicate step enqueues deliveries, the deliver step schedules retries. */
  webhookSender: ServiceBusSender;
  close(): Promise<void>;
}

export async function createRuntime(settings: Settings = loadSettings()): Promise<Runtime> {
  const regions = new Map<string, RegionStorage>();
  for (const r of settings.regions) {
    regions.set(
      r.name,
      regionStorageFrom({ region: r.name, connectionString: r.connectionString, accountUrl: r.accountUrl, container: settings.registry.container, root: settings.registry.root }),
    );
  }
  const home = regions.get(settings.homeRegion.name)!;
  const replicas = new Map([...regions].filter(([name]) => name !== settings.homeRegion.name));
  const state = StateStore.forAccount({ connectionString: settings.homeRegion.connectionString, accountUrl: settings.homeRegion.accountUrl, container: settings.stateContainer });
  await state.ensureContainer();
  const bus = settings.serviceBus.connectionString
    ? new ServiceBusClient(settings.serviceBus.connectionString)
    : new ServiceBusClient(settings.serviceBus.fullyQualifiedNamespace!, new DefaultAzureCredential());
  const replicationSender = bus.createSender(settings.serviceBus.replicationTopic);
  const webhookSender = bus.createSender(settings.serviceBus.webhookQueue);
  return {
    settings,
    home,
    regions,
    replicas,
    state,
    bus,
    replicationSender,
    webhookSender,
    async close() {
      await replicationSender.close();
      await webhookSender.close();
      await bus.close();
    },
  };
}

let shared: Promise<Runtime> | undefined;

/** The process-wide runtime for functions/ (lazily created on the first invocation). */
export function runtime(): Promise<Runtime> {
  shared ??= createRuntime().catch((e) => {
    shared = undefined;
    throw e;
  });
  return shared;
}

export function pushDeps(rt: Runtime, log: Logger): PushDeps {
  return { settings: rt.settings, home: rt.home, replicas: rt.replicas, state: rt.state, replicationSender: rt.replicationSender, log };
}

export function replicateDeps(rt: Runtime, log: Logger): ReplicateDeps {
  return {
    settings: rt.settings,
    home: rt.home,
    regions: rt.regions,
    state: rt.state,
    log,
    afterCommit: async (job, status) => {
      await enqueueWebhookDeliveries(job, status, { state: rt.state, webhookSender: rt.webhookSender, log });
    },
  };
}

export function webhookDeliverDeps(rt: Runtime, log: Logger): DeliverDeps {
  return { settings: rt.settings, state: rt.state, webhookSender: rt.webhookSender, log };
}

export function webhookAdminDeps(rt: Runtime, log: Logger): WebhookAdminDeps {
  return { settings: rt.settings, state: rt.state, webhookSender: rt.webhookSender, log };
}
