import type { Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';

/**
 * One port for both protocols, so one `UseDevelopmentEmulator=true` connection string serves the
 * AMQP client and the administration client: a connection that opens with the AMQP protocol
 * header ("AMQP" + version bytes) goes to the AMQP server, anything else (an HTTP request line)
 * to the HTTP server.
 */

const AMQP_HEADER = Buffer.from('AMQP');

export interface SharedListener {
  port: number;
  close(): Promise<void>;
}

export async function listenShared(options: { host: string; port: number; amqp: (socket: Socket) => void; http: HttpServer }): Promise<SharedListener> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      // Both protocols' first bytes are at least 4 long; wait until the decision can be made.
      if (seen.length < AMQP_HEADER.length && AMQP_HEADER.subarray(0, seen.length).equals(seen)) return;
      socket.off('data', onData);
      socket.pause();
      socket.unshift(seen);
      if (seen.subarray(0, AMQP_HEADER.length).equals(AMQP_HEADER)) options.amqp(socket);
      else options.http.emit('connection', socket);
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
