import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated } from '../support/images';
import { readLocalSettingsValues } from '../../src/config/local-settings';
import { regionStorageFrom } from '../../src/storage/region-storage';
import { isSetting, runCli, settingsUnset } from '../support/cli';
import { spawnEntry, type Spawned } from '../support/process';

/**
 * The documented way to run georeg without Azure Functions: `npm run emulators`, then
 * `npx georeg serve` in the same folder, each a real process (src/local/emulators.ts and the CLI,
 * compiled to JavaScript once for the run: test/support/process.ts). The folder starts with the user's own local.settings.json (its
 * regions and secrets, no connection strings); the emulators fill in their connections, and serve
 * reads everything from the file: its environment has no georeg setting and there is no local
 * stack. The CLI calls around them (push, doctor) run in-process.
 */

const PUSH_SECRET = randomBytes(18).toString('base64url');
const ADMIN_SECRET = randomBytes(18).toString('base64url');

let dir: string;
let emulators: Spawned | undefined;
let served: Spawned | undefined;
/** local.settings.json as the emulators left it. */
let values: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'georeg-serve-'));
  const own = {
    GEOREG_HOME_REGION: 'westus',
    GEOREG_REGIONS: JSON.stringify([{ name: 'westus' }, { name: 'eastus' }, { name: 'canadacentral' }]),
    GEOREG_PUSH_SECRET: PUSH_SECRET,
    GEOREG_ADMIN_SECRET: ADMIN_SECRET,
  };
  writeFileSync(join(dir, 'local.settings.json'), JSON.stringify({ IsEncrypted: false, Values: own }, null, 2));
  // Any free ports: other engineers' emulators may hold the usual ones.
  emulators = await spawnEntry('src/local/emulators.ts', [], { cwd: dir, env: { ...withoutSettings(process.env), AZURITE_BLOB_PORT: '0', SERVICEBUS_PORT: '0' }, ready: /In memory only/ });
  values = readLocalSettingsValues(join(dir, 'local.settings.json'))!;
}, 120_000);

afterAll(async () => {
  if (served && served.child.exitCode === null) served.child.kill('SIGKILL');
  if (emulators && emulators.child.exitCode === null) {
    emulators.child.kill('SIGTERM');
    await emulators.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A region's registry storage, from the connection string the emulators wrote. */
function storage(region: string) {
  const entry = (JSON.parse(values.GEOREG_REGIONS) as Array<{ name: string; connectionString: string }>).find((r) => r.name === region)!;
  return regionStorageFrom({ region, connectionString: entry.connectionString });
}

/** Starts `georeg serve --port 0` in `cwd`; resolves once it says where it listens. */
async function serve(cwd: string): Promise<Spawned & { apiUrl: string }> {
  const spawned = await spawnEntry('src/cli/main.ts', ['serve', '--port', '0'], { cwd, env: withoutSettings(process.env), ready: /listening on (http:\/\/\S+\/api) / });
  return { ...spawned, apiUrl: spawned.ready[1] };
}

/** The environment without georeg's settings: they must come from the folder's file. */
function withoutSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !isSetting(k)));
}

describe('georeg serve', () => {
  it('after npm run emulators, serves from local.settings.json: a georeg push reaches every region, doctor passes against it, SIGTERM lets running jobs finish and exits 0', async () => {
    // The emulators filled in their connections and kept the user's values.
    expect(values).toMatchObject({ GEOREG_HOME_REGION: 'westus', GEOREG_PUSH_SECRET: PUSH_SECRET, GEOREG_ADMIN_SECRET: ADMIN_SECRET });
    expect(values.ServiceBusConnection).toMatch(/^Endpoint=sb:\/\/127\.0\.0\.1:\d+;.*UseDevelopmentEmulator=true;$/);

    const server = await serve(dir);
    served = server;
    expect(server.output()).toContain(`settings from ${join(dir, 'local.settings.json')}`);
    expect(server.output()).toMatch(/^ok +subscription eastus: on topic "replication" with rule region = 'eastus'$/m);
    // What functions/ registers runs: a replicate trigger per replica region, deliveries, dead letters.
    const triggers = /Service Bus triggers ([^;]*);/.exec(server.output())![1].split(', ');
    expect(triggers).toEqual(expect.arrayContaining(['replicate[eastus]', 'replicate[canadacentral]', 'deliver']));

    const pushed = await runCli(['push', '--generate', '3x64KiB', 'demo/app:v1', '--url', server.apiUrl], { cwd: dir });
    expect(pushed.code, pushed.stderr).toBe(0);
    const image = generated('demo/app', 'v1', { generate: { layers: 3, layerSize: 64 * 1024 } });
    const digest = image.manifests[image.manifests.length - 1].digest;
    // Doctor (in this process) runs while serve (its own) replicates: it needs only the push at home.
    const doctoring = runCli(['doctor', '--api', server.apiUrl], { cwd: dir });
    for (const region of ['eastus', 'canadacentral']) {
      const regionStorage = storage(region);
      await expect.poll(() => regionStorage.readLink({ kind: 'tagCurrent', repository: 'demo/app', tag: 'v1' }), { timeout: 30_000 }).toBe(digest);
      const held = await regionStorage.hasBlobs([...image.blobs, ...image.manifests].map((b) => b.digest));
      expect([...held].filter(([, size]) => size === undefined), `blobs missing in ${region}`).toEqual([]);
    }

    const doctor = await doctoring;
    expect(doctor.code, doctor.stdout).toBe(0);
    expect(doctor.stdout).not.toMatch(/^(FAIL|WARN)/m);
    expect(doctor.stdout).toContain('registry root: "docker/registry/v2" in westus/registry: 1 repository');
    expect(doctor.stdout).toContain(`api: ${server.apiUrl}/push answers and takes GEOREG_PUSH_SECRET`);

    // SIGTERM while jobs copy: they finish and settle before the process exits 0.
    const big = await runCli(['push', '--generate', '2x8MiB', 'demo/app:big', '--url', server.apiUrl], { cwd: dir });
    expect(big.code, big.stderr).toBe(0);
    const pushId = /^push ([0-9a-f-]{36}):/m.exec(big.stdout)![1];
    // Every job started (none left pending, which would wait for redelivery) and one still copying.
    const started = async () => {
      const states = ((await (await fetch(`${server.apiUrl}/pushes/${pushId}`, { headers: { Authorization: `Bearer ${ADMIN_SECRET}` } })).json()) as { regions: Array<{ state: string }> }).regions.map((r) => r.state);
      return !states.includes('pending') && states.includes('copying');
    };
    await expect.poll(started, { interval: 50, timeout: 30_000 }).toBe(true);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.output()).toMatch(/georeg serve: [12] replication job\(s\) running, waiting up to 25 s/);
    expect(server.output()).toContain('georeg serve: stopped');
    const bigDigest = generated('demo/app', 'big', { generate: { layers: 2, layerSize: 8 * 1024 * 1024 } }).manifests[0].digest;
    for (const region of ['eastus', 'canadacentral']) {
      const regionStorage = storage(region);
      expect(await regionStorage.readLink({ kind: 'tagCurrent', repository: 'demo/app', tag: 'big' }), region).toBe(bigDigest);
    }
  }, 120_000);

  it('refuses a --region that is not a replica, naming the ones there are', async () => {
    const res = await runCli(['serve', '--port', '0', '--region', 'westus'], { cwd: dir, env: settingsUnset() });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('--region westus: not a replica region here (replicas: canadacentral, eastus; the home region westus has no replicate trigger)');
  });

  it('refuses to start without settings, naming them and where they may come from', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'georeg-empty-'));
    try {
      const res = await runCli(['serve', '--port', '0'], { cwd: empty, env: settingsUnset() });
      expect(res.code).toBe(1);
      expect(res.stderr).toContain('GEOREG_HOME_REGION, GEOREG_REGIONS, GEOREG_PUSH_SECRET, ServiceBusConnection: missing');
      expect(res.stderr).toContain(`there is no local.settings.json in ${empty}`);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
