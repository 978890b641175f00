import Module from 'node:module';

/**
 * What functions/ registers, read the way the Functions host reads it. `@azure/functions` hands
 * every `app.http` / `app.serviceBusTopic` / `app.serviceBusQueue` / `app.timer` / `app.generic`
 * registration to the worker through the module `@azure/functions-core`, which only the Azure
 * Functions worker provides (`registerFunction(metadata, handler)`, with the binding metadata the
 * host reads). Standing in for that module, rather than wrapping `app.*`, captures every way of
 * registering with the exact metadata Azure gets (defaults filled in by the library), and needs no
 * hook the package does not have: `app.setup` and `app.hook` see invocations, not registrations.
 *
 * `@azure/functions` looks the module up once, on its first registration, and keeps it: the stand-in
 * is in place for that first import, and later registrations (a test's own `app.timer`) land here too.
 */

export interface Binding {
  name: string;
  type: string;
  direction: 'in' | 'out' | string;
  [property: string]: unknown;
}

export interface Registration {
  name: string;
  /** The trigger binding (direction in, type ending in Trigger). */
  trigger: Binding;
  bindings: Binding[];
  handler: (...args: unknown[]) => unknown;
}

const registered: Registration[] = [];
let loading: Promise<void> | undefined;

const coreStandIn = {
  setProgrammingModel: () => {},
  registerHook: () => ({ dispose: () => {} }),
  registerFunction(metadata: { name: string; bindings: Record<string, Omit<Binding, 'name'>> }, handler: Registration['handler']) {
    const bindings = Object.entries(metadata.bindings).map(([name, b]) => ({ ...b, name }) as Binding);
    const trigger = bindings.find((b) => b.direction === 'in' && /Trigger$/.test(b.type));
    if (!trigger) throw new Error(`function ${metadata.name} registers no trigger binding`);
    if (registered.some((r) => r.name === metadata.name)) throw new Error(`function ${metadata.name} is registered twice`);
    registered.push({ name: metadata.name, trigger, bindings, handler });
    return {
      dispose: () => {
        const at = registered.findIndex((r) => r.name === metadata.name);
        if (at >= 0) registered.splice(at, 1);
      },
    };
  },
};

/** Removes registrations by name: a test's own `app.*` registrations, once it is done with them. */
export function unregister(...names: string[]): void {
  for (const name of names) {
    const at = registered.findIndex((r) => r.name === name);
    if (at >= 0) registered.splice(at, 1);
  }
}

/** Loads functions/index.ts once per process and answers every registration made so far. */
export async function functionRegistrations(): Promise<readonly Registration[]> {
  loading ??= (async () => {
    const mod = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
    const original = mod._load;
    mod._load = function (request: string, ...rest: unknown[]) {
      return request === '@azure/functions-core' ? coreStandIn : original.call(this, request, ...rest);
    };
    try {
      await import('../../functions/index');
    } finally {
      mod._load = original;
    }
    if (!registered.length) {
      throw new Error('functions/index registered nothing: @azure/functions was loaded without the local host first (it then runs in test mode); start the local host before importing functions/');
    }
  })();
  await loading;
  return [...registered];
}
