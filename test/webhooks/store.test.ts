import { beforeAll, describe, expect, it, vi } from 'vitest';
import { StateStore } from '../../src/storage/state-store';
import type { WebhookDefinition } from '../../src/webhooks/definition';
import { WebhookStore } from '../../src/webhooks/store';
import { lentStateStore } from '../support/stack';

const store = lentStateStore();
let state: StateStore;
beforeAll(() => {
  state = store();
});

const definition = (name: string): WebhookDefinition => ({
  version: 1,
  name,
  region: 'eastus',
  serviceUri: 'https://hooks.example.com/georeg',
  actions: ['push'],
  scope: '',
  customHeaders: {},
  status: 'enabled',
  secret: 'a-secret-of-enough-length-0123456789',
  createdAt: new Date().toISOString(),
  updatedAt: new Date().toISOString(),
});

describe('WebhookStore.list (run by every replication job)', () => {
  it('reads a definition once while the listing shows it unchanged, again after an update, and forgets a deleted one', async () => {
    const store = new WebhookStore(state);
    expect(await store.create(definition('hookone'))).toBe(true);
    const reads = vi.spyOn(state, 'get');
    expect((await store.list()).map((w) => w.name)).toEqual(['hookone']);
    expect(reads).toHaveBeenCalledTimes(1);
    // Another job (a new store over the same container) lists again: the listing's ETag matches, nothing is read.
    expect((await new WebhookStore(state).list()).map((w) => w.status)).toEqual(['enabled']);
    expect(reads).toHaveBeenCalledTimes(1);

    await store.update('hookone', (w) => ({ ...w, status: 'disabled' }));
    reads.mockClear();
    expect((await store.list()).map((w) => w.status)).toEqual(['disabled']);
    expect(reads).toHaveBeenCalledTimes(1);

    await store.delete('hookone');
    expect(await store.list()).toEqual([]);
    reads.mockRestore();
  });
});
