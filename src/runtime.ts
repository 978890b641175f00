import { AsyncLocalStorage } from 'node:async_hooks';
import { ServiceBusClient, type ServiceBusAdministrationClient, type ServiceBusSender } from '@azure/service-bus';
import { createAdministrationClient } from './bus/admin';
import type { MessageActions } from './bus/settlement';
import { replicationJobMessage } from './bus/messages';
import { defaultAzureCredential } from './common/identity';
import type { Logger } from './common/log';
import { loadSettings, type Settings } from './config/settings';
import type { PushDeps } from './replication/push';
import type { ReconcileDeps } from './replication/reconcile';
import type { ReplicateDeps } from './replication/replicate';
import { recordReplicaFailure, recordReplicaProgress } from './replicas/progress';
import { ReplicaRegistry, settingStorage } from './replicas/registry';
import type { ReplicaAdminDeps } from './replicas/admin-api';
import type { BackfillDeps } from './replicas/backfill';
import type { RegionStorage } from './storage/region-storage';
import { StateStore } from './storage/state-store';
import type { WebhookAdminDeps } from './webhooks/admin-api';
import type { DeliverDeps } from './webhooks/deliver';
import { enqueueWebhookDeliveries } from './webhooks/enqueue';
import { startTelemetry } from './telemetry/setup';
import { inSpan, tracedSender } from './telemetry/trace';
import { recordMetric } from './telemetry/metrics';
import type { DlqApiDeps } from './ops/dlq-api';
import type { OverviewDeps } from './ops/overview';

/**
 * The composition root: settings in, the clients every handler needs out. Built once per process
 * (a Function App instance or the local host) and shared by every invocation.
 */
export interface Runtime {
  settings: Settings;
  home: RegionStorage;
  /** The regions of GEOREG_REGIONS; `registry` also knows the ones created at run time. */
  regions: Map<string, RegionStorage>;
  registry: ReplicaRegistry;
  state: StateStore;
  bus: ServiceBusClient;
  replicationSender: ServiceBusSender;
  /** Queue `webhook-deliveries`: the replicate step enqueues deliveries, the deliver step schedules retries. */
  webhookSender: ServiceBusSender;
  /** Queue `backfill-pages`: `replication create` queues a back-fill's first page, each page the next. */
  backfillSender: ServiceBusSender;
  /** Service Bus administration (subscriptions per region, queue counts), made on first use. */
  busAdmin(): ServiceBusAdministrationClient;
  close(): Promise<void>;
}

export async function createRuntime(settings: Settings = loadSettings()): Promise<Runtime> {
  startTelemetry();
  const state = StateStore.forAccount({ connectionString: settings.homeRegion.connectionString, accountUrl: settings.homeRegion.accountUrl, container: settings.stateContainer });
  await state.ensureContainer();
  const registry = new ReplicaRegistry(settings, state);
  const regions = new Map<string, RegionStorage>();
  for (const r of settings.regions) {
    regions.set(r.name, registry.storageOf({ name: r.name, storage: settingStorage(r) }));
  }
  const home = regions.get(settings.homeRegion.name)!;
  const bus = settings.serviceBus.connectionString
    ? new ServiceBusClient(settings.serviceBus.connectionString)
    : new ServiceBusClient(settings.serviceBus.fullyQualifiedNamespace!, defaultAzureCredential());
  // Every message georeg sends carries the trace it was sent in.
  const replicationSender = tracedSender(bus.createSender(settings.serviceBus.replicationTopic));
  const webhookSender = tracedSender(bus.createSender(settings.serviceBus.webhookQueue));
  const backfillSender = tracedSender(bus.createSender(settings.serviceBus.backfillQueue));
  let admin: ServiceBusAdministrationClient | undefined;
  return {
    settings,
    home,
    regions,
    registry,
    state,
    bus,
    replicationSender,
    webhookSender,
    backfillSender,
    busAdmin() {
      admin ??= settings.serviceBus.connectionString
        ? createAdministrationClient(settings.serviceBus.connectionString)
        : createAdministrationClient({ fullyQualifiedNamespace: settings.serviceBus.fullyQualifiedNamespace!, credential: defaultAzureCredential() });
      return admin!;
    },
    async close() {
      await replicationSender.close();
      await webhookSender.close();
      await backfillSender.close();
      await bus.close();
    },
  };
}

let shared: Promise<Runtime> | undefined;

/**
 * What a host that is not the Functions host hands an invocation: its runtime (the local host
 * has its own, and tests run several in one process) and, to settle a Service Bus message
 * explicitly, its message actions. Keyed by the invocation's context object.
 */
export interface HostedInvocation {
  runtime: Runtime;
  messageActions?: MessageActions;
}
const hosted = new WeakMap<object, HostedInvocation>();
/** The same, for code an invocation runs that was not handed its context (`runtime()` with no argument). */
const current = new AsyncLocalStorage<HostedInvocation>();

/** Runs `invoke` as an invocation of this host: its context, and everything it calls, see `invocation`. */
export function hostInvocation<T>(context: object, invocation: HostedInvocation, invoke: () => T): T {
  hosted.set(context, invocation);
  return current.run(invocation, invoke);
}

export function hostedInvocation(context: object | undefined): HostedInvocation | undefined {
  return (context && hosted.get(context)) || current.getStore();
}

/**
 * The runtime for a functions/ invocation: the local host's when it runs the invocation, else the
 * process-wide one (lazily created from the environment on the first invocation, as in Azure).
 */
export function runtime(context?: object): Promise<Runtime> {
  const mine = hostedInvocation(context)?.runtime;
  if (mine) return Promise.resolve(mine);
  shared ??= createRuntime().catch((e) => {
    shared = undefined;
    throw e;
  });
  return shared;
}

/** Who is told when a region starts or stops receiving jobs (a local host starts or stops its receivers). */
const regionWatchers = new WeakMap<Runtime, Set<() => Promise<void>>>();

export function watchRegions(rt: Runtime, listener: () => Promise<void>): () => void {
  const set = regionWatchers.get(rt) ?? new Set();
  regionWatchers.set(rt, set);
  set.add(listener);
  return () => set.delete(listener);
}

async function regionsChanged(rt: Runtime): Promise<void> {
  await Promise.all([...(regionWatchers.get(rt) ?? [])].map((listener) => listener()));
}

export function pushDeps(rt: Runtime, log: Logger): PushDeps {
  return { settings: rt.settings, home: rt.home, replicas: () => rt.registry.receivingReplicas(), state: rt.state, replicationSender: rt.replicationSender, log };
}

export function replicateDeps(rt: Runtime, log: Logger): ReplicateDeps {
  return {
    settings: rt.settings,
    home: rt.home,
    regionStorage: (region) => rt.registry.storageFor(region),
    state: rt.state,
    log,
    afterCommit: (job, status, alreadyComplete) =>
      inSpan('georeg.status', { 'georeg.region': job.region, 'georeg.push_id': job.pushId, 'georeg.already_complete': alreadyComplete }, async () => {
        if (!alreadyComplete && status.state === 'complete') {
          if (status.durationMs !== undefined) recordMetric.pushReady(job.region, status.durationMs);
          recordMetric.blobsSkipped(job.region, status.blobs.skipped, status.bytes.skipped);
        }
        await recordReplicaProgress(job, status, alreadyComplete, { registry: rt.registry, state: rt.state, log });
        await enqueueWebhookDeliveries(job, status, { state: rt.state, webhookSender: rt.webhookSender, log });
      }),
    afterFailure: (job, reason, description) => recordReplicaFailure(job, reason, description, { registry: rt.registry, state: rt.state, log }),
    reschedule: async (job, at) => {
      await rt.replicationSender.scheduleMessages(replicationJobMessage(job), at);
    },
  };
}

export function reconcileDeps(rt: Runtime, log: Logger): ReconcileDeps {
  return { settings: rt.settings, home: rt.home, registry: rt.registry, state: rt.state, replicationSender: rt.replicationSender, log };
}

export function backfillDeps(rt: Runtime, log: Logger): BackfillDeps {
  return { settings: rt.settings, home: rt.home, registry: rt.registry, state: rt.state, replicationSender: rt.replicationSender, backfillSender: rt.backfillSender, log };
}

export function webhookDeliverDeps(rt: Runtime, log: Logger): DeliverDeps {
  return { settings: rt.settings, state: rt.state, webhookSender: rt.webhookSender, log };
}

export function webhookAdminDeps(rt: Runtime, log: Logger): WebhookAdminDeps {
  return { settings: rt.settings, state: rt.state, webhookSender: rt.webhookSender, replicaNames: async () => (await rt.registry.list()).filter((r) => !r.home).map((r) => r.name), log };
}

export function replicaAdminDeps(rt: Runtime, log: Logger, onRegionsChanged: () => Promise<void> = () => regionsChanged(rt)): ReplicaAdminDeps {
  return {
    settings: rt.settings,
    registry: rt.registry,
    home: rt.home,
    state: rt.state,
    replicationSender: rt.replicationSender,
    backfillSender: rt.backfillSender,
    bus: rt.bus,
    busAdmin: () => rt.busAdmin(),
    log,
    onRegionsChanged,
  };
}

export function dlqDeps(rt: Runtime, log: Logger): DlqApiDeps {
  return {
    settings: rt.settings,
    replicationSender: rt.replicationSender,
    webhookSender: rt.webhookSender,
    state: rt.state,
    registry: rt.registry,
    log,
  };
}

export function overviewDeps(rt: Runtime, log: Logger): OverviewDeps {
  return { ...replicaAdminDeps(rt, log), ...dlqDeps(rt, log) };
}
