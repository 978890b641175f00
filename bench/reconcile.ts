import { createHash } from 'node:crypto';
import { Command } from 'commander';
import { generated } from '../src/registry/generate';
import { silentLogger } from '../src/common/log';
import { forEachLimit } from '../src/common/pool';
import { startStack } from '../src/local/stack';
import { writeImage } from '../src/registry/writer';
import { reconcileAll } from '../src/replication/reconcile';
import { reconcileDeps } from '../src/runtime';
import type { RegionStorage } from '../src/storage/region-storage';
import { StorageRequests } from './measure';

/**
 * `npm run bench:reconcile`: what one reconcile run costs (storage requests, time) for a registry
 * of N tags, converged and with drift (lost pushes and lost deletes). Each tag has its own
 * manifest, as a registry that tags every build does: current link, index link, revision link and
 * two layer links per tag. Measures and prints; asserts nothing.
 */

const program = new Command('bench:reconcile')
  .option('--tags <n>', 'tags in the registry (home and replica)', '1000')
  .option('--drift <n>', 'lost pushes and as many lost deletes to repair in the second run', '10')
  .parse();
const flags = program.opts<{ tags: string; drift: string }>();

const fakeDigest = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/** The links a registry writes for one pushed tag (the blob data is not needed to reconcile a converged tag). */
async function writeTagLinks(storage: RegionStorage, repository: string, tag: string, i: number): Promise<void> {
  const { layout } = storage;
  const manifest = fakeDigest(`manifest-${i}`);
  await Promise.all([
    storage.writeLink({ kind: 'layer', repository, digest: fakeDigest(`layer-${i}`) }, fakeDigest(`layer-${i}`)),
    storage.writeLink({ kind: 'layer', repository, digest: fakeDigest('base') }, fakeDigest('base')),
    storage.writeLink({ kind: 'revision', repository, digest: manifest }, manifest),
    storage.writeLink({ kind: 'tagIndex', repository, tag, digest: manifest }, manifest),
  ]);
  await storage.writeLink({ kind: 'tagCurrent', repository, tag }, manifest);
}

async function main() {
  const tags = Number(flags.tags);
  const drift = Number(flags.drift);
  // A schedule that does not fire during the run: the bench calls the reconcile itself.
  const stack = await startStack({ replicas: ['eastus'], httpPort: 0, log: silentLogger, settings: { GEOREG_RECONCILE_SCHEDULE: '0 0 0 1 1 *' } });
  const requests = new StorageRequests(new URL(stack.runtime.home.url).host, stack.settings.stateContainer, stack.runtime.home.accountName);
  try {
    const home = stack.runtime.home;
    const region = stack.runtime.regions.get('eastus')!;
    const started = Date.now();
    await forEachLimit(
      Array.from({ length: tags }, (_, i) => i),
      32,
      async (i) => {
        const repository = `bench/repo${i % 100}`;
        await writeTagLinks(home, repository, `b${i}`, i);
        await writeTagLinks(region, repository, `b${i}`, i);
      },
    );
    console.log(`wrote ${tags} tags (5 links each) to home and eastus in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const deps = reconcileDeps(stack.runtime, silentLogger);

    requests.take();
    let t = Date.now();
    const [converged] = await reconcileAll(deps);
    const convergedMs = Date.now() - t;
    const convergedRequests = requests.take();

    // Drift: pushes home has and the region never heard of, and tags home deleted but the region kept.
    for (let i = 0; i < drift; i++) {
      await writeImage(home, generated(`bench/lost${i % 5}`, `l${i}`, { generate: { layers: 1, layerSize: 256 }, seed: `lost-${i}` }));
      await home.deletePrefix({ kind: 'tag', repository: `bench/repo${i % 100}`, tag: `b${i}` });
    }
    requests.take();
    t = Date.now();
    const [drifted] = await reconcileAll(deps);
    const driftedMs = Date.now() - t;
    const driftedRequests = requests.take();

    console.table([
      { run: 'converged', tags, 'time (ms)': convergedMs, 'registry requests': convergedRequests.registry, 'state requests': convergedRequests.state, 'list pages': converged.requests.listPages, 'link/state reads': converged.requests.reads, 'jobs sent': converged.sent.length },
      { run: `${drift} lost pushes + ${drift} lost deletes`, tags, 'time (ms)': driftedMs, 'registry requests': driftedRequests.registry, 'state requests': driftedRequests.state, 'list pages': drifted.requests.listPages, 'link/state reads': drifted.requests.reads, 'jobs sent': drifted.sent.length },
    ]);
    const perTag = (convergedRequests.registry / tags).toFixed(4);
    console.log(`converged: ${convergedRequests.registry} registry requests for ${tags} tags (${perTag} per tag; 5 links a tag, 5,000 names a listing page)`);
    console.log(`derived for 100,000 tags of this shape: ${Math.ceil((100_000 * 5 + 200) / 5000) * 2} listing pages (home + one region), no link read when converged; + about ${Math.round(driftedRequests.registry / (2 * drift))} registry requests per drifted tag`);
  } finally {
    requests.close();
    await stack.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
