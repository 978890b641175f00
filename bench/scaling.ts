import type { Logger } from '../src/common/log';
import { forEachLimit } from '../src/common/pool';
import { generated } from '../src/registry/generate';
import { DEFAULT_HOME, DEFAULT_REPLICAS, startStack, type Stack } from '../src/local/stack';
import { writeImage } from '../src/registry/writer';
import { BusTracker, cpuSeconds, outcomeOf, percentile, pushThroughPipeline, StorageRequests, type PipelinePush } from './measure';

/**
 * The region-scaling run of `npm run bench`: the many-small workload pushed through the pipeline
 * to 1, 3 and 6 replica regions, each on a stack of its own, to show how throughput and push→ready
 * grow with the number of regions (every region's job runs on the same worker and the same
 * Azurite here; in Azure each region's jobs run in that region's Function App). Pipeline only.
 */

/** Replica names past the local stack's three (Azurite account names: lower-case letters). */
export const SCALING_REPLICAS = [...DEFAULT_REPLICAS, 'northeurope', 'japaneast', 'australiaeast', 'brazilsouth', 'southindia', 'uksouth'];

export interface BenchStackOptions {
  replicas: string[];
  concurrency: number;
  verify: boolean;
  maxConcurrentCalls: number;
  tracker: BusTracker;
  log: Logger;
}

/** The local stack as the bench runs it: the bench's copy settings, the reconcile timer off, the tracker on every trigger. */
export function startBenchStack(options: BenchStackOptions): Promise<Stack> {
  return startStack({
    replicas: options.replicas,
    log: options.log,
    // The reconcile timer off (a yearly schedule): the bench clears regions between repetitions,
    // and a reconcile repairing them would copy what the measured pushes are meant to copy.
    settings: { GEOREG_COPY_CONCURRENCY: String(options.concurrency), GEOREG_VERIFY_DIGESTS: String(options.verify), GEOREG_RECONCILE_SCHEDULE: '0 0 0 1 1 *' },
    host: { onJob: options.tracker.onJob, onDelivery: options.tracker.onDelivery, maxConcurrentCalls: options.maxConcurrentCalls },
  });
}

export interface ScalingPoint {
  regions: number;
  images: number;
  window: number;
  /** First push sent → last image ready in every region. */
  totalMs: number;
  p50Ms: number;
  p95Ms: number;
  /** Images ready everywhere per second, and region jobs completed per second. */
  imagesPerSecond: number;
  jobsPerSecond: number;
  storageRequests: number;
  requestsPerPushPerRegion: number;
  cpuSeconds: { ours: number; azurite: number };
}

export async function regionScaling(options: {
  counts: number[];
  images: number;
  window: number;
  small: { layers: number; layerSize: number };
  concurrency: number;
  verify: boolean;
  maxConcurrentCalls: number;
  timeoutMs: number;
  log: Logger;
}): Promise<ScalingPoint[]> {
  const points: ScalingPoint[] = [];
  for (const count of options.counts) {
    if (count > SCALING_REPLICAS.length) throw new Error(`--scaling-regions: at most ${SCALING_REPLICAS.length} replica regions (asked for ${count})`);
    const replicas = SCALING_REPLICAS.slice(0, count);
    console.log(`bench: region scaling, ${count} replica region(s) (${options.images} images, ${options.window} at a time)`);
    const tracker = new BusTracker();
    const stack = await startBenchStack({ ...options, replicas, tracker });
    const azuriteHost = new URL(/BlobEndpoint=([^;]+)/.exec(stack.storageConnectionString(DEFAULT_HOME))![1]).host;
    const requests = new StorageRequests(azuriteHost, stack.settings.stateContainer, stack.runtime.home.accountName);
    try {
      // Unmeasured: opens the AMQP links, fills the copy-capability cache, warms the JIT.
      const warmup = generated('bench/warmup', '1', { generate: { layers: 2, layerSize: 64 * 1024 }, seed: 'bench-warmup' });
      await writeImage(stack.runtime.home, warmup);
      await pushThroughPipeline(stack, tracker, warmup, replicas, options.timeoutMs);
      const images = Array.from({ length: options.images }, (_, i) => generated('bench/scaling', `t${i}`, { generate: options.small, seed: `bench-scaling-${i}` }));
      await forEachLimit(images, 4, async (image) => {
        await writeImage(stack.runtime.home, image);
      });
      const cpu = cpuSeconds();
      requests.take();
      const settled: PipelinePush[] = new Array(images.length);
      await forEachLimit([...images.keys()], options.window, async (i) => {
        settled[i] = await pushThroughPipeline(stack, tracker, images[i], replicas, options.timeoutMs);
      });
      const taken = requests.take();
      const now = cpuSeconds();
      const pushes = await Promise.all(settled.map((p) => outcomeOf(stack, p, replicas)));
      const first = Math.min(...pushes.map((p) => p.sentAt));
      const totalMs = Math.max(...pushes.map((p) => p.sentAt + p.readyMs)) - first;
      const total = taken.registry + taken.state;
      points.push({
        regions: count,
        images: images.length,
        window: options.window,
        totalMs: Math.round(totalMs),
        p50Ms: Math.round(percentile(pushes.map((p) => p.readyMs), 50)),
        p95Ms: Math.round(percentile(pushes.map((p) => p.readyMs), 95)),
        imagesPerSecond: +((images.length * 1000) / totalMs).toFixed(2),
        jobsPerSecond: +((images.length * count * 1000) / totalMs).toFixed(2),
        storageRequests: total,
        requestsPerPushPerRegion: +(total / (images.length * count)).toFixed(1),
        cpuSeconds: { ours: +(now.ours - cpu.ours).toFixed(2), azurite: +(now.children - cpu.children).toFixed(2) },
      });
    } finally {
      requests.close();
      await stack.close();
    }
  }
  return points;
}

export function scalingTable(points: ScalingPoint[]): string {
  const rows = points.map((p) => [
    String(p.regions),
    `${p.images} × ${p.window} in flight`,
    `${p.totalMs} ms`,
    `${p.imagesPerSecond} images/s (${p.jobsPerSecond} region jobs/s)`,
    `p50 ${p.p50Ms} / p95 ${p.p95Ms} ms`,
    String(p.requestsPerPushPerRegion),
    `${p.cpuSeconds.ours}/${p.cpuSeconds.azurite}`,
  ]);
  const head = ['replica regions', 'pushes', 'total', 'throughput', 'push→ready', 'requests/push/region', 'CPU s ours/Azurite'];
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
