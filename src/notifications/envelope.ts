import { z } from 'zod';
import { DigestSchema } from '../oci/digest';
import { isManifestMediaType } from '../oci/mediatypes';
import { isRepositoryName, isTag } from '../storage/paths';

/**
 * Distribution's notification envelope: `{"events":[...]}`, POSTed by registry:2 / Harbor with
 * media type application/vnd.docker.distribution.events.v1+json (2.x) or ...v2+json (3.x).
 * A push sends one event per blob, then the manifest event; pulls and mounts come too.
 * Only manifest pushes and deletes matter here; the rest are acknowledged and ignored.
 */

export const ENVELOPE_MEDIA_TYPES = [
  'application/vnd.docker.distribution.events.v1+json',
  'application/vnd.docker.distribution.events.v2+json',
  'application/json',
] as const;

const Target = z
  .object({
    mediaType: z.string().optional(),
    digest: DigestSchema.optional(),
    size: z.number().int().nonnegative().optional(),
    length: z.number().int().nonnegative().optional(),
    repository: z.string().refine(isRepositoryName, { message: 'not a valid repository name' }),
    url: z.string().optional(),
    tag: z.string().refine(isTag, { message: 'not a valid tag' }).optional(),
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

const Envelope = z.object({ events: z.array(Event) }).passthrough();

export type ClassifiedEvent =
  | { kind: 'manifest-push'; event: NotificationEvent; repository: string; digest: string; tag?: string; mediaType?: string }
  | { kind: 'delete'; event: NotificationEvent; repository: string; digest?: string; tag?: string }
  | { kind: 'ignored'; event: NotificationEvent; reason: string };

export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

/** Parses and classifies the envelope; throws EnvelopeError with a precise reason. */
export function parseEnvelope(body: string, contentType: string | undefined): ClassifiedEvent[] {
  const type = (contentType ?? 'application/json').split(';')[0].trim().toLowerCase();
  if (!(ENVELOPE_MEDIA_TYPES as readonly string[]).includes(type)) {
    throw new EnvelopeError(`unsupported Content-Type "${type}": send ${ENVELOPE_MEDIA_TYPES.join(' or ')}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (e) {
    throw new EnvelopeError(`the body is not JSON (${(e as Error).message})`);
  }
  const parsed = Envelope.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new EnvelopeError(`malformed notification envelope at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data.events.map((event, i) => classify(event, i));
}

function classify(event: NotificationEvent, index: number): ClassifiedEvent {
  const { target } = event;
  const isManifest = isManifestMediaType(target.mediaType) || /\/manifests\//.test(target.url ?? '');
  switch (event.action) {
    case 'push':
      if (!isManifest) return { kind: 'ignored', event, reason: 'blob push: replicated with its manifest' };
      if (!target.digest) throw new EnvelopeError(`events[${index}] (${event.id}): a manifest push event needs target.digest`);
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
      return { kind: 'ignored', event, reason: `unknown action "${event.action}"` };
  }
}
