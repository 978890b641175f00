import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startStack, type Stack } from '../support/stack';
import type { RegionStorage } from '../../src/storage/region-storage';
import { rawContainer } from '../support/raw-storage';
import { pushImage, settled } from '../support/pipeline';

/**
 * What replica management refuses to do with storage, against the local stack (Azurite, the
 * emulator, the admin API over HTTP): replicate onto a region's own storage, purge storage another
 * region uses, or send a request to an address inside the platform.
 */

let stack: Stack;
/** A storage endpoint on 127.0.0.1 that answers every request 403 with a page of its own. */
let internal: Server;
const internalRequests: string[] = [];
const INTERNAL_PAGE = 'internal-only: db password hunter2';

beforeAll(async () => {
  stack = await startStack({ replicas: ['eastus'], spareAccounts: ['northeurope'], httpPort: 0, log: silentLogger });
  const image = generated('shop/web', '1.0', { generate: { layers: 2, layerSize: 32 * 1024 }, seed: 'storage-safety' });
  const push = await pushImage(stack, image);
  await settled(stack, push.pushId, ['eastus']);
  internal = createServer((req, res) => {
    internalRequests.push(`${req.method} ${req.url}`);
    res.writeHead(403, { 'x-ms-error-code': 'AuthorizationFailure', 'content-type': 'text/plain' });
    res.end(INTERNAL_PAGE);
  });
  await new Promise<void>((r) => internal.listen(0, '127.0.0.1', r));
}, 120_000);

afterAll(async () => {
  internal?.closeAllConnections();
  await new Promise((r) => internal?.close(r));
  await stack?.close();
});

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${stack.host.url}/api${path}`, { method, headers: { 'Content-Type': 'application/json', ...stack.adminHeaders }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** The region's registry container as any client of the account sees it. */
const registryOf = (region: string) => rawContainer(stack.storageConnectionString(region), stack.settings.registry.container);

/** Every blob under the registry root, with its size. */
async function snapshot(storage: RegionStorage): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const prefix = storage.layout.prefix({ kind: 'everything' });
  for await (const b of registryOf(storage.region).listBlobsFlat({ prefix })) out.set(b.name, b.properties.contentLength ?? 0);
  return out;
}

const storageOf = (region: string) => stack.runtime.registry.storageOf({ name: region, storage: { connectionString: stack.storageConnectionString(region) } });

/** The same account as `region`, spelled differently: keys reordered, the endpoint with a capital letter and a trailing slash. */
function respelled(region: string): string {
  const parts = Object.fromEntries(stack.storageConnectionString(region).split(';').filter(Boolean).map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
  const endpoint = parts.BlobEndpoint.replace(new RegExp(`/${region}/?$`), `/${region[0].toUpperCase()}${region.slice(1)}/`);
  return `AccountKey=${parts.AccountKey};BlobEndpoint=${endpoint};AccountName=${parts.AccountName};DefaultEndpointsProtocol=${parts.DefaultEndpointsProtocol}`;
}

/** The same account under another host name (`localhost` for `127.0.0.1`): only a marker tells it is the same. */
const aliased = (region: string) => stack.storageConnectionString(region).replace('127.0.0.1', 'localhost');

describe('replica storage', () => {
  it("refuses a replica on the home region's storage (409, naming it) and home keeps every blob", async () => {
    const home = storageOf('westus');
    const before = await snapshot(home);
    expect(before.size).toBeGreaterThan(0);

    const res = await api('POST', '/replications', { name: 'homeclone', storage: respelled('westus') });

    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error).toMatch(/where the home region westus keeps its registry/);
    expect(res.body.error).not.toMatch(/AccountKey=(?!\*\*\*)/);
    expect((await api('GET', '/replications/homeclone')).status).toBe(404);
    expect(await snapshot(home)).toEqual(before);
  });

  it("refuses a replica on another replica's storage, naming that region", async () => {
    const res = await api('POST', '/replications', { name: 'eastclone', storage: stack.storageConnectionString('eastus') });
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error).toMatch(/region eastus keeps its registry/);
  });

  it("refuses home's storage under another host name, found by a marker, and leaves no marker behind", async () => {
    const res = await api('POST', '/replications', { name: 'homealias', storage: aliased('westus') });
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error).toMatch(/where the home region westus keeps its registry/);
    const left: string[] = [];
    for await (const b of registryOf('westus').listBlobsFlat({ prefix: '_georeg/' })) left.push(b.name);
    expect(left).toEqual([]);
  });

  it('refuses to purge storage another region uses (a record from before the check): nothing is deleted, the region stays', async () => {
    const now = new Date().toISOString();
    await stack.runtime.registry.createRecord({ version: 1, name: 'eastalias', storage: { connectionString: aliased('eastus') }, endpointEnabled: true, status: 'Ready', createdAt: now, updatedAt: now });
    const east = storageOf('eastus');
    const before = await snapshot(east);
    expect(before.size).toBeGreaterThan(0);

    const res = await api('DELETE', '/replications/eastalias?purge=true');

    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error).toMatch(/purge of eastalias refused, nothing was deleted: eastus uses the same storage/);
    expect(await snapshot(east)).toEqual(before);
    expect((await api('GET', '/replications/eastalias')).body.replication).toMatchObject({ name: 'eastalias', status: 'Ready' });
    // Without --purge it goes, and the data stays for eastus.
    expect((await api('DELETE', '/replications/eastalias')).body).toMatchObject({ deleted: 'eastalias', dataKept: true });
    expect(await snapshot(east)).toEqual(before);
  });

  it('storage recorded before these checks, at the metadata address, is sent nothing: its purge is refused naming the address', async () => {
    const now = new Date().toISOString();
    const storage = { connectionString: `DefaultEndpointsProtocol=http;AccountName=meta;AccountKey=${Buffer.from('k').toString('base64')};BlobEndpoint=http://169.254.169.254/meta` };
    await stack.runtime.registry.createRecord({ version: 1, name: 'oldmeta', storage, endpointEnabled: true, status: 'Ready', createdAt: now, updatedAt: now });

    const res = await api('DELETE', '/replications/oldmeta?purge=true');

    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error).toMatch(/purge of oldmeta refused, nothing was deleted: its storage cannot be written \(not sent: 169\.254\.169\.254 resolves to 169\.254\.169\.254, a link-local \/ instance metadata address: storage requests are never sent there\)/);
    expect((await api('DELETE', '/replications/oldmeta')).body).toMatchObject({ deleted: 'oldmeta', dataKept: true });
  });

  it('a purge of storage no other region uses deletes only under the registry root', async () => {
    const created = await api('POST', '/replications', { name: 'northeurope', storage: stack.storageConnectionString('northeurope') });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const north = storageOf('northeurope');
    await expect.poll(async () => (await api('GET', '/replications/northeurope')).body.replication.status, { timeout: 30_000 }).toBe('Ready');
    const beside = registryOf('northeurope').getBlockBlobClient('notes/kept.txt');
    await beside.upload('not registry data', 17);

    const res = await api('DELETE', '/replications/northeurope?purge=true');

    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.purgedBlobs).toBeGreaterThan(0);
    expect((await snapshot(north)).size).toBe(0);
    expect(await beside.exists()).toBe(true);
  });

  it('refuses storage at link-local, metadata and wire-server addresses before sending anything', async () => {
    const key = Buffer.from('k').toString('base64');
    for (const endpoint of ['http://169.254.169.254/meta', 'http://168.63.129.16/meta', 'http://[::ffff:169.254.169.254]/meta']) {
      const res = await api('POST', '/replications', { name: 'probe', storage: `DefaultEndpointsProtocol=http;AccountName=meta;AccountKey=${key};BlobEndpoint=${endpoint}` });
      expect(res.status, endpoint).toBe(400);
      expect(res.body.error, endpoint).toMatch(/storage requests are never sent there/);
    }
    expect((await api('GET', '/replications/probe')).status).toBe(404);
  });

  it("says only the status and error code of a storage endpoint's refusal, never its body", async () => {
    const endpoint = `http://127.0.0.1:${(internal.address() as AddressInfo).port}/acct`;
    const res = await api('POST', '/replications', { name: 'probe', storage: `DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=${Buffer.from('k').toString('base64')};BlobEndpoint=${endpoint}` });
    expect(res.status).toBe(400);
    expect(internalRequests.length).toBeGreaterThan(0);
    expect(res.body.error).toMatch(/cannot be reached or written: it answered 403 AuthorizationFailure/);
    expect(JSON.stringify(res.body)).not.toContain('hunter2');
  });

  it('answers 400, not 500, for a connection string that does not parse', async () => {
    const res = await api('POST', '/replications', { name: 'probe', storage: 'AccountName=x;AccountKey=%zz' });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error).toMatch(/storage for probe: the storage connection string does not parse/);
  });
});
