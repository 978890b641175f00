import { createHash, randomUUID } from 'node:crypto';
import { WebhookEvent, type ReplicationJob } from '../bus/messages';
import type { RegionStatus } from '../replication/status';

/**
 * The events subscribers receive, in Azure Container Registry's shape. A `push` event's target is
 * the manifest (mediaType, size, digest, length, repository, tag); a `delete` event's is what was
 * deleted (mediaType, digest, repository — plus the tag for a tag delete). `region` says where the
 * event is complete; `pushId` ties it to `georeg status`.
 */

export function regionEvent(job: ReplicationJob, status: Pick<RegionStatus, 'region' | 'completedAt'>): WebhookEvent {
  const common = {
    id: eventIdFor(job.pushId, status.region),
    timestamp: status.completedAt ?? new Date().toISOString(),
    request: job.request,
    region: status.region,
    pushId: job.pushId,
  };
  if (job.action === 'push') {
    const { digest, mediaType, size } = job.manifest;
    return WebhookEvent.parse({ ...common, action: 'push', target: { mediaType, size, digest, length: size, repository: job.repository, ...(job.tag ? { tag: job.tag } : {}) } });
  }
  return WebhookEvent.parse({
    ...common,
    action: 'delete',
    target: { ...(job.mediaType ? { mediaType: job.mediaType } : {}), ...(job.digest ? { digest: job.digest } : {}), repository: job.repository, ...(job.tag ? { tag: job.tag } : {}) },
  });
}

export function pingEvent(region: string, now: Date = new Date()): WebhookEvent {
  return WebhookEvent.parse({ id: randomUUID(), timestamp: now.toISOString(), action: 'ping', region });
}

/** One delivery = one event to one webhook; the id is stable, so the same event never goes twice. */
export function deliveryIdFor(event: WebhookEvent, webhook: string): string {
  return `${event.pushId ?? `ping-${event.id}`}:${event.region}:${webhook}`;
}

/** A UUID derived from (push, region): every retry and every redelivery carries the same event id. */
export function eventIdFor(pushId: string, region: string): string {
  const h = createHash('sha256').update(`georeg-webhook-event:${pushId}:${region}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The event's `repository:tag` (or `@digest`) for logs. */
export function describeEvent(event: WebhookEvent): string {
  if (!event.target) return `${event.action} (${event.region})`;
  const { repository, tag, digest } = event.target;
  return `${event.action} ${repository}${tag ? `:${tag}` : digest ? `@${digest}` : ''} in ${event.region}`;
}
