import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { StateConflictError, StateNotFoundError, StateSchemaError, StateStore } from '../../src/storage/state-store';
import { lentStateStore } from '../support/stack';

const Counter = z.object({ count: z.number().int(), by: z.array(z.string()) });
type Counter = z.infer<typeof Counter>;

const store = lentStateStore();
let state: StateStore;
beforeAll(() => {
  state = store();
});

describe('StateStore', () => {
  it('replace writes over the version it is given, and refuses (undefined) once another writer changed the document', async () => {
    const etag = await state.create('pushes/p-replace/push.json', { count: 0, by: [] });
    const next = await state.replace('pushes/p-replace/push.json', { count: 1, by: ['a'] }, etag, Counter);
    expect(next).toMatch(/^"0x[0-9A-F]+"$/);
    expect(await state.replace('pushes/p-replace/push.json', { count: 2, by: ['b'] }, etag, Counter)).toBeUndefined();
    expect((await state.get('pushes/p-replace/push.json', Counter))?.value).toEqual({ count: 1, by: ['a'] });
  });

  it('listVersions names each document with the ETag a read of it reports', async () => {
    const etag = await state.create('listed/one.json', { count: 0, by: [] });
    const listed = await state.listVersions('listed/');
    expect(listed.map((l) => l.name)).toEqual(['listed/one.json']);
    expect(listed[0].etag.replace(/"/g, '')).toBe(etag.replace(/"/g, ''));
  });

  it('uses the georeg container by default', () => {
    expect(state.container.containerName).toBe('georeg');
  });

  it('create fails with a conflict when the document exists; get validates with the schema', async () => {
    const etag = await state.create('pushes/p1/push.json', { count: 0, by: [] });
    expect(etag).toMatch(/^"0x[0-9A-F]+"$/);
    await expect(state.create('pushes/p1/push.json', { count: 5, by: [] })).rejects.toBeInstanceOf(StateConflictError);
    const got = await state.get('pushes/p1/push.json', Counter);
    expect(got).toEqual({ value: { count: 0, by: [] }, etag });
    expect(await state.get('pushes/none/push.json', Counter)).toBeUndefined();
    await expect(state.get('pushes/p1/push.json', z.object({ other: z.string() }))).rejects.toBeInstanceOf(StateSchemaError);
    await state.container.getBlockBlobClient('broken.json').upload('{not json', 9);
    await expect(state.get('broken.json', Counter)).rejects.toThrow(/broken.json does not match its schema \(not JSON/);
  });

  it('20 concurrent updates all land: no lost update', async () => {
    await state.create('counter.json', { count: 0, by: [] });
    const writers = Array.from({ length: 20 }, (_, i) => `w${i}`);
    const results = await Promise.all(
      writers.map((w) => state.update('counter.json', (c: Counter) => ({ count: c.count + 1, by: [...c.by, w] }), Counter)),
    );
    const final = await state.get('counter.json', Counter);
    expect(final?.value.count).toBe(20);
    expect([...final!.value.by].sort()).toEqual([...writers].sort());
    expect(results.map((r) => r.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('update gives up with a conflict after the configured attempts when every round is overtaken', async () => {
    const impatient = new StateStore(state.container, { maxUpdateAttempts: 3 });
    await state.put('contended.json', { count: 0, by: [] });
    let calls = 0;
    const attempt = impatient.update(
      'contended.json',
      async (c: Counter) => {
        calls += 1;
        await state.put('contended.json', { count: c.count + 100, by: ['other'] }); // someone else wins the round
        return { count: c.count + 1, by: [...c.by, 'me'] };
      },
      Counter,
    );
    await expect(attempt).rejects.toBeInstanceOf(StateConflictError);
    await expect(attempt).rejects.toThrow(/changed under 3 consecutive updates/);
    expect(calls).toBe(3);
    expect((await state.get('contended.json', Counter))?.value).toEqual({ count: 300, by: ['other'] });
  });

  it('update refuses a missing document and an invalid result', async () => {
    await expect(state.update('absent.json', (c: Counter) => c, Counter)).rejects.toBeInstanceOf(StateNotFoundError);
    await state.put('valid.json', { count: 1, by: [] });
    await expect(state.update('valid.json', (c: Counter) => ({ ...c, count: 1.5 }), Counter)).rejects.toThrow(/would write an invalid document/);
    expect((await state.get('valid.json', Counter))?.value.count).toBe(1);
  });

  it('put overwrites; list by prefix; delete', async () => {
    await state.put('tags/library/web/1.0.json', { count: 1, by: [] });
    await state.put('tags/library/web/1.0.json', { count: 2, by: [] });
    await state.put('tags/library/web/2.0.json', { count: 3, by: [] });
    await state.put('tags/library/webby/1.0.json', { count: 4, by: [] });
    expect((await state.get('tags/library/web/1.0.json', Counter))?.value.count).toBe(2);
    expect(await state.list('tags/library/web/')).toEqual(['tags/library/web/1.0.json', 'tags/library/web/2.0.json']);
    expect(await state.delete('tags/library/web/1.0.json')).toBe(true);
    expect(await state.delete('tags/library/web/1.0.json')).toBe(false);
    expect(await state.list('tags/library/web/')).toEqual(['tags/library/web/2.0.json']);
  });
});
