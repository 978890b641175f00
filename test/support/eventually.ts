import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `read` until `done` accepts its value and returns that value: `expect.poll` for a wait
 * whose result the test goes on to use, and for hooks (`expect.poll` works only inside a test).
 * A `read` that throws is tried again. On timeout it fails naming `what` and the last value seen.
 * The one polling loop of the test suite.
 */
export async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, options: { what: string; timeout?: number; interval?: number }): Promise<T> {
  const deadline = Date.now() + (options.timeout ?? 30_000);
  let last: { value: T } | { error: unknown } | undefined;
  for (;;) {
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
    await sleep(options.interval ?? 50);
  }
}
