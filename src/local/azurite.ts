import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * Azurite's blob service with one storage account per region, for the embedded stack, the tests and
 * the benchmarks.
 *
 * It runs as a child process, not in-process: on a 2-core machine Azurite's request handling and
 * in-memory extent copying would otherwise share our event loop and skew every copy measurement.
 * The accounts come from AZURITE_ACCOUNTS (`name:base64key;...`), which replaces Azurite's default
 * `devstoreaccount1`. Data lives in memory; Azurite refuses `--location` with `--inMemoryPersistence`,
 * so its working directory is a temp dir instead and nothing it writes lands in the repository. Path-style URLs (`http://127.0.0.1:<port>/<account>`) address the accounts.
 */

export interface AzuriteOptions {
  /** Storage account names (3-24 lowercase letters and digits), e.g. one per region. */
  accounts: string[];
  host?: string;
  /** 0 (the default) lets the OS pick a free port. */
  blobPort?: number;
  /** Suppress Azurite's access log (default true). */
  silent?: boolean;
  /** Milliseconds to wait for Azurite to listen (default 30 s). */
  startTimeoutMs?: number;
  /**
   * Milliseconds between Azurite's blob garbage collections (its default: 10 minutes; default here
   * `GEOREG_AZURITE_GC_INTERVAL_MS` when set). A collection walks every blob's extents in one
   * synchronous pass: with ~300,000 blobs (a 20,000-tag back-fill bench) it held Azurite's only core
   * for minutes and stalled the run, so the back-fill bench sets a longer interval.
   */
  gcIntervalMs?: number;
}

export interface Azurite {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  blobEndpoint(account: string): string;
  connectionString(account: string): string;
  /** The account key, base64. */
  accountKey(account: string): string;
  close(): Promise<void>;
}

const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;

export async function startAzurite(options: AzuriteOptions): Promise<Azurite> {
  const host = options.host ?? '127.0.0.1';
  const accounts = [...new Set(options.accounts)];
  if (accounts.length === 0) throw new Error('startAzurite: give at least one account name');
  for (const a of accounts) {
    // Azurite silently falls back to devstoreaccount1 when AZURITE_ACCOUNTS does not parse.
    if (!ACCOUNT_NAME.test(a)) throw new Error(`startAzurite: "${a}" is not a valid storage account name (3-24 lowercase letters and digits)`);
  }
  const keys = new Map(accounts.map((a) => [a, randomBytes(64).toString('base64')]));
  const location = mkdtempSync(join(tmpdir(), 'georeg-azurite-'));
  const main = join(dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'blob', 'main.js');
  const args = [
    '--blobHost', host,
    '--blobPort', String(options.blobPort ?? 0),
    '--inMemoryPersistence',
    '--skipApiVersionCheck',
    '--loose',
    '--disableProductStyleUrl',
    '--disableTelemetry',
    ...(options.silent === false ? [] : ['--silent']),
  ];
  // A small bootstrap: when the parent goes away without close() (its IPC channel closes: a killed
  // test worker), remove the temp dir and exit, so no orphaned Azurite holds memory; then run
  // Azurite's own entry point.
  const lokijs = require.resolve('lokijs', { paths: [dirname(main)] });
  const uriTemplates = require.resolve('uri-templates', { paths: [dirname(main)] });
  const gcIntervalMs = options.gcIntervalMs ?? (process.env.GEOREG_AZURITE_GC_INTERVAL_MS ? Number(process.env.GEOREG_AZURITE_GC_INTERVAL_MS) : undefined);
  if (gcIntervalMs !== undefined && !(Number.isInteger(gcIntervalMs) && gcIntervalMs > 0)) {
    throw new Error(`startAzurite: the GC interval must be a positive whole number of milliseconds (GEOREG_AZURITE_GC_INTERVAL_MS), got ${gcIntervalMs}`);
  }
  const bootstrap = [
    `process.on('disconnect', () => { try { require('node:fs').rmSync(${JSON.stringify(location)}, { recursive: true, force: true }); } finally { process.exit(0); } });`,
    // Azurite keeps blob metadata in LokiJS, indexed by account, container, name and snapshot, and
    // looks a blob up as { accountName, containerName, name, ... }. LokiJS uses the index of the
    // query's first field only and scans the rest, and keeping an index of a field most documents
    // share (every blob of an account has the same accountName, nearly all the same snapshot '')
    // scans that whole run of equal values on each update and delete. Both made each request cost
    // time linear in the account's blobs: 70 ms per lookup at 150,000 (a 20,000-tag registry), and
    // writing such a registry never finished. So: collections index only their selective fields
    // (name, blobName, id), a query asks by name (or blobName) first, and a listing's prefix (a
    // regex `^prefix`, which no index serves) is the same name range. Same results: the filters are
    // ANDed; only their order and form, and which of them an index serves, change.
    `{ const L = require(${JSON.stringify(lokijs)}), R = L.Resultset.prototype, find = R.find, add = L.prototype.addCollection;`,
    `  L.prototype.addCollection = function (name, options) { if (options && options.indices) options = { ...options, indices: options.indices.filter((i) => !['accountName', 'containerName', 'snapshot'].includes(i)) }; return add.call(this, name, options); };`,
    `  R.find = function (q, firstOnly) {`,
    `    const re = q && q.name && typeof q.name === 'object' && Object.keys(q.name).length === 1 && typeof q.name.$regex === 'string' && /^\\^((?:\\\\.|[^\\\\.*+?^$|()[\\]{}])*)$/.exec(q.name.$regex);`,
    `    if (re) { const prefix = re[1].replace(/\\\\(.)/g, '$1'); q = { ...q, name: { $between: [prefix, prefix + '\\uffff'] } }; }`,
    `    const key = q && ['name', 'blobName'].find((k) => q[k] !== undefined);`,
    `    if (key && Object.keys(q)[0] !== key) q = { [key]: q[key], ...q };`,
    `    return find.call(this, q, firstOnly); }; }`,
    // Azurite finds a request's operation by matching its path against the URI template of each of
    // its ~100 operations, and parsed every template again for every request and operation: its CPU
    // per request (1 KiB upload, HEAD, download; 4,500 requests) was 1.36-1.84 ms, 1.15-1.18 ms with
    // parsed templates kept by their text. Matching is the same (a parsed template holds no state
    // between matches).
    `{ const U = require(${JSON.stringify(join(dirname(main), 'generated', 'utils', 'utils.js'))}), T = require(${JSON.stringify(uriTemplates)}), parsed = new Map();`,
    `  U.isURITemplateMatch = (url, template) => { let t = parsed.get(template); if (!t) parsed.set(template, (t = T(template)));`,
    `    const r = t.fromUri(url, { strict: true }); if (r === undefined) return false; for (const k in r) if (Object.prototype.hasOwnProperty.call(r, k) && r[k] === '') return false; return true; }; }`,
    // Azurite finds a request's operation by trying all 72 of its specifications in turn. Those
    // with another HTTP method, or another constant \`comp\` or \`restype\` query parameter, can never
    // match: the loop now tries only the others (the list kept per method, comp and restype), in
    // the same order, so the same operation wins. Dispatch was ~5% of Azurite's CPU per request.
    // Patched in its source text: when Azurite changes that loop, the text is not found and its
    // own module runs unchanged.
    `{ const file = ${JSON.stringify(join(dirname(main), 'generated', 'middleware', 'dispatch.middleware.js'))}, M = require('node:module'), src = require('node:fs').readFileSync(file, 'utf8');`,
    `  const loop = 'for (const key in operation_1.default) {\\n        if (operation_1.default.hasOwnProperty(key)) {\\n            const operation = parseInt(key, 10);';`,
    `  const candidates = \`const candidatesByKey = new Map();`,
    `function candidates(req) {`,
    `  const x = req.getHeader("X-HTTP-Method"); let method = req.getMethod();`,
    `  if (x && x.length > 0) { const v = x.trim(); if (v === "GET" || v === "MERGE" || v === "PATCH" || v === "DELETE") method = v; }`,
    `  const comp = req.getQuery("comp"), restype = req.getQuery("restype"), key = method + "|" + comp + "|" + restype;`,
    `  let ops = candidatesByKey.get(key);`,
    `  if (ops) return ops;`,
    `  ops = [];`,
    `  for (const k in operation_1.default) {`,
    `    if (!operation_1.default.hasOwnProperty(k)) continue;`,
    `    const op = parseInt(k, 10), spec = specifications_1.default[op];`,
    `    if (spec === undefined || spec.httpMethod !== method) continue;`,
    `    const fixed = (spec.queryParameters || []).filter((p) => p.mapper.required && p.mapper.isConstant);`,
    `    if (fixed.some((p) => (p.mapper.serializedName === "comp" && p.mapper.defaultValue !== comp) || (p.mapper.serializedName === "restype" && p.mapper.defaultValue !== restype))) continue;`,
    `    ops.push(op);`,
    `  }`,
    `  if (candidatesByKey.size > 1000) candidatesByKey.clear();`,
    `  candidatesByKey.set(key, ops);`,
    `  return ops;`,
    `}\`;`,
    `  if (src.includes(loop)) { const m = new M(file, module); m.filename = file; m.paths = M._nodeModulePaths(require('node:path').dirname(file));`,
    `    m._compile(src.replace(loop, 'for (const operation of candidates(req)) {\\n        {') + '\\n' + candidates, file); m.loaded = true; require.cache[file] = m; } }`,
    // Azurite gives every request an id (uuid 3's v4), which asked the OS for 16 random bytes each
    // time: 0.7 of an Azurite's 25 CPU-s in a test run. Its random source now draws them from a
    // 4 KiB buffer refilled from the same crypto.randomBytes; the ids are as random as before.
    `{ const rng = require.resolve('uuid/lib/rng', { paths: [${JSON.stringify(dirname(main))}] }), C = require('node:crypto'); require(rng); let pool = Buffer.alloc(0), at = 0;`,
    `  require.cache[rng].exports = () => { if (at + 16 > pool.length) { pool = C.randomBytes(4096); at = 0; } return pool.subarray(at, (at += 16)); }; }`,
    // The blob GC reads its interval from this constant when Azurite builds it (see gcIntervalMs).
    ...(gcIntervalMs ? [`require(${JSON.stringify(join(dirname(main), 'utils', 'constants.js'))}).DEFAULT_GC_INTERVAL_MS = ${gcIntervalMs};`] : []),
    `process.argv.splice(1, 0, ${JSON.stringify(main)});`,
    `require(${JSON.stringify(main)});`,
  ].join(' ');
  const child = spawn(process.execPath, ['-e', bootstrap, '--', ...args], {
    cwd: location,
    env: { ...process.env, AZURITE_ACCOUNTS: accounts.map((a) => `${a}:${keys.get(a)}`).join(';') },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });

  let port: number;
  try {
    port = await listening(child, options.startTimeoutMs ?? 30_000);
  } catch (e) {
    await stop(child);
    rmSync(location, { recursive: true, force: true });
    throw e;
  }
  // From here on Azurite must not keep our process alive; close() ends it explicitly.
  child.stdout?.resume();
  child.stderr?.resume();
  child.unref();
  (child.stdout as unknown as { unref?: () => void })?.unref?.();
  (child.stderr as unknown as { unref?: () => void })?.unref?.();
  child.channel?.unref();

  const url = `http://${host}:${port}`;
  const known = (account: string): string => {
    const key = keys.get(account);
    if (!key) throw new Error(`Azurite at ${url} has no account "${account}" (it has ${accounts.join(', ')})`);
    return key;
  };
  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    blobEndpoint: (account) => (known(account), `${url}/${account}`),
    accountKey: known,
    connectionString: (account) =>
      `DefaultEndpointsProtocol=http;AccountName=${account};AccountKey=${known(account)};BlobEndpoint=${url}/${account};`,
    close() {
      closed ??= stop(child).finally(() => rmSync(location, { recursive: true, force: true }));
      return closed;
    },
  };
}

/** Resolves with the port once Azurite prints that it listens; rejects with its output if it exits first. */
function listening(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => done(new Error(`Azurite did not start listening within ${timeoutMs} ms. Output:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = /successfully listens on https?:\/\/[^\s]*:(\d+)/.exec(output);
      if (m) done(undefined, Number(m[1]));
    };
    const onExit = (code: number | null, signal: string | null) =>
      done(new Error(`Azurite exited before listening (code ${code}, signal ${signal}). Output:\n${output}`));
    const done = (error?: Error, port?: number) => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      if (error) reject(error);
      else resolve(port!);
    };
    const onError = (e: Error) => done(new Error(`could not start Azurite: ${e.message}`));
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/**
 * Kills Azurite and resolves once the process is gone. SIGKILL straight away: the data is in memory
 * and is meant to go, and Azurite's graceful close on SIGTERM waits for every client's idle
 * keep-alive socket to time out.
 */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.ref(); // keep our process alive until the exit is seen
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
