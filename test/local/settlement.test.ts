import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Verdict } from '../../src/bus/settlement';
import { silentLogger } from '../../src/common/log';
import type { SettledInvocation } from '../../src/local/host';
import { startStack, type Stack } from '../support/stack';
import { StatusStore } from '../../src/replication/status';
import { statePaths } from '../../src/storage/paths';
import { DeadLetterLog } from '../support/dead-letters';
import { pushCorruptImage, settled } from '../support/pipeline';

/**
 * The settlement as Azure Functions for Node runs it today: no message actions, the host
 * completes on return and abandons on a throw (host.json autoCompleteMessages). A job that cannot
 * succeed still does its work once: its verdict is recorded, every redelivery stops before any
 * work, Service Bus dead-letters it after MaxDeliveryCount, and the dead-letter trigger records
 * the handler's own reason, not MaxDeliveryCountExceeded.
 */

let stack: Stack;
const deadLetters = new DeadLetterLog();
const replications: SettledInvocation[] = [];

beforeAll(async () => {
  stack = await startStack({
    replicas: ['eastus'],
    httpPort: 0,
    log: silentLogger,
    host: {
      settlement: 'host',
      onSettled: (i) => {
        deadLetters.onSettled(i);
        if (i.function === 'replicate') replications.push(i);
      },
    },
  });
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

describe('settlement without message actions (Azure Functions for Node)', () => {
  it('a corrupt blob is copied and checked once, then dead-letters with its own reason after MaxDeliveryCount quick deliveries', async () => {
    const { pushId, bad } = await pushCorruptImage(stack, 'settle/corrupt', 'settle-corrupt');
    const messageId = `${pushId}:eastus`;

    const handled = await deadLetters.find((d) => d.function === 'replicateDeadLetters' && d.message.messageId === messageId, 30_000);
    // Service Bus gave up on it (the emulator's subscriptions allow 10 deliveries) ...
    expect(handled.message.deadLetterReason).toBe('MaxDeliveryCountExceeded');
    // ... and what is recorded is the handler's reason, taken from its verdict.
    expect(handled.outcome).toMatchObject({ outcome: 'completed', reason: 'DigestMismatch' });
    expect(handled.outcome.description).toContain(bad.digest);

    const deliveries = replications.filter((i) => i.message?.messageId === messageId);
    expect(deliveries).toHaveLength(10);
    // Every delivery was abandoned; the first after doing the work, the rest at once from the verdict.
    expect(deliveries.every((d) => (d.outcome as { outcome: string }).outcome === 'abandoned')).toBe(true);
    expect((deliveries[0].outcome as { error: string }).error).toContain('DigestMismatch');
    for (const d of deliveries.slice(1)) expect((d.outcome as { error: string }).error).toContain('dead-letter pending');

    const [status] = await settled(stack, pushId, ['eastus']);
    expect(status.state).toBe('failed');
    expect(status.error).toContain('DigestMismatch');
    // The job ran once: one attempt on its status, no second copy.
    expect((await new StatusStore(stack.runtime.state).region(pushId, 'eastus'))?.attempts).toBe(1);
    // The verdict is gone with its dead letter.
    expect(await stack.runtime.state.get(statePaths.deadLetterVerdict('replication', messageId), Verdict)).toBeUndefined();
    const eastus = stack.runtime.regions.get('eastus')!;
    expect(await eastus.readLink({ kind: 'tagCurrent', repository: 'settle/corrupt', tag: '1' })).toBeUndefined();
  });
});
