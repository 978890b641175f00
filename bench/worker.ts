import { loadSettings } from '../src/config/settings';
import { silentLogger } from '../src/common/log';
import { startLocalHost } from '../src/local/host';
import { createRuntime } from '../src/runtime';
import { StorageRequests } from './measure';

/**
 * The back-fill bench's worker, in a process of its own so that its memory and CPU are measured
 * alone (the bench's process holds the Service Bus emulator, which keeps every queued job): the
 * local host with every function, against the settings in the environment (the bench's stack),
 * taking BENCH_MAX_CALLS messages of each entity at once, counting its storage requests to
 * BENCH_AZURITE_HOST. Prints `listening <url>` once it serves; on SIGTERM prints `requests <json>`
 * (what it asked of storage since it started), stops and exits.
 */
async function main(): Promise<void> {
  const settings = loadSettings(process.env);
  const rt = await createRuntime(settings);
  const requests = new StorageRequests(String(process.env.BENCH_AZURITE_HOST), settings.stateContainer, rt.home.accountName);
  const host = await startLocalHost(rt, { port: 0, log: silentLogger, maxConcurrentCalls: Number(process.env.BENCH_MAX_CALLS ?? 16) });
  console.log(`listening ${host.url}`);
  process.once('SIGTERM', () => {
    console.log(`requests ${JSON.stringify(requests.take())}`);
    void host
      .close()
      .then(() => rt.close())
      .finally(() => process.exit(0));
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
