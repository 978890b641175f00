import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { consoleLogger, type Logger } from '../common/log';
import { applyLocalSettings, requireSettingsPresent } from '../config/local-settings';
import { loadSettings } from '../config/settings';
import { formatCheck, runDoctor, type CheckResult } from '../doctor/doctor';
import { startLocalHost, type LocalHost } from '../local/host';
import { createRuntime, type Runtime } from '../runtime';

/**
 * `georeg serve`: the functions (HTTP API, replicate, webhook deliveries, and whatever else the
 * local host runs from functions/) in one long-running process, against the settings in the
 * environment or local.settings.json. This is georeg next to a registry without Azure Functions:
 * on a VM, in a container, on Kubernetes.
 */

export interface ServeFlags {
  port: number;
  host: string;
  region?: string;
  /** Seconds in-flight jobs may take to finish on SIGTERM/SIGINT. */
  drainTimeout: number;
}

export interface Serving {
  /** `http://<address>:<port>/api` */
  apiUrl: string;
  /** Stops taking requests and messages, waits for jobs in flight (up to the drain timeout), closes the clients. */
  stop(): Promise<void>;
}

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const log = consoleLogger;
  const serving = await startServe(flags, log);
  let stopping: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn(`georeg serve: ${signal} again: exiting now; jobs still running are redelivered after their lock expires`);
      process.exit(1);
    }
    log.info(`georeg serve: ${signal}: stopping`);
    stopping = serving.stop().then(
      () => process.exit(0),
      (e: Error) => {
        log.error(`georeg serve: stopping failed: ${e.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * Starts serving; resolves once the API listens. Only a settings error or a home region that
 * cannot be reached stops it from starting: everything else doctor finds is logged and serving
 * goes on, since refusing a registry's notifications would only queue them in the registry's memory.
 */
export async function startServe(flags: ServeFlags, log: Logger): Promise<Serving> {
  const started = Date.now();
  // As `func start` does: the file's Values become environment variables the environment lacks.
  const merged = applyLocalSettings();
  requireSettingsPresent(merged);
  const settings = loadSettings(process.env);
  log.info(`georeg serve: settings from ${merged.source}`);

  let rt: Runtime;
  try {
    rt = await createRuntime(settings);
  } catch (e) {
    // Say everything that is wrong, not just the first thing that failed.
    await runDoctor({ env: process.env, source: merged.source, onResult: logCheck(log) });
    throw new Error(`cannot start: ${(e as Error).message}`);
  }
  try {
    const replicas = (await rt.registry.list()).filter((r) => !r.home);
    if (flags.region && !replicas.some((r) => r.name === flags.region)) {
      throw new Error(`--region ${flags.region}: not a replica region here (replicas: ${replicas.map((r) => r.name).join(', ') || 'none'}; the home region ${settings.homeRegion.name} has no replicate trigger)`);
    }
    // A job writes into its region's registry container; a fresh replica account has none yet.
    // (Home's is the registry's own: doctor reports it missing rather than making an empty one.)
    // In parallel: an unreachable region costs one round of the SDK's retries, not one per region.
    await Promise.all(
      replicas
        .filter((r) => !flags.region || r.name === flags.region)
        .map((r) => rt.registry.storageOf(r).ensureContainer().catch((e: Error) => log.warn(`georeg serve: ${e.message}`))),
    );
    const report = await runDoctor({ env: process.env, source: merged.source, onResult: logCheck(log) });
    if (!report.ok) {
      log.error('georeg serve: the checks above FAILED; serving anyway so that the registry\'s notifications are taken (fix and restart, `georeg doctor` re-checks)');
    }

    const drain = new InFlight();
    const host = await startLocalHost(rt, {
      port: flags.port,
      host: flags.host,
      log,
      regions: flags.region ? [flags.region] : undefined,
      beforeJob: (_region, message) => drain.begin(message),
      onJob: (_region, _outcome, message) => drain.end(message),
    });
    const apiUrl = `http://${flags.host}:${host.port}/api`;
    log.info(`georeg serve: listening on ${apiUrl} (push endpoint ${apiUrl}/push); ${describe(host)}; ready in ${Date.now() - started} ms`);
    return {
      apiUrl,
      async stop() {
        const running = drain.stop();
        log.info(`georeg serve: ${running} replication job(s) running, waiting up to ${flags.drainTimeout} s for them; jobs arriving now are left to their lock`);
        const left = await drain.settled(flags.drainTimeout * 1000);
        if (left > 0) log.warn(`georeg serve: ${left} job(s) still running after ${flags.drainTimeout} s: left to their lock, Service Bus redelivers them`);
        await host.close();
        await rt.close();
        log.info('georeg serve: stopped');
      },
    };
  } catch (e) {
    await rt.close().catch(() => {});
    throw e;
  }
}

/** What the host runs, from what functions/ registers: one line for the log. */
function describe(host: LocalHost): string {
  const running = host.running();
  const http = running.filter((r) => r.kind === 'http').length;
  const triggers = running.flatMap((r) => (r.kind === 'serviceBus' ? [r.region ? `${r.function}[${r.region}]` : r.function] : []));
  const timers = running.flatMap((r) => (r.kind === 'timer' ? [`${r.function} (${r.schedule})`] : []));
  return `${http} HTTP functions; Service Bus triggers ${triggers.join(', ') || 'none'}; timers ${timers.join(', ') || 'none'}`;
}

/** A failed check goes to the error log, loud, as the problem it is; the rest to the info log. */
function logCheck(log: Logger): (r: CheckResult) => void {
  return (r) => (r.status === 'fail' ? log.error : r.status === 'warn' ? log.warn : log.info)(formatCheck(r));
}

/**
 * Replication jobs between their start and their settlement, for a graceful stop. The local host's
 * close() closes its receivers at once, and a message can only be settled through the receiver it
 * came from: a job still running then would finish its copy, fail to complete its message and run
 * again after its lock expires. So serve stops in this order: jobs that arrive from now on wait
 * here and are never handled (they go back to the queue when their lock expires, as an abandon
 * would, without a redelivery loop while this process still receives); jobs already running finish
 * and settle; then the host closes.
 */
class InFlight {
  private readonly running = new Set<ServiceBusReceivedMessage>();
  private stopping = false;
  private idle?: () => void;

  /** Awaited before each job; never resolves once stopping. */
  begin(message: ServiceBusReceivedMessage): Promise<void> {
    if (this.stopping) return new Promise<void>(() => {});
    this.running.add(message);
    return Promise.resolve();
  }

  end(message: ServiceBusReceivedMessage): void {
    this.running.delete(message);
    if (this.running.size === 0) this.idle?.();
  }

  /** From now on no job starts; returns how many are running. */
  stop(): number {
    this.stopping = true;
    return this.running.size;
  }

  /** Resolves with how many are still running: 0 once all settled, more when the time ran out. */
  settled(timeoutMs: number): Promise<number> {
    if (this.running.size === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.running.size), timeoutMs);
      this.idle = () => {
        clearTimeout(timer);
        resolve(0);
      };
    });
  }
}
