import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Command } from 'commander';
import { generated } from '../src/registry/generate';
import { parseGenerateSpec } from '../src/cli/target';
import { silentLogger } from '../src/common/log';
import { forEachLimit } from '../src/common/pool';
import { startStack } from '../src/local/stack';
import { writeImage } from '../src/registry/writer';
import { StorageRequests } from './measure';

/**
 * `npm run bench:backfill [-- --tags 20000]`: a region joining a registry that already holds N
 * tags. Writes a generated registry into home storage (as a registry does; 100 repositories, one
 * image per tag, every image sharing one base layer), creates the replica through the admin API and
 * follows the queued back-fill (src/replicas/backfill.ts) to Ready. Reports the create call's
 * time, planning time (create → last page planned), time to Ready, tags/s, storage requests per
 * tag (registry and state; the bench's own progress reads taken out) and the bench process's peak
 * memory while it back-fills: the process is the worker (the local host) plus the in-process
 * Service Bus emulator; Azurite runs in a child process. `npm run bench` runs it with 2,000 tags.
 * Measures and prints; asserts nothing.
 */

export interface BackfillBenchOptions {
  tags: number;
  /** `<layers>x<size>` of each image; the first layer is the base every image shares. */
  image: string;
  copyConcurrency: number;
  /** Replication jobs (and pages) the local host runs at once. */
  maxConcurrentCalls: number;
  /** GEOREG_BACKFILL_PAGE_SIZE. */
  pageSize: number;
}

export interface BackfillBenchResult {
  command: string;
  tags: number;
  image: string;
  status: string;
  pages: number;
  createCallSeconds: number;
  planningSeconds: number;
  readySeconds: number;
  tagsPerSecond: number;
  requestsPerTag: { registry: number; state: number; total: number };
  /** Requests per tag by `<where> <operation> <what>` (bench/measure.ts), the progress reads included. */
  requestsPerTagByKind: Record<string, number>;
  peakMemoryMiB: { rss: number; heapUsed: number; rssAtStart: number; heapUsedAtStart: number };
  /** CPU seconds from create to Ready: this process (worker and Service Bus emulator) and its children (Azurite). */
  cpuSeconds: { process: number; azurite: number };
  setupSeconds: number;
  machine: string;
}

/** CPU seconds (user + system) of this process's children so far, from /proc (0 where there is none). */
function childrenCpuSeconds(): number {
  try {
    const children = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    const tick = 100; // USER_HZ on Linux
    return children.reduce((sum, pid) => {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
      return sum + (Number(fields[11]) + Number(fields[12])) / tick;
    }, 0);
  } catch {
    return 0;
  }
}

export async function backfillBench(options: BackfillBenchOptions, command: string): Promise<BackfillBenchResult> {
  const { layers, layerSize } = parseGenerateSpec(options.image);
  const stack = await startStack({
    replicas: [],
    spareAccounts: ['newregion'],
    httpPort: 0,
    log: silentLogger,
    settings: { GEOREG_COPY_CONCURRENCY: String(options.copyConcurrency), GEOREG_BACKFILL_PAGE_SIZE: String(options.pageSize), GEOREG_RECONCILE_SCHEDULE: '0 0 0 1 1 *' },
    host: { maxConcurrentCalls: options.maxConcurrentCalls },
  });
  const azuriteHost = new URL(/BlobEndpoint=([^;]+)/.exec(stack.storageConnectionString('newregion'))![1]).host;
  try {
    // Written in chunks, nothing kept: the images must not sit in the memory measured below.
    const setupStarted = performance.now();
    const image = (i: number) => generated(`bench/app${i % 100}`, `v${i}`, { generate: { layers, layerSize }, seed: `img-${i}`, ...(i > 0 ? { seedBase: 'img-0', share: 1 } : {}) });
    // The shared base layer first: two writers appending the same blob at once would collide.
    await writeImage(stack.runtime.home, image(0));
    for (let start = 1; start < options.tags; start += 1000) {
      const chunk = Array.from({ length: Math.min(1000, options.tags - start) }, (_, k) => start + k);
      await forEachLimit(chunk, 8, async (i) => {
        await writeImage(stack.runtime.home, image(i));
      });
    }
    const setupSeconds = (performance.now() - setupStarted) / 1000;
    console.error(`bench:backfill: ${options.tags} tags written in ${setupSeconds.toFixed(0)} s; creating the replica`);
    (globalThis as { gc?: () => void }).gc?.();
    const atStart = process.memoryUsage();
    const peak = { rss: atStart.rss, heapUsed: atStart.heapUsed };
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peak.rss = Math.max(peak.rss, m.rss);
      peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
    }, 100);

    const requests = new StorageRequests(azuriteHost, stack.settings.stateContainer, stack.runtime.home.accountName);
    let polls = 0;
    const cpuAtStart = { process: process.cpuUsage(), azurite: childrenCpuSeconds() };
    const started = performance.now();
    const res = await fetch(`${stack.host.url}/api/replications`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...stack.adminHeaders },
      body: JSON.stringify({ name: 'newregion', storage: stack.storageConnectionString('newregion') }),
    });
    if (res.status !== 201) throw new Error(`create answered ${res.status}: ${await res.text()}`);
    const answered = performance.now();
    let record;
    let plannedAt: number | undefined;
    let reported = started;
    for (;;) {
      polls += 1;
      record = await stack.runtime.registry.record('newregion');
      if (record?.sync?.planning.complete && plannedAt === undefined) plannedAt = performance.now();
      if (record?.status === 'Ready' || record?.status === 'Failed') break;
      if (performance.now() - reported > 30_000) {
        reported = performance.now();
        const s = record?.sync;
        console.error(`  ${((reported - started) / 1000).toFixed(0)} s: ${record?.status}, ${s?.planning.pages ?? 0} page(s) planned${s?.planning.complete ? ' (all)' : ''}, ${s?.done.jobs ?? 0}/${s?.total.jobs ?? 0} jobs`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const ready = performance.now();
    const cpu = process.cpuUsage(cpuAtStart.process);
    const cpuSeconds = { process: +((cpu.user + cpu.system) / 1e6).toFixed(1), azurite: +(childrenCpuSeconds() - cpuAtStart.azurite).toFixed(1) };
    clearInterval(sampler);
    const counted = requests.take();
    requests.close();
    const run = record.sync!;
    const seconds = (ready - started) / 1000;
    const mib = (n: number) => +(n / 1048576).toFixed(1);
    // The create call's own state requests stay in; the progress reads above (one each) come out.
    const state = counted.state - polls;
    return {
      command,
      tags: run.total.tags,
      image: options.image,
      status: record.status,
      pages: run.planning.pages,
      createCallSeconds: +((answered - started) / 1000).toFixed(2),
      planningSeconds: +(((plannedAt ?? ready) - started) / 1000).toFixed(1),
      readySeconds: +seconds.toFixed(1),
      tagsPerSecond: +(run.total.tags / seconds).toFixed(1),
      requestsPerTag: { registry: +(counted.registry / run.total.tags).toFixed(2), state: +(state / run.total.tags).toFixed(2), total: +((counted.registry + state) / run.total.tags).toFixed(2) },
      requestsPerTagByKind: Object.fromEntries(Object.entries(counted.byKind).map(([k, n]) => [k, +(n / run.total.tags).toFixed(2)])),
      peakMemoryMiB: { rss: mib(peak.rss), heapUsed: mib(peak.heapUsed), rssAtStart: mib(atStart.rss), heapUsedAtStart: mib(atStart.heapUsed) },
      cpuSeconds,
      setupSeconds: +setupSeconds.toFixed(1),
      machine: `${cpus().length} x ${cpus()[0]?.model.trim()}, node ${process.version}`,
    };
  } finally {
    await stack.close();
  }
}

export function printBackfill(r: BackfillBenchResult): void {
  console.log(`back-fill of ${r.tags} tags (${r.image} each, one shared base layer) on ${r.machine}: ${r.status}`);
  console.table([
    {
      pages: r.pages,
      'create call (s)': r.createCallSeconds,
      'planning (s)': r.planningSeconds,
      'create → Ready (s)': r.readySeconds,
      'tags/s': r.tagsPerSecond,
      'requests/tag': r.requestsPerTag.total,
      'registry/tag': r.requestsPerTag.registry,
      'state/tag': r.requestsPerTag.state,
      'peak RSS (MiB)': r.peakMemoryMiB.rss,
      'peak heap (MiB)': r.peakMemoryMiB.heapUsed,
      'heap at start (MiB)': r.peakMemoryMiB.heapUsedAtStart,
      'CPU s (process / Azurite)': `${r.cpuSeconds.process} / ${r.cpuSeconds.azurite}`,
    },
  ]);
  console.log('storage requests per tag, by kind:');
  console.table(r.requestsPerTagByKind);
}

/** `npm run bench` ends with a back-fill of 2,000 tags, added to its results file. */
export async function backfillIntoResults(resultsFile: string): Promise<void> {
  console.log('bench: backfill (2,000 tags)');
  const result = await backfillBench({ tags: 2000, image: '1x1KiB', copyConcurrency: 8, maxConcurrentCalls: 16, pageSize: 1000 }, 'npm run bench (backfill)');
  printBackfill(result);
  const report = JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(resultsFile, `${JSON.stringify({ ...report, backfill: result }, null, 2)}\n`);
}

if (require.main === module) {
  const program = new Command('bench:backfill')
    .option('--tags <n>', 'tags already in the registry (each its own image)', '2000')
    .option('--image <layers>x<size>', 'each image; the first layer is a base layer every image shares', '1x1KiB')
    .option('--copy-concurrency <n>', 'GEOREG_COPY_CONCURRENCY', '8')
    .option('--max-calls <n>', 'messages the local host handles at once per entity', '16')
    .option('--page-size <n>', 'GEOREG_BACKFILL_PAGE_SIZE: blobs listed per back-fill page', '1000')
    .option('--out <file>', 'also write the result here (JSON)')
    .parse();
  const flags = program.opts<{ tags: string; image: string; copyConcurrency: string; maxCalls: string; pageSize: string; out?: string }>();
  backfillBench(
    { tags: Number(flags.tags), image: flags.image, copyConcurrency: Number(flags.copyConcurrency), maxConcurrentCalls: Number(flags.maxCalls), pageSize: Number(flags.pageSize) },
    `npm run bench:backfill${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  )
    .then((r) => {
      printBackfill(r);
      if (flags.out) writeFileSync(flags.out, `${JSON.stringify(r, null, 2)}\n`);
    })
    .catch((e) => {
      console.error(e);
      process.exitCode = 1;
    });
}
