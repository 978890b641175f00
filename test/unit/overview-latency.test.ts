import { describe, expect, it } from 'vitest';
import { latencyBuckets, percentile, type PushView } from '../../src/ops/overview';

describe('the dashboard latency chart data', () => {
  it('takes nearest-rank percentiles', () => {
    expect(percentile([], 0.5)).toBeUndefined();
    expect(percentile([300, 100, 200], 0.5)).toBe(200);
    expect(percentile(Array.from({ length: 20 }, (_, i) => i + 1), 0.95)).toBe(19);
    expect(percentile([7], 0.95)).toBe(7);
  });

  it('buckets complete regions by completion time over the last hour; other states and older pushes are left out', () => {
    const now = new Date('2026-12-01T10:07:00Z');
    const region = (state: string, durationMs: number, completedAt: string) => ({ region: 'eastus', state, durationMs, completedAt, blobs: { total: 0, planned: 0, copied: 0, skipped: 0, foreign: 0 }, bytes: { total: 0, planned: 0, copied: 0, skipped: 0 }, methods: {}, attempts: 1, missingBlobs: 0, missingBytes: 0 });
    const push = (regions: ReturnType<typeof region>[]): PushView => ({ pushId: 'p', action: 'push', repository: 'r', createdAt: now.toISOString(), regions: regions as PushView['regions'] });
    const buckets = latencyBuckets(
      [push([region('complete', 100, '2026-12-01T10:06:00Z')]), push([region('complete', 300, '2026-12-01T10:05:30Z')]), push([region('superseded', 900, '2026-12-01T10:06:00Z')]), push([region('complete', 50, '2026-12-01T08:00:00Z')])],
      ['eastus', 'westeurope'],
      now,
    );
    expect(buckets.eastus).toHaveLength(12);
    expect(buckets.eastus[11]).toEqual({ start: '2026-12-01T10:05:00.000Z', count: 2, p50: 100, p95: 300 });
    expect(buckets.eastus.slice(0, 11).every((b) => b.count === 0)).toBe(true);
    expect(buckets.westeurope.every((b) => b.count === 0 && b.p50 === undefined)).toBe(true);
  });
});
