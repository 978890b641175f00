import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated } from '../support/images';
import type { Logger } from '../../src/common/log';
import { createAdministrationClient } from '../../src/bus/admin';
import { startLocalHost, type SettledInvocation } from '../../src/local/host';
import { functionRegistrations, unregister, type Registration } from '../../src/local/registrations';
import { startStack, type Stack } from '../support/stack';
import { runtime } from '../../src/runtime';
import { runCli } from '../support/cli';
import { pushImage, settled } from '../support/pipeline';

/**
 * The local host booted from what functions/ registers: every HTTP route answers from its
 * handler, every Service Bus trigger receives (per replica region where it binds %REGION_NAME%),
 * a timer registered like any other runs on its NCRONTAB schedule; and the HTTP hygiene the host
 * and the functions share (auth before the body, 413, 400 for bad input, Bearer in any case).
 */

const REPLICAS = ['eastus', 'westeurope'];
let stack: Stack;
let sb: ServiceBusClient;
let registrations: readonly Registration[];
const settledInvocations: SettledInvocation[] = [];
const ticks: Array<{ timer: Timer; sameRuntime: boolean }> = [];
const logged: Array<{ level: string; message: string }> = [];
const log: Logger = {
  info: (m) => logged.push({ level: 'info', message: m }),
  warn: (m) => logged.push({ level: 'warn', message: m }),
  error: (m) => logged.push({ level: 'error', message: m }),
};

beforeAll(async () => {
  await functionRegistrations();
  // A timer registered as functions/ would register one (the reconcile timer is one such), bound
  // to its schedule through an app setting.
  app.timer('testTick', {
    schedule: '%GEOREG_TEST_TICK%',
    handler: async (timer: Timer, context: InvocationContext) => {
      // With its context, and without (code the handler calls that was not handed it).
      ticks.push({ timer, sameRuntime: (await runtime(context)) === stack.runtime && (await runtime()) === stack.runtime });
    },
  });
  registrations = await functionRegistrations();
  stack = await startStack({
    replicas: REPLICAS,
    httpPort: 0,
    log,
    settings: { GEOREG_TEST_TICK: '*/1 * * * * *' },
    host: { onSettled: (i) => settledInvocations.push(i) },
  });
  sb = new ServiceBusClient(stack.serviceBusConnectionString);
}, 120_000);

afterAll(async () => {
  await sb?.close();
  await stack?.close();
  // Test files share their process: the next one's host must not run these.
  unregister('testTick', 'testBatch', 'testDrain');
});

/** A raw request, so a refused upload can still be read (fetch gives up when the server stops reading). */
function raw(method: string, path: string, options: { headers?: Record<string, string>; body?: Buffer; chunked?: boolean } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${stack.host.url}${path}`, { method, headers: { ...(options.body && !options.chunked ? { 'Content-Length': String(options.body.length) } : {}), ...options.headers } });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    // Writing on after the answer may fail once the server closes: the answer is what counts.
    req.on('error', (e) => answered || reject(e));
    if (options.body) req.write(options.body);
    req.end();
  });
}

describe('the local host serves what functions/ registers', () => {
  it('runs every registered function: each route, each Service Bus trigger per region, each timer', () => {
    const running = stack.host.running();
    for (const r of registrations) {
      const mine = running.filter((x) => x.function === r.name);
      if (r.trigger.type === 'httpTrigger') expect(mine, r.name).toEqual([expect.objectContaining({ kind: 'http', route: `/api/${r.trigger.route}` })]);
      if (r.trigger.type === 'timerTrigger') expect(mine, r.name).toEqual([expect.objectContaining({ kind: 'timer', schedule: r.name === 'testTick' ? '*/1 * * * * *' : expect.any(String) })]);
      if (r.trigger.type === 'serviceBusTrigger') {
        const perRegion = JSON.stringify(r.trigger).includes('%REGION_NAME%');
        expect(mine.map((x) => ('region' in x ? x.region : undefined)).sort(), r.name).toEqual(perRegion ? REPLICAS : [undefined]);
      }
    }
    const entities = running.flatMap((x) => (x.kind === 'serviceBus' ? [`${x.function} ${x.entity}`] : [])).sort();
    expect(entities).toEqual([
      'backfill backfill-pages',
      'backfillDeadLetters backfill-pages/$DeadLetterQueue',
      'deliver webhook-deliveries',
      'deliverDeadLetters webhook-deliveries/$DeadLetterQueue',
      'replicate replication/Subscriptions/eastus',
      'replicate replication/Subscriptions/westeurope',
      'replicateDeadLetters replication/Subscriptions/eastus/$DeadLetterQueue',
      'replicateDeadLetters replication/Subscriptions/westeurope/$DeadLetterQueue',
    ]);
  });

  it('every HTTP route is answered by its own handler, with its methods and auth level', async () => {
    for (const r of registrations.filter((x) => x.trigger.type === 'httpTrigger')) {
      const route = String(r.trigger.route);
      // Optional parameters left out, required ones filled in.
      const path = `/api/${route.replace(/\/\{[^}]+\?\}/g, '').replace(/\{[^}]+\}/g, 'x')}`;
      const method = (r.trigger.methods as string[])[0];
      const auth = r.trigger.authLevel === 'anonymous' ? `Bearer ${stack.settings.pushSecret}` : `Bearer ${stack.settings.adminSecret}`;
      const body = method === 'GET' ? undefined : r.name === 'push' ? JSON.stringify({ events: [] }) : '{}';
      const res = await fetch(`${stack.host.url}${path}`, { method, headers: { Authorization: auth, 'Content-Type': 'application/vnd.docker.distribution.events.v1+json' }, body });
      const text = await res.text();
      expect(text, `${method} ${path}`).not.toContain('no function serves');
      expect(res.status, `${method} ${path}: ${text}`).not.toBe(401);
      expect(res.status, `${method} ${path}: ${text}`).toBeLessThan(500);
      if (r.trigger.authLevel !== 'anonymous') {
        const denied = await fetch(`${stack.host.url}${path}`, { method, body });
        expect(denied.status, `${method} ${path} without the admin secret`).toBe(401);
      }
      const allowed = r.trigger.methods as string[];
      const other = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].find((m) => !allowed.includes(m))!;
      if (other) expect((await fetch(`${stack.host.url}${path}`, { method: other, headers: { Authorization: auth } })).status, `${other} ${path}`).toBe(405);
    }
  });

  it('every Service Bus trigger takes messages: a malformed job and delivery are dead-lettered, then handled on the dead-letter queues', async () => {
    const topic = stack.runtime.replicationSender;
    const queue = stack.runtime.webhookSender;
    for (const region of REPLICAS) await topic.sendMessages({ body: { not: 'a job' }, messageId: `malformed-${region}`, applicationProperties: { region } });
    await queue.sendMessages({ body: { not: 'a delivery' }, messageId: 'malformed-delivery' });
    const seen = (fn: string, id: string, region?: string) => settledInvocations.find((i) => i.function === fn && i.message?.messageId === id && i.region === region);
    for (const region of REPLICAS) {
      await expect.poll(() => seen('replicateDeadLetters', `malformed-${region}`, region), { timeout: 15_000 }).toBeDefined();
      expect(seen('replicate', `malformed-${region}`, region)?.outcome).toMatchObject({ outcome: 'dead-letter', reason: 'MalformedJob' });
      expect(seen('replicateDeadLetters', `malformed-${region}`, region)?.message?.deadLetterReason).toBe('MalformedJob');
    }
    await expect.poll(() => seen('deliverDeadLetters', 'malformed-delivery'), { timeout: 15_000 }).toBeDefined();
    expect(seen('deliver', 'malformed-delivery')?.outcome).toMatchObject({ outcome: 'dead-letter', reason: 'MalformedMessage' });
  });
});

describe('a Service Bus trigger with cardinality many', () => {
  it('gets its messages in batches, with per-message metadata as arrays, and they complete', async () => {
    const queue = 'test-batch';
    await createAdministrationClient(stack.serviceBusConnectionString).createQueue(queue);
    const batches: Array<{ bodies: unknown[]; ids: unknown }> = [];
    app.serviceBusQueue('testBatch', {
      connection: 'ServiceBusConnection',
      queueName: queue,
      cardinality: 'many',
      handler: async (messages: unknown, context: InvocationContext) => {
        batches.push({ bodies: messages as unknown[], ids: context.triggerMetadata?.messageIdArray });
      },
    });
    // A second host on the same runtime picks the new registration up; no region triggers there.
    const second = await startLocalHost(stack.runtime, { port: 0, log, regions: [], env: stack.env, batchWaitMs: 100 });
    try {
      expect(second.running()).toContainEqual({ function: 'testBatch', kind: 'serviceBus', entity: queue, region: undefined });
      const sender = sb.createSender(queue);
      await sender.sendMessages([1, 2, 3, 4, 5].map((n) => ({ body: { n }, messageId: `batch-${n}` })));
      await sender.close();
      await expect.poll(() => batches.flatMap((b) => b.bodies).length, { timeout: 15_000 }).toBe(5);
      expect(batches.flatMap((b) => b.bodies)).toEqual(expect.arrayContaining([1, 2, 3, 4, 5].map((n) => ({ n }))));
      expect(batches.flatMap((b) => b.ids as string[]).sort()).toEqual([1, 2, 3, 4, 5].map((n) => `batch-${n}`));
      await expect.poll(async () => (await createAdministrationClient(stack.serviceBusConnectionString).getQueueRuntimeProperties(queue)).activeMessageCount, { timeout: 15_000 }).toBe(0);
    } finally {
      await second.close();
    }
  });
});

describe('closing the host', () => {
  it('lets a running invocation finish within the grace period, and gives one that does not back to the queue', async () => {
    const queue = 'test-drain';
    await createAdministrationClient(stack.serviceBusConnectionString).createQueue(queue);
    const started: string[] = [];
    const releases = new Map<string, () => void>();
    app.serviceBusQueue('testDrain', {
      connection: 'ServiceBusConnection',
      queueName: queue,
      handler: async (message: unknown, context: InvocationContext) => {
        const id = String(context.triggerMetadata?.messageId);
        started.push(id);
        await new Promise<void>((release) => releases.set(id, release));
      },
    });
    const sender = sb.createSender(queue);
    const drainHost = async (grace: number, id: string) => {
      // The batch trigger registered above runs here too: its receive waits 100 ms, so closing does not wait 1 s for it.
      const host = await startLocalHost(stack.runtime, { port: 0, log, regions: [], env: stack.env, shutdownGraceMs: grace, batchWaitMs: 100 });
      await sender.sendMessages({ body: {}, messageId: id });
      await expect.poll(() => started.includes(id), { timeout: 15_000 }).toBe(true);
      return host;
    };
    const active = async () => (await createAdministrationClient(stack.serviceBusConnectionString).getQueueRuntimeProperties(queue)).activeMessageCount;

    // Finishes while the host closes: completed, nothing left.
    const patient = await drainHost(60_000, 'finishes');
    const closing = patient.close();
    releases.get('finishes')!();
    await closing;
    expect(await active()).toBe(0);

    // Still running when the grace period ends: abandoned, so it is on the queue again at once.
    const hurried = await drainHost(100, 'lingers');
    await hurried.close();
    const receiver = sb.createReceiver(queue);
    const [again] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    expect(again?.messageId).toBe('lingers');
    expect(again?.deliveryCount).toBe(1);
    await receiver.completeMessage(again);
    await receiver.close();
    releases.get('lingers')!();
    await sender.close();
  });
});

describe('HTTP hygiene', () => {
  const tenMegabytes = Buffer.alloc(10 * 1024 * 1024, 0x7b);

  it('refuses a 10 MB unauthenticated body with 413 or 401 without reading it, logs no stack trace, and keeps answering', async () => {
    const before = logged.length;
    const push = await raw('POST', '/api/push', { body: tenMegabytes, headers: { 'Content-Type': 'application/json' } });
    expect(push.status).toBe(413);
    expect(JSON.parse(push.body).error).toContain('request body over');
    // Streamed without a length: cut off at the limit.
    const chunked = await raw('POST', '/api/push', { body: tenMegabytes, chunked: true, headers: { 'Transfer-Encoding': 'chunked' } });
    expect(chunked.status).toBe(413);
    // An admin route asks for the secret before it reads anything.
    const admin = await raw('POST', '/api/replications', { body: tenMegabytes });
    expect(admin.status).toBe(401);
    expect((await fetch(`${stack.host.url}/api/replications`, { headers: stack.adminHeaders })).status).toBe(200);
    expect(logged.slice(before).filter((l) => l.level === 'error' || /\n\s+at /.test(l.message))).toEqual([]);
  });

  it('answers 400 for a path with bad percent-encoding, naming the problem', async () => {
    for (const path of ['/api/webhooks/%zz', '/api/replications/%E0%A4%A', '/api/pushes/%']) {
      const res = await fetch(`${stack.host.url}${path}`, { headers: stack.adminHeaders });
      expect(res.status, path).toBe(400);
      expect(((await res.json()) as { error: string }).error).toContain('percent-encoding');
    }
  });

  it('matches the Bearer scheme in any case', async () => {
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      expect((await fetch(`${stack.host.url}/api/replications`, { headers: { Authorization: `${scheme} ${stack.settings.adminSecret}` } })).status, scheme).toBe(200);
      const push = await fetch(stack.pushUrl, { method: 'POST', headers: { Authorization: `${scheme} ${stack.settings.pushSecret}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ events: [] }) });
      expect(push.status, scheme).toBe(202);
    }
  });

  it('keeps the status API behind the admin secret, which `georeg status` sends', async () => {
    expect((await fetch(`${stack.host.url}/api/pushes?repository=a/b&tag=1`)).status).toBe(401);
    expect((await fetch(`${stack.host.url}/api/pushes/nope`)).status).toBe(401);
    const res = await fetch(`${stack.host.url}/api/pushes/nope`, { headers: stack.adminHeaders });
    expect(res.status).toBe(404);

    const p = await pushImage(stack, generated('host/status', '1', { generate: { layers: 1, layerSize: 1024 }, seed: 'host-status' }));
    await settled(stack, p.pushId, REPLICAS);
    const status = await runCli(['status', p.pushId, '-o', 'json'], { cwd: join(__dirname, '../..'), env: { ...stack.env, GEOREG_API_URL: `${stack.host.url}/api` } });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ pushId: p.pushId, state: 'complete' });
  });
});

// Last: the timer has ticked every second since the stack started, so its runs are already there.
describe('a timer', () => {
  it('runs a timer on its NCRONTAB schedule (six fields, seconds first) with the host runtime', async () => {
    // Runs in turn, each knowing the one before it on its host. The hosts the tests above started
    // on the same runtime run the timer too, and may stop after one run (their first runs can fall
    // in the same millisecond as another's, and their runs finish in any order), so the check is
    // on any run and the later run of the same host that knows it as its last.
    const status = (t: (typeof ticks)[number]) => t.timer.scheduleStatus!;
    const next = () => {
      for (const a of ticks) {
        const b = ticks.find((t) => status(t).last === status(a).lastUpdated && Date.parse(status(t).lastUpdated) > Date.parse(status(a).lastUpdated));
        if (b) return b;
      }
      return undefined;
    };
    await expect.poll(() => next() !== undefined, { timeout: 10_000 }).toBe(true);
    expect(ticks.every((t) => t.sameRuntime)).toBe(true);
    expect(next()!.timer).toMatchObject({ isPastDue: false, scheduleStatus: { next: expect.any(String) } });
  });
});
