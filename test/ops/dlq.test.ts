import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startStack, type Stack } from '../support/stack';
import { runCli } from '../support/cli';
import type { DeadLetterQueueView } from '../../src/ops/dlq-api';
import type { ReplicaView } from '../../src/replicas/admin-api';
import { writeImage } from '../../src/registry/writer';
import { StatusStore } from '../../src/replication/status';
import { WebhookStore } from '../../src/webhooks/store';
import { envelopeFor, notify, pushCorruptImage, settled } from '../support/pipeline';
import { startSubscriber, type Subscriber } from '../webhooks/subscriber';

/**
 * `georeg dlq list|redrive|discard` through the real CLI, against the local stack: Azurite, the
 * Service Bus emulator through the real SDK (dead-letter sub-queues), a real HTTP subscriber.
 * A corrupt blob at home dead-letters a push in both regions; once the blob is repaired, a redrive
 * completes it, and a discard removes the other for good.
 */

const REPLICAS = ['eastus', 'westeurope'];
let stack: Stack;
let subscriber: Subscriber;
/** The subscriber refuses everything while this is true. */
let refusing = true;

beforeAll(async () => {
  stack = await startStack({
    replicas: REPLICAS,
    spareAccounts: ['northeurope'],
    httpPort: 0,
    log: silentLogger,
    settings: { GEOREG_WEBHOOK_MAX_ATTEMPTS: '1', GEOREG_WEBHOOK_TIMEOUT_MS: '2000' },
  });
  subscriber = await startSubscriber({ answer: () => ({ status: refusing ? 500 : 200 }) });
}, 120_000);

afterAll(async () => {
  await subscriber?.close();
  await stack?.close();
});

const cli = (...args: string[]) => runCli(args, { cwd: join(__dirname, '../..'), env: { ...stack.env, GEOREG_API_URL: `${stack.host.url}/api` } });

async function listed(...args: string[]): Promise<DeadLetterQueueView[]> {
  const res = await cli('dlq', 'list', ...args, '-o', 'json');
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as DeadLetterQueueView[];
}

/** The API the CLI calls, straight: polling through a CLI process each time would be slow. */
async function countIn(source: string): Promise<number | undefined> {
  const res = await fetch(`${stack.host.url}/api/deadletters`, { headers: stack.adminHeaders });
  const { queues } = (await res.json()) as { queues: DeadLetterQueueView[] };
  return queues.find((q) => q.source === source)?.count;
}

describe('georeg dlq', () => {
  it('lists a corrupt push in each region with its reason; redrive after the repair completes it; discard removes the other', async () => {
    const { image, pushId, bad, repair } = await pushCorruptImage(stack, 'dlq/corrupt', 'dlq-corrupt');
    for (const r of await settled(stack, pushId, REPLICAS)) expect(r.state).toBe('failed');

    // The dead-letter trigger keeps each dead letter after recording the failure: wait for both.
    await expect.poll(() => countIn('region:eastus'), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => countIn('region:westeurope'), { timeout: 10_000 }).toBe(1);
    const [eastus] = await listed('--region', 'eastus');
    expect(eastus.source).toBe('region:eastus');
    expect(eastus.messages[0]).toMatchObject({ id: `${pushId}:eastus`, reason: 'DigestMismatch', pushId, repository: 'dlq/corrupt', tag: '1', redrives: 0, redrivable: true });
    expect(eastus.messages[0].description).toContain(bad.digest);
    const table = await cli('dlq', 'list', '--region', 'eastus');
    expect(table.stdout).toContain('region:eastus: 1 dead letter(s)');
    expect(table.stdout).toContain('DigestMismatch');

    // The repaired blob, then the redrive: a new message id (duplicate detection would drop the
    // original id), the job runs from its first attempt and completes.
    await repair();
    const redriven = await cli('dlq', 'redrive', '--region', 'eastus', '--job', `${pushId}:eastus`, '-o', 'json');
    expect(redriven.code, redriven.stderr).toBe(0);
    expect(JSON.parse(redriven.stdout)).toEqual({ source: 'region:eastus', done: [{ id: `${pushId}:eastus`, messageId: `${pushId}:eastus`, newMessageId: `${pushId}:eastus:redrive:1` }], notFound: [], failed: [] });
    const statuses = new StatusStore(stack.runtime.state);
    await expect.poll(async () => (await statuses.region(pushId, 'eastus'))?.state, { timeout: 20_000 }).toBe('complete');
    const target = stack.runtime.regions.get('eastus')!;
    expect(await target.readLink({ kind: 'tagCurrent', repository: 'dlq/corrupt', tag: '1' })).toBe(image.manifests[0].digest);
    expect((await target.readBlob(bad.digest, { verify: true })).equals(bad.data as Buffer)).toBe(true);
    expect(await countIn('region:eastus')).toBe(0);

    // Discard: gone from the queue, nothing sent, the region stays failed for that push.
    const unknown = await cli('dlq', 'discard', '--region', 'westeurope', '--job', 'no-such-job');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no dead letter no-such-job in region:westeurope');
    const discarded = await cli('dlq', 'discard', '--region', 'westeurope', '--all');
    expect(discarded.code, discarded.stderr).toBe(0);
    expect(discarded.stdout).toContain(`region:westeurope: 1 discarded: ${pushId}:westeurope`);
    expect(await countIn('region:westeurope')).toBe(0);
    const [westeurope] = await settled(stack, pushId, ['westeurope']);
    expect(westeurope.state).toBe('failed');
  }, 180_000);

  it('re-drives a dead-lettered webhook delivery after the subscriber recovers', async () => {
    const hook = await fetch(`${stack.host.url}/api/webhooks`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...stack.adminHeaders },
      body: JSON.stringify({ name: 'dlqhook', region: 'eastus', serviceUri: subscriber.url, actions: ['push'], scope: 'dlq/hook:*' }),
    });
    expect(hook.status, await hook.text()).toBe(201);
    const image = generated('dlq/hook', '1', { generate: { layers: 1, layerSize: 1024 }, seed: 'dlq-hook' });
    await writeImage(stack.runtime.home, image);
    const pushId = (await notify(stack, envelopeFor(image))).body.pushes[0].pushId as string;
    await subscriber.waitFor(1);
    await expect.poll(() => countIn('webhooks'), { timeout: 10_000 }).toBe(1);
    const [queue] = await listed('--webhooks');
    const deliveryId = `${pushId}:eastus:dlqhook`;
    expect(queue.messages[0]).toMatchObject({ id: deliveryId, webhook: 'dlqhook', region: 'eastus', repository: 'dlq/hook', tag: '1' });
    expect(queue.messages[0].reason).toBe('MaxAttemptsExceeded');

    refusing = false;
    const redriven = await cli('dlq', 'redrive', '--webhooks', '--all');
    expect(redriven.code, redriven.stderr).toBe(0);
    expect(redriven.stdout).toContain(`webhooks: 1 re-driven: ${deliveryId} (as ${deliveryId}:redrive:1)`);
    await subscriber.waitFor(2);
    expect(subscriber.received[1].json).toMatchObject({ action: 'push', pushId, region: 'eastus', target: { repository: 'dlq/hook', tag: '1' } });
    const store = new WebhookStore(stack.runtime.state);
    await expect.poll(async () => (await store.delivery('dlqhook', deliveryId))?.state, { timeout: 10_000 }).toBe('delivered');
    expect(await countIn('webhooks')).toBe(0);
  }, 120_000);

  it('a re-driven back-fill job counts again in its replica run: Failed, then Ready once it completes', async () => {
    // A corrupt image at home that no notification announced: only the back-fill finds it.
    const image = generated('dlq/backfill', '1', { generate: { layers: 2, layerSize: 4096 }, seed: 'dlq-backfill' });
    await writeImage(stack.runtime.home, image);
    const bad = image.blobs[1];
    await stack.runtime.home.writeBlob(bad.digest, Buffer.alloc(bad.size, 3), { append: true });
    const replica = async () => ((await (await fetch(`${stack.host.url}/api/replications/northeurope`, { headers: stack.adminHeaders })).json()) as { replication: ReplicaView }).replication;
    const created = await fetch(`${stack.host.url}/api/replications`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...stack.adminHeaders },
      body: JSON.stringify({ name: 'northeurope', storage: stack.storageConnectionString('northeurope') }),
    });
    expect(created.status, await created.text()).toBe(201);
    await expect.poll(async () => (await replica()).status, { timeout: 30_000 }).toBe('Failed');
    expect((await replica()).error).toContain('dlq/backfill:1: DigestMismatch');

    await stack.runtime.home.writeBlob(bad.digest, bad.data as Buffer, { append: true });
    const redriven = await cli('dlq', 'redrive', '--region', 'northeurope', '--all', '-o', 'json');
    expect(redriven.code, redriven.stderr).toBe(0);
    expect(JSON.parse(redriven.stdout).done).toHaveLength(1);
    await expect.poll(async () => (await replica()).status, { timeout: 30_000 }).toBe('Ready');
    const after = await replica();
    expect(after.error).toBeUndefined();
    expect(after.sync!.failures).toEqual([]);
    expect(after.sync!.done.jobs).toBe(after.sync!.total.jobs);
    const target = stack.runtime.registry.storageOf({ name: 'northeurope', storage: { connectionString: stack.storageConnectionString('northeurope') } });
    expect(await target.readLink({ kind: 'tagCurrent', repository: 'dlq/backfill', tag: '1' })).toBe(image.manifests[0].digest);
  }, 120_000);

  it('refuses a redrive that names no queue or no selection, and a region that is not a replica', async () => {
    expect((await cli('dlq', 'redrive', '--all')).stderr).toContain('give --region <region> or --webhooks');
    expect((await cli('dlq', 'redrive', '--region', 'eastus')).stderr).toContain('give --all or --job <id...>');
    const home = await cli('dlq', 'list', '--region', 'westus');
    expect(home.code).toBe(1);
    expect(home.stderr).toMatch(/region westus is not a replica \(replicas: eastus, (northeurope, )?westeurope\)/);
  }, 120_000);
});
