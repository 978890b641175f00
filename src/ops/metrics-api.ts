import { regionQueue } from '../bus/subscriptions';
import { adminDenied, type HttpOutput } from '../common/http';
import type { ReplicaAdminDeps } from '../replicas/admin-api';
import { recordMetric } from '../telemetry/metrics';
import { startTelemetry } from '../telemetry/setup';

/**
 * `GET /api/metrics`: georeg's metrics as Prometheus text, behind the admin secret (and a function
 * key in Azure). Each scrape first reads every replica's queue from Service Bus, so the lag gauge
 * is as fresh as the scrape.
 */
export async function handleMetrics(req: { headers: Record<string, string | undefined> }, deps: Pick<ReplicaAdminDeps, 'settings' | 'registry' | 'busAdmin' | 'bus' | 'log'>): Promise<HttpOutput> {
  const denied = adminDenied(req.headers, deps.settings.adminSecret);
  if (denied) return denied;
  const replicas = (await deps.registry.list()).filter((r) => !r.home);
  await Promise.all(
    replicas.map(async (r) => {
      try {
        const queue = await regionQueue(deps.busAdmin(), deps.bus, deps.settings.serviceBus.replicationTopic, r.name);
        recordMetric.lag(r.name, queue && (queue.oldestEnqueuedAt ? Math.max(0, (Date.now() - queue.oldestEnqueuedAt.getTime()) / 1000) : 0));
      } catch (e) {
        // The other metrics are still worth serving; the gauge keeps its last value.
        deps.log.warn(`metrics: cannot read the queue of ${r.name}: ${(e as Error).message}`);
      }
    }),
  );
  return { status: 200, body: await startTelemetry().prometheusText(), headers: { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' } };
}

