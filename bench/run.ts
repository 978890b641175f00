import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Command, Option } from 'commander';
import type { DescriptorRef } from '../src/bus/messages';
import { generated } from '../src/registry/generate';
import { parseGenerateSpec } from '../src/cli/target';
import { forEachLimit } from '../src/common/pool';
import type { Logger } from '../src/common/log';
import { DEFAULT_HOME, DEFAULT_REPLICAS, type Stack } from '../src/local/stack';
import { regionScaling, scalingTable, startBenchStack, type ScalingPoint } from './scaling';
import { writeImage, type ImageToWrite } from '../src/registry/writer';
import { copyCapabilities, type CopyMethod } from '../src/replication/copy';
import { backfillIntoResults } from './backfill';
import type { RegionStatus } from '../src/replication/status';
import {
  BusTracker,
  cpuSeconds,
  descriptorsOf,
  dropTargets,
  freshTargets,
  listMissing,
  linkWrites,
  naiveCopy,
  outcomeOf,
  percentile,
  pushThroughPipeline,
  rawCopy,
  StorageRequests,
  type PipelinePush,
  type RequestBreakdown,
  type PushOutcome,
} from './measure';

/**
 * `npm run bench`: replication speed on the local stack against the raw-copy limit and a naive
 * replicator, all measured in the same run so the machine's noise cancels out of the ratios.
 * Prints one table, writes bench/results.json. Measures and prints; asserts nothing.
 *
 *   large         one image to every replica
 *   incremental   then a second tag sharing all but one of its layers
 *   many-small    many small images, a fixed number of pushes in flight (p50/p95 push→ready)
 *   index         a multi-platform OCI index
 *
 * Per scenario: pipeline push→ready, bytes copied and bytes missing per region (found by listing
 * the region before the push; they must be equal), blobs skipped, Service Bus messages, and the
 * same blobs moved by the raw loop and by the naive replicator (see measure.ts).
 */

const program = new Command('bench')
  .description('georeg replication benchmark: pipeline vs raw copy vs naive replicator, on the local stack')
  .option('--large <layers>x<size>', 'the large image', '10x20MiB')
  .option('--shared <n>', 'layers the incremental tag shares with the large image', '9')
  .option('--small <layers>x<size>', 'each many-small image', '3x64KiB')
  .option('--small-images <n>', 'how many small images', '200')
  .option('--small-window <n>', 'small pushes in flight at once', '10')
  .option('--index <layers>x<size>', 'layers per platform of the index (the first is shared by every platform)', '3x4MiB')
  .option('--platforms <list>', 'platforms of the index', 'linux/amd64,linux/arm64,linux/arm/v7,linux/ppc64le')
  .option('--replicas <n>', 'replica regions', '3')
  .option('--copy-concurrency <n>', 'GEOREG_COPY_CONCURRENCY: parallel copies per job, and per region in the raw and naive loops', '8')
  .option('--no-verify', 'GEOREG_VERIFY_DIGESTS=false: skip re-hashing copies (pipeline, raw and naive alike)')
  .addOption(new Option('--only <names>', 'comma-separated scenarios').default('large,incremental,many-small,index'))
  .option('--naive <names>', 'scenarios that also run the naive replicator (informational: "all" for every one; many-small\'s takes minutes)', 'large,incremental,index')
  .option('--out <file>', 'results file', join(__dirname, 'results.json'))
  .option('--repeat <n>', 'repetitions of incremental and index (the table shows the median)', '3')
  .option('--large-repeat <n>', 'repetitions of large (a minute each; 3 for the bigger run)', '1')
  .option('--timeout <seconds>', 'per push', '300')
  .option('--scaling-regions <counts>', 'the region-scaling run: the many-small workload to this many replica regions each ("none" skips it)', '1,3,6')
  .option('--scaling-images <n>', 'small images per region-scaling point (the bigger run: 200, as many-small)', '50');

type Flags = {
  large: string;
  shared: string;
  small: string;
  smallImages: string;
  smallWindow: string;
  index: string;
  platforms: string;
  replicas: string;
  copyConcurrency: string;
  verify: boolean;
  only: string;
  naive: string;
  out: string;
  repeat: string;
  largeRepeat: string;
  timeout: string;
  scalingRegions: string;
  scalingImages: string;
};

interface Scenario {
  name: string;
  what: string;
  /** The images of repetition `rep` (fresh content each time, so every repetition copies as much). */
  images: (rep: number) => ImageToWrite[];
  /** Pushes in flight at once (the raw and naive loops use the same window). */
  window: number;
  reps: number;
  /** Whether the naive replicator runs too (informational). */
  naive: boolean;
  /** Pushed through the pipeline first, unmeasured, unless `after` ran (the base an incremental push builds on). */
  setup?: { after: string; images: ImageToWrite[] };
}

const log: Logger = { info: () => {}, warn: (m) => console.warn(`  ! ${m}`), error: (m) => console.error(`  ! ${m}`) };

async function main(): Promise<void> {
  const flags = program.parse().opts<Flags>();
  const large = parseGenerateSpec(flags.large);
  const small = parseGenerateSpec(flags.small);
  const indexSpec = parseGenerateSpec(flags.index);
  // At least one layer of the second tag is new, or there is nothing to measure.
  const shared = Math.min(int(flags.shared, '--shared'), large.layers - 1);
  const replicaCount = int(flags.replicas, '--replicas');
  const replicas = Array.from({ length: replicaCount }, (_, i) => DEFAULT_REPLICAS[i] ?? `replica${i + 1}`);
  const concurrency = int(flags.copyConcurrency, '--copy-concurrency');
  const timeoutMs = int(flags.timeout, '--timeout') * 1000;
  const reps = int(flags.repeat, '--repeat');
  const largeReps = int(flags.largeRepeat, '--large-repeat');
  const largeImage = (rep: number) => generated('bench/large', `1-${rep}`, { generate: large, seed: `bench-large-${rep}` });

  const scenarios: Array<Omit<Scenario, 'naive'> & { naive?: boolean }> = [
    { name: 'large', what: `1 image, ${flags.large}`, window: 1, reps: largeReps, images: (rep) => [largeImage(rep)] },
    {
      name: 'incremental',
      what: `2nd tag sharing ${shared} of ${large.layers} layers`,
      window: 1,
      reps,
      // Every repetition's second tag builds on the first large image (a new layer, config and manifest each time).
      images: (rep) => [generated('bench/large', `2-${rep}`, { generate: large, seed: `bench-incremental-${rep}`, seedBase: 'bench-large-1', share: shared })],
      setup: { after: 'large', images: [largeImage(1)] },
    },
    {
      name: 'many-small',
      what: `${flags.smallImages} images, ${flags.small}, ${flags.smallWindow} at a time`,
      window: int(flags.smallWindow, '--small-window'),
      reps: 1,
      images: () => Array.from({ length: int(flags.smallImages, '--small-images') }, (_, i) => generated('bench/small', `t${i}`, { generate: small, seed: `bench-small-${i}` })),
    },
    {
      name: 'index',
      what: `${flags.platforms.split(',').length}-platform OCI index, ${flags.index} per platform`,
      window: 1,
      reps,
      images: (rep) => [generated('bench/index', `1-${rep}`, { generate: indexSpec, platforms: flags.platforms, seed: `bench-index-${rep}` })],
    },
  ];
  const naiveFor = flags.naive.split(',').map((s) => s.trim());
  for (const s of scenarios) s.naive = naiveFor.includes('all') || naiveFor.includes(s.name);
  const wanted = flags.only.split(',').map((s) => s.trim());
  for (const w of wanted) if (!scenarios.some((s) => s.name === w)) throw new Error(`--only: no scenario "${w}" (there are ${scenarios.map((s) => s.name).join(', ')})`);

  const hostJson = JSON.parse(readFileSync(join(__dirname, '..', 'host.json'), 'utf8')) as { extensions?: { serviceBus?: { maxConcurrentCalls?: number } } };
  const maxConcurrentCalls = hostJson.extensions?.serviceBus?.maxConcurrentCalls ?? 16;
  const tracker = new BusTracker();
  const startedAt = Date.now();
  console.log(`bench: starting the local stack (home ${DEFAULT_HOME}, replicas ${replicas.join(', ')})...`);
  const stack = await startBenchStack({ replicas, concurrency, verify: flags.verify, maxConcurrentCalls, tracker, log });
  const azuriteHost = new URL(/BlobEndpoint=([^;]+)/.exec(stack.storageConnectionString(DEFAULT_HOME))![1]).host;
  const requests = new StorageRequests(azuriteHost, stack.settings.stateContainer, stack.runtime.home.accountName);
  const results: ScenarioResult[] = [];
  let scaling: ScalingPoint[] = [];
  try {
    const ctx: Ctx = { stack, tracker, requests, replicas, concurrency, verify: flags.verify, timeoutMs, done: new Set() };
    // Unmeasured: the first push opens AMQP links, learns which copy primitive works, warms the JIT.
    console.log('bench: warm-up push');
    await runScenario(ctx, { name: 'warmup', what: 'warm-up', window: 1, reps: 1, naive: true, images: () => [generated('bench/warmup', '1', { generate: { layers: 2, layerSize: 64 * 1024 }, seed: 'bench-warmup' })] });
    for (const s of scenarios.filter((s): s is Scenario => wanted.includes(s.name))) {
      console.log(`bench: ${s.name} (${s.what}${s.reps > 1 ? `, ${s.reps} repetitions` : ''})`);
      results.push(await runScenario(ctx, s));
      ctx.done.add(s.name);
    }
  } finally {
    requests.close();
    await stack.close();
  }
  if (flags.scalingRegions !== 'none') {
    const counts = flags.scalingRegions.split(',').map((c) => int(c.trim(), '--scaling-regions'));
    scaling = await regionScaling({ counts, images: int(flags.scalingImages, '--scaling-images'), window: int(flags.smallWindow, '--small-window'), small, concurrency, verify: flags.verify, maxConcurrentCalls, timeoutMs, log });
  }

  const report = {
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine: machine(),
    settings: { home: DEFAULT_HOME, replicas, copyConcurrency: concurrency, verifyDigests: flags.verify, maxConcurrentCalls, repetitions: { large: largeReps, incremental: reps, index: reps }, storage: 'Azurite 3.35 (in memory, one account per region, child process)', serviceBus: 'embedded emulator (in process)' },
    totalSeconds: +((Date.now() - startedAt) / 1000).toFixed(1),
    scenarios: results,
    regionScaling: scaling,
    targets: targets(results),
  };
  mkdirSync(dirname(flags.out), { recursive: true });
  writeFileSync(flags.out, `${JSON.stringify(report, null, 2)}\n`);
  console.log('');
  printTable(results);
  console.log('');
  for (const t of report.targets) console.log(`target ${t.scenario}: ${t.target} → ${t.actual} ${t.met ? 'met' : 'MISSED'}`);
  for (const r of results) for (const m of r.mismatches) console.log(`MISMATCH ${r.name}: ${m}`);
  console.log('\nstorage requests per push per region, pipeline, by kind:');
  for (const r of results) {
    const k = r.median.requestsPerPushPerRegion;
    console.log(`  ${r.name}: ${k.pipeline} (raw ${k.raw}): ${Object.entries(k.pipelineByKind).map(([what, n]) => `${what} ${n}`).join(', ')}`);
  }
  console.log(`\n${report.machine.cpu} (${report.machine.cores} cores), node ${report.machine.node}, ${report.totalSeconds} s in all; results in ${flags.out}`);
  console.log(`\nmarkdown:\n\n${markdownTable(results)}`);
  if (scaling.length) console.log(`\nregion scaling (many-small workload, pipeline only):\n\n${scalingTable(scaling)}`);
}

interface Ctx {
  stack: Stack;
  tracker: BusTracker;
  requests: StorageRequests;
  replicas: string[];
  concurrency: number;
  verify: boolean;
  timeoutMs: number;
  /** Scenarios run so far. */
  done: Set<string>;
}

interface RegionFigures {
  region: string;
  missingBlobs: number;
  missingBytes: number;
  copiedBlobs: number;
  copiedBytes: number;
  skippedBlobs: number;
  rawBytes: number;
  naiveBytes: number;
}

interface Timing {
  /** First push sent → last image ready (raw, naive: first copy started → last finished). */
  totalMs: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

/** CPU seconds over a phase: this process (functions, emulator, bench) and Azurite (child process). */
interface Cpu {
  ours: number;
  azurite: number;
}

interface Phase {
  cpuSeconds: Cpu;
  /** HTTP requests to Azurite: registry storage, and the pipeline's state documents; by kind (see classify in measure.ts). */
  storageRequests: { registry: number; state: number; byKind: RequestBreakdown };
}

/** One repetition of a scenario. */
interface Run {
  pipeline: Timing & Phase & { settledP95Ms: number; phasesP50Ms: { plan: number; queue: number; job: number } };
  raw: Timing & Phase & { method: CopyMethod };
  /** Absent when the scenario skips the naive replicator (see --naive). */
  naive?: Timing & Phase;
  /** The link files alone (see linkWrites): raw + links is a complete copy a registry can serve. */
  links: Phase & { totalMs: number; links: number };
  pipelineOverRaw: number;
  /** pipeline / (raw + links), time: informational. */
  pipelineOverRawAndLinks: number;
  /**
   * Azurite's CPU for raw + links over its CPU for raw: how much more work a copy a registry can
   * serve gives Azurite than raw does, before anything else the pipeline asks. Azurite serves its
   * requests on one thread; where raw keeps that thread busy (on this machine, run alone: 7.3 CPU-s
   * in 7.2 s for many-small), the pipeline's time cannot get below raw's times this. Informational.
   */
  azuriteBound: number;
  naiveOverPipeline?: number;
  /** Storage requests (registry and state) per image per replica region, and the pipeline's by kind. */
  requestsPerPushPerRegion: { pipeline: number; raw: number; rawAndLinks: number; naive?: number; pipelineByKind: RequestBreakdown };
  regions: RegionFigures[];
  methods: Record<string, number>;
  serviceBus: { messages: number; deliveries: number; webhookDeliveries: number };
  mismatches: string[];
}

interface ScenarioResult {
  name: string;
  what: string;
  images: number;
  window: number;
  /** Per-region parallelism of the raw and naive loops (the pipeline's GEOREG_COPY_CONCURRENCY per job). */
  concurrencyPerRegion: number;
  /** The median repetition by pipeline / raw; every repetition is in `runs`. */
  median: Run;
  pipelineOverRaw: number;
  pipelineOverRawAndLinks: number;
  azuriteBound: number;
  naiveOverPipeline?: number;
  mismatches: string[];
  runs: Run[];
}

async function runScenario(ctx: Ctx, scenario: Scenario): Promise<ScenarioResult> {
  const runs: Run[] = [];
  let images = 0;
  for (let rep = 1; rep <= scenario.reps; rep++) {
    if (scenario.setup && rep === 1 && !ctx.done.has(scenario.setup.after)) {
      for (const image of scenario.setup.images) {
        await writeImage(ctx.stack.runtime.home, image);
        await pushThroughPipeline(ctx.stack, ctx.tracker, image, ctx.replicas, ctx.timeoutMs);
      }
    }
    const batch = scenario.images(rep);
    images = batch.length;
    runs.push(await runOnce(ctx, scenario, batch, rep - 1));
  }
  const byRatio = [...runs].sort((a, b) => a.pipelineOverRaw - b.pipelineOverRaw);
  const median = byRatio[Math.floor((byRatio.length - 1) / 2)];
  return {
    name: scenario.name,
    what: scenario.what,
    images,
    window: scenario.window,
    concurrencyPerRegion: ctx.concurrency,
    median,
    pipelineOverRaw: round(percentile(runs.map((r) => r.pipelineOverRaw), 50), 2),
    pipelineOverRawAndLinks: round(percentile(runs.map((r) => r.pipelineOverRawAndLinks), 50), 2),
    azuriteBound: round(percentile(runs.map((r) => r.azuriteBound), 50), 2),
    ...(scenario.naive ? { naiveOverPipeline: round(percentile(runs.map((r) => r.naiveOverPipeline!), 50), 2) } : {}),
    mismatches: runs.flatMap((r, i) => r.mismatches.map((m) => `repetition ${i + 1}: ${m}`)),
    runs,
  };
}

async function runOnce(ctx: Ctx, scenario: Scenario, images: ImageToWrite[], rep: number): Promise<Run> {
  const { stack, tracker, requests, replicas, concurrency, verify, timeoutMs } = ctx;
  const home = stack.runtime.home;
  // The registry's part (writing the home region) is not ours: done before any clock starts.
  await forEachLimit(images, 4, async (image) => {
    await writeImage(home, image);
  });
  const missing = await listMissing(stack, replicas, images);
  const missingFor = (i: number) => new Map(replicas.map((r) => [r, missing.get(r)![i]] as [string, DescriptorRef[]]));

  // Each phase starts on a quiet Azurite (no garbage collection left over from the last one).
  const measured = async (run: () => Promise<void>): Promise<Phase> => {
    await quiesce();
    const cpu = cpuSeconds();
    requests.take();
    await run();
    return phaseSince(cpu, requests);
  };

  // pipeline
  const settled: PipelinePush[] = new Array(images.length);
  let pipelinePhase!: Phase;
  const pipeline = async () => {
    pipelinePhase = await measured(() =>
      forEachLimit([...images.keys()], scenario.window, async (i) => {
        settled[i] = await pushThroughPipeline(stack, tracker, images[i], replicas, timeoutMs);
      }),
    );
  };

  // raw: the pipeline's copy primitive over the same missing blobs, into fresh containers. Which
  // primitive the pipeline picks is in its capability cache (the warm-up push, run first, filled it).
  let method: CopyMethod = 'copy-blob';
  const rawTimes: number[] = new Array(images.length);
  const rawBytes = new Map<string, number>();
  let rawTotal = 0;
  let rawPhase!: Phase;
  const raw = async () => {
    method = pipelineMethod(ctx);
    const targets = await freshTargets(stack, replicas, `bench-raw-${scenario.name}`);
    rawPhase = await measured(async () => {
      const started = performance.now();
      await forEachLimit([...images.keys()], scenario.window, async (i) => {
        const r = await rawCopy(home, targets, missingFor(i), { concurrency, verifyDigest: verify, method });
        rawTimes[i] = r.ms;
        for (const [region, b] of r.bytes) rawBytes.set(region, (rawBytes.get(region) ?? 0) + b);
      });
      rawTotal = performance.now() - started;
    });
    await dropTargets(targets);
  };

  // naive: every blob of every image, downloaded and uploaded per region
  const naiveTimes: number[] = new Array(images.length);
  const naiveBytes = new Map<string, number>();
  let naiveTotal = 0;
  let naivePhase: Phase | undefined;
  const naive = async () => {
    if (!scenario.naive) return;
    const targets = await freshTargets(stack, replicas, `bench-naive-${scenario.name}`);
    naivePhase = await measured(async () => {
      const started = performance.now();
      await forEachLimit([...images.keys()], scenario.window, async (i) => {
        const r = await naiveCopy(home, targets, descriptorsOf(images[i]), { concurrency, verifyDigest: verify });
        naiveTimes[i] = r.ms;
        for (const [region, b] of r.bytes) naiveBytes.set(region, (naiveBytes.get(region) ?? 0) + b);
      });
      naiveTotal = performance.now() - started;
    });
    await dropTargets(targets);
  };

  // links: the link files the raw loop leaves out, alone, in the same window
  let linksPhase!: Phase;
  let linksTotal = 0;
  let linkCount = 0;
  const links = async () => {
    const targets = await freshTargets(stack, replicas, `bench-links-${scenario.name}`);
    linksPhase = await measured(async () => {
      const started = performance.now();
      await forEachLimit([...images.keys()], scenario.window, async (i) => {
        const { links } = await linkWrites(targets, images[i], missingFor(i));
        linkCount += links;
      });
      linksTotal = performance.now() - started;
    });
    await dropTargets(targets);
  };

  // The informational ways go first: whatever runs first after the images were written to home
  // pays for Azurite collecting that garbage (hundreds of MiB for large). Then pipeline and raw,
  // which goes first alternating with the repetition.
  await naive();
  await links();
  // An unmeasured raw copy into containers of its own before the pair: the first phase after the
  // informational ones ran 0.6-0.7 s slower whichever of pipeline and raw it was.
  const warm = await freshTargets(stack, replicas, `bench-warm-${scenario.name}`);
  await quiesce();
  await forEachLimit([...images.keys()], scenario.window, async (i) => void (await rawCopy(home, warm, missingFor(i), { concurrency, verifyDigest: verify })));
  await dropTargets(warm);
  const measuredPair = [pipeline, raw];
  for (let k = 0; k < measuredPair.length; k++) await measuredPair[(k + rep) % measuredPair.length]();

  const pushes: PushOutcome[] = [];
  for (const p of settled) pushes.push(await outcomeOf(stack, p, replicas));
  const statuses = pushes.flatMap((p) => p.statuses);
  const methods: Record<string, number> = {};
  for (const s of statuses) for (const [m, n] of Object.entries(s.methods)) methods[m] = (methods[m] ?? 0) + n;

  const regions = replicas.map((region) => figures(region, missing.get(region)!, statuses.filter((s) => s.region === region), rawBytes.get(region) ?? 0, naiveBytes.get(region) ?? 0));
  const mismatches: string[] = [];
  for (const r of regions) {
    if (r.copiedBytes !== r.missingBytes || r.copiedBlobs !== r.missingBlobs) {
      mismatches.push(`${r.region}: pipeline copied ${r.copiedBlobs} blobs / ${r.copiedBytes} bytes, the region lacked ${r.missingBlobs} / ${r.missingBytes}`);
    }
    if (r.rawBytes !== r.missingBytes) mismatches.push(`${r.region}: raw loop copied ${r.rawBytes} bytes, the region lacked ${r.missingBytes}`);
  }
  for (const m of Object.keys(methods)) if (m !== method) mismatches.push(`the pipeline copied ${methods[m]} blob(s) with ${m}; the raw loop used ${method}`);
  const firstSent = Math.min(...pushes.map((p) => p.sentAt));
  const pipelineTotal = Math.max(...pushes.map((p) => p.sentAt + p.readyMs)) - firstSent;
  return {
    pipeline: {
      ...timing(pipelineTotal, pushes.map((p) => p.readyMs)),
      ...pipelinePhase,
      settledP95Ms: Math.round(percentile(pushes.map((p) => p.settledMs), 95)),
      phasesP50Ms: phaseMedians(pushes),
    },
    raw: { ...timing(rawTotal, rawTimes), ...rawPhase, method },
    ...(naivePhase ? { naive: { ...timing(naiveTotal, naiveTimes), ...naivePhase }, naiveOverPipeline: round(naiveTotal / pipelineTotal, 2) } : {}),
    links: { ...linksPhase, totalMs: Math.round(linksTotal), links: linkCount },
    pipelineOverRaw: round(pipelineTotal / rawTotal, 2),
    pipelineOverRawAndLinks: round(pipelineTotal / (rawTotal + linksTotal), 2),
    azuriteBound: round((rawPhase.cpuSeconds.azurite + linksPhase.cpuSeconds.azurite) / rawPhase.cpuSeconds.azurite, 2),
    requestsPerPushPerRegion: perPushPerRegion({ pipeline: pipelinePhase, raw: rawPhase, links: linksPhase, naive: naivePhase }, images.length * replicas.length),
    regions,
    methods,
    serviceBus: tracker.counts(pushes.map((p) => p.pushId)),
    mismatches,
  };
}

/** Storage requests per (image, region): the pipeline's whole cost of one push to one region, and by kind. */
function perPushPerRegion(phases: { pipeline: Phase; raw: Phase; links: Phase; naive?: Phase }, jobs: number): Run['requestsPerPushPerRegion'] {
  const per = (...p: Phase[]) => round(p.reduce((n, x) => n + requestsOf(x), 0) / jobs, 1);
  const byKind = Object.fromEntries(Object.entries(phases.pipeline.storageRequests.byKind).map(([k, n]) => [k, round(n / jobs, 2)]));
  return { pipeline: per(phases.pipeline), raw: per(phases.raw), rawAndLinks: per(phases.raw, phases.links), ...(phases.naive ? { naive: per(phases.naive) } : {}), pipelineByKind: byKind };
}

function requestsOf(p: Phase): number {
  return p.storageRequests.registry + p.storageRequests.state;
}

function figures(region: string, missing: DescriptorRef[][], statuses: RegionStatus[], rawBytes: number, naiveBytes: number): RegionFigures {
  const lacked = missing.flat();
  return {
    region,
    missingBlobs: lacked.length,
    missingBytes: lacked.reduce((s, d) => s + d.size, 0),
    copiedBlobs: statuses.reduce((s, r) => s + r.blobs.copied, 0),
    copiedBytes: statuses.reduce((s, r) => s + r.bytes.copied, 0),
    skippedBlobs: statuses.reduce((s, r) => s + r.blobs.skipped, 0),
    rawBytes,
    naiveBytes,
  };
}

/** The primitive the pipeline uses from home to the replicas: the first its capability cache has not ruled out. */
function pipelineMethod(ctx: Ctx): CopyMethod {
  const home = ctx.stack.runtime.home.url;
  const ruledOut = new Set(copyCapabilities().filter((c) => c.source === home && ctx.replicas.some((r) => ctx.stack.runtime.regions.get(r)!.url === c.target)).flatMap((c) => c.unsupported));
  return (['put-blob-from-url', 'copy-blob', 'stream'] as CopyMethod[]).find((m) => !ruledOut.has(m))!;
}

/**
 * Before each measured phase: a full garbage collection of this process (the stack's host and
 * emulator run here), then a wait (at most 5 s) until both this process and Azurite have used under
 * 5% of a core for 250 ms. Without the collection and the wait on this process, whichever of
 * pipeline and raw ran first in a repetition was 0.6-0.7 s slower (incremental's repetitions
 * 1.35x, 0.74x, 1.41x as the order alternated), and the median followed the order.
 */
async function quiesce(): Promise<void> {
  collectGarbage();
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const before = cpuSeconds();
    await new Promise((r) => setTimeout(r, 250));
    const after = cpuSeconds();
    if (!(after.children - before.children > 0.0125) && !(after.ours - before.ours > 0.0125)) return;
  }
}

/** V8's full collection (`--expose-gc`'s gc(), enabled here: Node refuses the flag in NODE_OPTIONS). */
const collectGarbage: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

function phaseSince(before: ReturnType<typeof cpuSeconds>, requests: StorageRequests): Phase {
  const now = cpuSeconds();
  return { cpuSeconds: { ours: round(now.ours - before.ours, 2), azurite: round(now.children - before.children, 2) }, storageRequests: requests.take() };
}

/** Medians over every (push, region) of: sent → planned, planned → job started, started → complete. */
function phaseMedians(pushes: PushOutcome[]): { plan: number; queue: number; job: number } {
  const all = pushes.flatMap((p) => p.phases);
  return {
    plan: Math.round(percentile(all.map((p) => p.planMs), 50)),
    queue: Math.round(percentile(all.map((p) => p.queueMs), 50)),
    job: Math.round(percentile(all.map((p) => p.jobMs), 50)),
  };
}

function timing(totalMs: number, perImage: number[]): Timing {
  return { totalMs: Math.round(totalMs), p50Ms: Math.round(percentile(perImage, 50)), p95Ms: Math.round(percentile(perImage, 95)), maxMs: Math.round(Math.max(...perImage)) };
}

function targets(results: ScenarioResult[]) {
  const out: Array<{ scenario: string; target: string; actual: string; met: boolean }> = [];
  const reqs = requestsOf;
  // With Azurite's work for raw + links against raw's (see Run.azuriteBound): where raw keeps Azurite busy, time cannot go below it.
  for (const r of results) out.push({ scenario: r.name, target: 'pipeline / raw ≤ 1.15', actual: `${r.pipelineOverRaw}× (Azurite CPU for raw + links / raw: ${r.azuriteBound}×)`, met: r.pipelineOverRaw <= 1.15 });
  const inc = results.find((r) => r.name === 'incremental');
  if (inc?.naiveOverPipeline !== undefined) out.push({ scenario: 'incremental', target: 'naive / pipeline ≥ 3', actual: `${inc.naiveOverPipeline}×`, met: inc.naiveOverPipeline >= 3 });
  const small = results.find((r) => r.name === 'many-small');
  if (small) {
    const ratio = round(reqs(small.median.pipeline) / reqs(small.median.raw), 2);
    out.push({ scenario: 'many-small', target: 'storage requests pipeline / raw ≤ 1.5', actual: `${ratio}× (${reqs(small.median.pipeline)} / ${reqs(small.median.raw)})`, met: ratio <= 1.5 });
    out.push({ scenario: 'many-small', target: 'p95 push→ready < 1 s', actual: `${small.median.pipeline.p95Ms} ms`, met: small.median.pipeline.p95Ms < 1000 });
  }
  return out;
}

function rows(results: ScenarioResult[]): Array<Record<string, string | number>> {
  return results.map((r) => {
    const m = r.median;
    const same = <T>(values: T[]) => (values.every((v) => v === values[0]) ? String(values[0]) : values.join('/'));
    const reqs = requestsOf;
    const naive = <T>(value: (n: Timing & Phase) => T) => (m.naive ? String(value(m.naive)) : '-');
    const perPush = m.requestsPerPushPerRegion;
    return {
      scenario: r.name,
      what: r.what,
      'push→ready': r.images > 1 ? `p50 ${m.pipeline.p50Ms} / p95 ${m.pipeline.p95Ms} ms` : `${m.pipeline.totalMs} ms`,
      'pipeline total': `${m.pipeline.totalMs} ms`,
      raw: r.images > 1 ? `${m.raw.totalMs} ms (p95 ${m.raw.p95Ms})` : `${m.raw.totalMs} ms`,
      naive: naive((n) => `${n.totalMs} ms`),
      'raw + links': `${m.raw.totalMs + m.links.totalMs} ms`,
      'pipeline/raw': `${r.pipelineOverRaw}×`,
      'pipeline/(raw + links)': `${r.pipelineOverRawAndLinks}×`,
      'Azurite CPU (raw + links)/raw': `${r.azuriteBound}×`,
      'naive/pipeline': r.naiveOverPipeline !== undefined ? `${r.naiveOverPipeline}×` : '-',
      'missing MiB/region': same(m.regions.map((x) => mib(x.missingBytes))),
      'copied MiB/region': same(m.regions.map((x) => mib(x.copiedBytes))),
      'copied = missing': r.mismatches.length === 0 ? 'yes' : 'NO',
      'blobs copied/region': same(m.regions.map((x) => x.copiedBlobs)),
      'skipped/region': same(m.regions.map((x) => x.skippedBlobs)),
      'SB messages': m.serviceBus.messages + m.serviceBus.webhookDeliveries,
      'storage requests pipeline/raw/raw + links/naive': `${reqs(m.pipeline)}/${reqs(m.raw)}/${reqs(m.raw) + reqs(m.links)}/${naive(reqs)}`,
      'requests/push/region pipeline/raw/raw + links': `${perPush.pipeline}/${perPush.raw}/${perPush.rawAndLinks}`,
      'Azurite CPU s pipeline/raw/naive': `${m.pipeline.cpuSeconds.azurite}/${m.raw.cpuSeconds.azurite}/${naive((n) => n.cpuSeconds.azurite)}`,
      method: Object.keys(m.methods).join(',') || '-',
    };
  });
}

function printTable(results: ScenarioResult[]): void {
  const data = rows(results);
  if (!data.length) return;
  const columns = Object.keys(data[0]);
  const width = columns.map((c) => Math.max(c.length, ...data.map((d) => String(d[c]).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(width[i])).join('  ');
  console.log(line(columns));
  console.log(line(width.map((w) => '-'.repeat(w))));
  for (const d of data) console.log(line(columns.map((c) => String(d[c]))));
}

function markdownTable(results: ScenarioResult[]): string {
  const data = rows(results);
  if (!data.length) return '';
  const columns = Object.keys(data[0]);
  return [`| ${columns.join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`, ...data.map((d) => `| ${columns.map((c) => d[c]).join(' | ')} |`)].join('\n');
}

function machine() {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: join(__dirname, '..'), encoding: 'utf8' }).trim();
  } catch {
    // not a git checkout
  }
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: round(totalmem() / 1024 ** 3, 1),
    os: `${process.platform} ${release()}`,
    node: process.version,
    date: new Date().toISOString(),
    commit,
  };
}

function int(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: expected a positive whole number, got "${value}"`);
  return n;
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(2);
}

function round(n: number, digits: number): number {
  return Number.isFinite(n) ? +n.toFixed(digits) : n;
}

main()
  // Then a back-fill of BENCH_BACKFILL_TAGS (2,000) tags (bench/backfill.ts), on a full run (not with --only).
  .then(() => (process.argv.includes('--only') ? undefined : backfillIntoResults(program.opts<Flags>().out)))
  .then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
