import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { LOCK_RENEWAL_MS, ROUTE_PREFIX } from '../../src/local/host';
import { functionRegistrations, type Binding } from '../../src/local/registrations';

/**
 * What the Functions host reads: the metadata @azure/functions hands the worker through
 * `@azure/functions-core` when functions/ registers its triggers. The worker provides that module
 * at run time; the local host's stand-in (src/local/registrations.ts) records the registrations,
 * so the test sees exactly the triggers, bindings and setting names `func start` and Azure would get.
 */

const registered: Array<{ name: string; bindings: Binding[] }> = [];

describe('functions/ registrations (the Functions host contract)', () => {
  let byName: Record<string, Binding[]> = {};
  beforeAll(async () => {
    registered.push(...(await functionRegistrations()));
    byName = Object.fromEntries(registered.map((r) => [r.name, r.bindings]));
  });

  it('registers exactly the push, status, replicate, webhooks, deliver, dead-letter, reconcile, replications, back-fill, route and operations functions', () => {
    expect(registered.map((r) => r.name).sort()).toEqual(['backfill', 'backfillDeadLetters', 'dashboard', 'deadLetters', 'deliver', 'deliverDeadLetters', 'metrics', 'overview', 'push', 'pushStatus', 'reconcile', 'regionRoute', 'replicate', 'replicateDeadLetters', 'replications', 'webhooks']);
  });

  it('backfill binds the back-fill queue, and backfillDeadLetters its dead-letter queue', () => {
    expect(byName.backfill.find((b) => b.direction === 'in')).toMatchObject({ type: 'serviceBusTrigger', connection: 'ServiceBusConnection', queueName: '%GEOREG_BACKFILL_QUEUE%' });
    expect(byName.backfillDeadLetters.find((b) => b.direction === 'in')).toMatchObject({ type: 'serviceBusTrigger', queueName: '%GEOREG_BACKFILL_QUEUE%/$DeadLetterQueue' });
  });

  it("replicateDeadLetters binds the dead-letter queue of the region's subscription", () => {
    expect(byName.replicateDeadLetters.find((b) => b.direction === 'in')).toMatchObject({
      type: 'serviceBusTrigger',
      connection: 'ServiceBusConnection',
      topicName: '%GEOREG_REPLICATION_TOPIC%',
      subscriptionName: '%REGION_NAME%/$DeadLetterQueue',
    });
  });

  it("deliverDeadLetters binds the webhook queue's dead-letter queue", () => {
    expect(byName.deliverDeadLetters.find((b) => b.direction === 'in')).toMatchObject({ type: 'serviceBusTrigger', connection: 'ServiceBusConnection', queueName: '%GEOREG_WEBHOOK_QUEUE%/$DeadLetterQueue' });
  });

  it('the dashboard page is anonymous (it holds no data); the overview it polls asks for a function key', () => {
    expect(byName.dashboard.find((b) => b.direction === 'in')).toMatchObject({ type: 'httpTrigger', route: 'dashboard/{file?}', methods: ['GET'], authLevel: 'anonymous' });
    expect(byName.overview.find((b) => b.direction === 'in')).toMatchObject({ type: 'httpTrigger', route: 'overview', methods: ['GET'], authLevel: 'function' });
  });

  it('deadLetters is a function-key admin API on deadletters/{op?}', () => {
    expect(byName.deadLetters.find((b) => b.direction === 'in')).toMatchObject({ type: 'httpTrigger', route: 'deadletters/{op?}', methods: ['GET', 'POST'], authLevel: 'function' });
  });

  it('replications is a function-key admin API on replications/{name?}/{op?}', () => {
    expect(byName.replications.find((b) => b.direction === 'in')).toMatchObject({ type: 'httpTrigger', route: 'replications/{name?}/{op?}', methods: ['GET', 'POST', 'PATCH', 'DELETE'], authLevel: 'function' });
  });

  it('the routing lookup is a function-key GET on regions/route', () => {
    expect(byName.regionRoute.find((b) => b.direction === 'in')).toMatchObject({ type: 'httpTrigger', route: 'regions/route', methods: ['GET'], authLevel: 'function' });
  });

  it('webhooks is a function-key admin API on webhooks/{name?}/{op?}', () => {
    expect(byName.webhooks.find((b) => b.direction === 'in')).toMatchObject({ type: 'httpTrigger', route: 'webhooks/{name?}/{op?}', methods: ['GET', 'POST', 'PATCH', 'DELETE'], authLevel: 'function' });
  });

  it('deliver binds the webhook queue through app settings', () => {
    expect(byName.deliver.find((b) => b.direction === 'in')).toMatchObject({ type: 'serviceBusTrigger', connection: 'ServiceBusConnection', queueName: '%GEOREG_WEBHOOK_QUEUE%' });
  });

  it('push is an anonymous HTTP POST on /api/push (authenticated by the push secret)', () => {
    const trigger = byName.push.find((b) => b.direction === 'in')!;
    expect(trigger).toMatchObject({ type: 'httpTrigger', route: 'push', methods: ['POST'], authLevel: 'anonymous' });
    expect(byName.push.some((b) => b.type === 'http' && b.direction === 'out')).toBe(true);
  });

  it('status is a function-key GET on pushes/{id?}', () => {
    expect(byName.pushStatus.find((b) => b.direction === 'in')).toMatchObject({ type: 'httpTrigger', route: 'pushes/{id?}', methods: ['GET'], authLevel: 'function' });
  });

  it("replicate binds the region's subscription through app settings", () => {
    const trigger = byName.replicate.find((b) => b.direction === 'in')!;
    expect(trigger).toMatchObject({
      type: 'serviceBusTrigger',
      connection: 'ServiceBusConnection',
      topicName: '%GEOREG_REPLICATION_TOPIC%',
      subscriptionName: '%REGION_NAME%',
    });
  });

  it('reconcile runs on the schedule GEOREG_RECONCILE_SCHEDULE names', () => {
    expect(byName.reconcile.find((b) => b.direction === 'in')).toMatchObject({ type: 'timerTrigger', schedule: '%GEOREG_RECONCILE_SCHEDULE%' });
  });

  it('every setting a binding names is in local.settings.sample.json', () => {
    const values = JSON.parse(readFileSync('local.settings.sample.json', 'utf8')).Values as Record<string, string>;
    const names = registered.flatMap((r) => r.bindings).flatMap((b) => [
      ...(typeof b.connection === 'string' ? [b.connection] : []),
      ...Object.values(b).flatMap((v) => (typeof v === 'string' ? [...v.matchAll(/%([A-Za-z0-9_]+)%/g)].map((m) => m[1]) : [])),
    ]);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(values, `setting ${name}`).toHaveProperty(name);
  });

  it('host.json settles as src/bus/settlement.ts expects and serves routes under /api as the local host does', () => {
    const host = JSON.parse(readFileSync('host.json', 'utf8'));
    // Without message actions the Functions host completes on return and abandons on a throw.
    expect(host.extensions.serviceBus.autoCompleteMessages).toBe(true);
    // A job copying large blobs outlives a one-minute lock: both hosts renew it for as long.
    const [h, m, s] = String(host.extensions.serviceBus.maxAutoLockRenewalDuration).split(':').map(Number);
    expect(((h * 60 + m) * 60 + s) * 1000).toBe(LOCK_RENEWAL_MS);
    expect(host.extensions.http.routePrefix).toBe(ROUTE_PREFIX);
  });

  it('package.json main points the host at the compiled registrations', () => {
    expect(JSON.parse(readFileSync('package.json', 'utf8')).main).toBe('dist/functions/index.js');
  });
});
