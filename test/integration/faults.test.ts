import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replicationJobMessage, type PushJob } from '../../src/bus/messages';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startLocalHost, type LocalHost, type SettledInvocation } from '../../src/local/host';
import { startStack, type Stack } from '../support/stack';
import { StatusStore } from '../../src/replication/status';
import { DeadLetterLog } from '../support/dead-letters';
import { eventually } from '../support/eventually';
import { pushCorruptImage, pushImage, settled } from '../support/pipeline';

/**
 * Faults on the real stack: a plan too large for one message (claim check), a worker that died
 * half-way through a copy, a corrupt blob at home, and a region whose storage fails for a while
 * (or for good). Each ends with the region complete or a
 * dead-letter with its reason, never a tag whose blobs are missing.
 *
 * The host here runs the westeurope trigger only; eastus jobs are taken by hand (a "worker" that
 * then dies) or by a second host started when the test wants it.
 */

let stack: Stack;
let sb: ServiceBusClient;
const extraHosts: LocalHost[] = [];
const deadLetters = new DeadLetterLog();
/** Every replicate invocation of either host: which message, which delivery, what came of it. */
const replications: Array<{ messageId: string; deliveryCount: number; outcome: any }> = [];
const onSettled = (i: SettledInvocation) => {
  deadLetters.onSettled(i);
  if (i.function === 'replicate' && i.message) replications.push({ messageId: String(i.message.messageId), deliveryCount: i.message.deliveryCount ?? 0, outcome: i.outcome });
};

beforeAll(async () => {
  // 1 KiB inline limit: any plan with more than a few descriptors goes to a blob.
  stack = await startStack({
    replicas: ['eastus', 'westeurope'],
    httpPort: 0,
    log: silentLogger,
    // Passing failures retried 3 times in all, 100-200 ms apart, so the retry paths run in a second.
    settings: { GEOREG_MAX_INLINE_PLAN_BYTES: '1024', GEOREG_REPLICATE_MAX_ATTEMPTS: '3', GEOREG_REPLICATE_RETRY_BASE_MS: '100', GEOREG_REPLICATE_RETRY_MAX_MS: '200' },
    host: { regions: ['westeurope'], onSettled },
  });
  sb = new ServiceBusClient(stack.serviceBusConnectionString);
}, 120_000);

afterAll(async () => {
  await Promise.all(extraHosts.map((h) => h.close()));
  await sb?.close();
  await stack?.close();
});

async function eastusWorker(): Promise<void> {
  extraHosts.push(await startLocalHost(stack.runtime, { regions: ['eastus'], port: 0, log: silentLogger, onSettled }));
}

describe('faults', () => {
  it('a worker that dies mid-copy leaves a partial blob and no tag; the redelivered job repairs it and commits', async () => {
    const image = generated('fault/partial', '1', { generate: { layers: 4, layerSize: 200 * 1024 }, seed: 'partial' });
    const p = await pushImage(stack, image);

    // The first worker takes the eastus job, writes half of one layer, and dies (its lock is given up).
    const receiver = sb.createReceiver('replication', 'eastus');
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 10_000 });
    expect(message.messageId).toBe(`${p.pushId}:eastus`);
    const eastus = stack.runtime.regions.get('eastus')!;
    const victim = image.blobs[2];
    await eastus.writeBlob(victim.digest, (image.blobs[2].data as Buffer).subarray(0, victim.size / 2), { append: true });
    await receiver.abandonMessage(message);
    await receiver.close();
    expect((await eastus.blobProperties(victim.digest))?.size).toBe(victim.size / 2);
    expect(await eastus.readLink({ kind: 'tagCurrent', repository: 'fault/partial', tag: '1' })).toBeUndefined();

    await eastusWorker();
    const [status] = await settled(stack, p.pushId, ['eastus']);
    expect(status.state).toBe('complete');
    expect(status.attempts).toBe(1);
    expect((await eastus.blobProperties(victim.digest))?.size).toBe(victim.size);
    expect((await eastus.readBlob(victim.digest, { verify: true })).equals(victim.data as Buffer)).toBe(true);
    expect(await eastus.readLink({ kind: 'tagCurrent', repository: 'fault/partial', tag: '1' })).toBe(image.manifests[0].digest);
  });

  it('a plan over the inline limit travels as a claim check and replicates the same', async () => {
    const image = generated('fault/bigplan', '1', { generate: { layers: 30, layerSize: 1024 }, seed: 'bigplan' });
    const p = await pushImage(stack, image);
    const stored = await stack.runtime.state.list(`plans/${p.pushId}/`);
    expect(stored.sort()).toEqual([`plans/${p.pushId}/eastus.json`, `plans/${p.pushId}/westeurope.json`]);
    for (const r of await settled(stack, p.pushId, ['eastus', 'westeurope'])) {
      expect(r.state).toBe('complete');
      expect(r.blobs.copied).toBe(32);
    }
  });

  it('a corrupt blob at home dead-letters the job on its first delivery, naming digest and region, and the tag is not committed', async () => {
    const { pushId, bad } = await pushCorruptImage(stack, 'fault/corrupt', 'corrupt');
    for (const r of await settled(stack, pushId, ['eastus', 'westeurope'])) {
      expect(r.state).toBe('failed');
      expect(r.error).toContain('DigestMismatch');
      expect(r.error).toContain(bad.digest);
    }
    for (const region of ['eastus', 'westeurope']) {
      // Through the one settlement (functions/replicate.ts → src/bus/settlement.ts): dead-lettered
      // with the handler's reason by the first and only delivery.
      const { message } = await deadLetters.find((d) => d.function === 'replicateDeadLetters' && d.message.messageId === `${pushId}:${region}`);
      expect(message.deadLetterReason).toBe('DigestMismatch');
      expect(message.deadLetterErrorDescription).toContain(bad.digest);
      expect(message.deadLetterErrorDescription).toContain(region);
      // One invocation, of a message delivered for the first time (the SDK counts earlier deliveries: 0).
      const deliveries = replications.filter((j) => j.messageId === `${pushId}:${region}`);
      expect(deliveries.map((d) => [d.deliveryCount, d.outcome.outcome, d.outcome.reason])).toEqual([[0, 'dead-letter', 'DigestMismatch']]);
      const target = stack.runtime.regions.get(region)!;
      expect(await target.readLink({ kind: 'tagCurrent', repository: 'fault/corrupt', tag: '1' })).toBeUndefined();
      expect(await target.blobProperties(bad.digest)).toBeUndefined();
    }
  });

  it('a passing failure is retried with back-off through scheduled messages, then the job completes', async () => {
    const restore = failStorage('westeurope', 2);
    try {
      const image = generated('fault/flaky', '1', { generate: { layers: 1, layerSize: 2048 }, seed: 'flaky' });
      const p = await pushImage(stack, image);
      const [r] = await settled(stack, p.pushId, ['westeurope']);
      expect(r.state).toBe('complete');
      expect(r.error).toBeUndefined();
      const westeurope = stack.runtime.regions.get('westeurope')!;
      expect(await westeurope.readLink({ kind: 'tagCurrent', repository: 'fault/flaky', tag: '1' })).toBe(image.manifests[0].digest);
    } finally {
      restore();
    }
  });

  it('a failure that does not pass dead-letters after the last attempt with its last error', async () => {
    const restore = failStorage('westeurope', Infinity);
    try {
      const image = generated('fault/down', '1', { generate: { layers: 1, layerSize: 2048 }, seed: 'down' });
      const p = await pushImage(stack, image);
      const [r] = await settled(stack, p.pushId, ['westeurope']);
      expect(r.state).toBe('failed');
      expect(r.error).toContain('TransientFailuresExhausted');
      const { message: m } = await deadLetters.find((d) => d.function === 'replicateDeadLetters' && d.message.messageId === `${p.pushId}:westeurope~retry2`);
      expect(m.deadLetterReason).toBe('TransientFailuresExhausted');
      expect(m.deadLetterErrorDescription).toContain('storage of westeurope unreachable (simulated)');
      expect(m.deadLetterErrorDescription).toContain('attempt 3 of 3');
    } finally {
      restore();
    }
  });

  it('a job whose plan is stale looks up every blob again, and copies one that went missing since', async () => {
    const image = generated('fault/stale', '1', { generate: { layers: 2, layerSize: 4096 }, seed: 'stale' });
    const p = await pushImage(stack, image);
    await settled(stack, p.pushId, ['westeurope']);
    const westeurope = stack.runtime.regions.get('westeurope')!;
    const gone = image.blobs[0];
    await westeurope.deleteBlob(gone.digest);

    // The same image again, planned when the region still had everything.
    const all = [...image.blobs, ...image.manifests].map(({ digest, mediaType, size }) => ({ digest, mediaType, size }));
    const job: PushJob = {
      version: 1,
      jobId: 'stale-plan:westeurope',
      pushId: 'stale-plan',
      eventId: 'stale-plan',
      region: 'westeurope',
      repository: 'fault/stale',
      tag: '1',
      createdAt: new Date(Date.now() - 60_000).toISOString(),
      action: 'push',
      manifest: all[all.length - 1],
      plan: { inline: { manifests: all.slice(-1), blobs: all.slice(0, -1), missing: [], foreign: [] } },
    };
    const sender = sb.createSender('replication');
    await sender.sendMessages(replicationJobMessage(job));
    await sender.close();
    // No push record for a job sent by hand: the job makes its region status itself.
    const statuses = new StatusStore(stack.runtime.state);
    const r = await eventually(() => statuses.region('stale-plan', 'westeurope'), (s) => s?.state === 'complete' || s?.state === 'failed', { what: 'the hand-sent job to finish in westeurope', timeout: 10_000 });
    expect(r!.state).toBe('complete');
    expect(r!.blobs.copied).toBe(1);
    expect((await westeurope.blobProperties(gone.digest))?.size).toBe(gone.size);
  });
});

/** The next `times` lookups of the region's storage fail as an outage would; returns the undo. */
function failStorage(region: string, times: number): () => void {
  const registry = stack.runtime.registry;
  const real = registry.storageFor;
  let left = times;
  registry.storageFor = async (name: string) => {
    if (name === region && left-- > 0) throw new Error(`storage of ${region} unreachable (simulated)`);
    return real.call(registry, name);
  };
  return () => {
    registry.storageFor = real;
  };
}
