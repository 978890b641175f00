import type { ServiceBusMessage, ServiceBusSender } from '@azure/service-bus';
import { replicationJobMessage, sendInBatches, type DeleteJob, type ReplicationJob, type RequestInfo } from '../bus/messages';
import { secretMatches, type HttpOutput } from '../common/http';
import type { Logger } from '../common/log';
import { forEachLimit } from '../common/pool';
import type { Settings } from '../config/settings';
import { EnvelopeError, parseEnvelope, type ClassifiedEvent, type NotificationEvent } from '../notifications/envelope';
import { DigestMismatchError } from '../oci/digest';
import { ManifestError } from '../oci/manifest';
import { BlobNotFoundError, type RegionStorage } from '../storage/region-storage';
import type { StateStore } from '../storage/state-store';
import { claimCheckIfLarge, jobIdFor, planImagePush, pushIdFor, readImage, type Image } from './plan';
import { ProblemStore } from './problems';
import { StatusStore, type PushRecord } from './status';
import { inSpan } from '../telemetry/trace';

/**
 * The push endpoint: a registry's notification in, one replication job per replica region out.
 *
 * It never blocks a registry: a registry retries a refused envelope for ever and queues every later
 * event behind it, so an authenticated envelope is always answered 202. Events georeg cannot act
 * on (malformed, an unknown action, a manifest missing from home) are recorded as problems
 * (problems.ts) and reported in the answer; 401 is for a wrong secret, 400 for a body that is no
 * envelope at all. Only georeg's own dependencies failing (home storage or Service Bus down)
 * answers 5xx: the registry then retries, as it would with georeg down, and nothing is lost.
 *
 * Events are handled concurrently (bounded), in order per tag (per manifest for digest deletes),
 * and the jobs of the whole envelope go to Service Bus in as few batches as fit.
 */

/** Events of one envelope handled at once; order is kept per tag. */
const INGEST_CONCURRENCY = 16;

export interface PushDeps {
  settings: Settings;
  home: RegionStorage;
  /** The replicas a new push goes to, as they are now (regions are added and removed at run time). */
  replicas: () => Promise<ReadonlyMap<string, RegionStorage>>;
  state: StateStore;
  replicationSender: ServiceBusSender;
  log: Logger;
}

export interface HttpInput {
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
  body: string;
}

export type { HttpOutput } from '../common/http';

export interface AcceptedPush {
  pushId: string;
  action: 'push' | 'delete';
  repository: string;
  tag?: string;
  digest?: string;
  duplicate: boolean;
  /** missingBlobs/missingBytes only when the region was asked at push time (a notification's push does not ask: see planImagePush). */
  jobs: Array<{ region: string; jobId: string; missingBlobs?: number; missingBytes?: number }>;
}

/** An event georeg could not act on, as the answer and the problems record show it. */
export interface EventProblem {
  index: number;
  eventId?: string;
  repository?: string;
  tag?: string;
  digest?: string;
  reason: string;
  description: string;
}

type Prepared = { record: PushRecord; jobs: ReplicationJob[] };

export async function handlePushNotification(input: HttpInput, deps: PushDeps): Promise<HttpOutput> {
  // Distribution's endpoint `headers` send the value as configured: bare, or as a Bearer token.
  if (!secretMatches(input.headers.authorization, deps.settings.pushSecret)) {
    return { status: 401, jsonBody: { error: 'missing or wrong Authorization header: send the push secret (GEOREG_PUSH_SECRET) as Distribution endpoint headers do' }, headers: { 'WWW-Authenticate': 'Bearer realm="georeg"' } };
  }
  let events: ClassifiedEvent[];
  try {
    events = parseEnvelope(input.body, input.headers['content-type']);
  } catch (e) {
    if (e instanceof EnvelopeError) return { status: 400, jsonBody: { error: e.message } };
    throw e;
  }

  // Asked once, and only for an envelope with something to replicate: Distribution sends each
  // blob's push in an envelope of its own, and those (ignored) cost no storage request.
  let listing: Promise<ReadonlyMap<string, RegionStorage>> | undefined;
  const replicas = () => (listing ??= deps.replicas());
  const status = new StatusStore(deps.state);
  const problems = new ProblemStore(deps.state);
  const accepted: Array<AcceptedPush | undefined> = new Array(events.length);
  const reported: Array<EventProblem | undefined> = new Array(events.length);
  const messages: Array<ServiceBusMessage[]> = new Array(events.length);

  const handle = async (i: number) => {
    const event = events[i];
    if (event.kind === 'ignored') return;
    let outcome: Prepared | EventProblem;
    if (event.kind === 'problem') outcome = { index: i, eventId: event.event.id, repository: event.event.repository, tag: event.event.tag, digest: event.event.digest, reason: event.reason, description: event.description };
    else if (event.kind === 'manifest-push') outcome = await inSpan('georeg.plan', { 'georeg.repository': event.repository }, () => preparePush(event, i, replicas, deps));
    else outcome = prepareDelete(event, await replicas());
    if ('reason' in outcome) {
      reported[i] = outcome;
      const first = await problems.record({ ...outcome, action: event.event.action, eventTimestamp: event.event.timestamp });
      if (first) deps.log.warn(`notification event ${outcome.eventId ?? `#${i}`} not replicated: ${outcome.reason}: ${outcome.description}`);
      return;
    }
    // Large plans go to a blob first, so the message stays under the entity's size limit.
    messages[i] = await Promise.all(outcome.jobs.map(async (job) => replicationJobMessage(await claimCheckIfLarge(job, deps))));
    const { duplicate } = await status.recordPush(outcome.record, []);
    const r = outcome.record;
    accepted[i] = { pushId: r.pushId, action: r.action, repository: r.repository, tag: r.tag, digest: r.digest, duplicate, jobs: r.regions };
    deps.log.info(`${r.action} ${r.repository}:${r.tag ?? r.digest} → ${outcome.jobs.length} region job(s), push ${r.pushId}${duplicate ? ' (duplicate notification)' : ''}`);
  };
  await forEachLimit([...orderedGroups(events).values()], INGEST_CONCURRENCY, async (group) => {
    for (const i of group) await handle(i);
  });
  // Sent even when a record existed: a crash between record and send must not lose the jobs;
  // Service Bus duplicate detection drops a second copy of the same message id.
  await sendInBatches(deps.replicationSender, messages.flatMap((m) => m ?? []));

  const ignored = events.filter((e) => e.kind === 'ignored').length;
  return { status: 202, jsonBody: { pushes: accepted.filter((a) => a !== undefined), ignored, problems: reported.filter((p) => p !== undefined) } };
}

/** Event indexes grouped by what their order matters for (a tag, else a manifest), each group in envelope order. */
function orderedGroups(events: ClassifiedEvent[]): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  events.forEach((e, i) => {
    const key = e.kind === 'manifest-push' || e.kind === 'delete' ? (e.tag ? `${e.repository}:${e.tag}` : `${e.repository}@${e.digest}`) : `#${i}`;
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  return groups;
}

async function preparePush(event: Extract<ClassifiedEvent, { kind: 'manifest-push' }>, index: number, replicasNow: () => Promise<ReadonlyMap<string, RegionStorage>>, deps: PushDeps): Promise<Prepared | EventProblem> {
  const { repository, digest, tag } = event;
  const problem = (reason: string, description: string): EventProblem => ({ index, eventId: event.event.id, repository, tag, digest, reason, description });
  // The replicas are listed while home's manifest is read (one round trip less before the answer).
  // Handled here too: an event that ends as a problem never awaits the listing, and a failed
  // listing must not go unhandled then (an event that awaits it still gets the error).
  const listing = replicasNow();
  listing.catch(() => undefined);
  let image: Image;
  try {
    image = await readImage(deps.home, digest, event.mediaType);
  } catch (e) {
    // The root itself missing (read first, so no HEAD before it): the registry root is wrong, or the manifest went.
    if (e instanceof BlobNotFoundError && e.digest === digest) {
      return problem(
        'ManifestNotInHome',
        `manifest ${digest} of ${repository} is not in the home region's storage (${deps.settings.homeRegion.name}, container "${deps.settings.registry.container}", root "${deps.settings.registry.root}"): if every push says this, GEOREG_REGISTRY_ROOT is wrong (run \`georeg doctor\`); else the manifest was deleted before georeg saw the push`,
      );
    }
    // A manifest that does not parse or does not match its digest cannot be replicated; anything
    // else (storage unreachable) is ours and propagates as a 5xx the registry retries.
    if (e instanceof ManifestError || e instanceof DigestMismatchError || e instanceof BlobNotFoundError) return problem('ManifestUnreadable', `${repository}@${digest}: ${e.message}`);
    throw e;
  }
  const replicas = await listing;
  const pushId = pushIdFor(event.event.id);
  return planImagePush({ image, replicas, pushId, eventId: event.event.id, repository, tag, request: requestInfo(event.event) });
}

function prepareDelete(event: Extract<ClassifiedEvent, { kind: 'delete' }>, replicas: ReadonlyMap<string, RegionStorage>): Prepared {
  const { repository, digest, tag } = event;
  const pushId = pushIdFor(event.event.id);
  const jobs: DeleteJob[] = [];
  const regions: PushRecord['regions'] = [];
  for (const region of replicas.keys()) {
    const jobId = jobIdFor(event.event.id, region);
    jobs.push({ version: 1, jobId, pushId, eventId: event.event.id, region, repository, createdAt: new Date().toISOString(), request: requestInfo(event.event), action: 'delete', tag, digest, mediaType: event.event.target.mediaType });
    regions.push({ region, jobId, missingBlobs: 0, missingBytes: 0 });
  }
  const record: PushRecord = { pushId, eventId: event.event.id, action: 'delete', repository, tag, digest, createdAt: new Date().toISOString(), request: requestInfo(event.event), regions };
  return { record, jobs };
}

function requestInfo(event: NotificationEvent): RequestInfo | undefined {
  const r = event.request;
  return r ? { id: r.id, host: r.host, method: r.method, useragent: r.useragent } : undefined;
}
