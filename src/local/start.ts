import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { watchPush } from '../cli/progress';
import { generated } from '../registry/generate';
import { localStackFile, type LocalStackFile } from '../cli/target';
import type { Logger } from '../common/log';
import { pushEnvelope, postNotification } from '../notifications/sender';
import { writeImage } from '../registry/writer';
import type { PushSummary } from '../replication/status-api';
import { startDemoSubscribers } from './demo-subscribers';
import { startStack } from './stack';

/**
 * `npm start`: the embedded stack, a demo push of a multi-layer image, a two-platform OCI index
 * and a second tag that shares layers, with per-region progress; then it keeps serving the push
 * endpoint until Ctrl-C. `npm start -- --once` exits after the demo.
 */

const quiet: Logger = { info: () => {}, warn: (m) => console.warn(`  ! ${m}`), error: (m) => console.error(`  ! ${m}`) };

/**
 * GEOREG_* settings from the environment over the stack's defaults (e.g.
 * `GEOREG_RECONCILE_SCHEDULE='*\/10 * * * * *' npm start`), except the ones that describe the
 * embedded stack itself: its regions and accounts.
 */
function settingsFromEnvironment(): Record<string, string> {
  const owned = new Set(['GEOREG_HOME_REGION', 'GEOREG_REGIONS', 'GEOREG_PORT', 'GEOREG_API_URL']);
  const taken = Object.entries(process.env).filter((e): e is [string, string] => e[0].startsWith('GEOREG_') && !owned.has(e[0]) && e[1] !== undefined);
  if (taken.length) console.log(`  settings from the environment: ${taken.map(([k]) => k).join(', ')}`);
  return Object.fromEntries(taken);
}

async function main(): Promise<void> {
  const once = process.argv.includes('--once');
  console.log('georeg: starting Azurite (one storage account per region), the Service Bus emulator and the functions...');
  // Two storage accounts no region uses yet: `georeg replication create` can add regions on them.
  const spare = ['spare1', 'spare2'];
  const stack = await startStack({ httpPort: Number(process.env.GEOREG_PORT ?? 7071), log: quiet, spareAccounts: spare, settings: settingsFromEnvironment() });
  const apiUrl = `${stack.host.url}/api`;
  const spareStorage = Object.fromEntries(spare.map((a) => [a, stack.storageConnectionString(a)]));
  const stackFile = localStackFile();
  mkdirSync(dirname(stackFile), { recursive: true });
  const written: LocalStackFile = { apiUrl, env: stack.env, pid: process.pid, spareStorage };
  writeFileSync(stackFile, JSON.stringify(written, null, 2), { mode: 0o600 });
  console.log(`  home region ${stack.settings.homeRegion.name}, replicas ${stack.settings.replicaRegions.map((r) => r.name).join(', ')}`);
  console.log(`  push endpoint ${stack.pushUrl}`);
  console.log(`  dashboard ${apiUrl}/dashboard?key=${encodeURIComponent(stack.settings.adminSecret ?? '')}`);
  const subscribers = await startDemoSubscribers(stack);
  console.log(`  webhooks ${subscribers.webhooks.map((w) => `${w.name} -> ${w.url}`).join(', ')}\n`);

  const demos = [
    { ref: 'demo/web', tag: '1.0', flags: { generate: { layers: 5, layerSize: 4 * 1024 * 1024 } }, what: 'a 5-layer image (5 x 4 MiB)' },
    { ref: 'demo/web', tag: 'multiarch', flags: { generate: { layers: 3, layerSize: 2 * 1024 * 1024 }, platforms: 'linux/amd64,linux/arm64' }, what: 'a two-platform OCI index (linux/amd64, linux/arm64)' },
    { ref: 'demo/web', tag: '1.1', flags: { generate: { layers: 5, layerSize: 4 * 1024 * 1024 }, seedBase: 'demo/web:1.0', share: 4 }, what: 'tag 1.1, sharing 4 of its 5 layers with 1.0' },
  ];
  const results: Array<{ what: string; summary: PushSummary }> = [];
  for (const demo of demos) {
    console.log(`demo: pushing ${demo.what} as ${demo.ref}:${demo.tag}`);
    const image = generated(demo.ref, demo.tag, demo.flags);
    await writeImage(stack.runtime.home, image);
    const root = image.manifests[image.manifests.length - 1];
    const response = (await postNotification(stack.pushUrl, stack.settings.pushSecret, pushEnvelope({ repository: demo.ref, tag: demo.tag, manifest: root, blobs: image.blobs, references: image.blobs }))) as { pushes: Array<{ pushId: string }> };
    results.push({ what: `${demo.ref}:${demo.tag}`, summary: await watchPush(apiUrl, response.pushes[0].pushId, { adminSecret: stack.settings.adminSecret }) });
    await subscribers.flush(response.pushes[0].pushId);
  }
  console.log('\nper-region figures:');
  console.table(
    results.flatMap(({ what, summary }) =>
      summary.regions.map((r) => ({
        image: what,
        region: r.region,
        state: r.state,
        'blobs copied': r.blobs.copied,
        'MiB copied': +(r.bytes.copied / 1048576).toFixed(2),
        'blobs skipped': r.blobs.skipped,
        'MiB skipped': +(r.bytes.skipped / 1048576).toFixed(2),
        method: Object.keys(r.methods).join(',') || '-',
        'push→ready (ms)': r.durationMs,
      })),
    ),
  );
  if (once) {
    await shutdown();
    return;
  }
  console.log(`\ngeoreg is serving ${stack.pushUrl}. Push more from another terminal:`);
  console.log('  npx georeg push --generate 3x1MiB demo/app:v1 --wait');
  console.log('  npx georeg push ./my-oci-layout:latest demo/app:v2 --wait   (skopeo copy docker://... oci:./my-oci-layout:latest)');
  console.log('  npx georeg status demo/app:v1');
  console.log(`  npx georeg webhook list-events ${subscribers.webhooks[0].name}   (each region's subscriber prints the events it receives)`);
  console.log(`  npx georeg replication create --region northeurope --storage "$(jq -r .spareStorage.spare1 ${relative(process.cwd(), stackFile)})" --wait   (a new replica, back-filled)`);
  console.log('  npx georeg replication list');
  console.log(`  dashboard: ${apiUrl}/dashboard?key=${encodeURIComponent(stack.settings.adminSecret ?? '')}   (regions, pushes, latency, webhooks, dead letters)`);
  console.log('  npx georeg dlq list   (dead-lettered jobs and deliveries; redrive or discard them)');
  subscribers.live();
  console.log('Ctrl-C stops everything (the emulators keep their data in memory only).');

  async function shutdown() {
    rmSync(stackFile, { force: true });
    await subscribers.close();
    await stack.close();
  }
  process.once('SIGINT', () => void shutdown().then(() => process.exit(0)));
  process.once('SIGTERM', () => void shutdown().then(() => process.exit(0)));
}

main().catch((e: Error) => {
  console.error(`georeg: ${e.message}`);
  process.exit(1);
});
