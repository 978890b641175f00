import type { ServiceBusAdministrationClient, ServiceBusClient } from '@azure/service-bus';
import { z } from 'zod';
import { deleteRegionSubscription, ensureRegionSubscription, regionQueue, type RegionQueue } from '../bus/subscriptions';
import { UnsafeTargetError } from '../common/address-safety';
import { adminDenied, json, notAllowed, parseJsonBody, type AdminRequest, type HttpOutput } from '../common/http';
import { codeOf, RegionStorageError, statusOf } from '../storage/clients';
import { checkStorageEndpoint, storageEndpoint, StorageEndpointError } from '../storage/endpoint';
import { isRepositoryName, isTag, statePaths } from '../storage/paths';
import { StateUnavailableError } from '../storage/state-store';
import { CreateReplicaInput, maskStorage, parseStorage, ReplicaInputError, UpdateReplicaInput, type ReplicaRecord, type ReplicaStorage, type SyncRun } from './definition';
import { LastSynced } from './progress';
import type { Replica } from './registry';
import { startBackfill, type BackfillDeps } from './backfill';
import { startSync } from './sync';

/**
 * Replica management, as `az acr replication` has it:
 *
 *   GET    /api/replications                     list
 *   POST   /api/replications                     create {name, storage, endpointEnabled}: subscription, then back-fill (queued)
 *   GET    /api/replications/{name}              show
 *   PATCH  /api/replications/{name}              update {endpointEnabled}
 *   DELETE /api/replications/{name}[?purge=true] delete (data kept unless purge)
 *   POST   /api/replications/{name}/resync       resync {repository?}: re-diff everything, copy what is missing
 *   GET    /api/regions/route?repository=&tag=   regions that are enabled and hold the image complete
 *
 * Management needs the home region (the records live there), as in ACR: when home storage cannot
 * be reached, every call answers 503 and changes nothing; jobs already on the bus are not touched.
 */

export type ReplicaAdminRequest = AdminRequest;

/** BackfillDeps' backfillSender: create queues a back-fill's first page (replicas/backfill.ts plans the rest). */
export interface ReplicaAdminDeps extends BackfillDeps {
  bus: ServiceBusClient;
  busAdmin: () => ServiceBusAdministrationClient;
  /** Told after a region starts or stops receiving jobs (the local host starts or stops its receiver). */
  onRegionsChanged?: () => Promise<void>;
}

/** What list and show print: no secret, the queue's figures, the run's progress. */
export interface ReplicaView {
  name: string;
  home: boolean;
  source: Replica['source'];
  storage: string;
  endpointEnabled: boolean;
  status: Replica['status'];
  error?: string;
  lastSyncedPush?: LastSynced;
  /** Seconds since the oldest job still queued for the region was enqueued (0: nothing waiting). */
  lagSeconds?: number;
  pendingJobs?: number;
  /** Dead letters on the region's queue not yet handled by the dead-letter trigger (which records each on the push and the run). */
  deadLetters?: number;
  sync?: Omit<SyncRun, 'finished'>;
  createdAt?: string;
  updatedAt?: string;
}

const ResyncInput = z.object({ repository: z.string().refine(isRepositoryName, 'not a valid repository name').optional() }).strict();

export async function handleReplicaAdmin(req: ReplicaAdminRequest, deps: ReplicaAdminDeps): Promise<HttpOutput> {
  const denied = adminDenied(req.headers, deps.settings.adminSecret);
  if (denied) return denied;
  const method = req.method.toUpperCase();
  try {
    if (req.name === undefined) {
      if (method === 'GET') return json(200, { replications: await Promise.all((await deps.registry.list()).map((r) => view(r, deps))) });
      if (method === 'POST') return await create(req.body, deps);
      return notAllowed(method, '/replications', 'GET, POST');
    }
    if (req.op === undefined) {
      if (method === 'GET') {
        const replica = await deps.registry.get(req.name);
        return replica ? json(200, { replication: await view(replica, deps) }) : notFound(req.name, deps);
      }
      if (method === 'PATCH') return await update(req.name, req.body, deps);
      if (method === 'DELETE') return await remove(req.name, req.query.purge === 'true', deps);
      return notAllowed(method, `/replications/${req.name}`, 'GET, PATCH, DELETE');
    }
    if (req.op === 'resync') return method === 'POST' ? await resync(req.name, req.body, deps) : notAllowed(method, `/replications/${req.name}/resync`, 'POST');
    return json(404, { error: `no replication operation "${req.op}": use resync` });
  } catch (e) {
    if (e instanceof ReplicaInputError) return json(400, { error: e.message });
    if (e instanceof StateUnavailableError) return homeUnreachable(e, deps);
    throw e;
  }
}

/** `GET /api/regions/route?repository=&tag=`: where a pull of the image can be served from now. */
export async function handleRouteRequest(
  req: { query: Record<string, string | undefined>; headers: Record<string, string | undefined> },
  deps: Pick<ReplicaAdminDeps, 'registry' | 'settings' | 'log'>,
): Promise<HttpOutput> {
  const denied = adminDenied(req.headers, deps.settings.adminSecret);
  if (denied) return denied;
  const { query } = req;
  const repository = query.repository;
  const tag = query.tag ?? 'latest';
  if (!repository || !isRepositoryName(repository)) return json(400, { error: 'give ?repository=<name> (a valid repository name) and optionally &tag=<tag> (default latest)' });
  if (!isTag(tag)) return json(400, { error: `tag "${tag}" is not a valid tag` });
  let replicas: Replica[];
  try {
    replicas = await deps.registry.list();
  } catch (e) {
    if (e instanceof StateUnavailableError) return homeUnreachable(e, deps);
    throw e;
  }
  const home = replicas.find((r) => r.home)!;
  const homeStorage = deps.registry.storageOf(home);
  const digest = await homeStorage.readLink({ kind: 'tagCurrent', repository, tag });
  if (!digest) return json(404, { error: `${repository}:${tag} is not in the home region (${home.name})` });
  const answers = await Promise.all(
    replicas.map(async (r) => {
      if (!r.endpointEnabled) return { region: r.name, serves: false, reason: 'region endpoint disabled' };
      if (r.home) return { region: r.name, serves: true };
      const storage = deps.registry.storageOf(r);
      // The tag is committed last: when it points at home's digest, everything under it is there.
      let current: string | undefined;
      try {
        current = await storage.readLink({ kind: 'tagCurrent', repository, tag });
      } catch (e) {
        return { region: r.name, serves: false, reason: `storage unreachable: ${(e as Error).message}` };
      }
      if (current === digest) return { region: r.name, serves: true };
      return { region: r.name, serves: false, reason: current ? `holds ${current}, not yet ${digest}` : 'not replicated yet' };
    }),
  );
  return json(200, { repository, tag, digest, regions: answers.filter((a) => a.serves).map((a) => a.region), excluded: answers.filter((a) => !a.serves).map(({ region, reason }) => ({ region, reason })) });
}

async function create(body: string, deps: ReplicaAdminDeps): Promise<HttpOutput> {
  const input = parseJsonBody(CreateReplicaInput, body, 'replication');
  if ('error' in input) return json(400, input);
  const { name, endpointEnabled } = input.value;
  const storage = parseStorage(input.value.storage);
  if (name === deps.settings.homeRegion.name) return json(409, { error: `${name} is the home region: it is the source of every replica` });
  const existing = await deps.registry.get(name);
  if (existing) return json(409, { error: `replication ${name} exists (${existing.status}): update it, resync it, or delete it first` });

  // Checked before anything is sent to it: an admin's typo, or a URL into the platform's own network.
  try {
    await checkStorageEndpoint(storageEndpoint(storage), deps.settings.allowPrivateStorage);
  } catch (e) {
    if (e instanceof StorageEndpointError) return json(400, { error: `storage for ${name}: ${e.message}` });
    throw e;
  }
  // A replica on another region's storage would be that region's data: replicating onto its own
  // source, and purged with it later. Compared by endpoint first, then by a marker (aliases).
  const { sharing } = await deps.registry.regionsOn(storage, name);
  if (sharing.length) return json(409, { error: sharedStorage(name, storage, sharing[0], deps) });

  // The region's storage must answer before anything is recorded: a typo fails here, not in every job.
  const target = deps.registry.storageOf({ name, storage });
  let seeing: Replica[];
  try {
    await target.ensureContainer();
    seeing = await deps.registry.regionsSeeing(target, name);
  } catch (e) {
    if (!(e instanceof RegionStorageError)) throw e;
    return json(400, { error: `storage for ${name} (${maskStorage(storage)}) cannot be reached or written: ${probeFailure(e)}; check the endpoint, the account key or the identity's role (Storage Blob Data Contributor)` });
  }
  if (seeing.length) return json(409, { error: sharedStorage(name, storage, seeing[0], deps) });

  const now = new Date().toISOString();
  const record: ReplicaRecord = { version: 1, name, storage, endpointEnabled, status: 'Creating', createdAt: now, updatedAt: now };
  // A name deleted before leaves a tombstone (for a GEOREG_REGIONS region); a new create replaces it.
  const tombstone = await deps.registry.get(name, { includeDeleted: true });
  if (tombstone) await deps.registry.putRecord(record);
  else if (!(await deps.registry.createRecord(record))) return json(409, { error: `replication ${name} is being created by another call` });
  deps.log.info(`replication ${name}: creating (${maskStorage(storage)})`);

  try {
    const subscription = await ensureRegionSubscription(deps.busAdmin(), deps.settings.serviceBus.replicationTopic, name);
    deps.log.info(`replication ${name}: subscription ${deps.settings.serviceBus.replicationTopic}/${name} ${subscription}`);
  } catch (e) {
    // Without its subscription the region would take no jobs: undo the record, so nothing changed.
    if (tombstone) await deps.registry.putRecord({ ...record, status: 'Deleted' });
    else await deps.registry.deleteRecord(name);
    const error = `cannot create subscription ${deps.settings.serviceBus.replicationTopic}/${name}: ${(e as Error).message}`;
    deps.log.error(`replication ${name}: ${error}`);
    return json(502, { error: `${error}; nothing was created: fix the Service Bus access (the identity needs to manage entities) and create the replica again` });
  }
  // From Syncing on, new pushes include the region; the back-fill lists tags after that moment,
  // so a push is either in the back-fill or sent to the region (or both: the jobs are idempotent).
  await deps.registry.updateRecord(name, (r) => ({ ...r, status: 'Syncing' }));
  await deps.onRegionsChanged?.();
  const replica = (await deps.registry.get(name))!;
  try {
    // Planned as queued work, page by page: create answers now, whatever the registry's size.
    await startBackfill(replica, deps);
  } catch (e) {
    // The region receives new pushes already; what it lacks from before comes with a resync.
    const error = `the back-fill could not be queued: ${(e as Error).message}; run \`georeg replication resync --region ${name}\``;
    await deps.registry.updateRecord(name, (r) => ({ ...r, status: 'Failed', error }));
    deps.log.error(`replication ${name}: ${error}`);
  }
  return json(201, { replication: await view((await deps.registry.get(name))!, deps) });
}

async function update(name: string, body: string, deps: ReplicaAdminDeps): Promise<HttpOutput> {
  const input = parseJsonBody(UpdateReplicaInput, body, 'replication update');
  if ('error' in input) return json(400, input);
  const replica = await deps.registry.get(name);
  if (!replica) return notFound(name, deps);
  await deps.registry.upsertRecord(replica, (r) => ({ ...r, endpointEnabled: input.value.endpointEnabled }));
  deps.log.info(`replication ${name}: region endpoint ${input.value.endpointEnabled ? 'enabled' : 'disabled'} (it keeps syncing either way)`);
  return json(200, { replication: await view((await deps.registry.get(name))!, deps) });
}

async function remove(name: string, purge: boolean, deps: ReplicaAdminDeps): Promise<HttpOutput> {
  const replica = await deps.registry.get(name);
  if (!replica) return notFound(name, deps);
  if (replica.home) return json(409, { error: `${name} is the home region and cannot be deleted: every replica copies from it` });
  if (purge) {
    // Refused before anything changes: purging storage another region uses would delete that region's registry.
    const { sharing, unknown } = await deps.registry.regionsOn(replica.storage, name);
    let seeing: Replica[];
    try {
      seeing = await deps.registry.regionsSeeing(deps.registry.storageOf(replica), name);
    } catch (e) {
      if (!(e instanceof RegionStorageError)) throw e;
      return json(409, { error: `purge of ${name} refused, nothing was deleted: its storage cannot be written (${probeFailure(e)}), so it cannot be told whether another region uses it. Delete ${name} without --purge to keep the data` });
    }
    const shared = [...new Set([...sharing, ...seeing].map((r) => `${r.home ? 'the home region ' : ''}${r.name} uses the same storage`))];
    const blocking = [...shared, ...unknown.map((r) => `${r.name}'s storage cannot be parsed, so it may be the same`)];
    if (blocking.length) {
      return json(409, { error: `purge of ${name} refused, nothing was deleted: ${blocking.join('; ')}. Delete ${name} without --purge to keep the data` });
    }
  }
  const removedSubscription = await deleteRegionSubscription(deps.busAdmin(), deps.settings.serviceBus.replicationTopic, name);
  // A GEOREG_REGIONS region keeps a tombstone, so the setting does not bring it back.
  if (replica.source === 'settings') await deps.registry.upsertRecord(replica, (r) => ({ ...r, status: 'Deleted', sync: undefined, error: undefined }));
  else await deps.registry.deleteRecord(name);
  await deps.state.delete(statePaths.replicaLastSynced(name));
  await deps.onRegionsChanged?.();
  let purged: number | undefined;
  if (purge) {
    // Only under the registry root (never empty, see RegistryLayout): other data in the account stays.
    const storage = deps.registry.storageOf(replica);
    purged = await storage.deletePrefix({ kind: 'everything' });
  }
  deps.log.info(`replication ${name}: deleted${purge ? `, ${purged} blob(s) purged` : ', its data kept'}`);
  return json(200, {
    deleted: name,
    subscriptionRemoved: removedSubscription,
    dataKept: !purge,
    ...(purge ? { purgedBlobs: purged } : {}),
    note: purge ? undefined : `the registry data in ${name} is kept; \`georeg replication delete --region ${name} --purge\` removes it`,
  });
}

async function resync(name: string, body: string, deps: ReplicaAdminDeps): Promise<HttpOutput> {
  const input = parseJsonBody(ResyncInput, body, 'resync');
  if ('error' in input) return json(400, input);
  const replica = await deps.registry.get(name);
  if (!replica) return notFound(name, deps);
  if (replica.home) return json(409, { error: `${name} is the home region: it is the source, there is nothing to resync` });
  if (replica.status === 'Creating') return json(409, { error: `replication ${name} is still being created` });
  await startSync(replica, 'resync', deps, { repository: input.value.repository });
  return json(202, { replication: await view((await deps.registry.get(name))!, deps) });
}

/** A replica as list, show and the dashboard present it. */
export async function view(replica: Replica, deps: ReplicaAdminDeps): Promise<ReplicaView> {
  let queue: RegionQueue | undefined;
  let queueError: string | undefined;
  if (!replica.home) {
    try {
      // Only read: dead letters are recorded by their trigger (functions/deadletters.ts) as they arrive.
      queue = await regionQueue(deps.busAdmin(), deps.bus, deps.settings.serviceBus.replicationTopic, replica.name);
    } catch (e) {
      queueError = `Service Bus: ${(e as Error).message}`;
    }
  }
  const last = replica.home ? undefined : (await deps.state.get(statePaths.replicaLastSynced(replica.name), LastSynced))?.value;
  const sync = replica.record?.sync;
  return {
    name: replica.name,
    home: replica.home,
    source: replica.source,
    storage: maskStorage(replica.storage),
    endpointEnabled: replica.endpointEnabled,
    status: replica.status,
    error: [replica.record?.error, queueError].filter(Boolean).join('; ') || undefined,
    lastSyncedPush: last,
    lagSeconds: queue ? (queue.oldestEnqueuedAt ? Math.max(0, Math.round((Date.now() - queue.oldestEnqueuedAt.getTime()) / 1000)) : 0) : undefined,
    pendingJobs: queue?.active,
    deadLetters: queue?.deadLettered,
    sync: sync && (({ finished: _finished, ...rest }) => rest)(sync),
    createdAt: replica.record?.createdAt,
    updatedAt: replica.record?.updatedAt,
  };
}

function sharedStorage(name: string, storage: ReplicaStorage, other: Replica, deps: Pick<ReplicaAdminDeps, 'registry'>): string {
  return `storage for ${name} (${maskStorage(storage)}) is where ${other.home ? 'the home region ' : 'region '}${other.name} keeps its registry (${deps.registry.identityOf(other.storage)}): a replica needs a storage account of its own; give another account`;
}

/**
 * Why a storage probe failed, in the status and error code only: the body is whatever the endpoint
 * chose to answer, and echoing it would turn replica create into a way to read internal pages.
 */
function probeFailure(e: unknown): string {
  const cause = (e as { cause?: unknown }).cause ?? e;
  const status = statusOf(cause);
  if (status !== undefined) return `it answered ${status}${codeOf(cause) ? ` ${codeOf(cause)}` : ''}`;
  // Refused by georeg's own address rules: nothing was sent, the message is ours.
  if (cause instanceof UnsafeTargetError) return `not sent: ${cause.message}`;
  // No answer: a local network error (refused, unresolved, reset), whose message carries no remote text.
  const err = cause as NodeJS.ErrnoException;
  const local = err.code === 'REQUEST_SEND_ERROR' || /^E[A-Z]+$/.test(err.code ?? '');
  return `no answer (${err.code ?? err.name}${local ? `: ${String(err.message).split('\n')[0].slice(0, 200)}` : ''})`;
}

async function notFound(name: string, deps: ReplicaAdminDeps): Promise<HttpOutput> {
  const known = (await deps.registry.list()).map((r) => r.name).join(', ');
  return json(404, { error: `replication ${name} does not exist (regions: ${known}); \`georeg replication create --region ${name} --storage ...\` adds it` });
}

function homeUnreachable(e: StateUnavailableError, deps: Pick<ReplicaAdminDeps, 'settings' | 'log'>): HttpOutput {
  deps.log.error(`replica management: home region unreachable: ${e.message}`);
  return json(503, {
    error: `the home region (${deps.settings.homeRegion.name}) cannot be reached: replica management needs it, as in ACR, and changed nothing; jobs already on the bus are left as they are. Retry when the home storage answers. (${e.message})`,
  });
}
