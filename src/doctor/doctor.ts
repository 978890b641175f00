import type { ServiceBusAdministrationClient } from '@azure/service-bus';
import { defaultAzureCredential } from '../common/identity';
import { createAdministrationClient } from '../bus/admin';
import { regionSubscriptionProblem } from '../bus/subscriptions';
import { loadSettings, SettingsError, type Settings } from '../config/settings';
import { EVENTS_MEDIA_TYPE } from '../notifications/sender';
import { ReplicaRegistry, settingStorage, type Replica } from '../replicas/registry';
import { blobServiceClient } from '../storage/clients';
import { DISTRIBUTION_ROOT } from '../storage/paths';
import { countRepositories, findRegistryRoots, type RootContents } from '../storage/registry-roots';
import { StateStore } from '../storage/state-store';

/**
 * `georeg doctor`, and what `georeg serve` checks when it starts: is this deployment wired the way
 * replication needs? One line per check, each saying what it found and, when wrong, what to do.
 * Read-only: it creates and repairs nothing.
 *
 * `fail` is a deployment that will not replicate; `warn` is worth a look but may be right (an empty
 * registry before its first push, an API not running where doctor runs).
 */

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  check: string;
  status: CheckStatus;
  detail: string;
}

export interface DoctorInput {
  /** Settings in environment-variable form (environment over local.settings.json). */
  env: Record<string, string | undefined>;
  /** Where the settings came from, said on the settings line. */
  source: string;
  /** The API to call; `required` makes a silent API a failure rather than a warning. */
  api?: { url: string; required: boolean };
  /** Each result as it is known (a slow storage account should not hide the lines before it). */
  onResult?: (result: CheckResult) => void;
}

export interface DoctorReport {
  results: CheckResult[];
  /** Undefined when the settings do not validate (nothing else was checked then). */
  settings?: Settings;
  ok: boolean;
}

/** The sample file's placeholders: a deployment still using them has no secret at all. */
const PLACEHOLDER = /^change-me/;

/** Fail fast where the SDKs would retry for a minute: doctor answers a person waiting for it. */
const STORAGE_RETRY = { maxTries: 2, retryDelayInMs: 500, tryTimeoutInMs: 15_000 };

export async function runDoctor(input: DoctorInput): Promise<DoctorReport> {
  const results: CheckResult[] = [];
  const report = (check: string, status: CheckStatus, detail: string) => {
    const r = { check, status, detail };
    results.push(r);
    input.onResult?.(r);
  };

  let settings: Settings;
  try {
    settings = loadSettings(input.env as NodeJS.ProcessEnv);
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    report('settings', 'fail', `from ${input.source}: ${e.problems.join('; ')}`);
    return { results, ok: false };
  }
  report(
    'settings',
    'ok',
    `valid, from ${input.source}: home ${settings.homeRegion.name}, replicas ${settings.replicaRegions.map((r) => r.name).join(', ') || '(none)'}, container "${settings.registry.container}", root "${settings.registry.root}"`,
  );
  checkSecrets(settings, report);

  const regions = await knownRegions(settings, report);
  const homeContainer = await checkStorage(settings, regions, report);
  if (homeContainer) await checkRoot(settings, homeContainer, report);
  await checkBus(settings, regions, report);
  if (input.api) await checkApi(settings, input.api, report);
  return { results, settings, ok: results.every((r) => r.status !== 'fail') };
}

/** One line of output, aligned: `ok    storage westus: ...`. */
export function formatCheck(r: CheckResult): string {
  const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' }[r.status];
  return `${mark}  ${r.check}: ${r.detail}`;
}

type Report = (check: string, status: CheckStatus, detail: string) => void;

function checkSecrets(settings: Settings, report: Report): void {
  if (PLACEHOLDER.test(settings.pushSecret)) {
    return report('secrets', 'fail', 'GEOREG_PUSH_SECRET is still the sample\'s placeholder: set a long random value (e.g. `openssl rand -base64 24`) and the same in the registry\'s notification headers');
  }
  if (settings.adminSecret && PLACEHOLDER.test(settings.adminSecret)) {
    return report('secrets', 'fail', 'GEOREG_PUSH_SECRET is set, but GEOREG_ADMIN_SECRET is still the sample\'s placeholder: set a long random value, or remove it where function keys guard the admin API');
  }
  report('secrets', 'ok', `GEOREG_PUSH_SECRET set (${settings.pushSecret.length} characters)${settings.adminSecret ? ', GEOREG_ADMIN_SECRET set' : ''}`);
}

/**
 * The regions to check: GEOREG_REGIONS and those `replication create` added (their records live in
 * the home account's state container). Unreadable records are reported and the settings used.
 */
async function knownRegions(settings: Settings, report: Report): Promise<Replica[]> {
  const fromSettings = (): Replica[] =>
    settings.regions.map((r) => ({
      name: r.name,
      source: 'settings',
      storage: settingStorage(r),
      endpointEnabled: r.endpointEnabled,
      status: 'Ready',
      home: r.name === settings.homeRegion.name,
    }));
  const state = StateStore.forAccount({ ...settingStorage(settings.homeRegion), container: settings.stateContainer, retryOptions: STORAGE_RETRY });
  try {
    if (!(await state.container.exists())) {
      report('state', 'ok', `container "${settings.stateContainer}" in ${settings.homeRegion.name} not there yet: georeg creates it when it first starts`);
      return fromSettings();
    }
    const all = await new ReplicaRegistry(settings, state).list();
    const created = all.filter((r) => r.source === 'created').map((r) => r.name);
    report('state', 'ok', `container "${settings.stateContainer}" in ${settings.homeRegion.name}${created.length ? `; replicas added at run time: ${created.join(', ')}` : ''}`);
    return all;
  } catch (e) {
    report('state', 'fail', `cannot read container "${settings.stateContainer}" in ${settings.homeRegion.name}: ${firstLine(e)}`);
    return fromSettings();
  }
}

/** Each region's registry container; returns home's client when it is there. */
async function checkStorage(settings: Settings, regions: Replica[], report: Report) {
  let home;
  for (const region of regions) {
    const what = `storage ${region.name}${region.home ? ' (home)' : ''}`;
    let container;
    try {
      container = blobServiceClient({ ...region.storage, retryOptions: STORAGE_RETRY }, `region ${region.name}`).getContainerClient(settings.registry.container);
      if (await container.exists()) {
        report(what, 'ok', `${container.url} reachable, container present`);
        if (region.home) home = container;
        continue;
      }
    } catch (e) {
      report(what, 'fail', `unreachable: ${firstLine(e)}. Check the region's connection string or account URL in ${region.source === 'settings' ? 'GEOREG_REGIONS' : 'its replica record (georeg replication show)'}, and the identity's role (Storage Blob Data Contributor)`);
      continue;
    }
    report(
      what,
      'fail',
      region.home
        ? `${container.url}: container "${settings.registry.container}" is missing. The registry writes to it: check GEOREG_REGISTRY_CONTAINER against the registry's storage.azure.container`
        : `${container.url}: container "${settings.registry.container}" is missing: \`georeg serve\` creates it when it starts, or create it (az storage container create -n ${settings.registry.container})`,
    );
  }
  return home;
}

async function checkRoot(settings: Settings, container: Parameters<typeof countRepositories>[0], report: Report): Promise<void> {
  const where = `${settings.homeRegion.name}/${settings.registry.container}`;
  try {
    const configured = await countRepositories(container, settings.registry.root);
    if (configured.repositories > 0) {
      return report('registry root', 'ok', `"${configured.root}" in ${where}: ${count(configured)}`);
    }
    const others = (await findRegistryRoots(container)).filter((r) => r.root !== configured.root && r.repositories > 0);
    if (others.length === 0) {
      return report(
        'registry root',
        'warn',
        `no repositories under "${configured.root}" in ${where}, and no other registry root there has any: right before the first push; otherwise the registry writes to another container or account`,
      );
    }
    const [best] = others;
    const also = others.slice(1).map((r) => `"${r.root}" (${count(r)})`);
    report(
      'registry root',
      'fail',
      `no repositories under GEOREG_REGISTRY_ROOT="${configured.root}" in ${where}, but "${best.root}" has ${count(best)} (${spelling(best.root)}): set GEOREG_REGISTRY_ROOT=${best.root}${also.length ? `; also found ${also.join(', ')}` : ''}`,
    );
  } catch (e) {
    report('registry root', 'fail', `cannot list ${where}: ${firstLine(e)}`);
  }
}

function count(r: RootContents): string {
  return `${r.complete ? '' : 'at least '}${r.repositories} repositor${r.repositories === 1 ? 'y' : 'ies'}`;
}

/** Which registry writes a root spelled this way. */
function spelling(root: string): string {
  const prefix = root.slice(0, -DISTRIBUTION_ROOT.length).replace(/\/$/, '');
  if (root.startsWith('/')) return prefix === '' ? "Distribution 2.8's Azure driver keeps the leading slash" : `Distribution 2.8 with rootdirectory ${prefix}`;
  return prefix === '' ? 'Distribution 3 without rootdirectory' : `Distribution 3 with rootdirectory ${prefix}`;
}

async function checkBus(settings: Settings, regions: Replica[], report: Report): Promise<void> {
  const { replicationTopic: topic, webhookQueue: queue } = settings.serviceBus;
  const namespace = settings.serviceBus.fullyQualifiedNamespace ?? 'ServiceBusConnection';
  let admin: ServiceBusAdministrationClient;
  try {
    const options = { retryOptions: { maxRetries: 1, retryDelayInMs: 500 } };
    admin = settings.serviceBus.connectionString
      ? createAdministrationClient(settings.serviceBus.connectionString, options)
      : createAdministrationClient({ fullyQualifiedNamespace: settings.serviceBus.fullyQualifiedNamespace!, credential: defaultAzureCredential() }, options);
    if (!(await admin.topicExists(topic))) {
      report('service bus', 'fail', `topic "${topic}" is missing in ${namespace}: deploy infra/main.bicep, or add it to the emulator's Config.json (GEOREG_REPLICATION_TOPIC names it)`);
      return;
    }
  } catch (e) {
    report('service bus', 'fail', `cannot reach the administration API of ${namespace}: ${firstLine(e)}. Check ServiceBusConnection (it needs Manage rights, or the identity the Azure Service Bus Data Owner role)`);
    return;
  }
  report('service bus', 'ok', `topic "${topic}" present`);
  for (const region of regions.filter((r) => !r.home)) {
    const problem = await regionSubscriptionProblem(admin, topic, region.name).catch((e) => `cannot read subscription "${region.name}": ${firstLine(e)}`);
    if (problem) {
      report(`subscription ${region.name}`, 'fail', `${problem}: make it with the SQL rule region = '${region.name}' as its only rule (infra/main.bicep does; \`georeg replication create\` does for regions it adds)`);
    } else {
      report(`subscription ${region.name}`, 'ok', `on topic "${topic}" with rule region = '${region.name}'`);
    }
  }
  const queues = [
    { what: 'webhook queue', name: queue, setting: 'GEOREG_WEBHOOK_QUEUE' },
    { what: 'back-fill queue', name: settings.serviceBus.backfillQueue, setting: 'GEOREG_BACKFILL_QUEUE' },
  ];
  for (const q of queues) {
    try {
      if (await admin.queueExists(q.name)) report(q.what, 'ok', `queue "${q.name}" present`);
      else report(q.what, 'fail', `queue "${q.name}" is missing: deploy infra/main.bicep, or add it to the emulator's Config.json (${q.setting} names it)`);
    } catch (e) {
      report(q.what, 'fail', `cannot read queue "${q.name}": ${firstLine(e)}`);
    }
  }
}

/**
 * The API answers and takes this deployment's push secret: an empty notification envelope is what
 * a registry could send, changes nothing, and is answered 202 only with the right secret.
 */
async function checkApi(settings: Settings, api: { url: string; required: boolean }, report: Report): Promise<void> {
  const url = `${api.url}/push`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': EVENTS_MEDIA_TYPE, Authorization: `Bearer ${settings.pushSecret}` },
      body: JSON.stringify({ events: [] }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    const why = firstLine((e as { cause?: unknown }).cause ?? e);
    if (api.required) return report('api', 'fail', `${url} does not answer (${why}): is georeg serve running there?`);
    return report('api', 'warn', `${url} does not answer (${why}): fine if georeg serve is not running here; give --api <url> or set GEOREG_API_URL to check a running one`);
  }
  if (res.status === 202) return report('api', 'ok', `${url} answers and takes GEOREG_PUSH_SECRET`);
  const body = (await res.text()).slice(0, 200);
  if (res.status === 401) return report('api', 'fail', `${url} refuses GEOREG_PUSH_SECRET (401): the georeg answering there runs with another secret`);
  report('api', 'fail', `${url} answered ${res.status} to an empty notification: ${body || '(no body)'}; is this georeg's API (…/api)?`);
}

function firstLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.split('\n')[0].slice(0, 300);
}
