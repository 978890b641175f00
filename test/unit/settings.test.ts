import { describe, expect, it } from 'vitest';
import { loadSettings, SettingsError } from '../../src/config/settings';

const regions = JSON.stringify([
  { name: 'westus', connectionString: 'UseDevelopmentStorage=true' },
  { name: 'eastus', accountUrl: 'https://georegeastus.blob.core.windows.net', endpointEnabled: false },
]);
const good = { GEOREG_HOME_REGION: 'westus', GEOREG_REGIONS: regions, ServiceBusConnection: 'Endpoint=sb://x/', GEOREG_PUSH_SECRET: 'a-secret-of-some-length' };

function problems(env: Record<string, string>): string {
  try {
    loadSettings(env);
  } catch (e) {
    expect(e).toBeInstanceOf(SettingsError);
    return (e as Error).message;
  }
  throw new Error('expected a SettingsError');
}

describe('loadSettings', () => {
  it('parses a complete configuration with defaults', () => {
    const s = loadSettings(good);
    expect(s.homeRegion.name).toBe('westus');
    expect(s.replicaRegions.map((r) => r.name)).toEqual(['eastus']);
    expect(s.replicaRegions[0].endpointEnabled).toBe(false);
    expect(s.registry).toEqual({ container: 'registry', root: 'docker/registry/v2' });
    expect(s.serviceBus.replicationTopic).toBe('replication');
    expect(s.copyConcurrency).toBe(8);
    expect(s.verifyDigests).toBe(true);
  });

  it('names each missing setting', () => {
    const message = problems({});
    expect(message).toMatch(/GEOREG_HOME_REGION: missing/);
    expect(message).toMatch(/GEOREG_REGIONS: missing/);
    expect(message).toMatch(/GEOREG_PUSH_SECRET: missing/);
  });

  it('says what is wrong inside GEOREG_REGIONS', () => {
    expect(problems({ ...good, GEOREG_REGIONS: '[{"name":"westus"' })).toMatch(/GEOREG_REGIONS: not valid JSON/);
    expect(problems({ ...good, GEOREG_REGIONS: '[{"name":"westus"}]' })).toMatch(/GEOREG_REGIONS\[0\]: give exactly one of connectionString or accountUrl/);
    expect(problems({ ...good, GEOREG_REGIONS: '[{"name":"West US","connectionString":"x"}]' })).toMatch(/GEOREG_REGIONS\[0.name\]/);
  });

  it('refuses a home region that is not listed, duplicates, and no Service Bus', () => {
    expect(problems({ ...good, GEOREG_HOME_REGION: 'northeurope' })).toMatch(/GEOREG_HOME_REGION: "northeurope" is not one of GEOREG_REGIONS \(westus, eastus\)/);
    const dup = JSON.stringify([{ name: 'westus', connectionString: 'a' }, { name: 'westus', connectionString: 'b' }]);
    expect(problems({ ...good, GEOREG_REGIONS: dup })).toMatch(/"westus" is listed twice/);
    const shared = JSON.stringify([{ name: 'westus', connectionString: 'UseDevelopmentStorage=true' }, { name: 'eastus', accountUrl: 'http://127.0.0.1:10000/DevStoreAccount1/' }]);
    expect(problems({ ...good, GEOREG_REGIONS: shared })).toMatch(/GEOREG_REGIONS: westus and eastus use the same storage \(127\.0\.0\.1:10000\/devstoreaccount1\/registry\/docker\/registry\/v2\)/);
    const { ServiceBusConnection: _, ...noBus } = good;
    expect(problems(noBus)).toMatch(/ServiceBusConnection: missing/);
  });

  it('refuses bad numbers and booleans with the setting name', () => {
    expect(problems({ ...good, GEOREG_COPY_CONCURRENCY: 'many' })).toMatch(/GEOREG_COPY_CONCURRENCY: expected a whole number/);
    expect(problems({ ...good, GEOREG_VERIFY_DIGESTS: 'maybe' })).toMatch(/GEOREG_VERIFY_DIGESTS: expected true or false/);
    expect(problems({ ...good, GEOREG_PUSH_SECRET: 'short' })).toMatch(/GEOREG_PUSH_SECRET: use at least 16 characters/);
  });
});
