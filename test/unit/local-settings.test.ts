import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { resolveSettingsSource } from '../../src/cli/target';
import { requireSettingsPresent, settingsEnvironment } from '../../src/config/local-settings';
import { SettingsError } from '../../src/config/settings';
import { emulatorRegions, withEmulatorConnections } from '../../src/local/emulator-settings';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'georeg-settings-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function writeSettings(values: Record<string, unknown>): void {
  writeFileSync(join(dir, 'local.settings.json'), JSON.stringify({ IsEncrypted: false, Values: values }));
}

describe('settings from the environment and local.settings.json', () => {
  it('takes the file\'s Values, with the environment winning key by key', () => {
    writeSettings({ GEOREG_HOME_REGION: 'westus', GEOREG_REGISTRY_ROOT: 'docker/registry/v2', GEOREG_COPY_CONCURRENCY: 4 });
    const merged = settingsEnvironment({ cwd: dir, env: { GEOREG_REGISTRY_ROOT: '/docker/registry/v2' } });
    expect(merged.env).toMatchObject({ GEOREG_HOME_REGION: 'westus', GEOREG_REGISTRY_ROOT: '/docker/registry/v2', GEOREG_COPY_CONCURRENCY: '4' });
    expect(merged.file).toBe(join(dir, 'local.settings.json'));
    expect(merged.source).toBe(`${join(dir, 'local.settings.json')} (2 value(s), 1 more set by the environment, which wins)`);
  });

  it('is the environment alone when there is no file', () => {
    const merged = settingsEnvironment({ cwd: dir, env: { GEOREG_HOME_REGION: 'westus' } });
    expect(merged).toEqual({ env: { GEOREG_HOME_REGION: 'westus' }, source: 'environment' });
  });

  it('names a file that is not JSON', () => {
    writeFileSync(join(dir, 'local.settings.json'), '{ "Values": ');
    expect(() => settingsEnvironment({ cwd: dir, env: {} })).toThrow(SettingsError);
    expect(() => settingsEnvironment({ cwd: dir, env: {} })).toThrow(`${join(dir, 'local.settings.json')}: not valid JSON`);
  });

  it('names the missing settings and both places they may come from', () => {
    writeSettings({ GEOREG_HOME_REGION: 'westus' });
    const merged = settingsEnvironment({ cwd: dir, env: { ServiceBusConnection__fullyQualifiedNamespace: 'ns.servicebus.windows.net' } });
    expect(() => requireSettingsPresent(merged, dir)).toThrow(
      `GEOREG_REGIONS, GEOREG_PUSH_SECRET: missing (neither the environment nor ${join(dir, 'local.settings.json')} sets them)`,
    );
  });
});

describe('npm run emulators: filling local.settings.json', () => {
  const connections = { devStorage: 'dev-conn', storage: (r: string) => `conn-${r}`, serviceBus: 'sb-conn' };

  it('from the sample: the local stack\'s regions, the emulators\' connections, random secrets for the placeholders', () => {
    const sample = { IsEncrypted: false, Values: { REGION_NAME: 'eastus', GEOREG_HOME_REGION: 'westus', GEOREG_REGIONS: '[]', GEOREG_PUSH_SECRET: 'change-me-to-a-long-random-secret', GEOREG_ADMIN_SECRET: 'change-me-too' } };
    const { content, changed } = withEmulatorConnections(sample, emulatorRegions(undefined), connections, () => 'random-secret');
    expect(content.Values).toEqual({
      REGION_NAME: 'eastus',
      GEOREG_HOME_REGION: 'westus',
      GEOREG_REGIONS: JSON.stringify(['westus', 'eastus', 'canadacentral', 'westeurope'].map((name) => ({ name, connectionString: `conn-${name}` }))),
      GEOREG_PUSH_SECRET: 'random-secret',
      GEOREG_ADMIN_SECRET: 'random-secret',
      AzureWebJobsStorage: 'dev-conn',
      ServiceBusConnection: 'sb-conn',
    });
    expect(content.IsEncrypted).toBe(false);
    expect(changed).toContain("GEOREG_PUSH_SECRET (was the sample's placeholder)");
  });

  it('an existing file keeps its regions, their other fields and every other value; only connections change', () => {
    const values = {
      GEOREG_HOME_REGION: 'norway',
      GEOREG_REGIONS: JSON.stringify([{ name: 'sweden', connectionString: 'old', endpointEnabled: false }, { name: 'norway', accountUrl: 'https://x.blob.core.windows.net' }]),
      GEOREG_PUSH_SECRET: 'my-own-secret-of-some-length',
      GEOREG_REGISTRY_ROOT: '/docker/registry/v2',
      ServiceBusConnection: 'old-sb',
    };
    const regions = emulatorRegions(values);
    expect(regions.home).toBe('norway');
    const { content } = withEmulatorConnections({ Values: values, Host: { LocalHttpPort: 7072 } }, regions, connections);
    expect(content.Host).toEqual({ LocalHttpPort: 7072 });
    expect(content.Values).toEqual({
      ...values,
      GEOREG_REGIONS: JSON.stringify([{ name: 'norway', connectionString: 'conn-norway' }, { name: 'sweden', endpointEnabled: false, connectionString: 'conn-sweden' }]),
      ServiceBusConnection: 'sb-conn',
      AzureWebJobsStorage: 'dev-conn',
    });
  });

  it('refuses a region name Azurite cannot use as an account', () => {
    expect(() => emulatorRegions({ GEOREG_HOME_REGION: 'eu', GEOREG_REGIONS: '[{"name":"eu","connectionString":"x"}]' })).toThrow('region "eu" cannot be an Azurite account');
  });
});

describe('where the CLI sends things', () => {
  const file = { GEOREG_HOME_REGION: 'westus', GEOREG_REGIONS: '[]', GEOREG_PUSH_SECRET: 'x'.repeat(16), ServiceBusConnection: 'from-file' };
  function writeStack(pid: number): void {
    mkdirSync(join(dir, '.georeg'));
    writeFileSync(join(dir, '.georeg', 'local-stack.json'), JSON.stringify({ apiUrl: 'http://127.0.0.1:7999/api', env: { ...file, ServiceBusConnection: 'from-stack' }, pid }));
  }
  beforeEach(() => {
    for (const k of Object.keys(process.env)) if (k.startsWith('GEOREG_') || k.startsWith('ServiceBusConnection')) vi.stubEnv(k, undefined);
  });
  afterEach(() => vi.unstubAllEnvs());

  it('local.settings.json without a local stack: the default API', () => {
    writeSettings(file);
    const target = resolveSettingsSource({}, dir);
    expect(target).toMatchObject({ apiUrl: 'http://127.0.0.1:7071/api', apiExplicit: false });
    expect(target.env.ServiceBusConnection).toBe('from-file');
  });

  it('GEOREG_API_URL names the API, from the file or the environment', () => {
    writeSettings({ ...file, GEOREG_API_URL: 'http://file:1/api/' });
    expect(resolveSettingsSource({}, dir)).toMatchObject({ apiUrl: 'http://file:1/api', apiExplicit: true });
    vi.stubEnv('GEOREG_API_URL', 'http://env:2/api');
    expect(resolveSettingsSource({}, dir).apiUrl).toBe('http://env:2/api');
    expect(resolveSettingsSource({ url: 'http://flag:3/api' }, dir).apiUrl).toBe('http://flag:3/api');
  });

  it('a running npm start wins over local.settings.json; a stale stack file (its process gone) is ignored', () => {
    writeSettings(file);
    writeStack(process.pid);
    expect(resolveSettingsSource({}, dir)).toMatchObject({ apiUrl: 'http://127.0.0.1:7999/api', env: { ServiceBusConnection: 'from-stack' } });
    rmSync(join(dir, '.georeg'), { recursive: true });
    // A process that has ended (`node --version` ends before starting a script: ~20 ms, not ~150).
    writeStack(spawnSync(process.execPath, ['--version']).pid!);
    expect(resolveSettingsSource({}, dir)).toMatchObject({ apiUrl: 'http://127.0.0.1:7071/api', env: { ServiceBusConnection: 'from-file' } });
  });
});
