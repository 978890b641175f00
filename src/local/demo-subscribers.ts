import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebhookEvent } from '../bus/messages';
import { verifySignature } from '../webhooks/signature';
import type { Stack } from './stack';

/**
 * The demo's webhook subscribers: one real HTTP server on 127.0.0.1 per replica region, each
 * registered (through the admin API, as `georeg webhook create` does) as that region's webhook for
 * every push and delete. Each checks the signature and prints what it receives. During the demo's
 * progress bars the lines are held and printed per push; afterwards they print as they arrive.
 */

export interface DemoSubscribers {
  webhooks: Array<{ name: string; region: string; url: string }>;
  /** Prints the events of this push once every region's has arrived (or after `timeoutMs`). */
  flush(pushId: string, timeoutMs?: number): Promise<void>;
  /** From now on, print events as they arrive. */
  live(): void;
  close(): Promise<void>;
}

export async function startDemoSubscribers(stack: Stack, print: (line: string) => void = console.log): Promise<DemoSubscribers> {
  const apiUrl = `${stack.host.url}/api`;
  const servers: Server[] = [];
  const webhooks: DemoSubscribers['webhooks'] = [];
  const held: Array<{ pushId?: string; region: string; line: string }> = [];
  let isLive = false;

  const receive = (region: string, line: string, pushId?: string) => {
    if (isLive) print(line);
    else held.push({ pushId, region, line });
  };

  for (const region of stack.settings.replicaRegions.map((r) => r.name)) {
    const secret = randomBytes(24).toString('base64url');
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const verified = verifySignature({ secret, body, timestamp: header(req.headers['x-georeg-timestamp']), signature: header(req.headers['x-georeg-signature']) });
        res.writeHead(verified.ok ? 200 : 401).end(verified.ok ? 'ok' : verified.reason);
        let event: WebhookEvent | undefined;
        try {
          event = JSON.parse(body) as WebhookEvent;
        } catch {
          event = undefined;
        }
        receive(region, `  webhook ${region.padEnd(14)} <- ${describe(event)}  [signature ${verified.ok ? 'ok' : `BAD: ${verified.reason}`}]`, event?.pushId);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
    const name = `demo${region}`.slice(0, 50);
    const res = await fetch(`${apiUrl}/webhooks`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...stack.adminHeaders },
      body: JSON.stringify({ name, region, serviceUri: url, actions: ['push', 'delete'], scope: '', secret }),
    });
    if (res.status !== 201) throw new Error(`registering the demo webhook for ${region} failed: ${res.status} ${await res.text()}`);
    webhooks.push({ name, region, url });
  }

  return {
    webhooks,
    async flush(pushId, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (held.filter((h) => h.pushId === pushId).length < webhooks.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      for (let i = 0; i < held.length; ) {
        if (held[i].pushId === pushId) print(held.splice(i, 1)[0].line);
        else i++;
      }
    },
    live() {
      isLive = true;
      held.splice(0).forEach((h) => print(h.line));
    },
    async close() {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function describe(e: WebhookEvent | undefined): string {
  if (!e) return 'a body that is not JSON';
  if (e.action === 'ping') return `ping ${e.id}`;
  const t = e.target;
  const ref = t ? `${t.repository}${t.tag ? `:${t.tag}` : ''}${t.digest ? ` ${t.digest.slice(0, 19)}...` : ''}` : '';
  return `${e.action} ${ref} (complete in ${e.region}, push ${e.pushId ?? '-'})`;
}
