import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated } from '../../src/cli/push-command';
import { isSetting, runCli, settingsUnset } from '../support/cli';
import { startDeployment, type Deployment } from '../support/deployment';

/**
 * `georeg serve` as an operator runs it: a real process started in a folder whose
 * local.settings.json names the storage accounts (Azurite) and Service Bus (the embedded emulator,
 * over AMQP), with no settings in its environment and no local stack. The process loads the
 * TypeScript once through tsx's loader (one compile per process, about a second here; a full
 * `tsc` build of the project takes 25 s on this machine). The CLI calls around it run in-process.
 */

const MAIN = join(__dirname, '../../src/cli/main.ts');
const TSX_LOADER = pathToFileURL(require.resolve('tsx')).href;

interface Served {
  child: ChildProcess;
  apiUrl: string;
  output(): string;
  exited: Promise<number | null>;
}

let deployment: Deployment;
let served: Served | undefined;

beforeAll(async () => {
  deployment = await startDeployment({ home: 'westus', replicas: ['eastus', 'canadacentral'] });
}, 120_000);

afterAll(async () => {
  if (served && served.child.exitCode === null) served.child.kill('SIGKILL');
  await deployment?.close();
});

/** Starts `georeg serve --port 0` in `cwd`; resolves once it says where it listens. */
async function serve(cwd: string): Promise<Served> {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, MAIN, 'serve', '--port', '0'], { cwd, env: withoutSettings(process.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const apiUrl = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = /listening on (http:\/\/\S+\/api) /.exec(output);
      if (m) resolve(m[1]);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => reject(new Error(`georeg serve exited (${code}) before listening:\n${output}`)));
  });
  return { child, apiUrl, output: () => output, exited };
}

/** The environment without georeg's settings: they must come from the folder's file. */
function withoutSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !isSetting(k)));
}

describe('georeg serve', () => {
  it('serves from local.settings.json: a georeg push reaches every region, doctor passes against it, SIGTERM lets running jobs finish and exits 0', async () => {
    served = await serve(deployment.dir);
    expect(served.output()).toContain(`settings from ${join(deployment.dir, 'local.settings.json')}`);
    expect(served.output()).toMatch(/^ok +subscription eastus: on topic "replication" with rule region = 'eastus'$/m);
    // What functions/ registers runs: a replicate trigger per replica region, deliveries, dead letters.
    const triggers = /Service Bus triggers ([^;]*);/.exec(served.output())![1].split(', ');
    expect(triggers).toEqual(expect.arrayContaining(['replicate[eastus]', 'replicate[canadacentral]', 'deliver']));

    const pushed = await runCli(['push', '--generate', '3x64KiB', 'demo/app:v1', '--url', served.apiUrl], { cwd: deployment.dir });
    expect(pushed.code, pushed.stderr).toBe(0);
    const image = generated('demo/app', 'v1', { generate: { layers: 3, layerSize: 64 * 1024 } });
    const digest = image.manifests[image.manifests.length - 1].digest;
    for (const region of ['eastus', 'canadacentral']) {
      const storage = deployment.storage(region);
      await expect.poll(() => storage.readLink(storage.layout.tagCurrentLink('demo/app', 'v1')), { timeout: 30_000 }).toBe(digest);
      const held = await storage.hasBlobs([...image.blobs, ...image.manifests].map((b) => b.digest));
      expect([...held].filter(([, size]) => size === undefined), `blobs missing in ${region}`).toEqual([]);
    }

    const doctor = await runCli(['doctor', '--api', served.apiUrl], { cwd: deployment.dir });
    expect(doctor.code, doctor.stdout).toBe(0);
    expect(doctor.stdout).not.toMatch(/^(FAIL|WARN)/m);
    expect(doctor.stdout).toContain('registry root: "docker/registry/v2" in westus/registry: 1 repository');
    expect(doctor.stdout).toContain(`api: ${served.apiUrl}/push answers and takes GEOREG_PUSH_SECRET`);

    // SIGTERM while jobs copy: they finish and settle before the process exits 0.
    const big = await runCli(['push', '--generate', '2x8MiB', 'demo/app:big', '--url', served.apiUrl], { cwd: deployment.dir });
    expect(big.code, big.stderr).toBe(0);
    const pushId = /^push ([0-9a-f-]{36}):/m.exec(big.stdout)![1];
    // Every job started (none left pending, which would wait for redelivery) and one still copying.
    const started = async () => {
      const states = ((await (await fetch(`${served!.apiUrl}/pushes/${pushId}`, { headers: { Authorization: `Bearer ${deployment.values.GEOREG_ADMIN_SECRET}` } })).json()) as { regions: Array<{ state: string }> }).regions.map((r) => r.state);
      return !states.includes('pending') && states.includes('copying');
    };
    await expect.poll(started, { interval: 50, timeout: 30_000 }).toBe(true);
    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
    expect(served.output()).toMatch(/georeg serve: [12] replication job\(s\) running, waiting up to 25 s/);
    expect(served.output()).toContain('georeg serve: stopped');
    const bigDigest = generated('demo/app', 'big', { generate: { layers: 2, layerSize: 8 * 1024 * 1024 } }).manifests[0].digest;
    for (const region of ['eastus', 'canadacentral']) {
      const storage = deployment.storage(region);
      expect(await storage.readLink(storage.layout.tagCurrentLink('demo/app', 'big')), region).toBe(bigDigest);
    }
  }, 120_000);

  it('refuses a --region that is not a replica, naming the ones there are', async () => {
    const res = await runCli(['serve', '--port', '0', '--region', 'westus'], { cwd: deployment.dir, env: settingsUnset() });
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
