import { fork, type ChildProcess } from 'node:child_process';
import { ServiceBusClient, type ServiceBusMessage } from '@azure/service-bus';

/**
 * `npm run bench`: the emulator under the real SDK. Messages per second
 * end to end (1 KiB bodies: batched send → peek-lock receive → complete) with 1 and 8 receivers,
 * and resident memory with 100,000 messages queued. The emulator runs in a child process
 * (bench/emulator-process.ts), so client and broker each have a core and the memory figure is the
 * emulator's own. Measures and prints; asserts nothing.
 */

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const MESSAGES = Number(args.get('messages') ?? 20_000);
const QUEUED = Number(args.get('queued') ?? 100_000);
const body = 'x'.repeat(1024);

async function main() {
  const emulator = fork(require.resolve('./emulator-process.ts'), [], { execArgv: ['--expose-gc', '--import', 'tsx'] });
  const { connectionString } = await reply<{ connectionString: string }>(emulator, 'ready');
  const client = new ServiceBusClient(connectionString);
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

  const before = await measure(emulator, 'memory');
  await sendAll(client, 'memory', QUEUED);
  const after = await measure(emulator, 'memory');
  rows.push({ scenario: `${QUEUED.toLocaleString()} x 1 KiB queued`, messages: after.counts.active, 'emulator RSS MB': Math.round(after.rss / 1048576), 'RSS growth MB': Math.round((after.rss - before.rss) / 1048576) });

  console.table(rows);
  console.log(`node ${process.version}, ${require('node:os').cpus().length} cores (${require('node:os').cpus()[0]?.model ?? 'unknown cpu'}); emulator in its own process, SDK client in this one`);
  await client.close();
  emulator.send({ type: 'close' });
}

function reply<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string } & T) => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      resolve(m);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`the emulator process exited (${code})`)));
  });
}

async function measure(child: ChildProcess, queue: string): Promise<{ rss: number; counts: { active: number } }> {
  const answer = reply<{ rss: number; counts: { active: number } }>(child, 'measured');
  child.send({ type: 'measure', queue });
  return answer;
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

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
