import { randomUUID } from 'node:crypto';
import { Command } from 'commander';
import { generated } from '../src/registry/generate';
import { silentLogger } from '../src/common/log';
import { forEachLimit } from '../src/common/pool';
import { startStack } from '../src/local/stack';
import { EVENTS_MEDIA_TYPE, pushEnvelope } from '../src/notifications/sender';
import { writeImage } from '../src/registry/writer';

/**
 * `npm run bench:ingest`: how long the push endpoint takes to answer one large envelope (a registry
 * waits `timeout`, 5 s by default in its endpoint config, then retries). Three envelopes of N
 * events: tag deletes, manifest pushes with their blob events, and a mix. Measures and prints;
 * asserts nothing. The stack's receivers run meanwhile, as they would in production.
 */

const program = new Command('bench:ingest').option('--events <n>', 'events per envelope', '1000').parse();
const events = Number(program.opts<{ events: string }>().events);

async function post(url: string, secret: string, body: unknown): Promise<{ ms: number; status: number; pushes: number; problems: number }> {
  const t = Date.now();
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': EVENTS_MEDIA_TYPE, Authorization: `Bearer ${secret}` }, body: JSON.stringify(body) });
  const json = (await res.json()) as { pushes?: unknown[]; problems?: unknown[] };
  return { ms: Date.now() - t, status: res.status, pushes: json.pushes?.length ?? 0, problems: json.problems?.length ?? 0 };
}

async function main() {
  const stack = await startStack({ httpPort: 0, log: silentLogger });
  try {
    // Manifest pushes: one image per 5 events (3 blob events + config + manifest event).
    const images = Array.from({ length: Math.ceil(events / 5) }, (_, i) => generated(`ingest/app${i % 20}`, `v${i}`, { generate: { layers: 3, layerSize: 128 }, seed: `ingest-${i}` }));
    await forEachLimit(images, 8, async (image) => {
      await writeImage(stack.runtime.home, image);
    });
    const pushEvents = images.flatMap((image) => pushEnvelope({ repository: image.repository, tag: image.tag, manifest: image.manifests[0], blobs: image.blobs, references: image.blobs }).events).slice(0, events);
    const deleteEvents = Array.from({ length: events }, (_, i) => ({
      id: randomUUID(),
      timestamp: new Date().toISOString(),
      action: 'delete',
      target: { mediaType: '', digest: '', size: 0, repository: `ingest/gone${i % 20}`, tag: `t${i}` },
    }));
    const rows = [];
    for (const [what, body] of [
      [`${events} tag deletes (Distribution 3 shape)`, { events: deleteEvents }],
      [`${events} push events (${images.length} manifests + their blobs)`, { events: pushEvents }],
      [`the same ${events} push events again (a registry retrying)`, { events: pushEvents }],
    ] as const) {
      const r = await post(stack.pushUrl, stack.settings.pushSecret, body);
      rows.push({ envelope: what, status: r.status, 'answered in (ms)': r.ms, 'pushes/deletes accepted': r.pushes, problems: r.problems });
    }
    console.table(rows);
    console.log(`replica regions: ${stack.settings.replicaRegions.length} (each accepted event is one job per region)`);
  } finally {
    await stack.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
