import { EventEmitter } from 'node:events';
import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll } from 'vitest';
import { StateStore } from '../../src/storage/state-store';
import { startAzurite, type Azurite } from '../../src/local/azurite';
import { startStack as startOwnStack, type Stack, type StackAccounts, type StackOptions } from '../../src/local/stack';

export type { Stack };

/**
 * `startStack` for tests: the regions' storage accounts are lent by one Azurite per test worker
 * process (test files share their process) instead of an Azurite started per stack, which cost
 * about 2 s and 1.5 s of CPU each time. A stack's accounts are its own while it runs; its regions
 * map to pool accounts (`pool07`), so nothing may assume an account is named after its region.
 * When the stack closes, every container in its accounts is deleted before the accounts go back to
 * the pool: the next stack starts from empty accounts, as with an Azurite of its own.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const events = new EventEmitter().setMaxListeners(0);
  const onSettled = options.host?.onSettled;
  const stack = await startOwnStack({
    accounts: storageAccounts,
    ...options,
    host: { ...options.host, onSettled: (s) => (onSettled?.(s), events.emit('settled', s)) },
  });
  settlements.set(stack, events);
  return stack;
}

/** Each test stack's host settlements (every Service Bus and timer invocation it settled). */
const settlements = new WeakMap<Stack, EventEmitter>();

/**
 * Calls `listener` after each invocation the stack's host settles (a job, a delivery, a timer run):
 * the positive signal a wait on the pipeline's state wakes on (`eventually`'s `wake`). Returns the
 * unsubscribe; undefined for a stack not started here (then poll).
 */
export function onSettlement(stack: Stack): ((listener: () => void) => () => void) | undefined {
  const events = settlements.get(stack);
  return (
    events &&
    ((listener) => {
      events.on('settled', listener);
      return () => events.off('settled', listener);
    })
  );
}

/** Accounts the shared Azurite has; more than the busiest file holds at once (six stacks of five). */
const POOL_SIZE = 48;
const POOL_NAMES = Array.from({ length: POOL_SIZE }, (_, i) => `pool${String(i).padStart(2, '0')}`);

interface Pool {
  azurite: Promise<Azurite>;
  free: string[];
}

/** Kept on globalThis: the pool outlives a test file's module graph within its worker process. */
const POOL = Symbol.for('georeg.test.azuritePool');

function pool(): Pool {
  const g = globalThis as { [POOL]?: Pool };
  if (!g[POOL]) {
    // The worker process ends the Azurite child when it exits (startAzurite's bootstrap).
    const azurite = startAzurite({ accounts: POOL_NAMES });
    azurite.catch(() => (g[POOL] = undefined));
    g[POOL] = { azurite, free: [...POOL_NAMES] };
  }
  return g[POOL];
}

/** Storage accounts, one per name, lent by the worker's shared Azurite; `close()` empties and returns them. */
export async function storageAccounts(names: string[]): Promise<StackAccounts> {
  const p = pool();
  if (p.free.length < names.length) return startAzurite({ accounts: names });
  const lent = new Map(names.map((name) => [name, p.free.shift()!]));
  let azurite: Azurite;
  try {
    azurite = await p.azurite;
  } catch (e) {
    p.free.push(...lent.values());
    throw e;
  }
  const account = (name: string): string => {
    const a = lent.get(name);
    if (!a) throw new Error(`this stack has no storage account for "${name}" (it has ${names.join(', ')})`);
    return a;
  };
  let closed: Promise<void> | undefined;
  return {
    connectionString: (name) => azurite.connectionString(account(name)),
    close: () =>
      (closed ??= (async () => {
        await Promise.all(
          [...lent.values()].map(async (a) => {
            const service = BlobServiceClient.fromConnectionString(azurite.connectionString(a));
            for await (const c of service.listContainers()) await service.deleteContainer(c.name);
          }),
        );
        p.free.push(...lent.values());
      })()),
  };
}

/**
 * A state store on a lent storage account for the file that calls it (registers its own
 * beforeAll/afterAll); the returned function gives the store once the file's tests run.
 */
export function lentStateStore(): () => StateStore {
  let accounts: StackAccounts | undefined;
  let state: StateStore | undefined;
  beforeAll(async () => {
    accounts = await storageAccounts(['westus']);
    state = StateStore.forAccount({ connectionString: accounts.connectionString('westus') });
    await state.ensureContainer();
  });
  afterAll(async () => {
    await accounts?.close();
  });
  return () => {
    if (!state) throw new Error('lentStateStore(): the store exists only inside the tests of the file that asked for it');
    return state;
  };
}
