import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startStack, type Stack } from '../support/stack';
import { deleteTag } from '../../src/registry/writer';
import { ReconcileReport } from '../../src/replication/reconcile';
import { statePaths } from '../../src/storage/paths';
import { runCli } from '../support/cli';
import { pushImage, settled } from '../support/pipeline';

/**
 * Lost notifications (a registry restarted while georeg was down loses its in-memory queue) are
 * recovered by the reconcile timer alone: no command is run. The schedule here is every second
 * (NCRONTAB's finest), so each wait below for the timer's next run is under a second.
 */

const REPLICAS = ['eastus', 'westeurope'];
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ replicas: REPLICAS, httpPort: 0, log: silentLogger, settings: { GEOREG_RECONCILE_SCHEDULE: '* * * * * *' } });
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

const tagIn = (region: string, repository: string, tag: string) => {
  const storage = stack.runtime.regions.get(region)!;
  return storage.readLink({ kind: 'tagCurrent', repository, tag });
};

async function lastReport(region: string): Promise<ReconcileReport | undefined> {
  return (await stack.runtime.state.get(statePaths.reconcileReport(region), ReconcileReport))?.value;
}

describe('reconcile (anti-entropy timer)', () => {
  it('a push whose notification was lost (georeg push --no-notify) reaches every replica within a reconcile period', async () => {
    const pushed = await runCli(['push', '--generate', '2x1KiB', '--seed', 'lost-push', '--no-notify', 'lost/push:v1'], { cwd: process.cwd(), env: { ...stack.env, GEOREG_API_URL: `${stack.host.url}/api` } });
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toContain('no notification sent');
    const digest = generated('lost/push', 'v1', { generate: { layers: 2, layerSize: 1024 }, seed: 'lost-push' }).manifests[0].digest;
    expect(await stack.runtime.home.readLink({ kind: 'tagCurrent', repository: 'lost/push', tag: 'v1' })).toBe(digest);
    for (const region of REPLICAS) await expect.poll(() => tagIn(region, 'lost/push', 'v1'), { timeout: 30_000, interval: 100 }).toBe(digest);
    const report = await lastReport(REPLICAS[0]);
    expect(report?.requests.listPages).toBeGreaterThanOrEqual(2);
  });

  it('a tag deleted at home without a notification is removed from every replica', async () => {
    const image = generated('lost/delete', 'old', { generate: { layers: 1, layerSize: 512 }, seed: 'lost-delete' });
    await settled(stack, (await pushImage(stack, image)).pushId, REPLICAS);
    await deleteTag(stack.runtime.home, 'lost/delete', 'old');
    for (const region of REPLICAS) await expect.poll(() => tagIn(region, 'lost/delete', 'old'), { timeout: 30_000, interval: 100 }).toBeUndefined();
    // Links only: the blobs stay for garbage collection.
    for (const region of REPLICAS) expect((await stack.runtime.regions.get(region)!.blobProperties(image.blobs[0].digest))?.size).toBe(image.blobs[0].size);
  });

  it('a converged registry: a reconcile run finds no drift and sends nothing', async () => {
    // Everything above has converged (each test waited for its tag in every replica): a run that
    // starts from now on has nothing to do.
    const since = Date.now();
    for (const region of REPLICAS) {
      await expect.poll(async () => Date.parse((await lastReport(region))?.startedAt ?? '0'), { timeout: 30_000, interval: 100 }).toBeGreaterThan(since);
      const report = (await lastReport(region))!;
      expect(report.sent).toEqual([]);
      expect(report.drift).toEqual({ missing: 0, stale: 0, deleted: 0 });
      expect(report.homeTags).toBe(report.regionTags);
      // Equal tags by listing: not one link read.
      expect(report.requests.reads).toBe(0);
    }
  });
});
