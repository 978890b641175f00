import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { generated } from '../src/registry/generate';
import { parseGenerateSpec } from '../src/cli/target';
import { silentLogger } from '../src/common/log';
import { forEachLimit } from '../src/common/pool';
import { startAzurite } from '../src/local/azurite';
import { startStack, type Stack } from '../src/local/stack';
import { writeImage } from '../src/registry/writer';
import { StorageRequests } from './measure';

/**
 * `npm run bench:backfill [-- --tags 20000]`: a region joining a registry that already holds N
 * tags. Writes a generated registry into home storage (as a registry does; 100 repositories, one
 * image per tag, every image sharing one base layer), creates the replica through the admin API and
 * follows the queued back-fill (src/replicas/backfill.ts) to Ready. The worker (the local host,
 * every function) runs in a process of its own (bench/worker.ts), so its memory and CPU are its
 * own; the bench's process holds the Service Bus emulator; Azurite is a third process. Reports the
 * create call's time, planning time (create → last page planned), time to Ready, tags/s, the
 * worker's storage requests per tag (registry and state, by kind), the worker's peak resident
 * memory and each process's CPU time. `npm run bench` runs it with BENCH_BACKFILL_TAGS tags.
 * Measures and prints; asserts nothing.
 */

export interface BackfillBenchOptions {
  tags: number;
  /** `<layers>x<size>` of each image (2 layers at least); the first layer is the base every image shares. */
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
  /**
   * Resident memory: the worker process's peak (VmHWM: the whole run, its start included), at the
   * start of the back-fill and at Ready; the bench process's (the Service Bus emulator, which holds
   * every queued job, and the bench).
   */
  memoryMiB: { workerPeakRss: number; workerRssAtStart: number; workerRssAtReady: number; benchPeakRss: number; benchRssAtStart: number };
  /** CPU seconds from create to Ready: the worker, Azurite, and the bench process (the Service Bus emulator). */
  cpuSeconds: { worker: number; azurite: number; emulator: number };
  setupSeconds: number;
  machine: string;
}

/** CPU seconds (user + system) of a process so far, from /proc. */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ ticks
}

/** This process's children (Azurite, the worker). */
function children(): number[] {
  return readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

/** Peak and current resident memory of a process (VmHWM, VmRSS), MiB. */
function residentMiB(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { peak: +(kib('VmHWM') / 1024).toFixed(1), now: +(kib('VmRSS') / 1024).toFixed(1) };
}

/** The worker process (bench/worker.ts) against the stack's settings; resolves once it serves. */
async function startWorker(stack: Stack, azuriteHost: string, maxCalls: number): Promise<{ child: ChildProcess; url: string; stop: () => Promise<StorageCounts> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'worker.ts')], {
    env: { ...process.env, ...stack.env, BENCH_AZURITE_HOST: azuriteHost, BENCH_MAX_CALLS: String(maxCalls) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const line = (prefix: string) =>
    new Promise<string>((resolve, reject) => {
      const onLine = (l: string) => {
        if (!l.startsWith(prefix)) return;
        lines.off('line', onLine);
        resolve(l.slice(prefix.length));
      };
      lines.on('line', onLine);
      child.once('exit', (code) => reject(new Error(`the bench worker exited (${code}) before it printed "${prefix}"`)));
    });
  const url = await line('listening ');
  return {
    child,
    url,
    stop: async () => {
      const counted = line('requests ');
      child.kill('SIGTERM');
      const out = JSON.parse(await counted) as StorageCounts;
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
      return out;
    },
  };
}

type StorageCounts = ReturnType<StorageRequests['take']>;

export async function backfillBench(options: BackfillBenchOptions, command: string): Promise<BackfillBenchResult> {
  const { layers, layerSize } = parseGenerateSpec(options.image);
  // With one layer every tag would be the same image (its config and manifest follow from the layers).
  if (layers < 2) throw new Error(`--image ${options.image}: give at least 2 layers (the first is the base every image shares, the others make each tag its own image)`);
  const stack = await startStack({
    replicas: [],
    spareAccounts: ['newregion'],
    httpPort: 0,
    log: silentLogger,
    settings: { GEOREG_COPY_CONCURRENCY: String(options.copyConcurrency), GEOREG_BACKFILL_PAGE_SIZE: String(options.pageSize), GEOREG_RECONCILE_SCHEDULE: '0 0 0 1 1 *' },
    host: { maxConcurrentCalls: options.maxConcurrentCalls },
    // Azurite's blob GC walks every blob in one pass every 10 minutes: at 20,000 tags (~300,000
    // blobs) that held its core for minutes and stalled the run. Nothing here deletes blobs, so it
    // has nothing to collect during a run; once an hour is enough.
    accounts: (names) => startAzurite({ accounts: names, gcIntervalMs: 60 * 60 * 1000 }),
  });
  const azuriteHost = new URL(/BlobEndpoint=([^;]+)/.exec(stack.storageConnectionString('newregion'))![1]).host;
  try {
    // Written in chunks, nothing kept: the images must not sit in the memory measured below.
    const setupStarted = performance.now();
    const image = (i: number) => generated(`bench/app${i % 100}`, `v${i}`, { generate: { layers, layerSize }, seed: `img-${i}`, ...(i > 0 ? { seedBase: 'img-0', share: 1 } : {}) });
    // The shared base layer first: two writers appending the same blob at once would collide. Then
    // the rest without asking home what it holds (the bench wrote it: only the base is there).
    const first = image(0);
    await writeImage(stack.runtime.home, first);
    const present = new Map([[first.blobs[0].digest, first.blobs[0].size]]);
    for (let start = 1; start < options.tags; start += 1000) {
      const chunk = Array.from({ length: Math.min(1000, options.tags - start) }, (_, k) => start + k);
      await forEachLimit(chunk, 32, async (i) => {
        await writeImage(stack.runtime.home, image(i), 4, { present });
      });
    }
    const setupSeconds = (performance.now() - setupStarted) / 1000;
    console.error(`bench:backfill: ${options.tags} tags written in ${setupSeconds.toFixed(0)} s; creating the replica`);
    // The worker runs in a process of its own (bench/worker.ts); the stack's own host stops.
    await stack.host.close();
    const worker = await startWorker(stack, azuriteHost, options.maxConcurrentCalls);
    const azurite = children().find((pid) => pid !== worker.child.pid)!;
    const cpuAtStart = { worker: cpuSecondsOf(worker.child.pid!), azurite: cpuSecondsOf(azurite), bench: process.cpuUsage() };
    const benchAtStart = process.memoryUsage().rss;
    let benchPeak = benchAtStart;
    const sampler = setInterval(() => (benchPeak = Math.max(benchPeak, process.memoryUsage().rss)), 500);
    const workerAtStart = residentMiB(worker.child.pid!).now;

    const started = performance.now();
    const res = await fetch(`${worker.url}/api/replications`, {
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
      record = await stack.runtime.registry.record('newregion');
      if (record?.sync?.planning.complete && plannedAt === undefined) plannedAt = performance.now();
      if (record?.status === 'Ready' || record?.status === 'Failed') break;
      if (performance.now() - reported > 30_000) {
        reported = performance.now();
        const s = record?.sync;
        const memory = residentMiB(worker.child.pid!);
        console.error(`  ${((reported - started) / 1000).toFixed(0)} s: ${record?.status}, ${s?.planning.pages ?? 0} page(s) planned${s?.planning.complete ? ' (all)' : ''}, ${s?.done.jobs ?? 0}/${s?.total.jobs ?? 0} jobs; worker RSS ${memory.now} MiB (peak ${memory.peak})`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const ready = performance.now();
    clearInterval(sampler);
    const workerMemory = residentMiB(worker.child.pid!);
    const benchCpu = process.cpuUsage(cpuAtStart.bench);
    const cpuSeconds = {
      worker: +(cpuSecondsOf(worker.child.pid!) - cpuAtStart.worker).toFixed(1),
      azurite: +(cpuSecondsOf(azurite) - cpuAtStart.azurite).toFixed(1),
      emulator: +((benchCpu.user + benchCpu.system) / 1e6).toFixed(1),
    };
    // Every storage request the worker made since it started (a few at its start, then the back-fill).
    const counted = await worker.stop();
    const run = record.sync!;
    const seconds = (ready - started) / 1000;
    const mib = (n: number) => +(n / 1048576).toFixed(1);
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
      requestsPerTag: { registry: +(counted.registry / run.total.tags).toFixed(2), state: +(counted.state / run.total.tags).toFixed(2), total: +((counted.registry + counted.state) / run.total.tags).toFixed(2) },
      requestsPerTagByKind: Object.fromEntries(Object.entries(counted.byKind).map(([k, n]) => [k, +(n / run.total.tags).toFixed(2)])),
      memoryMiB: { workerPeakRss: workerMemory.peak, workerRssAtStart: workerAtStart, workerRssAtReady: workerMemory.now, benchPeakRss: mib(benchPeak), benchRssAtStart: mib(benchAtStart) },
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
      'worker peak RSS (MiB)': r.memoryMiB.workerPeakRss,
      'worker RSS start / Ready': `${r.memoryMiB.workerRssAtStart} / ${r.memoryMiB.workerRssAtReady}`,
      'emulator+bench peak RSS': r.memoryMiB.benchPeakRss,
      'CPU s worker / Azurite / emulator': `${r.cpuSeconds.worker} / ${r.cpuSeconds.azurite} / ${r.cpuSeconds.emulator}`,
    },
  ]);
  console.log('storage requests per tag, by kind:');
  console.table(r.requestsPerTagByKind);
}

/** What `npm run bench` back-fills, the 2,000 tags issue 15 asks of it (the 20,000-tag run is `npm run bench:backfill -- --tags 20000`). */
export const BENCH_BACKFILL_TAGS = 2000;

/** `npm run bench` ends with a back-fill of BENCH_BACKFILL_TAGS tags, added to its results file. */
export async function backfillIntoResults(resultsFile: string): Promise<void> {
  console.log(`bench: backfill (${BENCH_BACKFILL_TAGS} tags)`);
  const result = await backfillBench({ tags: BENCH_BACKFILL_TAGS, image: '2x1KiB', copyConcurrency: 8, maxConcurrentCalls: 16, pageSize: 1000 }, 'npm run bench (backfill)');
  printBackfill(result);
  const report = JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(resultsFile, `${JSON.stringify({ ...report, backfill: result }, null, 2)}\n`);
}

if (require.main === module) {
  const program = new Command('bench:backfill')
    .option('--tags <n>', 'tags already in the registry (each its own image)', '2000')
    .option('--image <layers>x<size>', 'each image (2 layers at least); the first layer is a base layer every image shares', '2x1KiB')
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
