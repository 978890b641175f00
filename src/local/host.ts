import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { format } from 'node:util';
import { HttpRequest, HttpResponse, InvocationContext, type FunctionTrigger, type HttpResponseInit, type Timer } from '@azure/functions';
import { defaultAzureCredential } from '../common/identity';
import { ServiceBusClient, type ServiceBusReceivedMessage, type ServiceBusReceiver } from '@azure/service-bus';
import { Cron } from 'croner';
import type { MessageActions } from '../bus/settlement';
import { authLevelDenied, badRequest, bodyTooLarge, declaredLengthRefused, MAX_BODY_BYTES, type AuthLevel, type HttpOutput } from '../common/http';
import type { Logger } from '../common/log';
import { bindingSetting } from '../config/settings';
import type { JobOutcome } from '../replication/replicate';
import { hostInvocation, watchRegions, type Runtime } from '../runtime';
import type { DeliveryOutcome } from '../webhooks/deliver';
import { functionRegistrations, type Binding, type Registration } from './registrations';

/**
 * Runs what functions/ registers, without the Functions host: every HTTP function under /api with
 * its route template, methods and auth level; one Service Bus receiver per Service Bus trigger
 * (per replica region for a trigger that binds %REGION_NAME%, as one Function App per region does
 * in Azure); every timer on its NCRONTAB schedule. There is no route table here: a function added
 * to functions/ is served as it is registered.
 *
 * Messages are settled as the Functions host settles them (complete on return, abandon on a throw)
 * unless the handler settled through the message actions this host gives it (src/bus/settlement.ts).
 */

export interface LocalHost {
  url: string;
  port: number;
  /** What runs now: each HTTP route, each receiver (per region), each timer. */
  running(): RunningFunction[];
  close(): Promise<void>;
}

export type RunningFunction =
  | { function: string; kind: 'http'; route: string; methods: string[]; authLevel: AuthLevel }
  | { function: string; kind: 'serviceBus'; entity: string; region?: string }
  | { function: string; kind: 'timer'; schedule: string; nextRun?: Date };

export interface SettledInvocation {
  function: string;
  /** The region a per-region trigger ran for. */
  region?: string;
  /** What the handler returned (its outcome), or `abandoned` when it threw. */
  outcome: unknown;
  message?: ServiceBusReceivedMessage;
}

export interface LocalHostOptions {
  port?: number;
  host?: string;
  log: Logger;
  /** Settings %NAME% binding expressions resolve against, over the runtime's own (default: process.env). */
  env?: Record<string, string | undefined>;
  /** Regions whose per-region triggers run here (by default every replica, following the ones created and deleted; in Azure one per app). */
  regions?: string[];
  /** How often the replica list is re-read for regions created or deleted elsewhere (default 5 s). */
  regionPollMs?: number;
  /**
   * `actions` (default): handlers settle through message actions, as with the Service Bus SDK-type
   * binding, so a job that cannot succeed dead-letters at once with its reason. `host`: no actions,
   * complete on return and abandon on a throw, exactly as Azure Functions for Node runs georeg today.
   */
  settlement?: 'actions' | 'host';
  /**
   * On close, how long invocations still running get to finish (default 0: none; keep it within
   * the lock, e.g. 30 s of a one-minute lock). What has not settled by then is abandoned, so
   * Service Bus hands it to another worker at once rather than after its lock expires.
   */
  shutdownGraceMs?: number;
  /** Called after each Service Bus or timer invocation is settled (tests, progress). */
  onSettled?: (invocation: SettledInvocation) => void;
  /** Called after each replication job is settled (progress display, tests). */
  onJob?: (region: string, outcome: JobOutcome | { outcome: 'abandoned'; error: string }, message: ServiceBusReceivedMessage) => void;
  maxConcurrentCalls?: number;
  /**
   * A batch trigger's (cardinality many) receive: how long it waits for a first message, and then
   * for more to fill the batch (default 1 s; the SDK waits at most 1 s after the first message).
   * A stop waits for the receive under way, so this is also how long closing the host can take.
   */
  batchWaitMs?: number;
  /** Awaited before each replication job is handled (tests hold a region's jobs with it; a throw abandons the job). */
  beforeJob?: (region: string, message: ServiceBusReceivedMessage) => Promise<void>;
  /** Called after each webhook delivery message is settled (tests). */
  onDelivery?: (outcome: DeliveryOutcome | { outcome: 'abandoned'; error: string }, message: ServiceBusReceivedMessage) => void;
}

/** The functions the compatibility hooks above (beforeJob, onJob, onDelivery) watch. */
const REPLICATE = 'replicate';
const DELIVER = 'deliver';
/** host.json `extensions.http.routePrefix`. */
export const ROUTE_PREFIX = 'api';
/** host.json `extensions.serviceBus.maxAutoLockRenewalDuration`: a job copying large blobs outlives a one-minute lock. */
export const LOCK_RENEWAL_MS = 10 * 60_000;
/** What the host discards of a refused body before it closes the connection (so the client reads the answer). */
const DRAIN_LIMIT = 16 * 1024 * 1024;
const DEAD_LETTER_SUFFIX = /^(.+)\/\$deadletterqueue$/i;

export async function startLocalHost(rt: Runtime, options: LocalHostOptions): Promise<LocalHost> {
  const { log } = options;
  const registrations = await functionRegistrations();
  // The app settings the runtime was built from win over the environment: one truth for both.
  const env: Record<string, string | undefined> = { ...(options.env ?? process.env), ...appSettingsOf(rt) };
  const resolve = (expression: string, fn: string, extra: Record<string, string> = {}) =>
    expression.replace(/%([A-Za-z0-9_]+)%/g, (_, name: string) => {
      const value = extra[name] ?? bindingSetting(name, env);
      if (value === undefined) throw new Error(`function ${fn}: the binding expression %${name}% names an app setting that is not set: set ${name}`);
      return value;
    });

  const routes: HttpRoute[] = [];
  const serviceBus: Registration[] = [];
  const timers: Registration[] = [];
  for (const r of registrations) {
    if (r.trigger.type === 'httpTrigger') routes.push(compileRoute(r));
    else if (r.trigger.type === 'serviceBusTrigger') serviceBus.push(r);
    else if (r.trigger.type === 'timerTrigger') timers.push(r);
    else throw new Error(`function ${r.name} has a ${r.trigger.type}: the local host runs HTTP, Service Bus and timer triggers only`);
  }
  // The most specific template first: literal segments win over parameters.
  routes.sort((a, b) => b.literals - a.literals);
  // Schedules are resolved and checked before anything starts: a bad one stops the host at once.
  const schedules = timers.map((registration) => {
    const schedule = resolve(String(registration.trigger.schedule), registration.name);
    // NCRONTAB as Azure reads it: six fields, seconds first, in UTC.
    if (schedule.trim().split(/\s+/).length !== 6) {
      throw new Error(`function ${registration.name}: schedule "${schedule}" is not an NCRONTAB expression of six fields, seconds first (e.g. "0 */5 * * * *")`);
    }
    return { registration, schedule };
  });

  const server = createServer((req, res) => {
    serveHttp(req, res).catch((e: Error) => {
      log.error(`${req.method} ${req.url}: ${e.stack ?? e.message}`);
      if (!res.headersSent) send(res, { status: 500, jsonBody: { error: `internal error: ${e.message}` } });
      else res.destroy();
    });
  });
  // Malformed HTTP (bad request line, oversized headers) is the client's: answer 400, log nothing.
  server.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  async function serveHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = requestTarget(req.url ?? '/');
    } catch {
      return refuse(req, res, badRequest(`the request target ${JSON.stringify(req.url)} is not a URL path`));
    }
    let segments: string[];
    try {
      segments = url.pathname.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    } catch {
      return refuse(req, res, badRequest(`the path ${url.pathname} has a malformed percent-encoding: encode each reserved character as %XX`));
    }
    if (segments[0]?.toLowerCase() !== ROUTE_PREFIX) return refuse(req, res, { status: 404, jsonBody: { error: `no function serves ${url.pathname}: the API is under /${ROUTE_PREFIX}` } });
    const method = (req.method ?? 'GET').toUpperCase();
    const matches = routes.map((r) => ({ route: r, params: r.match(segments.slice(1)) })).filter((m) => m.params);
    const found = matches.find((m) => !m.route.methods || m.route.methods.includes(method));
    if (!found) {
      if (!matches.length) return refuse(req, res, { status: 404, jsonBody: { error: `no function serves ${method} ${url.pathname}` } });
      const allowed = [...new Set(matches.flatMap((m) => m.route.methods ?? []))].join(', ');
      return refuse(req, res, { status: 405, jsonBody: { error: `${method} is not supported on ${url.pathname}: use ${allowed}` }, headers: { Allow: allowed } });
    }
    const { route } = found;
    const headers = flatHeaders(req);
    // Auth and the declared length before a byte of the body is read.
    const refused = authLevelDenied(route.authLevel, headers, rt.settings.adminSecret) ?? declaredLengthRefused(headers['content-length']);
    if (refused) return refuse(req, res, refused);
    const body = await readLimited(req, MAX_BODY_BYTES);
    if (!body) return refuse(req, res, bodyTooLarge());

    const request = new HttpRequest({
      method,
      url: `http://127.0.0.1:${port}${url.pathname}${url.search}`,
      headers,
      params: found.params,
      body: method === 'GET' || method === 'HEAD' || !body.length ? undefined : { bytes: body },
    });
    const context = invocationContext(route.registration, {}, log);
    const result = await hostInvocation(context, { runtime: rt }, () => route.registration.handler(request, context));
    const response = result instanceof HttpResponse ? result : new HttpResponse((result ?? {}) as HttpResponseInit);
    const bytes = Buffer.from(await response.arrayBuffer());
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(bytes);
  }

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7071, options.host ?? '127.0.0.1', resolveListen);
  });
  const port = (server.address() as AddressInfo).port;

  // Service Bus: one client per connection setting (the runtime's own for its connection).
  const clients = new Map<string, ServiceBusClient>();
  const clientFor = (connection: string): ServiceBusClient => {
    const connectionString = env[connection];
    const namespace = env[`${connection}__fullyQualifiedNamespace`];
    if (connectionString === rt.settings.serviceBus.connectionString && namespace === rt.settings.serviceBus.fullyQualifiedNamespace) return rt.bus;
    if (!connectionString && !namespace) throw new Error(`connection "${connection}" is not set: set ${connection} (a connection string) or ${connection}__fullyQualifiedNamespace (a managed identity)`);
    const key = connectionString ?? namespace!;
    let client = clients.get(key);
    if (!client) {
      client = connectionString ? new ServiceBusClient(connectionString) : new ServiceBusClient(namespace!, defaultAzureCredential());
      clients.set(key, client);
    }
    return client;
  };

  interface Receiving {
    registration: Registration;
    region?: string;
    entity: string;
    receiver: ServiceBusReceiver;
    stop(): Promise<void>;
  }
  const receiving: Receiving[] = [];
  const settlement = options.settlement ?? 'actions';

  const startReceiver = (registration: Registration, region?: string): void => {
    const binding = registration.trigger;
    const fn = registration.name;
    const extra: Record<string, string> = region ? { REGION_NAME: region } : {};
    const client = clientFor(String(binding.connection ?? 'ServiceBusConnection'));
    const renewal = { maxAutoLockRenewalDurationInMs: LOCK_RENEWAL_MS };
    const [entity, receiver] = (() => {
      if (typeof binding.queueName === 'string') {
        const name = resolve(binding.queueName, fn, extra);
        const dlq = DEAD_LETTER_SUFFIX.exec(name);
        return [name, dlq ? client.createReceiver(dlq[1], { subQueueType: 'deadLetter', ...renewal }) : client.createReceiver(name, renewal)] as const;
      }
      if (typeof binding.topicName !== 'string' || typeof binding.subscriptionName !== 'string') {
        throw new Error(`function ${fn}: a Service Bus trigger needs queueName, or topicName and subscriptionName`);
      }
      const topic = resolve(binding.topicName, fn, extra);
      const subscription = resolve(binding.subscriptionName, fn, extra);
      const dlq = DEAD_LETTER_SUFFIX.exec(subscription);
      const receiver = dlq ? client.createReceiver(topic, dlq[1], { subQueueType: 'deadLetter', ...renewal }) : client.createReceiver(topic, subscription, renewal);
      return [`${topic}/Subscriptions/${subscription}`, receiver] as const;
    })();
    const where = `${fn}${region ? `[${region}]` : ''}`;
    const report = (outcome: unknown, message: ServiceBusReceivedMessage) => {
      options.onSettled?.({ function: fn, region, outcome, message });
      if (fn === REPLICATE && region) options.onJob?.(region, outcome as JobOutcome, message);
      if (fn === DELIVER) options.onDelivery?.(outcome as DeliveryOutcome, message);
    };

    if (binding.cardinality === 'many') {
      // Batches, settled as a whole by the invocation's result (the SDK-type binding is per message).
      let stopped = false;
      const loop = (async () => {
        while (!stopped) {
          let batch: ServiceBusReceivedMessage[] = [];
          try {
            batch = await receiver.receiveMessages(32, { maxWaitTimeInMs: options.batchWaitMs ?? 1000 });
            if (!batch.length) continue;
            const context = invocationContext(registration, batchMetadata(batch), log);
            const outcome = await hostInvocation(context, { runtime: rt }, () => registration.handler(batch.map((m) => m.body), context));
            await Promise.all(batch.map((m) => receiver.completeMessage(m)));
            for (const m of batch) report(outcome, m);
          } catch (e) {
            if (stopped) return;
            log.warn(`${where}: ${(e as Error).message} (batch of ${batch.length} abandoned; Service Bus redelivers)`);
            await Promise.all(batch.map((m) => receiver.abandonMessage(m).catch(() => undefined)));
          }
        }
      })();
      // The loop ends within one receive's wait (batchWaitMs); the receiver closes after it (closing
      // under a pending receive stalls it, and aborting one would leave its credit to lock messages
      // that arrive before the close until their locks expire).
      receiving.push({ registration, region, entity, receiver, stop: async () => { stopped = true; await loop; await receiver.close(); } });
      return;
    }

    // Invocations running now (a stop waits for them).
    const inFlight = new Set<{ done: Promise<void>; abandonIfOpen: () => Promise<void> }>();
    const subscription = receiver.subscribe(
      {
        processMessage: async (message) => {
          const context = invocationContext(registration, triggerMetadataOf(message), log);
          let settled = false;
          const actions: MessageActions = {
            complete: async () => { settled = true; await receiver.completeMessage(message); },
            abandon: async () => { settled = true; await receiver.abandonMessage(message); },
            deadLetter: async (reason, description) => { settled = true; await receiver.deadLetterMessage(message, { deadLetterReason: reason, deadLetterErrorDescription: description }); },
          };
          const invocation = { runtime: rt, messageActions: settlement === 'actions' ? actions : undefined };
          const run = (async () => {
            let outcome: unknown;
            try {
              if (fn === REPLICATE && region) await options.beforeJob?.(region, message);
              outcome = await hostInvocation(context, invocation, () => registration.handler(message.body, context));
              if (!settled) await actions.complete();
            } catch (e) {
              if (!settled) await actions.abandon().catch(() => undefined);
              log.warn(`${where} ${message.messageId}: ${(e as Error).message} (abandoned; Service Bus redelivers)`);
              outcome = { outcome: 'abandoned', error: (e as Error).message };
            }
            report(outcome, message);
          })();
          const entry = { done: run, abandonIfOpen: async () => { if (!settled) await actions.abandon().catch(() => undefined); } };
          inFlight.add(entry);
          try {
            await run;
          } finally {
            inFlight.delete(entry);
          }
        },
        processError: async (args) => {
          // A deleted region's subscription goes before its receiver here does: not worth a warning.
          if ((args.error as { code?: string }).code === 'MessagingEntityNotFound' && region && !(await rt.registry.get(region))) return;
          log.warn(`${where} receiver: ${args.error.message}`);
        },
      },
      { autoCompleteMessages: false, maxConcurrentCalls: options.maxConcurrentCalls ?? 4 },
    );
    // Stopping: no new messages; what runs gets the grace period to finish, then goes back to the queue.
    // The SDK's close waits for a running handler, which may sit in storage retries for minutes
    // (a region whose storage is down): the stop abandons what runs instead, and bounds each close.
    const stop = async () => {
      const closing = subscription.close();
      const running = [...inFlight];
      if (running.length) {
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((resolveGrace) => (timer = setTimeout(resolveGrace, options.shutdownGraceMs ?? 0)));
        await Promise.race([Promise.allSettled(running.map((r) => r.done)), grace]);
        clearTimeout(timer);
        // Bounded too: an abandon can go unanswered while the handler's own settlement is in flight;
        // an unsettled message returns to the queue when its lock runs out anyway.
        await Promise.all(running.map((r) => atMost(CLOSE_WAIT_MS, r.abandonIfOpen())));
      }
      await atMost(CLOSE_WAIT_MS, closing);
      await atMost(CLOSE_WAIT_MS, receiver.close());
    };
    receiving.push({ registration, region, entity, receiver, stop });
  };

  interface Scheduled {
    fn: string;
    schedule: string;
    cron: Cron;
  }
  const crons: Scheduled[] = [];
  let poll: NodeJS.Timeout | undefined;
  let unwatch: () => unknown = () => undefined;
  let reconciling = Promise.resolve();
  const close = async () => {
    for (const c of crons) c.cron.stop();
    if (poll) clearInterval(poll);
    unwatch();
    await reconciling.catch(() => undefined);
    await Promise.all(receiving.splice(0).map((x) => x.stop()));
    await Promise.all([...clients.values()].map((c) => c.close()));
    await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
    server.closeAllConnections();
  };

  try {
    // Per-region triggers run once per replica region; regions are created and deleted at run time,
    // so reconcile() starts and stops receivers to match, when a replica admin call here says so and
    // every few seconds for changes made through another host.
    const perRegion = serviceBus.filter((r) => Object.values(r.trigger).some((v) => typeof v === 'string' && v.includes('%REGION_NAME%')));
    for (const r of serviceBus) if (!perRegion.includes(r)) startReceiver(r);
    const reconcile = () =>
      // Chained so two reconciles never race; a failed one does not stop the next.
      (reconciling = reconciling.catch(() => {}).then(async () => {
        const wanted = new Set(options.regions ?? (await rt.registry.list()).filter((r) => !r.home).map((r) => r.name));
        for (const region of wanted) {
          for (const r of perRegion) if (!receiving.some((x) => x.registration === r && x.region === region)) startReceiver(r, region);
        }
        for (const x of [...receiving]) {
          if (!x.region || wanted.has(x.region)) continue;
          receiving.splice(receiving.indexOf(x), 1);
          await x.stop();
        }
      }));
    await reconcile();
    unwatch = watchRegions(rt, reconcile);
    if (!options.regions) {
      poll = setInterval(() => reconcile().catch((e) => log.warn(`local host: cannot list replica regions: ${(e as Error).message}`)), options.regionPollMs ?? 5000);
      poll.unref();
    }

    for (const { registration, schedule } of schedules) {
      const fn = registration.name;
      let last: Date | undefined;
      const cron: Cron = new Cron(schedule, { timezone: 'Etc/UTC', protect: true }, async () => {
        const context = invocationContext(registration, {}, log);
        const now = new Date();
        const timer: Timer = { isPastDue: false, schedule: { adjustForDST: true }, scheduleStatus: { last: (last ?? now).toISOString(), next: cron.nextRun()?.toISOString() ?? '', lastUpdated: now.toISOString() } };
        last = now;
        let outcome: unknown;
        try {
          outcome = await hostInvocation(context, { runtime: rt }, () => registration.handler(timer, context));
        } catch (e) {
          log.warn(`${fn}: ${(e as Error).message}`);
          outcome = { outcome: 'failed', error: (e as Error).message };
        }
        options.onSettled?.({ function: fn, outcome });
      });
      crons.push({ fn, schedule, cron });
      if (registration.trigger.runOnStartup === true) void cron.trigger();
    }
  } catch (e) {
    // Nothing half-started is left behind.
    await close().catch(() => undefined);
    throw e;
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    running: () => [
      ...routes.map((r) => ({ function: r.registration.name, kind: 'http' as const, route: `/${ROUTE_PREFIX}/${r.template}`, methods: r.methods ?? [], authLevel: r.authLevel })),
      ...receiving.map((x) => ({ function: x.registration.name, kind: 'serviceBus' as const, entity: x.entity, region: x.region })),
      ...crons.map((c) => ({ function: c.fn, kind: 'timer' as const, schedule: c.schedule, nextRun: c.cron.nextRun() ?? undefined })),
    ],
    close,
  };
}

/** The app settings the runtime was read from, for the names its settings own. */
function appSettingsOf(rt: Runtime): Record<string, string> {
  const { serviceBus, reconcile } = rt.settings;
  return {
    ...(serviceBus.connectionString ? { ServiceBusConnection: serviceBus.connectionString } : {}),
    ...(serviceBus.fullyQualifiedNamespace ? { ServiceBusConnection__fullyQualifiedNamespace: serviceBus.fullyQualifiedNamespace } : {}),
    GEOREG_REPLICATION_TOPIC: serviceBus.replicationTopic,
    GEOREG_WEBHOOK_QUEUE: serviceBus.webhookQueue,
    GEOREG_BACKFILL_QUEUE: serviceBus.backfillQueue,
    GEOREG_RECONCILE_SCHEDULE: reconcile.schedule,
  };
}

interface HttpRoute {
  registration: Registration;
  template: string;
  authLevel: AuthLevel;
  /** Upper case; undefined: every method. */
  methods?: string[];
  literals: number;
  match(segments: string[]): Record<string, string> | undefined;
}

/**
 * A route template as the Functions host reads it (ASP.NET routing): literal segments (matched
 * without regard to case), `{name}`, a trailing `{name?}`, and a last `{*name}` taking the rest.
 * Constraints (`{id:int}`) are refused at start rather than silently ignored.
 */
function compileRoute(registration: Registration): HttpRoute {
  const b = registration.trigger as Binding & { route?: string; methods?: string[]; authLevel?: AuthLevel };
  const template = (b.route ?? registration.name).replace(/^\/+|\/+$/g, '');
  const parts = template.split('/').map((segment) => {
    const param = /^\{(\*)?([A-Za-z_][A-Za-z0-9_]*)(\?)?\}$/.exec(segment);
    if (param) return { name: param[2], catchAll: Boolean(param[1]), optional: Boolean(param[3]) || Boolean(param[1]) };
    if (/[{}]/.test(segment)) throw new Error(`function ${registration.name}: route segment "${segment}" is not supported by the local host (use {name}, {name?} or {*name})`);
    return { literal: segment.toLowerCase() };
  });
  return {
    registration,
    template,
    // The Functions host's default for an HTTP trigger without an auth level is `function`.
    authLevel: b.authLevel ?? 'function',
    methods: b.methods?.map((m) => m.toUpperCase()),
    literals: parts.filter((p) => 'literal' in p).length,
    match(segments) {
      const params: Record<string, string> = {};
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i];
        if ('literal' in part) {
          if (segments[i]?.toLowerCase() !== part.literal) return undefined;
        } else if (part.catchAll) {
          if (i < segments.length) params[part.name] = segments.slice(i).join('/');
          return params;
        } else if (segments[i] === undefined) {
          if (!part.optional) return undefined;
        } else {
          params[part.name] = segments[i];
        }
      }
      return segments.length <= parts.length ? params : undefined;
    },
  };
}

function invocationContext(registration: Registration, triggerMetadata: Record<string, unknown>, log: Logger): InvocationContext {
  return new InvocationContext({
    invocationId: randomUUID(),
    functionName: registration.name,
    triggerMetadata,
    options: { trigger: registration.trigger as unknown as FunctionTrigger, extraInputs: [], extraOutputs: [] },
    logHandler: (level, ...args) => {
      if (level === 'error' || level === 'critical') log.error(format(...args));
      else if (level === 'warning') log.warn(format(...args));
      else if (level === 'information') log.info(format(...args));
    },
  });
}

/** The trigger metadata Functions gives a Service Bus function, in the v4 model's camelCase. */
function triggerMetadataOf(m: ServiceBusReceivedMessage): Record<string, unknown> {
  return {
    messageId: m.messageId,
    // The AMQP header (and so this SDK) counts earlier deliveries; Functions' .NET host reports this one too.
    deliveryCount: (m.deliveryCount ?? 0) + 1,
    sequenceNumber: m.sequenceNumber?.toString(),
    enqueuedTimeUtc: m.enqueuedTimeUtc?.toISOString(),
    expiresAtUtc: m.expiresAtUtc?.toISOString(),
    lockToken: m.lockToken,
    contentType: m.contentType,
    correlationId: m.correlationId,
    subject: m.subject,
    deadLetterSource: m.deadLetterSource,
    // Service Bus keeps a dead letter's reason and description among its application properties.
    applicationProperties: {
      ...m.applicationProperties,
      ...(m.deadLetterReason !== undefined ? { DeadLetterReason: m.deadLetterReason } : {}),
      ...(m.deadLetterErrorDescription !== undefined ? { DeadLetterErrorDescription: m.deadLetterErrorDescription } : {}),
    },
  };
}

/** For a batch (cardinality many) each property is an array, one entry per message. */
function batchMetadata(batch: ServiceBusReceivedMessage[]): Record<string, unknown> {
  const each = batch.map(triggerMetadataOf);
  const keys = Object.keys(each[0] ?? {});
  return Object.fromEntries(keys.map((k) => [`${k}Array`, each.map((e) => e[k])]));
}

/** The request target: origin form (`/path?query`, leading slashes collapsed) as clients send it, or absolute form as proxies do. */
function requestTarget(raw: string): URL {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? new URL(raw) : new URL(`/${raw.replace(/^\/+/, '')}`, 'http://127.0.0.1');
}

function flatHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** The body, or undefined as soon as it passes `limit` (nothing more is kept). */
function readLimited(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= limit) return void chunks.push(c);
      over = true;
      chunks.length = 0;
      req.off('data', onData);
      req.pause();
      resolve(undefined);
    };
    req.on('data', onData);
    req.on('end', () => over || resolve(Buffer.concat(chunks)));
    req.on('error', (e) => over || reject(e));
  });
}

/**
 * An answer given without reading the body (or the rest of it): the client gets it while it is
 * still sending, what it sends is discarded up to DRAIN_LIMIT, then the connection closes.
 */
function refuse(req: IncomingMessage, res: ServerResponse, out: HttpOutput): void {
  let drained = 0;
  req.on('data', (c: Buffer) => {
    drained += c.length;
    if (drained > DRAIN_LIMIT) req.socket.destroy();
  });
  req.on('error', () => undefined);
  req.resume();
  send(res, { ...out, headers: { ...out.headers, Connection: 'close' } });
}

function send(res: ServerResponse, out: HttpOutput): void {
  res.writeHead(out.status, { 'Content-Type': 'application/json', ...out.headers });
  res.end(JSON.stringify(out.jsonBody));
}

/** How long a stop waits for the SDK to close a receiver before going on without it. */
const CLOSE_WAIT_MS = 5_000;

/** Waits for `promise`, or `ms` at most (its outcome is then ignored). */
async function atMost(ms: number, promise: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
