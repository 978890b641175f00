import { ServiceBusClient, isServiceBusError } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceBusEmulator, type ServiceBusEmulator } from '../src';
import { drain as drainEntity } from './support';

// Low delivery counts keep the dead-letter tests quick; `locks` has a short lock for the expiry test.
const entity = (extra: Record<string, unknown> = {}) => ({ LockDuration: 'PT30S', MaxDeliveryCount: 3, ...extra });
const topology = {
  UserConfig: {
    Namespaces: [
      {
        Name: 'sbemulatorns',
        Queues: [
          { Name: 'q', Properties: entity() },
          { Name: 'dedupe', Properties: entity({ RequiresDuplicateDetection: true, DuplicateDetectionHistoryTimeWindow: 'PT1M' }) },
          { Name: 'locks', Properties: entity({ LockDuration: 'PT1S' }) },
          { Name: 'ttl', Properties: entity({ DeadLetteringOnMessageExpiration: true }) },
          { Name: 'load', Properties: entity({ LockDuration: 'PT30S' }) },
          { Name: 'small', Properties: entity({ MaxMessageSizeInKilobytes: 1 }) },
        ],
        Topics: [
          {
            Name: 't',
            Properties: {},
            Subscriptions: [
              { Name: 'east', Properties: entity(), Rules: [{ Name: 'r', Properties: { FilterType: 'Sql', SqlFilter: { SqlExpression: "region = 'eastus'" } } }] },
              { Name: 'many', Properties: entity(), Rules: [{ Name: 'r', Properties: { FilterType: 'Sql', SqlFilter: { SqlExpression: "region IN ('westeurope', 'canadacentral') AND NOT EXISTS(skip) OR sys.Label = 'all'" } } }] },
              { Name: 'corr', Properties: entity(), Rules: [{ Name: 'c', Properties: { FilterType: 'Correlation', CorrelationFilter: { CorrelationId: 'push-1', Properties: { action: 'delete' } } } }] },
              { Name: 'everything', Properties: entity() },
            ],
          },
        ],
      },
    ],
  },
};

let emulator: ServiceBusEmulator;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startServiceBusEmulator({ port: 0, topology });
  client = new ServiceBusClient(emulator.connectionString);
});

afterAll(async () => {
  await client?.close();
  await emulator?.close();
});

const drain = (queue: string, sub?: string) => drainEntity(emulator, client, queue, sub);

describe('Service Bus emulator with the real @azure/service-bus SDK', () => {
  it('sends and receives on a queue with the annotations the SDK reads', async () => {
    const sender = client.createSender('q');
    await sender.sendMessages({ body: { hello: 'world' }, messageId: 'm1', correlationId: 'c1', subject: 'greeting', applicationProperties: { region: 'eastus', n: 3 } });
    const receiver = client.createReceiver('q');
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(m.body).toEqual({ hello: 'world' });
    expect(m).toMatchObject({ messageId: 'm1', correlationId: 'c1', subject: 'greeting', applicationProperties: { region: 'eastus', n: 3 }, deliveryCount: 0 });
    expect(m.sequenceNumber!.toNumber()).toBeGreaterThan(0);
    expect(m.enqueuedTimeUtc).toBeInstanceOf(Date);
    expect(m.lockedUntilUtc!.getTime()).toBeGreaterThan(Date.now());
    expect(m.lockToken).toMatch(/^[0-9a-f-]{36}$/);
    await receiver.completeMessage(m);
    expect(emulator.counts('q').active).toBe(0);
    await Promise.all([sender.close(), receiver.close()]);
  });

  it('fans a topic out through SQL and correlation filters', async () => {
    const sender = client.createSender('t');
    await sender.sendMessages([
      { body: 1, applicationProperties: { region: 'eastus' } },
      { body: 2, applicationProperties: { region: 'westeurope' } },
      { body: 3, applicationProperties: { region: 'westeurope', skip: true } },
      { body: 4, subject: 'all' },
      { body: 5, correlationId: 'push-1', applicationProperties: { action: 'delete' } },
      { body: 6, correlationId: 'push-1', applicationProperties: { action: 'push' } },
    ]);
    await sender.close();
    const bodies = async (sub: string) => (await drain('t', sub)).map((m) => m.body).sort();
    expect(await bodies('east')).toEqual([1]);
    expect(await bodies('many')).toEqual([2, 4]);
    expect(await bodies('corr')).toEqual([5]);
    expect(await bodies('everything')).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('settles: complete, abandon (redelivered, count + 1), dead-letter with reason, defer and receive by sequence number', async () => {
    const sender = client.createSender('q');
    await sender.sendMessages([{ body: 'a' }, { body: 'b' }, { body: 'c' }]);
    const receiver = client.createReceiver('q');
    const got = await receiver.receiveMessages(3, { maxWaitTimeInMs: 3000 });
    expect(got.map((m) => m.body)).toEqual(['a', 'b', 'c']);
    const [a, b, c] = got;
    await receiver.abandonMessage(a, { note: 'retry' });
    const [again] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(again.body).toBe('a');
    expect(again.deliveryCount).toBe(1);
    expect(again.applicationProperties?.note).toBe('retry');
    await receiver.completeMessage(again);
    await receiver.deadLetterMessage(b, { deadLetterReason: 'BadInput', deadLetterErrorDescription: 'b is not valid' });
    await receiver.deferMessage(c);
    const [deferred] = await receiver.receiveDeferredMessages([c.sequenceNumber!]);
    expect(deferred.body).toBe('c');
    await receiver.completeMessage(deferred);
    const dlq = client.createReceiver('q', { subQueueType: 'deadLetter' });
    const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(dead).toMatchObject({ body: 'b', deadLetterReason: 'BadInput', deadLetterErrorDescription: 'b is not valid', deadLetterSource: 'q' });
    await dlq.completeMessage(dead);
    expect(emulator.counts('q')).toMatchObject({ active: 0, deadLetter: 0 });
    await Promise.all([sender.close(), receiver.close(), dlq.close()]);
  });

  it('renewal keeps a lock past its first expiry; an expired lock redelivers and its settlement fails', async () => {
    const sender = client.createSender('locks');
    await sender.sendMessages([{ body: 'renewed' }, { body: 'lapsed' }]);
    // The SDK renews locks by itself (halfway through each) unless told not to: `kept` is renewed,
    // `lapsed` is not. `lapsed` is received after `kept`, so its lock ends no sooner.
    const renewing = client.createReceiver('locks');
    const lapsing = client.createReceiver('locks', { maxAutoLockRenewalDurationInMs: 0 });
    const [kept] = await renewing.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    const [lapsed] = await lapsing.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect([kept.body, lapsed.body]).toEqual(['renewed', 'lapsed']);
    const firstLock = kept.lockedUntilUtc!.getTime();
    // An explicit renewal answers a later lock.
    await expect.poll(async () => (await renewing.renewMessageLock(kept)).getTime()).toBeGreaterThan(firstLock);
    // The broker redelivers `lapsed` once its lock has expired: by then `kept`'s first lock has too.
    const [again] = await lapsing.receiveMessages(1, { maxWaitTimeInMs: 15_000 });
    expect(again.body).toBe('lapsed');
    expect(again.deliveryCount).toBe(1);
    expect(Date.now()).toBeGreaterThan(firstLock);
    await renewing.completeMessage(kept);
    await expect(lapsing.completeMessage(lapsed)).rejects.toMatchObject({ code: 'MessageLockLost' });
    await lapsing.completeMessage(again);
    expect(emulator.counts('locks').active).toBe(0);
    await Promise.all([sender.close(), renewing.close(), lapsing.close()]);
  });

  it('max delivery count dead-letters with MaxDeliveryCountExceeded', async () => {
    const sender = client.createSender('q');
    await sender.sendMessages({ body: 'poison', messageId: 'poison' });
    const receiver = client.createReceiver('q');
    for (let i = 0; i < 3; i++) {
      const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 3000 });
      expect(m.deliveryCount).toBe(i);
      await receiver.abandonMessage(m);
    }
    // The third abandon settled: the message is in the dead-letter sub-queue, not back in the queue.
    expect(emulator.counts('q')).toMatchObject({ active: 0, deadLetter: 1 });
    const dlq = client.createReceiver('q', { subQueueType: 'deadLetter' });
    const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(dead).toMatchObject({ messageId: 'poison', deadLetterReason: 'MaxDeliveryCountExceeded' });
    await dlq.completeMessage(dead);
    await Promise.all([sender.close(), receiver.close(), dlq.close()]);
  });

  it('schedules messages, cancels them, and peeks', async () => {
    const sender = client.createSender('q');
    const at = new Date(Date.now() + 300);
    const [keep] = await sender.scheduleMessages({ body: 'later' }, at);
    const [cancel] = await sender.scheduleMessages({ body: 'never' }, at);
    expect(emulator.counts('q').scheduled).toBe(2);
    await sender.cancelScheduledMessages(cancel);
    const receiver = client.createReceiver('q');
    const peeked = await receiver.peekMessages(10);
    expect(peeked.map((m) => m.body)).toEqual(['later']);
    expect(peeked[0].state).toBe('scheduled');
    // The receiver waits from now; the message becomes available at its time, not before.
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    expect(m.body).toBe('later');
    expect(m.sequenceNumber!.toNumber()).toBe(keep.toNumber());
    expect(m.enqueuedTimeUtc!.getTime()).toBeGreaterThanOrEqual(at.getTime());
    await receiver.completeMessage(m);
    await Promise.all([sender.close(), receiver.close()]);
  });

  it('drops a duplicate message id within the detection window', async () => {
    const sender = client.createSender('dedupe');
    await sender.sendMessages({ body: 1, messageId: 'same' });
    await sender.sendMessages({ body: 2, messageId: 'same' });
    await sender.sendMessages({ body: 3, messageId: 'other' });
    expect((await drain('dedupe')).map((m) => m.body)).toEqual([1, 3]);
    await sender.close();
  });

  it('receive-and-delete removes on delivery', async () => {
    const sender = client.createSender('q');
    await sender.sendMessages([{ body: 'x' }, { body: 'y' }]);
    const receiver = client.createReceiver('q', { receiveMode: 'receiveAndDelete' });
    const got = await receiver.receiveMessages(2, { maxWaitTimeInMs: 3000 });
    expect(got.map((m) => m.body)).toEqual(['x', 'y']);
    expect(emulator.counts('q').active).toBe(0);
    await Promise.all([sender.close(), receiver.close()]);
  });

  it('dead-letters an expired message where the entity says so', async () => {
    const sender = client.createSender('ttl');
    await sender.sendMessages({ body: 'stale', timeToLive: 100 });
    await sender.sendMessages({ body: 'fresh' });
    // Expiry is the clock's doing: wait out the 100 ms the first message may live.
    await new Promise((r) => setTimeout(r, 150));
    const receiver = client.createReceiver('ttl');
    // The first message in the queue is not delivered: the receiver gets the second one.
    const [first] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(first.body).toBe('fresh');
    await receiver.completeMessage(first);
    const dlq = client.createReceiver('ttl', { subQueueType: 'deadLetter' });
    const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(dead).toMatchObject({ body: 'stale', deadLetterReason: 'TTLExpiredException' });
    await Promise.all([sender.close(), receiver.close(), dlq.close()]);
  });

  it('refuses a wrong key, an unknown entity, an oversize message and a session receiver', async () => {
    const wrong = new ServiceBusClient(emulator.connectionString.replace(/SharedAccessKey=[^;]+/, 'SharedAccessKey=d3Jvbmcta2V5'), { retryOptions: { maxRetries: 0 } });
    const e1 = await wrong.createSender('q').sendMessages({ body: 1 }).catch((e) => e);
    expect(isServiceBusError(e1) && e1.code).toBe('UnauthorizedAccess');
    await wrong.close();

    const missing = await client.createSender('no-such-queue').sendMessages({ body: 1 }).catch((e) => e);
    expect(isServiceBusError(missing) && missing.code).toBe('MessagingEntityNotFound');

    const big = await client.createSender('small').sendMessages({ body: 'x'.repeat(4096) }).catch((e) => e);
    expect(isServiceBusError(big) && big.code).toBe('MessageSizeExceeded');

    const session = await client.acceptSession('q', 's1').catch((e) => e);
    expect(String(session?.message)).toMatch(/[Ss]essions are not supported/);
  });

  it('streams with subscribe(): 50 concurrent senders and 8 receivers, every message exactly once', async () => {
    const total = 50 * 20;
    const senders = Array.from({ length: 50 }, () => client.createSender('load'));
    await Promise.all(senders.map((s, i) => s.sendMessages(Array.from({ length: 20 }, (_, j) => ({ body: `${i}-${j}` })))));
    const seen = new Map<string, number>();
    const receivers = Array.from({ length: 8 }, () => client.createReceiver('load'));
    await new Promise<void>((resolve, reject) => {
      for (const r of receivers) {
        r.subscribe(
          {
            processMessage: async (m) => {
              seen.set(m.body, (seen.get(m.body) ?? 0) + 1);
              await r.completeMessage(m);
              if (seen.size === total) resolve();
            },
            processError: async (args) => reject(args.error),
          },
          { autoCompleteMessages: false, maxConcurrentCalls: 4 },
        );
      }
    });
    expect(seen.size).toBe(total);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    // The last completions of other receivers may still be on their way to the broker.
    await expect.poll(() => emulator.counts('load').active).toBe(0);
    await Promise.all([...senders, ...receivers].map((x) => x.close()));
  });

  it('one receiver settles more than a session buffer of deliveries (2,048) and keeps receiving', async () => {
    const total = 2600;
    const sender = client.createSender('load');
    for (let b = 0; b < total / 200; b++) await sender.sendMessages(Array.from({ length: 200 }, (_, i) => ({ body: b * 200 + i })));
    const receiver = client.createReceiver('load');
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      receiver.subscribe(
        {
          processMessage: async (m) => {
            await receiver.completeMessage(m);
            if (++received === total) resolve();
          },
          processError: async (args) => reject(args.error),
        },
        { autoCompleteMessages: false, maxConcurrentCalls: 16 },
      );
    });
    expect(received).toBe(total);
    // The last completions of other receivers may still be on their way to the broker.
    await expect.poll(() => emulator.counts('load').active).toBe(0);
    await Promise.all([sender.close(), receiver.close()]);
  });

  it('exposes counts per entity for dashboards', async () => {
    const sender = client.createSender('t');
    await sender.sendMessages({ body: 'count me', applicationProperties: { region: 'eastus' } });
    expect(emulator.counts('t/Subscriptions/east')).toMatchObject({ active: 1, deadLetter: 0, scheduled: 0, transfer: 0 });
    await drain('t', 'east');
    await drain('t', 'everything');
    await sender.close();
  });
});
