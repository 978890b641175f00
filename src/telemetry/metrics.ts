import { metrics, type Counter, type Histogram } from '@opentelemetry/api';

/**
 * georeg's metrics. Names follow OpenTelemetry's style; the Prometheus text at /api/metrics turns
 * them into `georeg_jobs_total`, `georeg_push_to_ready_milliseconds_bucket`, and so on.
 */

interface Instruments {
  pushToReady: Histogram;
  blobs: Counter;
  bytes: Counter;
  jobs: Counter;
  deliveries: Counter;
}

let instruments: Instruments | undefined;
/** Seconds each region is behind (the age of its oldest queued job), as last read from Service Bus. */
const lag = new Map<string, number>();

function get(): Instruments {
  if (instruments) return instruments;
  const meter = metrics.getMeter('georeg');
  meter
    .createObservableGauge('georeg.replica.lag', { unit: 's', description: 'Age of the oldest job still queued for the region, as last read from Service Bus (refreshed by /api/metrics and /api/overview)' })
    .addCallback((result) => {
      for (const [region, seconds] of lag) result.observe(seconds, { region });
    });
  instruments = {
    pushToReady: meter.createHistogram('georeg.push_to_ready', {
      unit: 'ms',
      description: 'Time from the push notification to the region holding the image complete',
      advice: { explicitBucketBoundaries: [100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 900_000] },
    }),
    blobs: meter.createCounter('georeg.blobs', { description: 'Blobs per region: copied (by method) or skipped (the region had them)' }),
    bytes: meter.createCounter('georeg.bytes', { unit: 'By', description: 'Bytes per region: copied (by method) or skipped' }),
    jobs: meter.createCounter('georeg.jobs', { description: 'Replication jobs settled, by region and outcome (completed, rescheduled, dead-letter, abandoned)' }),
    deliveries: meter.createCounter('georeg.webhook.deliveries', { description: 'Webhook delivery attempts settled, by region, webhook and outcome' }),
  };
  return instruments;
}

export const recordMetric = {
  pushReady(region: string, ms: number): void {
    get().pushToReady.record(ms, { region });
  },
  blobsCopied(region: string, method: string, count: number, bytes: number): void {
    get().blobs.add(count, { region, method, result: 'copied' });
    get().bytes.add(bytes, { region, method, result: 'copied' });
  },
  blobsSkipped(region: string, count: number, bytes: number): void {
    if (!count) return;
    get().blobs.add(count, { region, method: 'none', result: 'skipped' });
    get().bytes.add(bytes, { region, method: 'none', result: 'skipped' });
  },
  job(region: string, outcome: string): void {
    get().jobs.add(1, { region, outcome });
  },
  delivery(region: string, webhook: string, outcome: string): void {
    get().deliveries.add(1, { region, webhook, outcome });
  },
  lag(region: string, seconds: number | undefined): void {
    get();
    if (seconds === undefined) lag.delete(region);
    else lag.set(region, seconds);
  },
};
