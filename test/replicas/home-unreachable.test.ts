import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/log';
import { loadSettings } from '../../src/config/settings';
import { handleReplicaAdmin, type ReplicaAdminDeps } from '../../src/replicas/admin-api';
import { ReplicaRegistry } from '../../src/replicas/registry';
import { StateStore } from '../../src/storage/state-store';

/**
 * Management needs the home account (the replica records live there), as in ACR: with home
 * storage unreachable, every replica call answers 503 naming the home region and touches nothing
 * else (no Service Bus call, no region storage).
 */

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('replica management with the home region unreachable', () => {
  it('refuses delete, create and list with 503 naming the home region, and calls nothing else', async () => {
    const key = Buffer.alloc(32, 1).toString('base64');
    const dead = (account: string, port: number) => `DefaultEndpointsProtocol=http;AccountName=${account};AccountKey=${key};BlobEndpoint=http://127.0.0.1:${port}/${account};`;
    const port = await closedPort();
    const settings = loadSettings({
      GEOREG_HOME_REGION: 'westus',
      GEOREG_REGIONS: JSON.stringify([{ name: 'westus', connectionString: dead('westus', port) }, { name: 'eastus', connectionString: dead('eastus', port) }]),
      ServiceBusConnection: 'Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=a2V5;UseDevelopmentEmulator=true;',
      GEOREG_PUSH_SECRET: 'push-secret-push-secret',
    });
    const state = StateStore.forAccount({ connectionString: dead('westus', port), retryOptions: { maxTries: 2, retryDelayInMs: 10, maxRetryDelayInMs: 20 } });
    const untouchable = () => {
      throw new Error('must not be called');
    };
    const deps = {
      settings,
      registry: new ReplicaRegistry(settings, state),
      home: undefined,
      state,
      replicationSender: undefined,
      bus: undefined,
      busAdmin: untouchable,
      log: silentLogger,
    } as unknown as ReplicaAdminDeps;
    for (const req of [
      { method: 'DELETE', name: 'eastus' },
      { method: 'POST', body: JSON.stringify({ name: 'northeurope', storage: dead('northeurope', port) }) },
      { method: 'GET' },
    ]) {
      const res = await handleReplicaAdmin({ query: {}, body: '', headers: {}, ...req }, deps);
      expect(res.status, JSON.stringify(res.jsonBody)).toBe(503);
      expect((res.jsonBody as { error: string }).error).toContain('the home region (westus) cannot be reached');
    }
  });
});
