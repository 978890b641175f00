import { describe, expect, it } from 'vitest';
import { WebhookDeliveryMessage, webhookDeliveryMessage, webhookDeliveryMessageId, WebhookEvent, type DeleteJob, type PushJob } from '../../src/bus/messages';
import { deliveryIdFor, eventIdFor, pingEvent, regionEvent } from '../../src/webhooks/payload';

const digest = `sha256:${'a'.repeat(64)}`;
const pushJob: PushJob = {
  version: 1,
  jobId: 'p1:eastus',
  pushId: 'p1',
  eventId: 'p1',
  region: 'eastus',
  repository: 'team/web',
  createdAt: '2025-01-01T00:00:00.000Z',
  request: { id: 'r1', host: 'registry.example.com', method: 'PUT', useragent: 'docker/27' },
  action: 'push',
  tag: '1.2',
  manifest: { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1234 },
  plan: { inline: { manifests: [], blobs: [], missing: [], foreign: [] } },
};

describe('webhook payloads (ACR format + region + push id)', () => {
  it('a push event carries the manifest as target, the request, the region and the push id', () => {
    const event = regionEvent(pushJob, { region: 'eastus', completedAt: '2025-01-01T00:00:05.000Z' });
    expect(event).toEqual({
      id: eventIdFor('p1', 'eastus'),
      timestamp: '2025-01-01T00:00:05.000Z',
      action: 'push',
      target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1234, digest, length: 1234, repository: 'team/web', tag: '1.2' },
      request: { id: 'r1', host: 'registry.example.com', method: 'PUT', useragent: 'docker/27' },
      region: 'eastus',
      pushId: 'p1',
    });
  });

  it('a delete event by digest carries mediaType, digest, repository as ACR does; a tag delete the tag', () => {
    const base = { version: 1, jobId: 'd1:eastus', pushId: 'd1', eventId: 'd1', region: 'eastus', repository: 'team/web', createdAt: '2025-01-01T00:00:00.000Z', action: 'delete' } as const;
    const byDigest = regionEvent({ ...base, digest, mediaType: 'application/vnd.docker.distribution.manifest.v2+json' } as DeleteJob, { region: 'eastus' });
    expect(byDigest.target).toEqual({ mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest, repository: 'team/web' });
    const byTag = regionEvent({ ...base, tag: 'old' } as DeleteJob, { region: 'eastus' });
    expect(byTag.target).toEqual({ repository: 'team/web', tag: 'old' });
  });

  it('event ids are UUIDs, stable per push and region, different across regions', () => {
    expect(eventIdFor('p1', 'eastus')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(eventIdFor('p1', 'eastus')).toBe(eventIdFor('p1', 'eastus'));
    expect(eventIdFor('p1', 'eastus')).not.toBe(eventIdFor('p1', 'westeurope'));
  });

  it('delivery ids are (push, region, webhook); message ids stay within 128 characters', () => {
    const event = regionEvent(pushJob, { region: 'eastus' });
    expect(deliveryIdFor(event, 'deployeast')).toBe('p1:eastus:deployeast');
    expect(deliveryIdFor(pingEvent('eastus'), 'deployeast')).toMatch(/^ping-[0-9a-f-]{36}:eastus:deployeast$/);
    expect(webhookDeliveryMessageId('p1:eastus:deployeast', 1)).toBe('p1:eastus:deployeast');
    expect(webhookDeliveryMessageId('p1:eastus:deployeast', 3)).toBe('p1:eastus:deployeast#3');
    // A re-driven delivery starts its attempts over under a new id lineage.
    expect(webhookDeliveryMessageId('p1:eastus:deployeast', 1, 2)).toBe('p1:eastus:deployeast:redrive:2');
    expect(webhookDeliveryMessageId('p1:eastus:deployeast', 3, 2)).toBe('p1:eastus:deployeast:redrive:2#3');
    const long = `${'h'.repeat(64)}:${'r'.repeat(50)}:${'w'.repeat(50)}`;
    expect(webhookDeliveryMessageId(long, 1)).toHaveLength(67);
    expect(webhookDeliveryMessageId(long, 1)).toBe(webhookDeliveryMessageId(long, 1));
    expect(webhookDeliveryMessageId(long, 2)).not.toBe(webhookDeliveryMessageId(long, 1));
  });

  it('the Service Bus message has the deterministic id, the push as correlation id and dashboard properties', () => {
    const event = regionEvent(pushJob, { region: 'eastus' });
    const delivery = { version: 1 as const, deliveryId: 'p1:eastus:deployeast', webhook: 'deployeast', region: 'eastus', attempt: 1, firstQueuedAt: '2025-01-01T00:00:06.000Z', event };
    const message = webhookDeliveryMessage(delivery);
    expect(message).toMatchObject({ messageId: 'p1:eastus:deployeast', correlationId: 'p1', subject: 'webhook:push:team/web:1.2', applicationProperties: { region: 'eastus', action: 'push', repository: 'team/web', webhook: 'deployeast', attempt: 1 } });
    expect(WebhookDeliveryMessage.parse(JSON.parse(JSON.stringify(message.body)))).toEqual(delivery);
    expect(WebhookEvent.safeParse({ ...event, action: 'quarantine' }).success).toBe(false);
  });
});
