import { randomBytes } from 'node:crypto';
import type { Region, Settings } from '../config/settings';
import { storageEndpoint, storageIdentity, StorageEndpointError, storageTargets } from '../storage/endpoint';
import { statePaths } from '../storage/paths';
import { regionStorageFrom, type RegionStorage } from '../storage/region-storage';
import type { StateStore } from '../storage/state-store';
import { ReplicaRecord, type ReplicaStatus, type ReplicaStorage } from './definition';

/**
 * Which regions replicate, and where their storage is. Two sources, merged: GEOREG_REGIONS (the
 * home region and the replicas the deployment starts with) and the replica records that
 * `replication create|update|delete|resync` write to the home account's state container. A record
 * wins over the setting of the same name (an endpoint switched off, a region deleted).
 */

export interface Replica {
  name: string;
  /** Where the name came from: the settings, or `replication create`. */
  source: 'settings' | 'created';
  storage: ReplicaStorage;
  endpointEnabled: boolean;
  status: ReplicaStatus;
  home: boolean;
  record?: ReplicaRecord;
}

/** A GEOREG_REGIONS entry's storage, in a record's terms. */
export function settingStorage(region: Region): ReplicaStorage {
  return region.connectionString ? { connectionString: region.connectionString } : { accountUrl: region.accountUrl };
}

/** How long storageFor's answer for a region is reused. */
const STORAGE_LOOKUP_TTL_MS = 2000;

/** Statuses in which a region receives the jobs of new pushes. */
const RECEIVING: ReadonlySet<ReplicaStatus> = new Set(['Syncing', 'Ready', 'Failed']);

export class ReplicaRegistry {
  private readonly storages = new Map<string, { key: string; storage: RegionStorage }>();
  /** storageFor's answers, for STORAGE_LOOKUP_TTL_MS: a burst of small jobs shares one read of the record. */
  private readonly lookups = new Map<string, { storage: Promise<RegionStorage | undefined>; at: number }>();

  constructor(private readonly settings: Settings, private readonly state: StateStore) {}

  /** The home region and every replica that is not deleted, home first, then by name. */
  async list(options: { includeDeleted?: boolean } = {}): Promise<Replica[]> {
    const records = await this.records();
    const out: Replica[] = [];
    for (const r of this.settings.regions) {
      const record = records.get(r.name);
      records.delete(r.name);
      const home = r.name === this.settings.homeRegion.name;
      out.push({
        name: r.name,
        source: 'settings',
        storage: record?.storage ?? settingStorage(r),
        endpointEnabled: record?.endpointEnabled ?? r.endpointEnabled,
        // The home region is the source: always complete, whatever a record says.
        status: home ? 'Ready' : (record?.status ?? 'Ready'),
        home,
        record,
      });
    }
    for (const record of records.values()) {
      if (!record.storage) continue;
      out.push({ name: record.name, source: 'created', storage: record.storage, endpointEnabled: record.endpointEnabled, status: record.status, home: false, record });
    }
    const visible = out.filter((r) => options.includeDeleted || r.status !== 'Deleted');
    return visible.sort((a, b) => Number(b.home) - Number(a.home) || a.name.localeCompare(b.name));
  }

  async get(name: string, options: { includeDeleted?: boolean } = {}): Promise<Replica | undefined> {
    return (await this.list(options)).find((r) => r.name === name);
  }

  /** The replicas new pushes go to, with their storage: the push step's fan-out. */
  async receivingReplicas(): Promise<Map<string, RegionStorage>> {
    const all = await this.list();
    return new Map(all.filter((r) => !r.home && RECEIVING.has(r.status)).map((r) => [r.name, this.storageOf(r)]));
  }

  /** Storage of any known region, deleted ones included: jobs already queued for it still finish. */
  storageFor(name: string): Promise<RegionStorage | undefined> {
    // A record changed by another process (a replica deleted and created again on other storage)
    // is seen at most this late; one changed through this registry at once.
    const cached = this.lookups.get(name);
    if (cached && Date.now() - cached.at < STORAGE_LOOKUP_TTL_MS) return cached.storage;
    const entry = { storage: this.lookUpStorage(name), at: Date.now() };
    this.lookups.set(name, entry);
    // A failed or empty lookup is not remembered: the next job asks again.
    const forget = () => this.lookups.get(name) === entry && this.lookups.delete(name);
    entry.storage.then((s) => s === undefined && forget(), forget);
    return entry.storage;
  }

  private async lookUpStorage(name: string): Promise<RegionStorage | undefined> {
    // One read (this runs for every job, see storageFor): the region's record, else its setting.
    const record = await this.record(name);
    const setting = this.settings.regions.find((r) => r.name === name);
    const storage = record?.storage ?? (setting && settingStorage(setting));
    return storage && this.storageOf({ name, storage });
  }

  storageOf(replica: Pick<Replica, 'name' | 'storage'>): RegionStorage {
    const key = JSON.stringify(replica.storage);
    const cached = this.storages.get(replica.name);
    if (cached?.key === key) return cached.storage;
    // Storage from GEOREG_REGIONS is the deployment's own; storage an admin gave is checked on every request.
    const setting = this.settings.regions.find((r) => r.name === replica.name);
    const fromSettings = setting !== undefined && JSON.stringify(settingStorage(setting)) === key;
    const targets = fromSettings ? undefined : storageTargets(this.settings.allowPrivateStorage);
    const storage = regionStorageFrom({ region: replica.name, ...replica.storage, container: this.settings.registry.container, root: this.settings.registry.root, targets });
    this.storages.set(replica.name, { key, storage });
    return storage;
  }

  /** Where a region's registry data is (see storage/endpoint.ts); throws StorageEndpointError when its storage does not parse. */
  identityOf(storage: ReplicaStorage): string {
    return storageIdentity(storageEndpoint(storage), this.settings.registry.container, this.settings.registry.root);
  }

  /**
   * The regions, home included, other than `except` and not deleted, whose registry data is where
   * `storage` puts it; and those whose storage does not parse, so nobody can tell.
   */
  async regionsOn(storage: ReplicaStorage, except: string): Promise<{ sharing: Replica[]; unknown: Replica[] }> {
    const identity = this.identityOf(storage);
    const sharing: Replica[] = [];
    const unknown: Replica[] = [];
    for (const r of await this.list()) {
      if (r.name === except) continue;
      try {
        if (this.identityOf(r.storage) === identity) sharing.push(r);
      } catch (e) {
        if (!(e instanceof StorageEndpointError)) throw e;
        unknown.push(r);
      }
    }
    return { sharing, unknown };
  }

  /**
   * The regions, home included, other than `except` and not deleted, that see a marker written in
   * `candidate`: their storage is the candidate's, whatever its endpoint is called (a CNAME,
   * `localhost` for `127.0.0.1`, a custom domain), which the endpoint comparison cannot tell.
   * A region whose storage does not answer is left out. Throws when the marker cannot be written.
   */
  async regionsSeeing(candidate: RegionStorage, except: string): Promise<Replica[]> {
    const nonce = randomBytes(16).toString('hex');
    await candidate.writeMarker(nonce);
    try {
      const others = (await this.list()).filter((r) => r.name !== except);
      const seen = await Promise.all(others.map((r) => Promise.resolve().then(() => this.storageOf(r).hasMarker(nonce)).catch(() => false)));
      return others.filter((_, i) => seen[i]);
    } finally {
      await candidate.deleteMarker(nonce).catch(() => undefined);
    }
  }

  async record(name: string): Promise<ReplicaRecord | undefined> {
    return (await this.state.get(statePaths.replica(name), ReplicaRecord))?.value;
  }

  /** Creates the record; false when one exists already. */
  async createRecord(record: ReplicaRecord): Promise<boolean> {
    try {
      await this.state.create(statePaths.replica(record.name), ReplicaRecord.parse(record));
      return true;
    } catch (e) {
      if ((e as Error).name === 'StateConflictError') return false;
      throw e;
    } finally {
      this.lookups.delete(record.name);
    }
  }

  async putRecord(record: ReplicaRecord): Promise<void> {
    await this.state.put(statePaths.replica(record.name), ReplicaRecord.parse(record)).finally(() => this.lookups.delete(record.name));
  }

  async updateRecord(name: string, mutate: (r: ReplicaRecord) => ReplicaRecord): Promise<ReplicaRecord> {
    return this.state.update(statePaths.replica(name), (r: ReplicaRecord) => ({ ...mutate(r), updatedAt: new Date().toISOString() }), ReplicaRecord);
  }

  /**
   * The record of a region, made from its current view when it has none yet (a region from
   * GEOREG_REGIONS the first time something about it changes), then updated.
   */
  async upsertRecord(replica: Replica, mutate: (r: ReplicaRecord) => ReplicaRecord): Promise<ReplicaRecord> {
    if (!replica.record) {
      const now = new Date().toISOString();
      await this.createRecord({ version: 1, name: replica.name, storage: replica.source === 'created' ? replica.storage : undefined, endpointEnabled: replica.endpointEnabled, status: replica.status, createdAt: now, updatedAt: now });
    }
    return this.updateRecord(replica.name, mutate).finally(() => this.lookups.delete(replica.name));
  }

  async deleteRecord(name: string): Promise<void> {
    await this.state.delete(statePaths.replica(name)).finally(() => this.lookups.delete(name));
  }

  private async records(): Promise<Map<string, ReplicaRecord>> {
    // A record edited by hand must not stop every push: it is reported where it is listed.
    const records = await this.state.listDocuments(statePaths.replicasPrefix(), ReplicaRecord);
    return new Map(records.map((r) => [r.value.name, r.value]));
  }
}
