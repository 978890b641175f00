import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/log';
import { forEachLimit } from '../../src/common/pool';
import { startLocalHost, type SettledInvocation } from '../../src/local/host';
import type { ReplicaView } from '../../src/replicas/admin-api';
import type { BackfillOutcome } from '../../src/replicas/backfill';
import type { JobOutcome } from '../../src/replication/replicate';
import { writeImage } from '../../src/registry/writer';
import { eventually } from '../support/eventually';
import { generated } from '../support/images';
import { startStack, type Stack } from '../support/stack';

/**
 * Back-fill as queued work (src/replicas/backfill.ts) on the real stack: `replication create`
 * answers before any tag is planned, pages of home's tags go through the back-fill queue one after
 * another, and a worker stopped mid back-fill leaves a run the next worker finishes, every tag
 * replicated once. Home holds 20 tiny images in 12 repositories; pages list 15 blobs each (about
 * 3 tags: a tag's current and index links, its revision link, two layer links), so a run is about
 * seven pages (as with 32 tags in pages of 25, with 40% fewer jobs).
 */

const TAGS = 20;
let stack: Stack;
const settled: SettledInvocation[] = [];

beforeAll(async () => {
  stack = await startStack({
    replicas: [],
    spareAccounts: ['eastus', 'westeurope'],
    httpPort: 0,
    log: silentLogger,
    settings: { GEOREG_BACKFILL_PAGE_SIZE: '15', GEOREG_RECONCILE_SCHEDULE: '0 0 0 1 1 *' },
    host: { maxConcurrentCalls: 16, regionPollMs: 200, onSettled: (s) => settled.push(s) },
  });
  const images = Array.from({ length: TAGS }, (_, i) => generated(`fleet/app${i % 12}`, `v${i}`, { generate: { layers: 1, layerSize: 64 }, seed: `fleet-${i}` }));
  await forEachLimit(images, 8, async (image) => {
    await writeImage(stack.runtime.home, image);
  });
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

async function create(name: string, url = stack.host.url): Promise<ReplicaView> {
  const res = await fetch(`${url}/api/replications`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...stack.adminHeaders },
    body: JSON.stringify({ name, storage: stack.storageConnectionString(name) }),
  });
  const body = (await res.json()) as { replication: ReplicaView };
  expect(res.status, JSON.stringify(body)).toBe(201);
  return body.replication;
}

function record(name: string) {
  return stack.runtime.registry.get(name);
}

/** Every tag of home, with its digest, as the region holds it. */
async function tagsIn(region: string): Promise<Map<string, string>> {
  const storage = region === 'home' ? stack.runtime.home : stack.runtime.registry.storageOf({ name: region, storage: { connectionString: stack.storageConnectionString(region) } });
  const out = new Map<string, string>();
  for await (const t of storage.listRepositoriesWithTags()) out.set(`${t.repository}:${t.tag}`, t.digest);
  return out;
}

describe('back-fill as queued work', () => {
  it('a page message that does not parse is dead-lettered with its reason', async () => {
    await stack.runtime.backfillSender.sendMessages({ body: { version: 1, region: 'eastus', page: -1 }, messageId: 'backfill:bad', contentType: 'application/json' });
    const refused = await eventually(
      async () => settled.find((s) => s.function === 'backfill' && s.message?.messageId === 'backfill:bad'),
      (s) => s !== undefined,
      { what: 'the malformed page to be settled' },
    );
    expect(refused!.outcome).toMatchObject({ outcome: 'dead-letter', reason: 'MalformedMessage' });
    expect((refused!.outcome as { description: string }).description).toMatch(/back-fill page does not match its schema: .*operationId/);
    // The dead-letter trigger takes it, and records nothing (it names no run).
    await eventually(async () => settled.find((s) => s.function === 'backfillDeadLetters' && s.message?.messageId === 'backfill:bad'), (s) => s !== undefined, { what: 'the dead letter to be handled' });
  });


  it('create answers before planning; pages are each planned once; the replica reaches Ready with every tag', async () => {
    const created = await create('eastus');
    // Answered at once: the run is on the record, no page planned yet.
    expect(created.status).toBe('Syncing');
    expect(created.sync).toMatchObject({ kind: 'backfill', planning: { pages: 0, complete: false }, total: { tags: 0, jobs: 0 } });

    const ready = await eventually(() => record('eastus'), (r) => r?.status === 'Ready' || r?.status === 'Failed', { what: 'eastus to become Ready', timeout: 60_000 });
    const run = ready!.record!.sync!;
    expect(ready!.status, ready!.record!.error).toBe('Ready');
    expect(run.total).toMatchObject({ tags: TAGS, jobs: TAGS });
    expect(run.done.jobs).toBe(TAGS);
    expect(run.planning.complete).toBe(true);
    // Several pages, each planned once (page n+1 is sent by page n, then both plan side by side).
    // A page's invocation settles after the jobs it sent, which may finish the run first: wait for every page the run counts.
    const plannedPages = async () =>
      settled.filter((s) => s.function === 'backfill' && (s.outcome as BackfillOutcome).outcome === 'completed' && (s.outcome as { skipped?: string }).skipped === undefined).map((s) => (s.outcome as { page: number }).page);
    const pages = await eventually(plannedPages, (p) => p.length >= run.planning.pages, { what: 'every page the run counts to settle' });
    expect(pages.length).toBeGreaterThan(3);
    expect([...pages].sort((a, b) => a - b)).toEqual(pages.map((_, i) => i));
    expect(run.planning).toMatchObject({ pages: pages.length, last: pages.length - 1 });
    expect(Object.fromEntries(await tagsIn('eastus'))).toEqual(Object.fromEntries(await tagsIn('home')));
  }, 90_000);

  it('a worker stopped mid back-fill and a new one started: the replica still reaches Ready, every tag replicated once', async () => {
    const copied = new Map<string, number>();
    const onJob = (region: string, outcome: JobOutcome | { outcome: 'abandoned' }) => {
      if (region !== 'westeurope' || outcome.outcome !== 'completed' || outcome.alreadyComplete) return;
      const key = `${outcome.status.repository}:${outcome.status.tag}`;
      copied.set(key, (copied.get(key) ?? 0) + 1);
    };
    // The first worker stops as soon as it has planned one page. It takes one message of each
    // queue at a time, so it stops with most pages unplanned. Its stop gives what runs time to
    // finish: a job cut off by a stop with no grace runs on (nothing cancels it), commits its tag,
    // then fails to complete its message (the stop abandoned it), and the host reports that
    // invocation as abandoned, so `copied` would miss the tag (the next worker finds it complete).
    let firstPage!: () => void;
    const planned = new Promise<void>((r) => (firstPage = r));
    const first = await startLocalHost(stack.runtime, {
      env: stack.env,
      port: 0,
      log: silentLogger,
      maxConcurrentCalls: 1,
      shutdownGraceMs: 20_000,
      regionPollMs: 200,
      onJob,
      onSettled: (s) => {
        if (s.function === 'backfill') firstPage();
      },
    });
    // Only the new workers take messages from here on.
    await stack.host.close();
    await create('westeurope', first.url);
    await planned;
    await first.close();
    const mid = (await record('westeurope'))!;
    expect(mid.status).toBe('Syncing');
    expect(mid.record!.sync!.planning.complete).toBe(false);

    const second = await startLocalHost(stack.runtime, { env: stack.env, port: 0, log: silentLogger, maxConcurrentCalls: 16, regionPollMs: 200, onJob });
    try {
      const ready = await eventually(() => record('westeurope'), (r) => r?.status === 'Ready' || r?.status === 'Failed', { what: 'westeurope to become Ready', timeout: 60_000 });
      expect(ready!.status, ready!.record!.error).toBe('Ready');
      expect(ready!.record!.sync).toMatchObject({ total: { tags: TAGS, jobs: TAGS }, done: { jobs: TAGS }, failures: [] });
      const home = await tagsIn('home');
      expect(Object.fromEntries(await tagsIn('westeurope'))).toEqual(Object.fromEntries(home));
      // Every tag copied and committed by exactly one job run, across the two workers.
      expect(copied.size).toBe(TAGS);
      expect([...copied.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    } finally {
      await second.close();
    }
  }, 90_000);
});
