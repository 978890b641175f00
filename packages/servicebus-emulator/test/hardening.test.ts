import { createHmac } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { ServiceBusClient } from '@azure/service-bus';
import * as rhea from 'rhea';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceBusEmulator, type ServiceBusEmulator } from '../src';

/**
 * The emulator facing a careless or hostile client: broken SAS tokens, oversized administration
 * bodies, sockets that never finish a handshake, and one address opening too many connections.
 * The real SDK over AMQP, fetch and raw TCP sockets against the emulator on a free port.
 */

const KEY_NAME = 'RootManageSharedAccessKey';
const KEY = Buffer.from('hardening-test-key-hardening-test-key').toString('base64');
const topology = { UserConfig: { Namespaces: [{ Name: 'sbemulatorns', Queues: [{ Name: 'q', Properties: {} }], Topics: [] }] } };
// No retries: a refusal shows at once instead of after the SDK's back-off.
const noRetry = { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } };

let emulator: ServiceBusEmulator;
const clients: ServiceBusClient[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  emulator = await startServiceBusEmulator({ port: 0, topology, keyName: KEY_NAME, key: KEY, handshakeTimeoutMs: 500 });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(clients.map((c) => c.close()));
  await emulator?.close();
});

function client(connectionString: string): ServiceBusClient {
  const c = new ServiceBusClient(connectionString, noRetry);
  clients.push(c);
  return c;
}

/** A SAS token for the administration API, signed as the SDK signs one. */
function adminToken(port: number): string {
  const sr = encodeURIComponent(`http://127.0.0.1:${port}/`);
  const se = Math.floor(Date.now() / 1000) + 3600;
  const sig = encodeURIComponent(createHmac('sha256', KEY).update(`${sr}\n${se}`).digest('base64'));
  return `SharedAccessSignature sr=${sr}&sig=${sig}&se=${se}&skn=${KEY_NAME}`;
}

/** A raw TCP connection to the emulator, open once this resolves. */
async function rawSocket(port: number, firstBytes?: Buffer): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  // Flowing, so the server's close is seen.
  socket.resume();
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  if (firstBytes) socket.write(firstBytes);
  return socket;
}

/** Opens an AMQP connection with rhea: 'opened' (then closes it), or the error the broker closed it with. */
function amqpRefusal(port: number): Promise<'opened' | { condition?: string; description?: string } | undefined> {
  return new Promise((resolve) => {
    const connection = rhea.create_container().connect({ host: '127.0.0.1', port, reconnect: false } as rhea.ConnectionOptions);
    connection.on('connection_error', (ctx) => resolve(ctx.connection.error as { condition?: string; description?: string }));
    connection.on('connection_open', (ctx) => {
      // Our own close comes after the broker's refusal, if there is one: wait a tick for it.
      setImmediate(() => {
        if (ctx.connection.error) return;
        resolve('opened');
        ctx.connection.close();
      });
    });
    connection.on('disconnected', () => resolve(undefined));
  });
}

const closed = (socket: Socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));

describe('Service Bus emulator hardening', () => {
  it('answers a SAS token with broken percent-encoding (%zz) with 401, over AMQP and over HTTP', async () => {
    const se = Math.floor(Date.now() / 1000) + 3600;
    const token = `SharedAccessSignature sr=sb%3A%2F%2F127.0.0.1%2F&sig=%zz&se=${se}&skn=${KEY_NAME}`;
    const sender = client(`Endpoint=sb://127.0.0.1:${emulator.port};SharedAccessSignature=${token};UseDevelopmentEmulator=true`).createSender('q');
    await expect(sender.sendMessages({ body: 'x' })).rejects.toThrow(/not correctly percent-encoded/);

    const res = await fetch(`http://127.0.0.1:${emulator.port}/$namespaceinfo`, { headers: { Authorization: token } });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain('not correctly percent-encoded');
  });

  it('answers an administration body over 1 MiB with 413 (401 first when unauthenticated) and keeps serving', async () => {
    const url = `http://127.0.0.1:${emulator.port}/bigqueue`;
    const body = `<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml">${'x'.repeat(2 * 1024 * 1024)}</content></entry>`;
    const anonymous = await fetch(url, { method: 'PUT', body });
    expect(anonymous.status).toBe(401);

    const big = await fetch(url, { method: 'PUT', body, headers: { Authorization: adminToken(emulator.port), 'Content-Type': 'application/atom+xml' } });
    expect(big.status).toBe(413);
    expect(await big.text()).toMatch(/larger than the 1048576 bytes/);

    const after = await fetch(`http://127.0.0.1:${emulator.port}/$namespaceinfo`, { headers: { Authorization: adminToken(emulator.port) } });
    expect(after.status).toBe(200);
  });

  it('answers a path with broken percent-encoding with 400', async () => {
    const res = await fetch(`http://127.0.0.1:${emulator.port}/q%zz`, { headers: { Authorization: adminToken(emulator.port) } });
    expect(res.status).toBe(400);
  });

  it('closes a socket that sends nothing, or only the AMQP header, within the handshake timeout; an open AMQP connection stays', async () => {
    const sender = client(emulator.connectionString).createSender('q');
    await sender.sendMessages({ body: 'before' });
    const silent = await rawSocket(emulator.port);
    const headerOnly = await rawSocket(emulator.port, Buffer.from([0x41, 0x4d, 0x51, 0x50, 0x00, 0x01, 0x00, 0x00]));

    await Promise.all([closed(silent), closed(headerOnly)]);

    // Both waited out the timeout; the SDK's connection, opened before them, is still serving.
    await sender.sendMessages({ body: 'after' });
    expect(emulator.counts('q').active).toBe(2);
  });
});

describe('Service Bus emulator connection cap', () => {
  let capped: ServiceBusEmulator;
  beforeAll(async () => {
    capped = await startServiceBusEmulator({ port: 0, topology, maxConnectionsPerAddress: 2 });
  });
  afterAll(async () => {
    await capped?.close();
  });

  it('refuses a client address its connection over the cap with an error naming the limit, in AMQP and in HTTP; a freed slot is usable again', async () => {
    const held = [await rawSocket(capped.port), await rawSocket(capped.port)];

    // The SDK only logs a refused connection and times out its send, so rhea (the SDK's AMQP library) shows what the broker says.
    const refusal = await amqpRefusal(capped.port);
    expect(refusal).toMatchObject({ condition: 'amqp:resource-limit-exceeded', description: expect.stringMatching(/127\.0\.0\.1 has 2 connections to the emulator, its limit \(maxConnectionsPerAddress 2\)/) });
    const http = await fetch(`http://127.0.0.1:${capped.port}/$namespaceinfo`);
    expect(http.status).toBe(503);
    expect(await http.text()).toMatch(/127\.0\.0\.1 has 2 connections to the emulator, its limit/);

    held[0].destroy();
    await closed(held[0]);
    await expect.poll(() => amqpRefusal(capped.port), { timeout: 10_000 }).toBe('opened');
  });
});
