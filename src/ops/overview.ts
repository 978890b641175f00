import { adminDenied, json, type HttpOutput } from '../common/http';
import { view, type ReplicaAdminDeps, type ReplicaView } from '../replicas/admin-api';
import { StatusStore, type PushRecord, type RegionStatus } from '../replication/status';
import { StateUnavailableError } from '../storage/state-store';
import { statePaths } from '../storage/paths';
import { DeliveryRecord, WebhookStore } from '../webhooks/store';
import { recordMetric } from '../telemetry/metrics';
import { allSources, queueView, type DeadLetterQueueView, type DlqApiDeps } from './dlq-api';

/**
 * `GET /api/overview`: everything the dashboard shows, in one JSON document it polls every few
 * seconds. Regions (status, lag, last synced push, Service Bus counts), recent pushes with each
 * region's state and push→ready time, push→ready latency per region over the last hour (p50/p95
 * per 5 minutes), webhooks with their deliveries, and the dead letters of every queue.
 */

export type OverviewDeps = ReplicaAdminDeps & DlqApiDeps;

export interface Overview {
  generatedAt: string;
  home: string;
  /** `queue.active`: jobs waiting or running (Service Bus); `queue.deadLettered`: dead letters kept for redrive. */
  regions: Array<ReplicaView & { queue?: { active: number; deadLettered: number } }>;
  /** Service Bus counts of the entities themselves (scheduled retries wait on the topic, not in a subscription). */
  entities: { topic: { name: string; scheduled?: number; error?: string }; webhookQueue: { name: string; active?: number; scheduled?: number; deadLettered?: number; error?: string } };
  pushes: PushView[];
  latency: { windowMinutes: number; bucketMinutes: number; regions: Record<string, LatencyBucket[]> };
  webhooks: WebhookSummary[];
  deadLetters: DeadLetterQueueView[];
}

export interface PushView {
  pushId: string;
  action: PushRecord['action'];
  repository: string;
  tag?: string;
  digest?: string;
  size?: number;
  createdAt: string;
  /** One per replica region the push was sent to; `state` is any state string the pipeline records. */
  regions: Array<Pick<RegionStatus, 'region' | 'state' | 'blobs' | 'bytes' | 'methods' | 'attempts' | 'error' | 'durationMs' | 'completedAt'> & { missingBlobs: number; missingBytes: number }>;
}

export interface LatencyBucket {
  start: string;
  count: number;
  p50?: number;
  p95?: number;
}

export interface WebhookSummary {
  name: string;
  region: string;
  status: string;
  serviceUri: string;
  deliveries: { succeeded: number; failed: number; pending: number; counted: number };
  lastError?: { at: string; error: string; deliveryId: string };
}

const WINDOW_MINUTES = 60;
const BUCKET_MINUTES = 5;
const RECENT_PUSHES = 25;
const MAX_PUSHES_IN_WINDOW = 1000;
const DELIVERIES_COUNTED = 200;
/** States in which a region's record of a push no longer changes (failed does: a redrive reopens it). */
const SETTLED = new Set(['complete', 'superseded']);

/**
 * Push records and region statuses that no longer change, by push id, so a poll every few seconds
 * reads only what is still moving. Bounded: the oldest entries go first.
 */
const settledPushes = new Map<string, PushView>();
const settledDeliveries = new Map<string, DeliveryRecord>();

export async function handleOverview(req: { headers: Record<string, string | undefined> }, deps: OverviewDeps): Promise<HttpOutput> {
  const denied = adminDenied(req.headers, deps.settings.adminSecret);
  if (denied) return denied;
  try {
    return json(200, await overview(deps));
  } catch (e) {
    if (e instanceof StateUnavailableError) return json(503, { error: `the home region (${deps.settings.homeRegion.name}) cannot be reached: the overview reads its records there (${e.message})` });
    throw e;
  }
}

export async function overview(deps: OverviewDeps, now = new Date()): Promise<Overview> {
  const [regions, entities, pushes, webhooks, deadLetters] = await Promise.all([
    regionViews(deps),
    entityCounts(deps),
    pushesInWindow(deps, now),
    webhookSummaries(deps),
    allSources(deps).then((sources) => Promise.all(sources.map((s) => queueView(s, deps)))),
  ]);
  // The dead-letter triggers drain the broker's dead-letter queues: what a region has dead-lettered
  // is what they keep for redrive.
  const kept = new Map(deadLetters.map((q) => [q.region, q.count]));
  return {
    generatedAt: now.toISOString(),
    home: deps.settings.homeRegion.name,
    regions: regions.map((r) => (r.queue ? { ...r, queue: { ...r.queue, deadLettered: kept.get(r.name) ?? 0 } } : r)),
    entities,
    pushes: pushes.slice(0, RECENT_PUSHES),
    latency: { windowMinutes: WINDOW_MINUTES, bucketMinutes: BUCKET_MINUTES, regions: latencyBuckets(pushes, regions.filter((r) => !r.home).map((r) => r.name), now) },
    webhooks,
    deadLetters,
  };
}

async function regionViews(deps: OverviewDeps): Promise<Overview['regions']> {
  const replicas = await deps.registry.list();
  return Promise.all(
    replicas.map(async (r) => {
      const v = await view(r, deps);
      if (!r.home) recordMetric.lag(r.name, v.lagSeconds);
      return r.home || v.pendingJobs === undefined ? v : { ...v, queue: { active: v.pendingJobs, deadLettered: v.deadLetters ?? 0 } };
    }),
  );
}

async function entityCounts(deps: OverviewDeps): Promise<Overview['entities']> {
  const { replicationTopic, webhookQueue } = deps.settings.serviceBus;
  const admin = deps.busAdmin();
  const [topic, queue] = await Promise.all([
    admin.getTopicRuntimeProperties(replicationTopic).then(
      (t) => ({ name: replicationTopic, scheduled: t.scheduledMessageCount }),
      (e: Error) => ({ name: replicationTopic, error: `Service Bus: ${e.message}` }),
    ),
    admin.getQueueRuntimeProperties(webhookQueue).then(
      (q) => ({ name: webhookQueue, active: q.activeMessageCount, scheduled: q.scheduledMessageCount, deadLettered: q.deadLetterMessageCount }),
      (e: Error) => ({ name: webhookQueue, error: `Service Bus: ${e.message}` }),
    ),
  ]);
  return { topic, webhookQueue: queue };
}

/** Every push of the last hour (for the chart), newest first. */
async function pushesInWindow(deps: OverviewDeps, now: Date): Promise<PushView[]> {
  const statuses = new StatusStore(deps.state);
  const ids = await statuses.recentPushIds(new Date(now.getTime() - WINDOW_MINUTES * 60_000), MAX_PUSHES_IN_WINDOW);
  // The most recent pushes are listed even when older than the window.
  const recent = ids.length >= RECENT_PUSHES ? ids : await statuses.recentPushIds(new Date(0), RECENT_PUSHES);
  const found = await Promise.all(
    recent.map(async ({ pushId }) => {
      const cached = settledPushes.get(pushId);
      if (cached) return cached;
      const record = await statuses.push(pushId);
      if (!record) return undefined;
      const pushView = toView(record.push, record.regions);
      if (pushView.regions.length === record.push.regions.length && pushView.regions.every((r) => SETTLED.has(r.state))) remember(settledPushes, pushId, pushView);
      return pushView;
    }),
  );
  return found.filter((p): p is PushView => p !== undefined);
}

function toView(push: PushRecord, regions: RegionStatus[]): PushView {
  const planned = new Map(push.regions.map((r) => [r.region, r]));
  return {
    pushId: push.pushId,
    action: push.action,
    repository: push.repository,
    tag: push.tag,
    digest: push.digest,
    size: push.size,
    createdAt: push.createdAt,
    regions: regions.map((r) => ({
      region: r.region,
      state: r.state,
      blobs: r.blobs,
      bytes: r.bytes,
      methods: r.methods,
      attempts: r.attempts,
      error: r.error,
      durationMs: r.durationMs,
      completedAt: r.completedAt,
      // A notification's plan does not ask the region: what it lacked is what its job's check found.
      missingBlobs: planned.get(r.region)?.missingBlobs ?? r.blobs.planned,
      missingBytes: planned.get(r.region)?.missingBytes ?? r.bytes.planned,
    })),
  };
}

/** p50/p95 of push→ready per region and 5-minute bucket, over complete regions of the window's pushes. */
export function latencyBuckets(pushes: PushView[], regions: string[], now: Date): Record<string, LatencyBucket[]> {
  const bucketMs = BUCKET_MINUTES * 60_000;
  const count = WINDOW_MINUTES / BUCKET_MINUTES;
  const firstStart = Math.floor(now.getTime() / bucketMs) * bucketMs - (count - 1) * bucketMs;
  const samples = new Map<string, number[][]>(regions.map((r) => [r, Array.from({ length: count }, () => [])]));
  for (const p of pushes) {
    for (const r of p.regions) {
      if (r.state !== 'complete' || r.durationMs === undefined || !r.completedAt) continue;
      const index = Math.floor((Date.parse(r.completedAt) - firstStart) / bucketMs);
      if (index >= 0 && index < count) samples.get(r.region)?.[index].push(r.durationMs);
    }
  }
  return Object.fromEntries(
    [...samples].map(([region, buckets]) => [
      region,
      buckets.map((values, i) => ({ start: new Date(firstStart + i * bucketMs).toISOString(), count: values.length, p50: percentile(values, 0.5), p95: percentile(values, 0.95) })),
    ]),
  );
}

/** Nearest-rank percentile; undefined for no samples. */
export function percentile(values: number[], q: number): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

async function webhookSummaries(deps: OverviewDeps): Promise<WebhookSummary[]> {
  const store = new WebhookStore(deps.state);
  const webhooks = await store.list();
  return Promise.all(
    webhooks.map(async (w) => {
      const names = await deps.state.list(statePaths.webhookDeliveriesPrefix(w.name), DELIVERIES_COUNTED);
      const records = await Promise.all(
        names.map(async (name) => {
          const cached = settledDeliveries.get(name);
          if (cached) return cached;
          const record = (await deps.state.get(name, DeliveryRecord))?.value;
          if (record?.state === 'delivered') remember(settledDeliveries, name, record);
          return record;
        }),
      );
      const deliveries = { succeeded: 0, failed: 0, pending: 0, counted: 0 };
      for (const r of records) {
        if (!r) continue;
        deliveries.counted += 1;
        if (r.state === 'delivered') deliveries.succeeded += 1;
        else if (r.state === 'failed') deliveries.failed += 1;
        else deliveries.pending += 1;
      }
      const lastFailed = (await store.listAttempts(w.name, 20)).find((a) => a.outcome !== 'delivered');
      return {
        name: w.name,
        region: w.region,
        status: w.status,
        serviceUri: w.serviceUri,
        deliveries,
        lastError: lastFailed && { at: lastFailed.at, error: lastFailed.error ?? `HTTP ${lastFailed.statusCode ?? '?'}`, deliveryId: lastFailed.deliveryId },
      };
    }),
  );
}

function remember<T>(cache: Map<string, T>, key: string, value: T): void {
  cache.set(key, value);
  if (cache.size > 5000) cache.delete(cache.keys().next().value as string);
}
