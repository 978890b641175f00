import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A real HTTP subscriber on 127.0.0.1 that records what it receives and answers as told. */

export interface Received {
  headers: Record<string, string>;
  body: string;
  json: any;
  /** Whatever the subscriber's `onEvent` returned when the request arrived. */
  check?: unknown;
}

export interface Answer {
  status?: number;
  /** Wait this long before answering (timeouts). */
  delayMs?: number;
  body?: string;
}

export interface Subscriber {
  url: string;
  received: Received[];
  /** Resolves once `count` requests have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startSubscriber(options: { answer?: (index: number, req: Received) => Answer; onEvent?: (req: Received) => Promise<unknown> } = {}): Promise<Subscriber> {
  const received: Received[] = [];
  const waiters: Array<() => void> = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const entry: Received = { headers, body, json };
      const index = received.length;
      if (options.onEvent) entry.check = await options.onEvent(entry);
      received.push(entry);
      waiters.splice(0).forEach((w) => w());
      const answer = options.answer?.(index, entry) ?? {};
      if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
      if (res.destroyed) return;
      res.writeHead(answer.status ?? 200, { 'Content-Type': 'text/plain' });
      res.end(answer.body ?? 'ok');
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    async waitFor(count, timeoutMs = 20_000) {
      // Each request wakes the waiters; the deadline is the only timer.
      if (received.length >= count) return received;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve, reject) => {
        const check = () => (received.length >= count ? resolve() : waiters.push(check));
        waiters.push(check);
        timer = setTimeout(() => reject(new Error(`subscriber got ${received.length} of ${count} expected request(s)`)), timeoutMs);
      }).finally(() => clearTimeout(timer));
      return received;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
