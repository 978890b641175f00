import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createAdministrationClient } from '../../src/bus/admin';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startStack, type Stack } from '../support/stack';
import type { ReplicaView } from '../../src/replicas/admin-api';
import { deleteTag, writeImage } from '../../src/registry/writer';
import type { RegionStorage } from '../../src/storage/region-storage';
import { rawContainer } from '../support/raw-storage';
import { runCli } from '../support/cli';
import { eventually } from '../support/eventually';
import { drained, pushImage, settled } from '../support/pipeline';

/**
 * Replica management end to end: the admin API and the CLI against the local stack (Azurite, the
 * Service Bus emulator through the real SDK, administration calls included). Home westus, replica
 * eastus from the settings; westeurope, northeurope and the others are storage accounts waiting to be
 * added. A test that needs a created replica makes it (`replica(name)`) unless it is already there.
 */

let stack: Stack;
/** Jobs of a region are held here while its entry is set: the test sees Syncing before Ready. */
const holds = new Map<string, Promise<void>>();
/** Jobs of these regions fail every time (a transient error that never clears). */
const outage = new Set<string>();

const images = [
  generated('shop/web', '1.0', { generate: { layers: 3, layerSize: 96 * 1024 }, seed: 'web-1' }),
  generated('shop/web', '1.1', { generate: { layers: 3, layerSize: 96 * 1024 }, seed: 'web-2', seedBase: 'web-1', share: 2 }),
  generated('shop/api', 'v2', { generate: { layers: 2, layerSize: 64 * 1024 }, platforms: 'linux/amd64,linux/arm64', seed: 'api' }),
];

beforeAll(async () => {
  stack = await startStack({
    replicas: ['eastus'],
    spareAccounts: ['westeurope', 'northeurope', 'southindia', 'japaneast', 'uksouth'],
    httpPort: 0,
    log: silentLogger,
    host: {
      regionPollMs: 200,
      beforeJob: async (region) => {
        if (outage.has(region)) throw new Error(`simulated outage in ${region}`);
        await holds.get(region);
      },
    },
  });
  // Three images at home and in eastus before any replica is created (back-fill and resync read them).
  for (const image of images) {
    const p = await pushImage(stack, image);
    expect(p.jobs.map((j) => j.region)).toEqual(['eastus']);
    await settled(stack, p.pushId, ['eastus']);
  }
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = stack.adminHeaders): Promise<{ status: number; body: any }> {
  const res = await fetch(`${stack.host.url}/api${path}`, { method, headers: { 'Content-Type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** `georeg <args>` in-process against the stack, as a user runs it from the repository. */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCli(args, { cwd: join(__dirname, '../..'), env: { ...stack.env, GEOREG_API_URL: `${stack.host.url}/api` } });
}

async function show(name: string): Promise<ReplicaView> {
  const res = await api('GET', `/replications/${name}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.replication;
}

function until(name: string, statuses: string[]): Promise<ReplicaView> {
  return eventually(() => show(name), (v) => statuses.includes(v.status), { what: `${name} to become ${statuses.join(' or ')}` });
}

/** The created replica `name`, Ready: created here unless it already exists. */
async function replica(name: string): Promise<ReplicaView> {
  if ((await api('GET', `/replications/${name}`)).status === 404) {
    const created = await api('POST', '/replications', { name, storage: stack.storageConnectionString(name) });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
  }
  const v = await until(name, ['Ready', 'Failed']);
  expect(v.status, v.error).toBe('Ready');
  return v;
}

/**
 * Pushes and waits until every region the push has a job for is finished and the broker holds none
 * of its jobs (a job records its status before the host completes its message, and a replica's
 * pendingJobs counts a locked message).
 */
async function pushSettled(image: Parameters<typeof pushImage>[1]): Promise<string[]> {
  const p = await pushImage(stack, image);
  const regions = p.jobs.map((j) => j.region).sort();
  for (const r of await settled(stack, p.pushId, regions)) expect(r.state).toBe('complete');
  await drained(stack, regions);
  return regions;
}

/** The region's registry container as any client of the account sees it. */
const registryOf = (region: string) => rawContainer(stack.storageConnectionString(region), stack.settings.registry.container);

/** Every blob under the registry root, with link contents (data blobs by size). */
async function snapshot(storage: RegionStorage): Promise<Map<string, string>> {
  const container = registryOf(storage.region);
  const out = new Map<string, string>();
  for await (const b of container.listBlobsFlat({ prefix: storage.layout.prefix({ kind: 'everything' }) })) {
    out.set(b.name, b.name.endsWith('/link') ? (await container.getBlobClient(b.name).downloadToBuffer()).toString() : String(b.properties.contentLength));
  }
  return out;
}

function storageOf(region: string): RegionStorage {
  return stack.runtime.registry.storageOf({ name: region, storage: { connectionString: stack.storageConnectionString(region) } });
}

describe('replica management', () => {
  it('creating a replica after three images exist back-fills exactly their blobs and links: Syncing, then Ready', async () => {
    let release!: () => void;
    holds.set('westeurope', new Promise<void>((r) => (release = r)));
    // Released in the finally below whatever fails, so a failure here does not leave westeurope's jobs held for the tests after it.
    const everything = new Set(images.flatMap((i) => [...i.blobs, ...i.manifests].map((b) => b.digest)));
    try {
    const created = await api('POST', '/replications', { name: 'westeurope', storage: stack.storageConnectionString('westeurope') });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const v: ReplicaView = created.body.replication;
    expect(v.status).toBe('Syncing');
    expect(v.source).toBe('created');
    expect(v.storage).toContain('AccountKey=***');
    expect(v.storage).not.toMatch(/AccountKey=[^*]/);
    // The back-fill is queued (replicas/backfill.ts), its totals come page by page. Whether its one
    // page is already planned when create reads the record back for its answer is a race (a page of
    // three tags plans in milliseconds): test/replicas/backfill.test.ts shows create answering first.
    expect(v.sync).toMatchObject({ kind: 'backfill' });
    const planned = await eventually(() => show('westeurope'), (x) => x.sync?.planning.complete === true, { what: 'westeurope back-fill to be planned' });
    expect(planned.sync).toMatchObject({ kind: 'backfill', total: { tags: 3, jobs: 3 }, done: { jobs: 0 } });
    expect(planned.sync!.total.blobs).toBe(everything.size);

    // The subscription exists with only its region rule (created through the administration API).
    const admin = createAdministrationClient(stack.serviceBusConnectionString);
    const rules = [];
    for await (const rule of admin.listRules('replication', 'westeurope')) rules.push(rule);
    expect(rules.map((r) => [r.name, (r.filter as { sqlExpression: string }).sqlExpression])).toEqual([['region', "region = 'westeurope'"]]);
      const syncing = await show('westeurope');
      expect(syncing.status).toBe('Syncing');
      // Held jobs are locked, and Service Bus counts locked messages as active: three jobs pending.
      expect(syncing.pendingJobs).toBe(3);
      expect(syncing.deadLetters).toBe(0);
      // The lag grows while the jobs are held.
      await expect.poll(async () => (await show('westeurope')).lagSeconds, { timeout: 10_000, interval: 200 }).toBeGreaterThanOrEqual(1);
    } finally {
      release();
      holds.delete('westeurope');
    }
    const ready = await until('westeurope', ['Ready', 'Failed']);
    expect(ready.status, ready.error).toBe('Ready');
    expect(ready.sync).toMatchObject({ done: { jobs: 3, blobs: everything.size, bytes: ready.sync!.total.bytes }, failures: [] });
    expect(ready.lastSyncedPush?.repository).toMatch(/^shop\//);

    const [home, region] = await Promise.all([snapshot(stack.runtime.home), snapshot(storageOf('westeurope'))]);
    expect(region.size).toBeGreaterThan(0);
    expect(Object.fromEntries(region)).toEqual(Object.fromEntries(home));
  });

  it('a push after create reaches the new region too', async () => {
    await replica('westeurope');
    const image = generated('shop/web', '1.2', { generate: { layers: 2, layerSize: 32 * 1024 }, seed: 'web-3' });
    expect(await pushSettled(image)).toEqual(expect.arrayContaining(['eastus', 'westeurope']));
  });

  it('list and show, as a table and as JSON, through the CLI', async () => {
    await replica('westeurope');
    await pushSettled(generated('shop/listed', '1', { generate: { layers: 1, layerSize: 4096 }, seed: 'listed' }));
    const json = await cli('replication', 'list', '-o', 'json');
    expect(json.code, json.stderr).toBe(0);
    const all = JSON.parse(json.stdout) as ReplicaView[];
    expect(all.slice(0, 3).map((r) => [r.name, r.home, r.source, r.status])).toEqual([
      ['westus', true, 'settings', 'Ready'],
      ['eastus', false, 'settings', 'Ready'],
      ['westeurope', false, 'created', 'Ready'],
    ]);
    const we = all.find((r) => r.name === 'westeurope')!;
    expect(we).toMatchObject({ endpointEnabled: true, pendingJobs: 0, deadLetters: 0, lagSeconds: 0 });
    expect(we.lastSyncedPush).toMatchObject({ repository: 'shop/listed', tag: '1' });

    const table = await cli('replication', 'list');
    expect(table.code, table.stderr).toBe(0);
    for (const text of ['westus (home)', 'eastus', 'westeurope', 'Ready', 'pending jobs', 'lag (s)']) expect(table.stdout).toContain(text);
    expect(table.stdout).not.toMatch(/AccountKey=[^*]/);

    const one = await cli('replication', 'show', '--region', 'westeurope');
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/backfill [0-9a-f]+: (\d+)\/\1 jobs over \d+ tag\(s\)/);
  });

  it('the endpoint flag round-trips and the routing answer follows it', async () => {
    await replica('westeurope');
    const before = await api('GET', '/regions/route?repository=shop/web&tag=1.0');
    expect(before.status).toBe(200);
    expect(before.body.regions).toEqual(['westus', 'eastus', 'westeurope']);

    const off = await cli('replication', 'update', '--region', 'westeurope', '--region-endpoint-enabled', 'false', '-o', 'json');
    expect(off.code, off.stderr).toBe(0);
    expect(JSON.parse(off.stdout)).toMatchObject({ name: 'westeurope', endpointEnabled: false, status: 'Ready' });
    const during = await api('GET', '/regions/route?repository=shop/web&tag=1.0');
    expect(during.body.regions).toEqual(['westus', 'eastus']);
    expect(during.body.excluded).toEqual([{ region: 'westeurope', reason: 'region endpoint disabled' }]);

    // A disabled region keeps syncing.
    const image = generated('shop/web', '1.3', { generate: { layers: 1, layerSize: 16 * 1024 }, seed: 'web-4' });
    expect(await pushSettled(image)).toEqual(['eastus', 'westeurope']);

    const on = await cli('replication', 'update', '--region', 'westeurope', '--global-endpoint-routing', 'true', '-o', 'json');
    expect(on.code, on.stderr).toBe(0);
    expect(JSON.parse(on.stdout).endpointEnabled).toBe(true);
    expect((await api('GET', '/regions/route?repository=shop/web&tag=1.3')).body.regions).toEqual(['westus', 'eastus', 'westeurope']);

    // A settings region's flag is kept in its record too.
    await api('PATCH', '/replications/eastus', { endpointEnabled: false });
    expect((await show('eastus')).endpointEnabled).toBe(false);
    expect((await api('GET', '/regions/route?repository=shop/web&tag=1.3')).body.regions).toEqual(['westus', 'westeurope']);
    await api('PATCH', '/replications/eastus', { endpointEnabled: true });

    expect((await api('GET', '/regions/route?repository=shop/web&tag=nope')).status).toBe(404);
  });

  it('resync repairs a blob deleted by hand in a region and reports what was missing', async () => {
    const eastus = storageOf('eastus');
    const victim = images[0].blobs[1];
    expect(await eastus.deleteBlob(victim.digest)).toBe(true);
    const layerLink = { kind: 'layer', repository: 'shop/web', digest: images[0].blobs[0].digest } as const;
    expect(await eastus.deleteLink(layerLink)).toBe(true);

    const res = await cli('replication', 'resync', '--region', 'eastus', '--wait', '-o', 'json');
    expect(res.code, res.stderr).toBe(0);
    const v = JSON.parse(res.stdout) as ReplicaView;
    expect(v.status).toBe('Ready');
    // Tags 1.0 and 1.1 share the deleted layer and the repository's layer link.
    expect(v.sync!.missing).toEqual([
      { repository: 'shop/web', tag: '1.0', blobs: 1, bytes: victim.size, links: 1 },
      { repository: 'shop/web', tag: '1.1', blobs: 1, bytes: victim.size, links: 1 },
    ]);
    expect(v.sync!.total.jobs).toBe(2);
    expect((await eastus.blobProperties(victim.digest))?.size).toBe(victim.size);
    expect(await eastus.readLink(layerLink)).toBe(images[0].blobs[0].digest);

    const again = await api('POST', '/replications/eastus/resync', {});
    expect(again.status).toBe(202);
    expect(again.body.replication).toMatchObject({ status: 'Ready', sync: { total: { jobs: 0 }, missing: [] } });
    const one = await api('POST', '/replications/eastus/resync', { repository: 'shop/api' });
    expect(one.body.replication.sync).toMatchObject({ kind: 'resync', repository: 'shop/api', total: { tags: 1, jobs: 0 } });
    expect((await api('POST', '/replications/eastus/resync', { repository: 'Not A Repo' })).status).toBe(400);
  });

  it('delete stops new jobs and keeps the data; a later push does not reach the region', async () => {
    await replica('westeurope');
    const before = await snapshot(storageOf('westeurope'));
    const res = await cli('replication', 'delete', '--region', 'westeurope', '-o', 'json');
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ deleted: 'westeurope', subscriptionRemoved: true, dataKept: true });
    const admin = createAdministrationClient(stack.serviceBusConnectionString);
    expect(await admin.subscriptionExists('replication', 'westeurope')).toBe(false);
    expect((await api('GET', '/replications/westeurope')).status).toBe(404);

    const image = generated('shop/late', '1', { generate: { layers: 1, layerSize: 8 * 1024 }, seed: 'late' });
    expect(await pushSettled(image)).toEqual(['eastus']);
    const westeurope = storageOf('westeurope');
    expect(await westeurope.readLink({ kind: 'tagCurrent', repository: 'shop/late', tag: '1' })).toBeUndefined();
    expect(Object.fromEntries(await snapshot(westeurope))).toEqual(Object.fromEntries(before));
  });

  it('delete --purge removes the region data', async () => {
    const created = await cli('replication', 'create', '--region', 'northeurope', '--storage', stack.storageConnectionString('northeurope'), '--wait', '-o', 'json');
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ name: 'northeurope', status: 'Ready' });
    expect((await snapshot(storageOf('northeurope'))).size).toBeGreaterThan(0);

    const purged = await cli('replication', 'delete', '--region', 'northeurope', '--purge', '-o', 'json');
    expect(purged.code, purged.stderr).toBe(0);
    expect(JSON.parse(purged.stdout).purgedBlobs).toBeGreaterThan(0);
    expect((await snapshot(storageOf('northeurope'))).size).toBe(0);
    expect((await api('GET', '/replications/northeurope')).status).toBe(404);
  });

  it('a back-fill job that cannot succeed leaves the replica Failed, naming the job and its reason', async () => {
    const image = generated('shop/rotten', '1', { generate: { layers: 2, layerSize: 4096 }, seed: 'rotten' });
    await writeImage(stack.runtime.home, image);
    const bad = image.blobs[0];
    await stack.runtime.home.writeBlob(bad.digest, Buffer.alloc(bad.size, 1), { append: true });
    // Untagged again afterwards: a later back-fill must not meet the corrupt image.
    onTestFinished(() => deleteTag(stack.runtime.home, 'shop/rotten', '1'));
    const created = await api('POST', '/replications', { name: 'uksouth', storage: stack.storageConnectionString('uksouth') });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const failed = await until('uksouth', ['Ready', 'Failed']);
    expect(failed.status).toBe('Failed');
    expect(failed.sync!.failures).toHaveLength(1);
    expect(failed.sync!.failures[0]).toMatchObject({ reason: 'DigestMismatch' });
    expect(failed.sync!.failures[0].description).toContain(bad.digest);
    expect(failed.error).toContain('shop/rotten');
    // Its dead letter was handled by the dead-letter trigger, which leaves none waiting.
    await expect.poll(async () => (await show('uksouth')).deadLetters, { timeout: 10_000 }).toBe(0);
    const uksouth = storageOf('uksouth');
    expect(await uksouth.readLink({ kind: 'tagCurrent', repository: 'shop/rotten', tag: '1' })).toBeUndefined();
    // Every other tag made it.
    expect(await uksouth.readLink({ kind: 'tagCurrent', repository: 'shop/web', tag: '1.0' })).toBe(images[0].manifests[0].digest);
    expect(failed.sync!.done.jobs).toBe(failed.sync!.total.jobs);
  });

  it('jobs the broker dead-letters after repeated transient failures end the back-fill as Failed, with no GET', async () => {
    outage.add('southindia');
    try {
      const created = await api('POST', '/replications', { name: 'southindia', storage: stack.storageConnectionString('southindia') });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const planned = await eventually(() => stack.runtime.registry.get('southindia'), (r) => r?.record?.sync?.planning.complete === true, { what: 'southindia back-fill to be planned' });
      const total = planned!.record!.sync!.total.jobs;
      expect(total).toBeGreaterThanOrEqual(images.length);
      // Nothing reads the replica through the API from here: the record turns Failed by itself,
      // as the dead-letter trigger records each job Service Bus gives up on (MaxDeliveryCountExceeded).
      await expect.poll(async () => (await stack.runtime.registry.get('southindia'))?.status, { timeout: 60_000, interval: 100 }).toBe('Failed');
      const run = (await stack.runtime.registry.get('southindia'))!.record!.sync!;
      expect(run.done.jobs).toBe(total);
      expect(run.failures).toHaveLength(total);
      for (const f of run.failures) expect(f.reason).toBe('MaxDeliveryCountExceeded');
      const failed = await show('southindia');
      expect(failed.status).toBe('Failed');
      expect(failed.sync!.failures).toHaveLength(total);
    } finally {
      outage.delete('southindia');
    }
  });

  it('a subscription that cannot be made leaves nothing created (502)', async () => {
    const realAdmin = stack.runtime.busAdmin;
    stack.runtime.busAdmin = () => {
      throw new Error('Unauthorized: Manage claim required');
    };
    try {
      const res = await api('POST', '/replications', { name: 'japaneast', storage: stack.storageConnectionString('japaneast') });
      expect(res.status).toBe(502);
      expect(res.body.error).toContain('cannot create subscription replication/japaneast: Unauthorized: Manage claim required; nothing was created');
    } finally {
      stack.runtime.busAdmin = realAdmin;
    }
    expect((await api('GET', '/replications/japaneast')).status).toBe(404);
    const again = await api('POST', '/replications', { name: 'japaneast', storage: stack.storageConnectionString('japaneast') });
    expect(again.status, JSON.stringify(again.body)).toBe(201);
  });

  it('refuses bad arguments with usage errors', async () => {
    const noRegion = await cli('replication', 'show');
    expect(noRegion.code).not.toBe(0);
    expect(noRegion.stderr).toContain('--region');
    const noStorage = await cli('replication', 'create', '--region', 'brazilsouth');
    expect(noStorage.code).not.toBe(0);
    expect(noStorage.stderr).toContain("required option '--storage");
    const badBool = await cli('replication', 'update', '--region', 'westus', '--region-endpoint-enabled', 'maybe');
    expect(badBool.code).not.toBe(0);
    expect(badBool.stderr).toContain('expected true or false');

    expect((await api('POST', '/replications', { name: 'Bad_Name', storage: 'x' })).status).toBe(400);
    const badStorage = await api('POST', '/replications', { name: 'brazilsouth', storage: 'not a connection string' });
    expect(badStorage.status).toBe(400);
    expect(badStorage.body.error).toContain('neither a storage connection string');
    expect((await api('POST', '/replications', { name: 'westus', storage: stack.storageConnectionString('westeurope') })).status).toBe(409);
    expect((await api('DELETE', '/replications/westus')).body.error).toContain('home region');
    expect((await api('GET', '/replications/atlantis')).status).toBe(404);
    expect((await api('GET', '/replications', undefined, {})).status).toBe(401);
    expect((await api('GET', '/regions/route?repository=shop/web', undefined, {})).status).toBe(401);
  });

  // Last: deleting a region from the settings cannot be undone on this stack (a stack of its own
  // for it cost 10 s more, most of it the emulator dropping a subscription its receiver holds).
  it('a deleted settings region stays deleted: the list no longer has it and a push sends it no job', async () => {
    expect((await api('DELETE', '/replications/eastus')).status).toBe(200);
    const list = (await api('GET', '/replications')).body.replications as ReplicaView[];
    expect(list.map((r) => r.name)).not.toContain('eastus');
    const p = await pushImage(stack, generated('shop/solo', '1', { generate: { layers: 1, layerSize: 1024 }, seed: 'solo' }));
    expect(p.jobs.map((j) => j.region)).not.toContain('eastus');
  });
});
