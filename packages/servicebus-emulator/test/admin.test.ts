import { isServiceBusError, ServiceBusClient, type QueueProperties, type ServiceBusAdministrationClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceBusEmulator, type ServiceBusEmulator } from '../src';
import { administrationClient, drain as drainEntity } from './support';

// The real ServiceBusAdministrationClient over real HTTP to the emulator's ATOM API, and the real
// ServiceBusClient over AMQP on the same port: what one creates, the other must see at once.
const topology = {
  UserConfig: {
    Namespaces: [
      {
        Name: 'sbemulatorns',
        Queues: [{ Name: 'existing', Properties: { LockDuration: 'PT2S' } }],
        Topics: [
          {
            Name: 'replication',
            Properties: {},
            Subscriptions: [{ Name: 'eastus', Properties: {}, Rules: [{ Name: 'region', Properties: { FilterType: 'Sql', SqlFilter: { SqlExpression: "region = 'eastus'" } } }] }],
          },
        ],
      },
    ],
  },
};

let emulator: ServiceBusEmulator;
let admin: ServiceBusAdministrationClient;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startServiceBusEmulator({ port: 0, topology });
  admin = administrationClient(emulator.connectionString);
  client = new ServiceBusClient(emulator.connectionString);
});

afterAll(async () => {
  await client?.close();
  await emulator?.close();
});

/** The RestError the SDK raised: its HTTP status and its `code`. */
async function restError(p: Promise<unknown>): Promise<{ statusCode?: number; code?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { statusCode?: number; code?: string; message: string };
    return { statusCode: err.statusCode, code: err.code, message: err.message };
  }
  throw new Error('expected the call to fail');
}

const drain = (topic: string, sub: string) => drainEntity(emulator, client, topic, sub);

describe('Service Bus emulator administration API with the real ServiceBusAdministrationClient', () => {
  it('reports the namespace', async () => {
    const ns = await admin.getNamespaceProperties();
    expect(ns.name).toBe('sbemulatorns');
    expect(ns.messagingSku).toBe('Standard');
    expect(ns.createdAt).toBeInstanceOf(Date);
  });

  it('creates, reads, updates, lists and deletes a queue that AMQP serves at once', async () => {
    const created = await admin.createQueue('orders', { lockDuration: 'PT30S', maxDeliveryCount: 5, deadLetteringOnMessageExpiration: true, userMetadata: 'made by a test' });
    expect(created).toMatchObject({ name: 'orders', lockDuration: 'PT30S', maxDeliveryCount: 5, deadLetteringOnMessageExpiration: true, requiresSession: false, userMetadata: 'made by a test', status: 'Active' });
    expect(await admin.queueExists('orders')).toBe(true);
    expect(await admin.queueExists('no-such-queue')).toBe(false);

    const sender = client.createSender('orders');
    await sender.sendMessages({ body: 'first', messageId: 'o-1' });
    const receiver = client.createReceiver('orders');
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(m.body).toBe('first');
    // The lock duration set through the admin API is the one the broker applies.
    expect(m.lockedUntilUtc!.getTime() - Date.now()).toBeGreaterThan(20_000);
    await receiver.completeMessage(m);

    const fetched = await admin.getQueue('orders');
    const updated = await admin.updateQueue({ ...fetched, maxDeliveryCount: 7, lockDuration: 'PT45S' });
    expect(updated).toMatchObject({ name: 'orders', maxDeliveryCount: 7, lockDuration: 'PT45S' });
    expect((await admin.getQueue('orders')).maxDeliveryCount).toBe(7);

    const names: string[] = [];
    for await (const q of admin.listQueues()) names.push(q.name);
    expect(names).toEqual(['existing', 'orders']);

    await admin.deleteQueue('orders');
    expect(await admin.queueExists('orders')).toBe(false);
    await expect(sender.sendMessages({ body: 'after delete' })).rejects.toMatchObject({ code: 'MessagingEntityNotFound' });
    await Promise.all([sender.close(), receiver.close()]);
  });

  it('maps a missing entity to MessageEntityNotFoundError and a duplicate to MessageEntityAlreadyExistsError', async () => {
    expect(await restError(admin.getQueue('missing'))).toMatchObject({ code: 'MessageEntityNotFoundError' });
    expect(await restError(admin.deleteQueue('missing'))).toMatchObject({ statusCode: 404, code: 'MessageEntityNotFoundError' });
    expect(await restError(admin.getSubscription('replication', 'missing'))).toMatchObject({ statusCode: 404, code: 'MessageEntityNotFoundError' });
    expect(await restError(admin.getRule('replication', 'eastus', 'missing'))).toMatchObject({ statusCode: 404, code: 'MessageEntityNotFoundError' });
    expect(await restError(admin.createSubscription('no-topic', 's'))).toMatchObject({ statusCode: 404, code: 'MessageEntityNotFoundError' });
    const updateMissing = await restError(admin.updateQueue({ ...(await admin.getQueue('existing')), name: 'never-created' }));
    expect(updateMissing).toMatchObject({ statusCode: 404, code: 'MessageEntityNotFoundError' });

    const dupQueue = await restError(admin.createQueue('existing'));
    expect(dupQueue).toMatchObject({ statusCode: 409, code: 'MessageEntityAlreadyExistsError' });
    expect(dupQueue.message).toContain('queue existing already exists');
    // Queues and topics share one set of names.
    expect(await restError(admin.createTopic('existing'))).toMatchObject({ statusCode: 409, code: 'MessageEntityAlreadyExistsError' });
    expect(await restError(admin.createSubscription('replication', 'eastus'))).toMatchObject({ statusCode: 409, code: 'MessageEntityAlreadyExistsError' });
    expect(await restError(admin.createRule('replication', 'eastus', 'region', { sqlExpression: '1=1' }))).toMatchObject({ statusCode: 409, code: 'MessageEntityAlreadyExistsError' });
  });

  it('refuses what the emulator cannot do with a 400 that says why', async () => {
    const badSql = await restError(admin.createRule('replication', 'eastus', 'bad', { sqlExpression: "region = 'x' AND" }));
    expect(badSql).toMatchObject({ statusCode: 400, code: 'ServiceError' });
    expect(badSql.message).toContain("region = 'x' AND");
    const sessions = await restError(admin.createQueue('with-sessions', { requiresSession: true }));
    expect(sessions.statusCode).toBe(400);
    expect(sessions.message).toContain('sessions are not supported');
    const forward = await restError(admin.createQueue('forwarding', { forwardTo: 'existing' }));
    expect(forward.statusCode).toBe(400);
    expect(forward.message).toContain('ForwardTo');
    expect(await admin.queueExists('with-sessions')).toBe(false);
  });

  it('answers a wrong key with 401, as the SDK expects', async () => {
    const wrong = emulator.connectionString.replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${Buffer.alloc(32, 7).toString('base64')}`);
    const err = await restError(administrationClient(wrong).getQueue('existing'));
    expect(err).toMatchObject({ statusCode: 401, code: 'UnauthorizedRequestError' });
    expect(err.message).toContain('InvalidSignature');
    const unknownKeyName = emulator.connectionString.replace(/SharedAccessKeyName=[^;]+/, 'SharedAccessKeyName=someone');
    expect(await restError(administrationClient(unknownKeyName).listQueues().next())).toMatchObject({ statusCode: 401, code: 'UnauthorizedRequestError' });
  });

  it('creates, reads, updates, lists and deletes a topic', async () => {
    const topic = await admin.createTopic('audit', { defaultMessageTimeToLive: 'P1D', requiresDuplicateDetection: true, duplicateDetectionHistoryTimeWindow: 'PT5M' });
    expect(topic).toMatchObject({ name: 'audit', defaultMessageTimeToLive: 'P1D', requiresDuplicateDetection: true, duplicateDetectionHistoryTimeWindow: 'PT5M' });
    expect(await admin.topicExists('audit')).toBe(true);
    const updated = await admin.updateTopic({ ...topic, defaultMessageTimeToLive: 'PT12H' });
    expect(updated.defaultMessageTimeToLive).toBe('PT12H');
    const changeDedupe = await restError(admin.updateTopic({ ...updated, requiresDuplicateDetection: false }));
    expect(changeDedupe.statusCode).toBe(400);
    expect(changeDedupe.message).toContain('RequiresDuplicateDetection cannot be changed');

    await admin.createSubscription('audit', 'all');
    const runtime = await admin.getTopicRuntimeProperties('audit');
    expect(runtime).toMatchObject({ name: 'audit', subscriptionCount: 1, scheduledMessageCount: 0 });
    const names: string[] = [];
    for await (const t of admin.listTopics()) names.push(t.name);
    expect(names).toEqual(['audit', 'replication']);

    await admin.deleteTopic('audit');
    expect(await admin.topicExists('audit')).toBe(false);
    expect(await admin.subscriptionExists('audit', 'all')).toBe(false);
  });

  it('manages subscriptions and their rules: default rule, SQL and correlation filters, update, delete', async () => {
    const sub = await admin.createSubscription('replication', 'westeurope', { maxDeliveryCount: 4, lockDuration: 'PT20S' });
    expect(sub).toMatchObject({ topicName: 'replication', subscriptionName: 'westeurope', maxDeliveryCount: 4, lockDuration: 'PT20S', status: 'Active' });
    expect(await admin.subscriptionExists('replication', 'westeurope')).toBe(true);
    expect(await admin.subscriptionExists('replication', 'nowhere')).toBe(false);

    const defaults = [];
    for await (const r of admin.listRules('replication', 'westeurope')) defaults.push(r);
    expect(defaults).toEqual([{ name: '$Default', filter: { sqlExpression: '1=1', sqlParameters: undefined }, action: { sqlExpression: undefined, sqlParameters: undefined } }]);

    await admin.deleteRule('replication', 'westeurope', '$Default');
    const sql = await admin.createRule('replication', 'westeurope', 'region', { sqlExpression: "region = 'westeurope'" });
    expect(sql).toMatchObject({ name: 'region', filter: { sqlExpression: "region = 'westeurope'" } });
    const corr = await admin.createRule('replication', 'westeurope', 'deletes', { correlationId: 'push-9', applicationProperties: { action: 'delete', attempt: 2, urgent: true } });
    expect(corr).toMatchObject({ name: 'deletes', filter: { correlationId: 'push-9', applicationProperties: { action: 'delete', attempt: 2, urgent: true } } });
    expect(await admin.ruleExists('replication', 'westeurope', 'deletes')).toBe(true);
    expect(await admin.ruleExists('replication', 'westeurope', '$Default')).toBe(false);

    const fetched = await admin.getRule('replication', 'westeurope', 'region');
    const updated = await admin.updateRule('replication', 'westeurope', { ...fetched, filter: { sqlExpression: "region IN ('westeurope', 'northeurope')" } });
    expect(updated.filter).toMatchObject({ sqlExpression: "region IN ('westeurope', 'northeurope')" });

    const rules: string[] = [];
    for await (const r of admin.listRules('replication', 'westeurope')) rules.push(r.name);
    expect(rules).toEqual(['deletes', 'region']);

    const sender = client.createSender('replication');
    await sender.sendMessages([
      { body: 1, applicationProperties: { region: 'northeurope' } },
      { body: 2, applicationProperties: { region: 'eastus' } },
      { body: 3, correlationId: 'push-9', applicationProperties: { action: 'delete', attempt: 2, urgent: true } },
      { body: 4, correlationId: 'push-9', applicationProperties: { action: 'delete', attempt: 3, urgent: true } },
    ]);
    expect((await drain('replication', 'westeurope')).map((m) => m.body).sort()).toEqual([1, 3]);
    expect((await drain('replication', 'eastus')).map((m) => m.body)).toEqual([2]);

    await admin.deleteRule('replication', 'westeurope', 'deletes');
    expect(await restError(admin.deleteRule('replication', 'westeurope', 'deletes'))).toMatchObject({ statusCode: 404, code: 'MessageEntityNotFoundError' });

    const subUpdated = await admin.updateSubscription({ ...(await admin.getSubscription('replication', 'westeurope')), maxDeliveryCount: 9 });
    expect(subUpdated.maxDeliveryCount).toBe(9);
    const subs: string[] = [];
    for await (const s of admin.listSubscriptions('replication')) subs.push(s.subscriptionName);
    expect(subs).toEqual(['eastus', 'westeurope']);
    await admin.deleteSubscription('replication', 'westeurope');
    await sender.close();
  });

  it('a subscription created at run time with a SQL rule receives only the matching fan-out', async () => {
    await admin.createSubscription('replication', 'canadacentral', { defaultRuleOptions: { name: 'region', filter: { sqlExpression: "region = 'canadacentral' AND action = 'push'" } } });
    const rules = [];
    for await (const r of admin.listRules('replication', 'canadacentral')) rules.push(r.name);
    expect(rules).toEqual(['region']);

    const sender = client.createSender('replication');
    await sender.sendMessages([
      { body: 'a', applicationProperties: { region: 'canadacentral', action: 'push' } },
      { body: 'b', applicationProperties: { region: 'canadacentral', action: 'delete' } },
      { body: 'c', applicationProperties: { region: 'eastus', action: 'push' } },
      { body: 'd', applicationProperties: { region: 'canadacentral', action: 'push' } },
    ]);
    expect((await drain('replication', 'canadacentral')).map((m) => m.body)).toEqual(['a', 'd']);
    expect((await drain('replication', 'eastus')).map((m) => m.body)).toEqual(['c']);
    await sender.close();
    await admin.deleteSubscription('replication', 'canadacentral');
  });

  it('a rule with a SQL action gives the subscription its own annotated copy', async () => {
    await admin.createSubscription('replication', 'tagged', { defaultRuleOptions: { name: 'tag', filter: { sqlExpression: 'EXISTS(region)' }, action: { sqlExpression: "SET sys.Label = 'tagged'; SET stage = 2; REMOVE secret" } } });
    const rule = await admin.getRule('replication', 'tagged', 'tag');
    expect(rule.action).toMatchObject({ sqlExpression: "SET sys.Label = 'tagged'; SET stage = 2; REMOVE secret" });
    const sender = client.createSender('replication');
    await sender.sendMessages({ body: 'x', subject: 'original', applicationProperties: { region: 'eastus', secret: 's3' } });
    const [m, extra] = await drain('replication', 'tagged');
    expect(extra).toBeUndefined();
    expect(m.subject).toBe('tagged');
    expect(m.applicationProperties).toEqual({ region: 'eastus', stage: 2, RuleName: 'tag' });
    // Other subscriptions get the message untouched.
    const [plain] = await drain('replication', 'eastus');
    expect(plain.subject).toBe('original');
    expect(plain.applicationProperties).toEqual({ region: 'eastus', secret: 's3' });
    await sender.close();
    await admin.deleteSubscription('replication', 'tagged');
  });

  it('a deleted subscription stops receiving, and receivers on it get MessagingEntityNotFound', async () => {
    await admin.createSubscription('replication', 'brazilsouth', { defaultRuleOptions: { name: 'region', filter: { sqlExpression: "region = 'brazilsouth'" } } });
    const sender = client.createSender('replication');
    await sender.sendMessages({ body: 'before', applicationProperties: { region: 'brazilsouth' } });
    expect(emulator.counts('replication/Subscriptions/brazilsouth').active).toBe(1);
    const attached = client.createReceiver('replication', 'brazilsouth');
    const [first] = await attached.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(first.body).toBe('before');

    await admin.deleteSubscription('replication', 'brazilsouth');
    expect(await admin.subscriptionExists('replication', 'brazilsouth')).toBe(false);
    await sender.sendMessages({ body: 'after', applicationProperties: { region: 'brazilsouth' } });
    expect(() => emulator.counts('replication/Subscriptions/brazilsouth')).toThrow(/no queue or subscription/);

    // The lock of the message it held went with the subscription.
    await expect(attached.completeMessage(first)).rejects.toSatisfy((e: unknown) => isServiceBusError(e));
    const fresh = client.createReceiver('replication', 'brazilsouth');
    const err = await fresh.receiveMessages(1, { maxWaitTimeInMs: 2000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isServiceBusError(err)).toBe(true);
    expect((err as { code: string }).code).toBe('MessagingEntityNotFound');
    await Promise.all([sender.close(), attached.close(), fresh.close()]);
  });

  it('runtime properties count active, dead-lettered and scheduled messages like counts()', async () => {
    await admin.createQueue('counted');
    await admin.createSubscription('replication', 'counted', { defaultRuleOptions: { name: 'all', filter: { sqlExpression: "region = 'counted'" } } });
    for (const entity of ['counted', 'replication']) {
      const sender = client.createSender(entity);
      const props = { region: 'counted' };
      await sender.sendMessages([1, 2, 3, 4].map((body) => ({ body, applicationProperties: props })));
      await sender.scheduleMessages([{ body: 'later', applicationProperties: props }, { body: 'later too', applicationProperties: props }], new Date(Date.now() + 3_600_000));
      await sender.close();
    }
    for (const receiver of [client.createReceiver('counted'), client.createReceiver('replication', 'counted')]) {
      const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 3000 });
      await receiver.deadLetterMessage(m, { deadLetterReason: 'test', deadLetterErrorDescription: 'counted as dead-lettered' });
      await receiver.close();
    }

    const queue = await admin.getQueueRuntimeProperties('counted');
    expect(queue).toMatchObject({ name: 'counted', activeMessageCount: 3, deadLetterMessageCount: 1, scheduledMessageCount: 2, transferMessageCount: 0, totalMessageCount: 6 });
    expect(queue.sizeInBytes).toBeGreaterThan(0);
    const counts = emulator.counts('counted');
    expect([queue.activeMessageCount, queue.deadLetterMessageCount, queue.scheduledMessageCount, queue.totalMessageCount]).toEqual([counts.active, counts.deadLetter, counts.scheduled, counts.total]);

    const sub = await admin.getSubscriptionRuntimeProperties('replication', 'counted');
    expect(sub).toMatchObject({ topicName: 'replication', subscriptionName: 'counted', activeMessageCount: 3, deadLetterMessageCount: 1, transferMessageCount: 0, totalMessageCount: 6 });
    expect(sub.createdAt).toBeInstanceOf(Date);
    expect(sub.accessedAt.getTime()).toBeGreaterThanOrEqual(sub.createdAt.getTime());
    expect(emulator.counts('replication/Subscriptions/counted')).toMatchObject({ active: 3, deadLetter: 1, scheduled: 2, total: 6 });
    expect((await admin.getTopicRuntimeProperties('replication')).scheduledMessageCount).toBe(2);

    const all = new Map<string, number>();
    for await (const q of admin.listQueuesRuntimeProperties()) all.set(q.name, q.activeMessageCount);
    expect(all.get('counted')).toBe(3);
    expect(all.get('existing')).toBe(0);
    const subsRuntime = [];
    for await (const s of admin.listSubscriptionsRuntimeProperties('replication')) subsRuntime.push([s.subscriptionName, s.totalMessageCount]);
    expect(subsRuntime).toContainEqual(['counted', 6]);

    await admin.deleteSubscription('replication', 'counted');
    await admin.deleteQueue('counted');
  });

  it('pages lists with $skip/$top: 120 queues in pages of 50', async () => {
    const names = Array.from({ length: 120 }, (_, i) => `page-${String(i).padStart(3, '0')}`);
    await Promise.all(names.map((name) => admin.createQueue(name)));
    const pages: string[][] = [];
    for await (const page of admin.listQueues().byPage({ maxPageSize: 50 })) pages.push(page.map((q) => q.name));
    // 121 queues with 'existing': 50 + 50 + 21, in name order, none twice.
    expect(pages.map((p) => p.length)).toEqual([50, 50, 21]);
    const listed = pages.flat();
    expect(new Set(listed).size).toBe(121);
    expect(listed.filter((n) => n.startsWith('page-'))).toEqual(names);

    // Without a page size the service pages by 100; the iterator follows the next link.
    let count = 0;
    for await (const q of admin.listQueues()) if (q.name.startsWith('page-')) count++;
    expect(count).toBe(120);
    // A continuation token is the $skip marker: resume at the 111th queue.
    const resumed = await admin.listQueues().byPage({ maxPageSize: 5, continuationToken: '110' }).next();
    const page = resumed.value as QueueProperties[] & { continuationToken?: string };
    expect(page.map((q) => q.name)).toEqual(['page-109', 'page-110', 'page-111', 'page-112', 'page-113']);
    expect(page.continuationToken).toBe('115');
    await Promise.all(names.map((name) => admin.deleteQueue(name)));
  }, 60_000);
});
