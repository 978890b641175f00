import { randomUUID } from 'node:crypto';
import type { DescriptorRef } from '../oci/manifest';

/**
 * Builds and posts the envelope a registry sends for a push: one event per blob, then the
 * manifest event with `target.references` — what Distribution's notification bridge emits.
 */

export const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v2+json';

export interface PushEventsInput {
  repository: string;
  tag?: string;
  manifest: DescriptorRef;
  blobs: DescriptorRef[];
  references: DescriptorRef[];
  host?: string;
  actor?: string;
}

export function pushEnvelope(input: PushEventsInput) {
  const request = { id: randomUUID(), addr: '127.0.0.1', host: input.host ?? 'localhost:5000', method: 'PUT', useragent: 'georeg-cli/0.1' };
  const at = new Date().toISOString();
  const source = { addr: 'georeg-cli', instanceID: randomUUID() };
  const actor = input.actor ? { name: input.actor } : {};
  const base = `http://${request.host}/v2/${input.repository}`;
  return {
    events: [
      ...input.blobs.map((b) => ({
        id: randomUUID(),
        timestamp: at,
        action: 'push',
        target: { mediaType: 'application/octet-stream', digest: b.digest, size: b.size, length: b.size, repository: input.repository, url: `${base}/blobs/${b.digest}` },
        request: { ...request, method: 'PUT' },
        actor,
        source,
      })),
      {
        id: randomUUID(),
        timestamp: at,
        action: 'push',
        target: {
          mediaType: input.manifest.mediaType,
          digest: input.manifest.digest,
          size: input.manifest.size,
          length: input.manifest.size,
          repository: input.repository,
          url: `${base}/manifests/${input.manifest.digest}`,
          ...(input.tag ? { tag: input.tag } : {}),
          references: input.references.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
        },
        request,
        actor,
        source,
      },
    ],
  };
}

export function deleteEnvelope(input: { repository: string; tag?: string; digest?: string }) {
  return {
    events: [
      {
        id: randomUUID(),
        timestamp: new Date().toISOString(),
        action: 'delete',
        target: { repository: input.repository, ...(input.digest ? { digest: input.digest } : {}), ...(input.tag ? { tag: input.tag } : {}) },
        request: { id: randomUUID(), addr: '127.0.0.1', host: 'localhost:5000', method: 'DELETE', useragent: 'georeg-cli/0.1' },
        actor: {},
        source: { addr: 'georeg-cli', instanceID: randomUUID() },
      },
    ],
  };
}

export class NotificationRejectedError extends Error {
  constructor(readonly status: number, readonly body: string, url: string) {
    super(`${url} answered ${status}: ${body.slice(0, 500)}`);
    this.name = 'NotificationRejectedError';
  }
}

/** POSTs an envelope as Distribution does (its endpoint `headers` carry the secret). */
export async function postNotification(url: string, secret: string, envelope: unknown): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': EVENTS_MEDIA_TYPE, Authorization: `Bearer ${secret}` },
    body: JSON.stringify(envelope),
  });
  const text = await res.text();
  if (res.status !== 202) throw new NotificationRejectedError(res.status, text, url);
  return JSON.parse(text);
}
