import type { Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { Logger } from './log';

/**
 * One port for both protocols, so one `UseDevelopmentEmulator=true` connection string serves the
 * AMQP client and the administration client: a connection that opens with the AMQP protocol
 * header ("AMQP" + version bytes) goes to the AMQP server, anything else (an HTTP request line)
 * to the HTTP server.
 *
 * Two limits keep one client from holding the emulator: a connection that has not opened an AMQP
 * connection (or sent the first bytes of an HTTP request) within the handshake timeout is closed,
 * and each client address may hold at most so many connections; one more is answered with an
 * error in its own protocol and closed.
 */

const AMQP_HEADER = Buffer.from('AMQP');

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 1000;

/** What the AMQP side is told about a socket it serves. */
export interface AmqpSocketOptions {
  /** Call once the client has opened its AMQP connection: the handshake timeout stops. */
  opened: () => void;
  /** When set, open the connection only to close it with this error (the client is over its limit). */
  refuse?: string;
}

export interface SharedListener {
  port: number;
  close(): Promise<void>;
}

export interface SharedListenerOptions {
  host: string;
  port: number;
  amqp: (socket: Socket, options: AmqpSocketOptions) => void;
  http: HttpServer;
  handshakeTimeoutMs?: number;
  maxConnectionsPerAddress?: number;
  log?: Logger;
}

export async function listenShared(options: SharedListenerOptions): Promise<SharedListener> {
  const sockets = new Set<Socket>();
  const perAddress = new Map<string, number>();
  const handshakeMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const cap = options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
  const server = createServer((socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const held = perAddress.get(address) ?? 0;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // A refused connection is answered and closed; it does not take a slot.
    const refuse = held >= cap ? `${address} has ${held} connections to the emulator, its limit (maxConnectionsPerAddress ${cap}): close some, or reuse one ServiceBusClient per process` : undefined;
    if (refuse) options.log?.warn(`servicebus emulator: refused a connection: ${refuse}`);
    else {
      perAddress.set(address, held + 1);
      socket.once('close', () => {
        const left = (perAddress.get(address) ?? 1) - 1;
        if (left > 0) perAddress.set(address, left);
        else perAddress.delete(address);
      });
    }
    const timer = setTimeout(() => {
      options.log?.warn(`servicebus emulator: closed a connection from ${address} that opened no AMQP connection or HTTP request within ${handshakeMs} ms`);
      socket.destroy();
    }, handshakeMs);
    socket.once('close', () => clearTimeout(timer));
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      // Both protocols' first bytes are at least 4 long; wait until the decision can be made.
      if (seen.length < AMQP_HEADER.length && AMQP_HEADER.subarray(0, seen.length).equals(seen)) return;
      socket.off('data', onData);
      socket.pause();
      socket.unshift(seen);
      if (seen.subarray(0, AMQP_HEADER.length).equals(AMQP_HEADER)) {
        options.amqp(socket, { opened: () => clearTimeout(timer), refuse });
      } else if (refuse) {
        socket.end(`HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(refuse)}\r\n\r\n${refuse}`);
      } else {
        // The HTTP server's own header and request timeouts take over from here.
        clearTimeout(timer);
        options.http.emit('connection', socket);
      }
      socket.resume();
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      options.http.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
