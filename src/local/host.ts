import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';
import type { Logger } from '../common/log';
import { handlePushNotification, type HttpOutput } from '../replication/push';
import { handleReplicationJob, type JobOutcome } from '../replication/replicate';
import { handleStatusRequest } from '../replication/status-api';
import { pushDeps, replicateDeps, webhookAdminDeps, webhookDeliverDeps, type Runtime } from '../runtime';
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
  /** Regions whose replicate trigger runs here (all replicas by default; in Azure one per app). */
  regions?: string[];
  /** Called after each replication job is settled (progress display, tests). */
  onJob?: (region: string, outcome: JobOutcome | { outcome: 'abandoned'; error: string }, message: ServiceBusReceivedMessage) => void;
  maxConcurrentCalls?: number;
  /** Called after each webhook delivery message is settled (tests). */
  onDelivery?: (outcome: DeliveryOutcome | { outcome: 'abandoned'; error: string }, message: ServiceBusReceivedMessage) => void;
}

export async function startLocalHost(rt: Runtime, options: LocalHostOptions): Promise<LocalHost> {
  const { log } = options;
  const server = createServer((req, res) => {
    route(req, res, rt, log).catch((e) => {
      log.error(`${req.method} ${req.url}: ${(e as Error).stack ?? e}`);
      send(res, { status: 500, jsonBody: { error: (e as Error).message } });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7071, options.host ?? '127.0.0.1', resolve);
  });
  const port = (server.address() as AddressInfo).port;

  const receivers: ServiceBusReceiver[] = [];
  for (const region of options.regions ?? [...rt.replicas.keys()]) {
    const receiver = rt.bus.createReceiver(rt.settings.serviceBus.replicationTopic, region, { receiveMode: 'peekLock' });
    receivers.push(receiver);
    receiver.subscribe(
      {
        processMessage: async (message) => {
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
          log.warn(`replicate[${region}] receiver: ${args.error.message}`);
        },
      },
      { autoCompleteMessages: false, maxConcurrentCalls: options.maxConcurrentCalls ?? 4 },
    );
  }

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
      await Promise.all(receivers.map((r) => r.close()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}

async function route(req: IncomingMessage, res: ServerResponse, rt: Runtime, log: Logger): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname.replace(/\/+$/, '');
  if (req.method === 'POST' && path === '/api/push') {
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(', ') : v]));
    return send(res, await handlePushNotification({ headers, body: await readBody(req) }, pushDeps(rt, log)));
  }
  const status = /^\/api\/pushes(?:\/([^/]+))?$/.exec(path);
  if (req.method === 'GET' && status) {
    const q = url.searchParams;
    return send(res, await handleStatusRequest({ id: status[1] && decodeURIComponent(status[1]), repository: q.get('repository') ?? undefined, tag: q.get('tag') ?? undefined }, rt.state));
  }
  const webhooks = /^\/api\/webhooks(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
  if (webhooks) {
    const [name, op] = [webhooks[1], webhooks[2]].map((p) => (p === undefined ? undefined : decodeURIComponent(p)));
    const query = Object.fromEntries(url.searchParams);
    return send(res, await handleWebhookAdmin({ method: req.method ?? 'GET', name, op, query, body: await readBody(req) }, webhookAdminDeps(rt, log)));
  }
  send(res, { status: 404, jsonBody: { error: `no function serves ${req.method} ${path}` } });
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
