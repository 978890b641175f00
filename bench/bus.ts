import { ServiceBusClient, type ServiceBusMessage } from '@azure/service-bus';
import { startServiceBusEmulator } from '../src/local/servicebus';

/**
 * `npm run bench:bus`: the embedded Service Bus emulator under the real SDK. Messages per second
 * end to end (1 KiB bodies: batched send → peek-lock receive → complete) with 1 and 8 receivers,
 * and resident memory with 100,000 messages queued. Measures and prints; asserts nothing.
 */

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const MESSAGES = Number(args.get('messages') ?? 20_000);
const QUEUED = Number(args.get('queued') ?? 100_000);
const body = 'x'.repeat(1024);

async function main() {
  const queue = (name: string) => ({ Name: name, Properties: { LockDuration: 'PT1M', MaxDeliveryCount: 10 } });
  const emulator = await startServiceBusEmulator({ topology: { UserConfig: { Namespaces: [{ Name: 'bench', Queues: [queue('e2e1'), queue('e2e8'), queue('memory')], Topics: [] }] } } });
  const client = new ServiceBusClient(emulator.connectionString);
  const rows: Array<Record<string, string | number>> = [];

  for (const receivers of [1, 8]) {
    const name = `e2e${receivers}`;
    const started = performance.now();
    const sending = sendAll(client, name, MESSAGES);
    let done = 0;
    const rs = Array.from({ length: receivers }, () => client.createReceiver(name));
    await new Promise<void>((resolve, reject) => {
      for (const r of rs) {
        r.subscribe(
          {
            processMessage: async (m) => {
              await r.completeMessage(m);
              if (++done === MESSAGES) resolve();
            },
            processError: async (e) => reject(e.error),
          },
          { autoCompleteMessages: false, maxConcurrentCalls: 16 },
        );
      }
    });
    await sending;
    const seconds = (performance.now() - started) / 1000;
    rows.push({ scenario: `send → receive → complete, ${receivers} receiver(s)`, messages: MESSAGES, seconds: +seconds.toFixed(2), 'msg/s': Math.round(MESSAGES / seconds) });
    await Promise.all(rs.map((r) => r.close()));
  }

  gc();
  const before = process.memoryUsage().rss;
  await sendAll(client, 'memory', QUEUED);
  gc();
  const after = process.memoryUsage().rss;
  rows.push({ scenario: `${QUEUED.toLocaleString()} x 1 KiB queued`, messages: emulator.counts('memory').active, 'RSS MB': Math.round(after / 1048576), 'RSS growth MB': Math.round((after - before) / 1048576) });

  console.table(rows);
  console.log(`node ${process.version}, ${require('node:os').cpus().length} cores (${require('node:os').cpus()[0]?.model ?? 'unknown cpu'}); emulator and SDK client share this process`);
  await client.close();
  await emulator.close();
}

async function sendAll(client: ServiceBusClient, queue: string, count: number): Promise<void> {
  const sender = client.createSender(queue);
  let batch = await sender.createMessageBatch();
  for (let i = 0; i < count; i++) {
    const m: ServiceBusMessage = { body, messageId: `${queue}-${i}` };
    if (!batch.tryAddMessage(m)) {
      await sender.sendMessages(batch);
      batch = await sender.createMessageBatch();
      batch.tryAddMessage(m);
    }
  }
  if (batch.count) await sender.sendMessages(batch);
  await sender.close();
}

function gc() {
  (globalThis as { gc?: () => void }).gc?.();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
