import { describe, expect, it } from 'vitest';
import { checkStorageEndpoint, storageEndpoint, StorageEndpointError, storageIdentity } from '../../src/storage/endpoint';

const KEY = Buffer.from('not-a-real-key').toString('base64');
const identity = (access: { connectionString?: string; accountUrl?: string }) => storageIdentity(storageEndpoint(access), 'registry', 'docker/registry/v2');

describe('storage identity', () => {
  it('is the same for every spelling of one account: key order, case, trailing slash, default port, http or https, SAS or key', () => {
    const spellings = [
      { connectionString: `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${KEY};EndpointSuffix=core.windows.net` },
      { connectionString: `AccountKey=${KEY};AccountName=acct;DefaultEndpointsProtocol=http;EndpointSuffix=core.windows.net` },
      { connectionString: 'BlobEndpoint=https://ACCT.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=abc' },
      { accountUrl: 'https://acct.blob.core.windows.net:443' },
      { accountUrl: 'https://acct.blob.core.windows.net./' },
    ];
    expect(new Set(spellings.map(identity))).toEqual(new Set(['acct.blob.core.windows.net/registry/docker/registry/v2']));
  });

  it('tells path-style accounts apart by their first path segment, and ports apart', () => {
    const azurite = (account: string, port = 10000) => ({ connectionString: `DefaultEndpointsProtocol=http;AccountName=${account};AccountKey=${KEY};BlobEndpoint=http://127.0.0.1:${port}/${account};` });
    expect(identity(azurite('westus'))).toBe('127.0.0.1:10000/westus/registry/docker/registry/v2');
    expect(identity({ connectionString: `DefaultEndpointsProtocol=http;AccountName=westus;AccountKey=${KEY};BlobEndpoint=http://127.0.0.1:10000/WestUS/;` })).toBe(identity(azurite('westus')));
    expect(identity(azurite('eastus'))).not.toBe(identity(azurite('westus')));
    expect(identity(azurite('westus', 10001))).not.toBe(identity(azurite('westus')));
    expect(identity({ connectionString: 'UseDevelopmentStorage=true' })).toBe('127.0.0.1:10000/devstoreaccount1/registry/docker/registry/v2');
    expect(storageIdentity(storageEndpoint(azurite('westus')), 'other', 'docker/registry/v2')).not.toBe(identity(azurite('westus')));
  });

  it('refuses a connection string the SDK cannot parse, saying what is expected', () => {
    for (const connectionString of ['AccountName=x;AccountKey=%zz', 'AccountName=;', 'BlobEndpoint=not a url;SharedAccessSignature=sig=1']) {
      expect(() => storageEndpoint({ connectionString }), connectionString).toThrow(StorageEndpointError);
      expect(() => storageEndpoint({ connectionString }), connectionString).toThrow(/expected DefaultEndpointsProtocol=https;AccountName=/);
    }
    expect(() => storageEndpoint({ accountUrl: 'ftp://acct.blob.core.windows.net' })).toThrow(/use https/);
  });
});

describe('storage endpoint check', () => {
  const at = (blobEndpoint: string) => storageEndpoint({ connectionString: `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${KEY};BlobEndpoint=${blobEndpoint}` });

  it('asks for https unless private storage is allowed, naming the setting', async () => {
    await expect(checkStorageEndpoint(at('http://8.8.8.8/acct'), false)).rejects.toThrow(/https only.*GEOREG_ALLOW_PRIVATE_STORAGE=true/);
    await expect(checkStorageEndpoint(at('https://8.8.8.8/acct'), false)).resolves.toBeUndefined();
  });

  it('refuses loopback and private addresses unless allowed, and link-local, metadata and wire-server addresses always', async () => {
    for (const url of ['https://127.0.0.1:10000/a', 'https://10.1.2.3/a', 'https://localhost:10000/a', 'https://[::1]/a']) {
      await expect(checkStorageEndpoint(at(url), false), url).rejects.toThrow(/GEOREG_ALLOW_PRIVATE_STORAGE=true/);
      await expect(checkStorageEndpoint(at(url), true), url).resolves.toBeUndefined();
    }
    for (const url of ['http://169.254.169.254/metadata', 'http://168.63.129.16/machine', 'http://[::ffff:169.254.169.254]/a', 'http://[fd00:ec2::254]/a', 'http://0.0.0.0:10000/a']) {
      await expect(checkStorageEndpoint(at(url), true), url).rejects.toThrow(/storage requests are never sent there/);
    }
  });

  it("sends the identity's token only to Azure Storage hosts: an account URL elsewhere is refused, whatever the setting", async () => {
    for (const url of ['https://evil.example.com', 'https://acct.blob.core.windows.net.evil.example', 'https://8.8.8.8/acct', 'https://127.0.0.1:10000/acct']) {
      await expect(checkStorageEndpoint(storageEndpoint({ accountUrl: url }), true), url).rejects.toThrow(/only Azure Storage hosts receive/);
    }
  });
});
