import { z } from 'zod';
import { describeZodError } from '../common/zod';
import { DigestSchema } from '../oci/digest';
import { isManifestMediaType } from '../oci/mediatypes';
import { isRepositoryName, isTag } from '../storage/paths';

/**
 * Distribution's notification envelope: `{"events":[...]}`, POSTed by registry:2 / Harbor with
 * media type application/vnd.docker.distribution.events.v1+json (2.x) or ...v2+json (3.x).
 * A push sends one event per blob, then the manifest event; pulls and mounts come too.
 *
 * A registry retries a refused envelope for ever and queues every later event behind it, so only
 * a body that is no envelope at all is refused. Each event is parsed on its own: one malformed
 * event of many becomes a `problem` (recorded and reported), and the others go on.
 */

export const ENVELOPE_MEDIA_TYPES = [
  'application/vnd.docker.distribution.events.v1+json',
  'application/vnd.docker.distribution.events.v2+json',
  'application/json',
] as const;

// Distribution 3 sends a tag delete with `"digest": ""` and `"mediaType": ""`: empty means absent.
const emptyAsAbsent = (v: unknown) => (v === '' ? undefined : v);

const Target = z
  .object({
    mediaType: z.preprocess(emptyAsAbsent, z.string().optional()),
    digest: z.preprocess(emptyAsAbsent, DigestSchema.optional()),
    size: z.number().int().nonnegative().optional(),
    length: z.number().int().nonnegative().optional(),
    repository: z.string().refine(isRepositoryName, { message: 'not a valid repository name' }),
    url: z.string().optional(),
    tag: z.preprocess(emptyAsAbsent, z.string().refine(isTag, { message: 'not a valid tag' }).optional()),
    references: z.array(z.object({ mediaType: z.string().optional(), digest: DigestSchema, size: z.number().optional() })).optional(),
  })
  .passthrough();

const Event = z
  .object({
    id: z.string().min(1).max(200),
    timestamp: z.string().optional(),
    action: z.string().min(1),
    target: Target,
    request: z
      .object({ id: z.string().optional(), addr: z.string().optional(), host: z.string().optional(), method: z.string().optional(), useragent: z.string().optional() })
      .passthrough()
      .optional(),
    actor: z.object({ name: z.string().optional() }).passthrough().optional(),
    source: z.object({ addr: z.string().optional(), instanceID: z.string().optional() }).passthrough().optional(),
  })
  .passthrough();
export type NotificationEvent = z.infer<typeof Event>;

const Envelope = z.object({ events: z.array(z.unknown()) }).passthrough();

/** What a problem event could still tell about itself (for the record and the log). */
export interface ProblemEvent {
  index: number;
  id?: string;
  timestamp?: string;
  action?: string;
  repository?: string;
  tag?: string;
  digest?: string;
}

export type ClassifiedEvent =
  | { kind: 'manifest-push'; event: NotificationEvent; repository: string; digest: string; tag?: string; mediaType?: string }
  | { kind: 'delete'; event: NotificationEvent; repository: string; digest?: string; tag?: string }
  | { kind: 'ignored'; event: NotificationEvent; reason: string }
  | { kind: 'problem'; event: ProblemEvent; reason: string; description: string };

export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

/** Parses and classifies the envelope; throws EnvelopeError only when the body is no envelope at all. */
export function parseEnvelope(body: string, contentType: string | undefined): ClassifiedEvent[] {
  const type = (contentType ?? 'application/json').split(';')[0].trim().toLowerCase();
  // The Content-Type is advisory: a proxy or another registry may label the envelope otherwise,
  // and refusing a real envelope for its label would stall the registry's queue.
  const expected = `a notification envelope ({"events":[...]}, Content-Type ${ENVELOPE_MEDIA_TYPES.join(' or ')})`;
  const labelled = (ENVELOPE_MEDIA_TYPES as readonly string[]).includes(type) ? '' : ` (Content-Type was "${type}")`;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (e) {
    throw new EnvelopeError(`the body is not JSON (${(e as Error).message}): send ${expected}${labelled}`);
  }
  const parsed = Envelope.safeParse(json);
  if (!parsed.success) {
    throw new EnvelopeError(`not a notification envelope (${describeZodError(parsed.error)}): send ${expected}${labelled}`);
  }
  return parsed.data.events.map((raw, i) => {
    const event = Event.safeParse(raw);
    if (!event.success) return problem(raw, i, 'MalformedEvent', `events[${i}]: ${describeZodError(event.error)}`);
    return classify(event.data, i);
  });
}

function classify(event: NotificationEvent, index: number): ClassifiedEvent {
  const { target } = event;
  const isManifest = isManifestMediaType(target.mediaType) || /\/manifests\//.test(target.url ?? '');
  switch (event.action) {
    case 'push':
      if (!isManifest) return { kind: 'ignored', event, reason: 'blob push: replicated with its manifest' };
      if (!target.digest) return problem(event, index, 'MalformedEvent', `events[${index}] (${event.id}): a manifest push event needs target.digest`);
      return { kind: 'manifest-push', event, repository: target.repository, digest: target.digest, tag: target.tag, mediaType: target.mediaType };
    case 'delete':
      // Distribution sends repository-only events when a whole repository is deleted; georeg
      // replicates manifest and tag deletes and leaves repository removal to the operator.
      if (!target.digest && !target.tag) return { kind: 'ignored', event, reason: 'repository delete: not replicated' };
      return { kind: 'delete', event, repository: target.repository, digest: target.digest, tag: target.tag };
    case 'pull':
    case 'mount':
      return { kind: 'ignored', event, reason: `${event.action} event` };
    default:
      return problem(event, index, 'UnknownAction', `events[${index}] (${event.id}): unknown action "${event.action}" (georeg acts on push and delete)`);
  }
}

/** A problem event keeps whatever fields of it are readable, so the record says which event it was. */
function problem(raw: unknown, index: number, reason: string, description: string): ClassifiedEvent {
  const o = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const t = (typeof o.target === 'object' && o.target !== null ? o.target : {}) as Record<string, unknown>;
  const str = (v: unknown, max = 300) => (typeof v === 'string' && v !== '' ? v.slice(0, max) : undefined);
  return {
    kind: 'problem',
    event: { index, id: str(o.id, 200), timestamp: str(o.timestamp, 64), action: str(o.action, 64), repository: str(t.repository), tag: str(t.tag, 128), digest: str(t.digest, 200) },
    reason,
    description,
  };
}
