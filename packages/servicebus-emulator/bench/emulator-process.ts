import { startServiceBusEmulator } from '../src';

/**
 * The emulator alone in its own process, for `npm run bench` (bench/bus.ts): its resident memory is then the
 * emulator's, not the SDK client's. Answers 'measure' over IPC with RSS (after a GC) and counts.
 */

async function main() {
  const queue = (name: string) => ({ Name: name, Properties: { LockDuration: 'PT1M', MaxDeliveryCount: 10 } });
  const emulator = await startServiceBusEmulator({ topology: { UserConfig: { Namespaces: [{ Name: 'bench', Queues: [queue('e2e1'), queue('e2e8'), queue('memory')], Topics: [] }] } } });
  process.on('message', (m: { type: string; queue?: string }) => {
    if (m.type === 'measure') {
      (globalThis as { gc?: () => void }).gc?.();
      process.send!({ type: 'measured', rss: process.memoryUsage().rss, counts: m.queue ? emulator.counts(m.queue) : undefined });
    } else if (m.type === 'close') {
      void emulator.close().then(() => process.exit(0));
    }
  });
  process.send!({ type: 'ready', connectionString: emulator.connectionString });
}

void main();
