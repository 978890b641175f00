import { cpus } from 'node:os';
import { Command } from 'commander';
import { generated } from '../src/registry/generate';
import { parseGenerateSpec } from '../src/cli/target';
import { silentLogger } from '../src/common/log';
import { forEachLimit } from '../src/common/pool';
import { startStack } from '../src/local/stack';
import type { ReplicaView } from '../src/replicas/admin-api';
import { writeImage } from '../src/registry/writer';

/**
 * `npm run bench:backfill`: how fast `replication create` back-fills a region that joins a
 * registry already holding N images. Writes the images into home storage (as a registry does),
 * creates the replica through the admin API, and times create → Ready. Prints tags/s and MB/s.
 * Measures and prints; asserts nothing.
 */

const program = new Command('bench:backfill')
  .option('--images <n>', 'images (tags) already in the registry', '50')
  .option('--image <layers>x<size>', 'each image; the first layer is a base layer every image shares', '4x1MiB')
  .option('--copy-concurrency <n>', 'GEOREG_COPY_CONCURRENCY', '8')
  .parse();
const flags = program.opts<{ images: string; image: string; copyConcurrency: string }>();

async function main() {
  const count = Number(flags.images);
  const { layers, layerSize } = parseGenerateSpec(flags.image);
  const stack = await startStack({ replicas: [], spareAccounts: ['newregion'], httpPort: 0, log: silentLogger, settings: { GEOREG_COPY_CONCURRENCY: flags.copyConcurrency, GEOREG_RECONCILE_SCHEDULE: '0 0 0 1 1 *' } });
  try {
    // Every image shares its first layer with the first image (a common base), the rest are its own.
    const images = Array.from({ length: count }, (_, i) =>
      generated(`bench/app${i % 10}`, `v${i}`, { generate: { layers, layerSize }, seed: `img-${i}`, ...(i > 0 ? { seedBase: 'img-0', share: 1 } : {}) }),
    );
    // The shared base layer first: two writers appending the same blob at once would collide.
    await writeImage(stack.runtime.home, images[0]);
    await forEachLimit(images.slice(1), 4, async (image) => {
      await writeImage(stack.runtime.home, image);
    });
    const unique = new Map(images.flatMap((i) => [...i.blobs, ...i.manifests]).map((b) => [b.digest, b.size]));
    const bytes = [...unique.values()].reduce((a, b) => a + b, 0);

    const started = performance.now();
    const res = await fetch(`${stack.host.url}/api/replications`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...stack.adminHeaders },
      body: JSON.stringify({ name: 'newregion', storage: stack.storageConnectionString('newregion') }),
    });
    if (res.status !== 201) throw new Error(`create answered ${res.status}: ${await res.text()}`);
    const planned = performance.now();
    let view: ReplicaView;
    for (;;) {
      view = ((await (await fetch(`${stack.host.url}/api/replications/newregion`, { headers: stack.adminHeaders })).json()) as { replication: ReplicaView }).replication;
      if (view.status === 'Ready' || view.status === 'Failed') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const seconds = (performance.now() - started) / 1000;
    const sync = view.sync!;
    console.log(`back-fill of ${count} images (${layers} x ${flags.image.split('x')[1]}, one shared base layer) on ${cpus().length} x ${cpus()[0]?.model}, node ${process.version}`);
    console.table([
      {
        status: view.status,
        tags: sync.total.tags,
        jobs: sync.total.jobs,
        'blobs copied': sync.done.blobs,
        'unique blobs': unique.size,
        'MB copied': +(sync.done.bytes / 1e6).toFixed(1),
        'MB missing': +(bytes / 1e6).toFixed(1),
        'create call (s)': +((planned - started) / 1000).toFixed(2),
        'create → Ready (s)': +seconds.toFixed(2),
        'tags/s': +(sync.total.tags / seconds).toFixed(1),
        'MB/s': +(sync.done.bytes / 1e6 / seconds).toFixed(1),
      },
    ]);
    if (view.status === 'Failed') console.log(`failed: ${view.error}`);
  } finally {
    await stack.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
