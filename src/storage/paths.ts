import { createHash } from 'node:crypto';
import { parseDigest } from '../oci/digest';

/**
 * The one place that knows where things live. Nothing else in georeg concatenates a storage path:
 * callers name a link or a prefix by its kind (LinkSpec, PrefixSpec below, as Distribution's path
 * specs) and RegistryLayout turns it into the name below.
 *
 * Registry storage (CNCF Distribution v2 layout, unchanged, so a stock registry serves any replica),
 * under `<root>` inside the registry container of each region's account:
 *
 *   <root>/blobs/<alg>/<hex[0:2]>/<hex>/data                                  blob data (layer, config, manifest)
 *   <root>/repositories/<name>/_layers/<alg>/<hex>/link                       layer link (content: digest)
 *   <root>/repositories/<name>/_manifests/revisions/<alg>/<hex>/link          manifest revision link
 *   <root>/repositories/<name>/_manifests/tags/<tag>/current/link             tag -> manifest digest
 *   <root>/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link   tag history
 *
 * Outside the root, in the same container:
 *
 *   _georeg/identity/<nonce>                                                  a marker replica create and purge write and
 *                                                                             delete at once, to see whether two regions'
 *                                                                             storage is one (storage/endpoint.ts)
 *
 * `<root>` is `docker/registry/v2` by default. Distribution 2.8's Azure driver writes blob names
 * with a leading slash (`/docker/registry/v2/...`); Distribution 3 trims it and may prefix a
 * `rootdirectory` (`myroot/docker/registry/v2/...`). The root is kept exactly as configured.
 *
 * Pipeline state (home account, container `georeg`):
 *
 *   pushes/<pushId>/push.json                 the push record (repository, tag, digest, regions)
 *   pushes/<pushId>/regions/<region>.json     the region's status for that push
 *   plans/<pushId>/<region>.json              a plan too large for one message (claim check)
 *   tags/<repository>/<tag>.json              latest push id for repository:tag (status lookup)
 *   replicas/<region>.json                    a replica's definition, status and back-fill/resync progress
 *   replica-last-synced/<region>.json         the last push completed in that region
 *   webhooks/<name>.json                      a webhook's definition (with its signing secret)
 *   webhook-deliveries/<name>/<deliveryId>.json   one event's delivery to that webhook: state, attempts
 *   webhook-events/<name>/<newest-first key>.json one delivery attempt (list-events reads these in name order)
 *   problems/<newest-first key>.json          a notification event georeg could not act on, with its reason
 *   reconcile/<region>.lease                  held (blob lease) by the one reconcile running for a region
 *   reconcile/<region>.json                   that region's last reconcile: when, what drifted, what was sent
 */
/**
 * What Distribution appends to its `rootdirectory`: every registry root ends with it, which is how
 * `georeg doctor` recognises a root it was not told about.
 */
export const DISTRIBUTION_ROOT = 'docker/registry/v2';

/**
 * The links of the layout, as Distribution's path specs (`manifestTagCurrentPathSpec{name, tag}`):
 * a link's content is always a digest (see RegionStorage.writeLink).
 */
export type LinkSpec =
  | { kind: 'layer'; repository: string; digest: string }
  | { kind: 'revision'; repository: string; digest: string }
  | { kind: 'tagCurrent'; repository: string; tag: string }
  | { kind: 'tagIndex'; repository: string; tag: string; digest: string };

/** Groups of blobs under one prefix: what `replication delete --purge`, tag deletes and listings take. */
export type PrefixSpec =
  | { kind: 'everything' }
  | { kind: 'repositories' }
  | { kind: 'tags'; repository: string }
  /** The tag's whole directory: `current` and `index`. */
  | { kind: 'tag'; repository: string; tag: string }
  /** The tag's history (`index/`), without its `current` link. */
  | { kind: 'tagIndex'; repository: string; tag: string }
  /** The repository's layer links. */
  | { kind: 'layers'; repository: string };

export class RegistryLayout {
  readonly root: string;

  constructor(root = DISTRIBUTION_ROOT) {
    const trimmed = root.replace(/\/+$/, '');
    if (trimmed === '' || trimmed === '/') throw new Error(`registry root path "${root}" is empty`);
    this.root = trimmed;
  }

  blobData(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return `${this.root}/blobs/${algorithm}/${hex.slice(0, 2)}/${hex}/data`;
  }

  private repository(name: string): string {
    return `${this.root}/repositories/${checkRepository(name)}`;
  }

  /** The identity marker (outside the root, so neither a registry nor a purge ever sees it). */
  identityMarker(nonce: string): string {
    if (!/^[a-z0-9]{8,64}$/.test(nonce)) throw new Error(`invalid identity marker "${nonce}"`);
    return `_georeg/identity/${nonce}`;
  }

  /** Where a link lives (Distribution's path specs: the caller names the kind of link, never the path). */
  link(spec: LinkSpec): string {
    switch (spec.kind) {
      case 'layer':
        return `${this.repository(spec.repository)}/_layers/${digestPath(spec.digest)}/link`;
      case 'revision':
        return `${this.repository(spec.repository)}/_manifests/revisions/${digestPath(spec.digest)}/link`;
      case 'tagCurrent':
        return `${this.tagDirectory(spec.repository, spec.tag)}current/link`;
      case 'tagIndex':
        return `${this.tagDirectory(spec.repository, spec.tag)}index/${digestPath(spec.digest)}/link`;
    }
  }

  /** Where a group of blobs lives (ends with `/`): for listing, and for deleting all of it. */
  prefix(spec: PrefixSpec): string {
    switch (spec.kind) {
      case 'everything':
        return `${this.root}/`;
      case 'repositories':
        return `${this.root}/repositories/`;
      case 'tags':
        return `${this.repository(spec.repository)}/_manifests/tags/`;
      case 'tag':
        return this.tagDirectory(spec.repository, spec.tag);
      case 'tagIndex':
        return `${this.tagDirectory(spec.repository, spec.tag)}index/`;
      case 'layers':
        return `${this.repository(spec.repository)}/_layers/`;
    }
  }

  private tagDirectory(name: string, tag: string): string {
    return `${this.repository(name)}/_manifests/tags/${checkTag(tag)}/`;
  }

  /**
   * Reads a tag's `current/link` path back into repository and tag; undefined for any other path.
   * Used when enumerating what home storage holds.
   */
  parseTagCurrentLink(path: string): { repository: string; tag: string } | undefined {
    const prefix = this.prefix({ kind: 'repositories' });
    if (!path.startsWith(prefix)) return undefined;
    const m = /^(.+)\/_manifests\/tags\/([^/]+)\/current\/link$/.exec(path.slice(prefix.length));
    // A name no registry could have written is not a tag: reading its link by spec would throw.
    return m && isRepositoryName(m[1]) && isTag(m[2]) ? { repository: m[1], tag: m[2] } : undefined;
  }

  /** The repository any path under `repositories/` belongs to (its `_manifests`, `_layers` or `_uploads`); undefined otherwise. */
  parseRepositoryOf(path: string): string | undefined {
    const prefix = this.prefix({ kind: 'repositories' });
    if (!path.startsWith(prefix)) return undefined;
    const m = /^(.+?)\/_(?:manifests|layers|uploads)\//.exec(path.slice(prefix.length));
    return m ? m[1] : undefined;
  }
}

function digestPath(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `${algorithm}/${hex}`;
}

/**
 * A virtual directory (blob name prefix ending in `/`) that is a registry root: what Distribution
 * writes under `<rootdirectory>`, with or without 2.8's leading slash. Returns the root as
 * GEOREG_REGISTRY_ROOT spells it, or undefined.
 */
export function registryRootOfDirectory(prefix: string): string | undefined {
  const dir = prefix.replace(/\/$/, '');
  return dir === DISTRIBUTION_ROOT || dir.endsWith(`/${DISTRIBUTION_ROOT}`) ? dir : undefined;
}

/** Repository names as the Distribution spec allows them: path components of [a-z0-9] with separators. */
const REPOSITORY = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export function isRepositoryName(name: string): boolean {
  return name.length <= 255 && REPOSITORY.test(name);
}

export function isTag(tag: string): boolean {
  return TAG.test(tag);
}

function checkRepository(name: string): string {
  if (!isRepositoryName(name)) {
    throw new Error(`invalid repository name "${name}": lowercase path components of [a-z0-9._-] separated by "/"`);
  }
  return name;
}

function checkTag(tag: string): string {
  if (!isTag(tag)) throw new Error(`invalid tag "${tag}": up to 128 of [A-Za-z0-9_.-], not starting with "." or "-"`);
  return tag;
}

/** Names of the pipeline's own state blobs in the home account's `georeg` container. */
export const statePaths = {
  push: (pushId: string) => `pushes/${safe(pushId)}/push.json`,
  regionStatus: (pushId: string, region: string) => `pushes/${safe(pushId)}/regions/${safe(region)}.json`,
  regionStatusPrefix: (pushId: string) => `pushes/${safe(pushId)}/regions/`,
  plan: (pushId: string, region: string) => `plans/${safe(pushId)}/${safe(region)}.json`,
  latestPushForTag: (repository: string, tag: string) => `tags/${checkRepository(repository)}/${checkTag(tag)}.json`,
  replicasPrefix: () => 'replicas/',
  replica: (region: string) => `replicas/${safe(region)}.json`,
  /** The last push completed in the region (written by each job, last writer wins). */
  replicaLastSynced: (region: string) => `replica-last-synced/${safe(region)}.json`,
  webhooksPrefix: () => 'webhooks/',
  webhook: (name: string) => `webhooks/${safe(name)}.json`,
  webhookDeliveriesPrefix: (name: string) => `webhook-deliveries/${safe(name)}/`,
  webhookDelivery: (name: string, deliveryId: string) => `webhook-deliveries/${safe(name)}/${safe(deliveryId)}.json`,
  webhookAttemptsPrefix: (name: string) => `webhook-events/${safe(name)}/`,
  /** Names sort newest first (see newestFirst). */
  webhookAttempt: (name: string, at: Date, key: string) => `webhook-events/${safe(name)}/${newestFirst(at)}-${safe(key)}.json`,
  problemsPrefix: () => 'problems/',
  problem: (at: Date, key: string) => `problems/${newestFirst(at)}-${safe(key)}.json`,
  /** One page of a replica's back-fill as first listed: its tags and where the next page resumes (a redelivered page plans the same tags). */
  backfillPage: (region: string, operationId: string, page: number) => `backfill-pages/${safe(region)}/${safe(operationId)}/${page}.json`,
  reconcileLease: (region: string) => `reconcile/${safe(region)}.lease`,
  reconcileReport: (region: string) => `reconcile/${safe(region)}.json`,
  /** A handler's dead-letter verdict on a message, kept until its dead letter is handled (message ids may hold any character: hashed). */
  deadLetterVerdict: (lane: string, messageId: string) => `dead-letter-verdicts/${safe(lane)}/${createHash('sha256').update(messageId).digest('hex').slice(0, 40)}.json`,
  /** Dead letters kept for `georeg dlq` (the dead-letter triggers drain the queues): per region, and `webhooks`. */
  keptDeadLettersPrefix: (source: string) => `dead-letters/${safe(source)}/`,
  keptDeadLetter: (source: string, id: string) => `dead-letters/${safe(source)}/${createHash('sha256').update(id).digest('hex').slice(0, 40)}.json`,
  recentPushesPrefix: () => 'recent-pushes/',
  /** An index of pushes (not back-fill jobs), newest first like webhookAttempt: what the dashboard lists. */
  recentPush: (at: Date, pushId: string) => `recent-pushes/${newestFirst(at)}-${safe(pushId)}.json`,
  /** A recentPush name read back: when and which push; undefined for a name of another shape. */
  recentPushOf: (name: string): { at: Date; pushId: string } | undefined => {
    const m = /^recent-pushes\/(\d{13})-(.+)\.json$/.exec(name);
    return m ? { at: new Date(9_999_999_999_999 - Number(m[1])), pushId: m[2] } : undefined;
  },
};

/** Names sort newest first: the time counted down from the year 2286. */
function newestFirst(at: Date): string {
  return String(9_999_999_999_999 - at.getTime()).padStart(13, '0');
}

function safe(segment: string): string {
  if (!/^[A-Za-z0-9._:-]+$/.test(segment)) throw new Error(`invalid state path segment "${segment}"`);
  return segment;
}
