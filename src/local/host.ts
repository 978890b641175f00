import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';
import type { Logger } from '../common/log';
import { handlePushNotification, type HttpOutput } from '../replication/push';
import { handleReplicationJob, type JobOutcome } from '../replication/replicate';
import { handleStatusRequest } from '../replication/status-api';
import { handleReplicaAdmin, handleRouteRequest } from '../replicas/admin-api';
import { pushDeps, replicaAdminDeps, replicateDeps, webhookAdminDeps, webhookDeliverDeps, type Runtime } from '../runtime';
import { handleWebhookAdmin } from '../webhooks/admin-api';
import { handleWebhookDelivery, type DeliveryOutcome } from '../webhooks/deliver';

/**
 * Runs the same handlers `func start` runs, without the Functions host: HTTP on :7071 under /api,
 * and one Service Bus receiver per trigger that completes on success, dead-letters with the
 * handler's reason, and abandons on a throw — as the Functions host settles messages.
 */

export interface LocalHost {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface LocalHostOptions {
  port?: number;
  host?: string;
  log: Logger;
  /** Regions whose replicate trigger runs here (by default every replica, following the ones created and deleted; in Azure one per app). */
  regions?: string[];
  /** How often the replica list is re-read for regions created or deleted elsewhere (default 5 s). */
  regionPollMs?: number;
  /** Called after each replication job is settled (progress display, tests). */
  onJob?: (region: string, outcome: JobOutcome | { outcome: 'abandoned'; error: string }, message: ServiceBusReceivedMessage) => void;
  maxConcurrentCalls?: number;
  /** Awaited before each replication job is handled (tests hold a region's jobs with it). */
  beforeJob?: (region: string, message: ServiceBusReceivedMessage) => Promise<void>;
  /** Called after each webhook delivery message is settled (tests). */
  onDelivery?: (outcome: DeliveryOutcome | { outcome: 'abandoned'; error: string }, message: ServiceBusReceivedMessage) => void;
}

export async function startLocalHost(rt: Runtime, options: LocalHostOptions): Promise<LocalHost> {
  const { log } = options;
  let regionsChanged = async () => {};
  const server = createServer((req, res) => {
    route(req, res, rt, log, () => regionsChanged()).catch((e) => {
      log.error(`${req.method} ${req.url}: ${(e as Error).stack ?? e}`);
      send(res, { status: 500, jsonBody: { error: (e as Error).message } });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7071, options.host ?? '127.0.0.1', resolve);
  });
  const port = (server.address() as AddressInfo).port;

  // One replicate receiver per replica region, as one Function App per region has in Azure. Regions
  // are created and deleted at run time: reconcile() starts and stops receivers to match, after
  // each replica admin call here and every few seconds for changes made through another host.
  const replicators = new Map<string, ServiceBusReceiver>();
  const startReplicator = (region: string) => {
    const receiver = rt.bus.createReceiver(rt.settings.serviceBus.replicationTopic, region, { receiveMode: 'peekLock' });
    replicators.set(region, receiver);
    receiver.subscribe(
      {
        processMessage: async (message) => {
          await options.beforeJob?.(region, message);
          let outcome: JobOutcome;
          try {
            outcome = await handleReplicationJob(message.body, replicateDeps(rt, log));
          } catch (e) {
            log.warn(`replicate[${region}] ${message.messageId}: ${(e as Error).message} (abandoned; Service Bus redelivers)`);
            await receiver.abandonMessage(message);
            options.onJob?.(region, { outcome: 'abandoned', error: (e as Error).message }, message);
            return;
          }
          if (outcome.outcome === 'dead-letter') {
            await receiver.deadLetterMessage(message, { deadLetterReason: outcome.reason, deadLetterErrorDescription: outcome.description });
          } else {
            await receiver.completeMessage(message);
          }
          options.onJob?.(region, outcome, message);
        },
        processError: async (args) => {
          // A deleted region's subscription goes before its receiver here does: not worth a warning.
          if ((args.error as { code?: string }).code === 'MessagingEntityNotFound' && !(await rt.registry.get(region))) return;
          log.warn(`replicate[${region}] receiver: ${args.error.message}`);
        },
      },
      { autoCompleteMessages: false, maxConcurrentCalls: options.maxConcurrentCalls ?? 4 },
    );
  };
  let reconciling = Promise.resolve();
  const reconcile = () =>
    // Chained so two reconciles never race; a failed one does not stop the next.
    (reconciling = reconciling.catch(() => {}).then(async () => {
      const wanted = new Set(options.regions ?? (await rt.registry.list()).filter((r) => !r.home).map((r) => r.name));
      for (const region of wanted) if (!replicators.has(region)) startReplicator(region);
      for (const [region, receiver] of replicators) {
        if (wanted.has(region)) continue;
        replicators.delete(region);
        await receiver.close();
      }
    }));
  await reconcile();
  const poll = options.regions
    ? undefined
    : setInterval(() => reconcile().catch((e) => log.warn(`local host: cannot list replica regions: ${(e as Error).message}`)), options.regionPollMs ?? 5000);
  poll?.unref();
  regionsChanged = reconcile;

  const receivers: ServiceBusReceiver[] = [];
  // The deliver trigger: a 'rescheduled' outcome means the handler already scheduled the next
  // attempt as a new message, so this one completes.
  const deliveries = rt.bus.createReceiver(rt.settings.serviceBus.webhookQueue, { receiveMode: 'peekLock' });
  receivers.push(deliveries);
  deliveries.subscribe(
    {
      processMessage: async (message) => {
        let outcome: DeliveryOutcome;
        try {
          outcome = await handleWebhookDelivery(message.body, webhookDeliverDeps(rt, log));
        } catch (e) {
          log.warn(`deliver ${message.messageId}: ${(e as Error).message} (abandoned; Service Bus redelivers)`);
          await deliveries.abandonMessage(message);
          options.onDelivery?.({ outcome: 'abandoned', error: (e as Error).message }, message);
          return;
        }
        if (outcome.outcome === 'dead-letter') {
          await deliveries.deadLetterMessage(message, { deadLetterReason: outcome.reason, deadLetterErrorDescription: outcome.description });
        } else {
          await deliveries.completeMessage(message);
        }
        options.onDelivery?.(outcome, message);
      },
      processError: async (args) => {
        log.warn(`deliver receiver: ${args.error.message}`);
      },
    },
    { autoCompleteMessages: false, maxConcurrentCalls: options.maxConcurrentCalls ?? 4 },
  );

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async close() {
      if (poll) clearInterval(poll);
      await reconciling;
      await Promise.all([...receivers, ...replicators.values()].map((r) => r.close()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}

async function route(req: IncomingMessage, res: ServerResponse, rt: Runtime, log: Logger, regionsChanged: () => Promise<void>): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname.replace(/\/+$/, '');
  if (req.method === 'POST' && path === '/api/push') {
    return send(res, await handlePushNotification({ headers: headersOf(req), body: await readBody(req) }, pushDeps(rt, log)));
  }
  const status = /^\/api\/pushes(?:\/([^/]+))?$/.exec(path);
  if (req.method === 'GET' && status) {
    const q = url.searchParams;
    return send(res, await handleStatusRequest({ id: status[1] && decodeURIComponent(status[1]), repository: q.get('repository') ?? undefined, tag: q.get('tag') ?? undefined, problems: q.has('problems'), limit: q.get('limit') ?? undefined }, rt.state));
  }
  const webhooks = /^\/api\/webhooks(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
  if (webhooks) {
    const [name, op] = [webhooks[1], webhooks[2]].map((p) => (p === undefined ? undefined : decodeURIComponent(p)));
    const query = Object.fromEntries(url.searchParams);
    return send(res, await handleWebhookAdmin({ method: req.method ?? 'GET', name, op, query, body: await readBody(req), headers: headersOf(req) }, webhookAdminDeps(rt, log)));
  }
  const replications = /^\/api\/replications(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
  if (replications) {
    const [name, op] = [replications[1], replications[2]].map((p) => (p === undefined ? undefined : decodeURIComponent(p)));
    const query = Object.fromEntries(url.searchParams);
    return send(res, await handleReplicaAdmin({ method: req.method ?? 'GET', name, op, query, body: await readBody(req), headers: headersOf(req) }, replicaAdminDeps(rt, log, regionsChanged)));
  }
  if (req.method === 'GET' && path === '/api/regions/route') {
    return send(res, await handleRouteRequest({ query: Object.fromEntries(url.searchParams), headers: headersOf(req) }, replicaAdminDeps(rt, log)));
  }
  send(res, { status: 404, jsonBody: { error: `no function serves ${req.method} ${path}` } });
}

function headersOf(req: IncomingMessage): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(', ') : v]));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Notifications are small; refuse anything that is clearly not one.
      if (size > 4 * 1024 * 1024) req.destroy(new Error('request body over 4 MiB'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, out: HttpOutput): void {
  const body = JSON.stringify(out.jsonBody, null, 2);
  res.writeHead(out.status, { 'Content-Type': 'application/json', ...out.headers });
  res.end(body);
}
