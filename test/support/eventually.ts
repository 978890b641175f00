import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `read` until `done` accepts its value and returns that value: `expect.poll` for a wait
 * whose result the test goes on to use, and for hooks (`expect.poll` works only inside a test).
 * A `read` that throws is tried again. On timeout it fails naming `what` and the last value seen.
 * The one polling loop of the test suite.
 *
 * `wake` subscribes to a positive signal that the value may have changed (a settled invocation:
 * see `onSettlement`): the next read then follows it at once instead of waiting out the interval,
 * so the interval can be long and a wait costs a read per event, not one per 50 ms.
 */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  options: { what: string; timeout?: number; interval?: number; wake?: (wakeUp: () => void) => () => void },
): Promise<T> {
  const deadline = Date.now() + (options.timeout ?? 30_000);
  let last: { value: T } | { error: unknown } | undefined;
  // Set by an event during a read too, so an event the read may have missed is not slept through.
  let woken = false;
  let wakeUp: (() => void) | undefined;
  const unsubscribe = options.wake?.(() => {
    woken = true;
    wakeUp?.();
  });
  try {
    for (;;) {
      woken = false;
      try {
        const value = await read();
        if (done(value)) return value;
        last = { value };
      } catch (error) {
        last = { error };
      }
      if (Date.now() > deadline) {
        const seen = !last ? 'nothing' : 'value' in last ? JSON.stringify(last.value) : String(last.error);
        throw new Error(`${options.what}: timed out; last seen ${seen}`);
      }
      if (woken) continue;
      const abort = new AbortController();
      wakeUp = () => abort.abort();
      await sleep(options.interval ?? 50, undefined, { signal: abort.signal }).catch(() => undefined);
      wakeUp = undefined;
    }
  } finally {
    unsubscribe?.();
  }
}
