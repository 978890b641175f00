import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdministrationClient } from '../../src/bus/admin';
import { generated } from '../support/images';
import { writeImage } from '../../src/registry/writer';
import { startServe } from '../../src/cli/serve-command';
import { inFolder, runCli, settingsUnset } from '../support/cli';
import { startDeployment, type Deployment } from '../support/deployment';

/**
 * `georeg doctor` in a folder with local.settings.json, against Azurite and the embedded Service
 * Bus emulator. The registry here is Distribution 2.8 (its Azure driver names blobs
 * `/docker/registry/v2/...`) in container `registry`, and Distribution 3 with
 * `rootdirectory: tenant` in container `registry3`: doctor must find each under its spelling and
 * say which GEOREG_REGISTRY_ROOT to set.
 */

let deployment: Deployment;

beforeAll(async () => {
  deployment = await startDeployment({ home: 'westus', replicas: ['eastus'] });
  for (const [container, root, repository] of [
    ['registry', '/docker/registry/v2', 'team/web'],
    ['registry3', 'tenant/docker/registry/v2', 'team/api'],
  ]) {
    for (const region of ['westus', 'eastus']) await deployment.storage(region, { container }).ensureContainer();
    await writeImage(deployment.storage('westus', { container, root }), generated(repository, '1.0', { generate: { layers: 2, layerSize: 1024 } }));
  }
}, 120_000);

afterAll(async () => {
  await deployment?.close();
});

function doctor(env: Record<string, string | undefined> = {}, args: string[] = []) {
  return runCli(['doctor', ...args], { cwd: deployment.dir, env });
}

describe('georeg doctor', () => {
  it('passes on a correct setup, one line per check', async () => {
    const res = await doctor({ GEOREG_REGISTRY_ROOT: '/docker/registry/v2' });
    expect(res.code, res.stdout).toBe(0);
    const lines = res.stdout.split('\n').filter((l) => /^(ok|WARN|FAIL)/.test(l));
    expect(lines.map((l) => l.replace(/:.*/, ''))).toEqual([
      'ok    settings',
      'ok    secrets',
      'ok    state',
      'ok    storage westus (home)',
      'ok    storage eastus',
      'ok    registry root',
      'ok    service bus',
      'ok    subscription eastus',
      'ok    webhook queue',
      'ok    back-fill queue',
      // No serve runs here, and no API was asked for: a warning, not a failure.
      'WARN  api',
    ]);
    expect(res.stdout).toContain('registry root: "/docker/registry/v2" in westus/registry: 1 repository');
  });

  it('prints the same results as JSON with -o json', async () => {
    const res = await doctor({ GEOREG_REGISTRY_ROOT: '/docker/registry/v2' }, ['-o', 'json']);
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout) as { ok: boolean; results: Array<{ check: string; status: string; detail: string }> };
    expect(report.ok).toBe(true);
    expect(report.results.find((r) => r.check === 'registry root')).toEqual({ check: 'registry root', status: 'ok', detail: '"/docker/registry/v2" in westus/registry: 1 repository' });
  });

  it('fails on a wrong root, naming the spelling that has the data (Distribution 2.8)', async () => {
    const res = await doctor({ GEOREG_REGISTRY_ROOT: 'docker/registry/v2' });
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(
      /^FAIL +registry root: no repositories under GEOREG_REGISTRY_ROOT="docker\/registry\/v2" in westus\/registry, but "\/docker\/registry\/v2" has 1 repository \(Distribution 2\.8's Azure driver keeps the leading slash\): set GEOREG_REGISTRY_ROOT=\/docker\/registry\/v2$/m,
    );
  });

  it('finds a Distribution 3 rootdirectory prefix', async () => {
    const res = await doctor({ GEOREG_REGISTRY_CONTAINER: 'registry3', GEOREG_REGISTRY_ROOT: undefined });
    expect(res.code).toBe(1);
    expect(res.stdout).toContain('"tenant/docker/registry/v2" has 1 repository (Distribution 3 with rootdirectory tenant): set GEOREG_REGISTRY_ROOT=tenant/docker/registry/v2');
  });

  it('fails on a region subscription that would also take other regions\' jobs', async () => {
    const admin = createAdministrationClient(deployment.values.ServiceBusConnection);
    await admin.createRule('replication', 'eastus', 'everything', { sqlExpression: '1=1' });
    try {
      const res = await doctor({ GEOREG_REGISTRY_ROOT: '/docker/registry/v2' });
      expect(res.code).toBe(1);
      expect(res.stdout).toMatch(/^FAIL +subscription eastus: subscription "eastus" on topic "replication": rule "everything" \(1=1\) would deliver other regions' jobs/m);
    } finally {
      await admin.deleteRule('replication', 'eastus', 'everything');
    }
  });

  it('fails an API that is asked for and does not answer', async () => {
    const res = await doctor({ GEOREG_REGISTRY_ROOT: '/docker/registry/v2', GEOREG_API_URL: 'http://127.0.0.1:9/api' });
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/^FAIL +api: http:\/\/127\.0\.0\.1:9\/api\/push does not answer .*is georeg serve running there\?$/m);
  });

  it('georeg serve starts on a wrong root, logging the failure loudly: a registry\'s notifications must still be taken', async () => {
    const logged: Array<[string, string]> = [];
    const log = { info: (m: string) => void logged.push(['info', m]), warn: (m: string) => void logged.push(['warn', m]), error: (m: string) => void logged.push(['error', m]) };
    // All of it in the folder: handlers may read the settings from the environment serve filled.
    const status = await inFolder({ cwd: deployment.dir, env: { ...settingsUnset(), GEOREG_REGISTRY_ROOT: 'docker/registry/v2' } }, async () => {
      const serving = await startServe({ port: 0, host: '127.0.0.1', drainTimeout: 5 }, log);
      try {
        const res = await fetch(`${serving.apiUrl}/push`, { method: 'POST', headers: { Authorization: `Bearer ${deployment.values.GEOREG_PUSH_SECRET}`, 'Content-Type': 'application/json' }, body: '{"events":[]}' });
        return res.status;
      } finally {
        await serving.stop();
      }
    });
    expect(logged).toContainEqual(['error', expect.stringMatching(/^FAIL +registry root: .*set GEOREG_REGISTRY_ROOT=\/docker\/registry\/v2$/)]);
    expect(logged).toContainEqual(['error', expect.stringContaining('the checks above FAILED; serving anyway')]);
    expect(status).toBe(202);
  });

  it('fails on missing settings, naming them', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'georeg-empty-'));
    try {
      const res = await runCli(['doctor'], { cwd: empty, env: settingsUnset() });
      expect(res.code).toBe(1);
      expect(res.stdout).toMatch(/^FAIL +settings: GEOREG_HOME_REGION, GEOREG_REGIONS, GEOREG_PUSH_SECRET, ServiceBusConnection: missing/m);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
