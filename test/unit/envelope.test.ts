import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/oci/digest';
import { EnvelopeError, parseEnvelope } from '../../src/notifications/envelope';

const manifestDigest = digestOf('manifest');
const layerDigest = digestOf('layer');
const V1 = 'application/vnd.docker.distribution.events.v1+json';

// Shaped as registry:2 (Distribution 2.8) sends them: blob events, then the manifest event.
const distributionPush = {
  events: [
    {
      id: '320678d8-ca14-430f-8bb6-4ca139cd83f7',
      timestamp: '2026-11-25T09:00:00.1Z',
      action: 'push',
      target: { mediaType: 'application/octet-stream', size: 100, digest: layerDigest, length: 100, repository: 'library/web', url: `http://reg/v2/library/web/blobs/${layerDigest}` },
      request: { id: 'r1', addr: '10.0.0.1:5000', host: 'reg', method: 'PUT', useragent: 'docker/27' },
      actor: {},
      source: { addr: 'reg:5000', instanceID: 'i' },
    },
    {
      id: '6b4f5f7e-8a3d-4c49-9a6a-1f2f3b1b2c3d',
      timestamp: '2026-11-25T09:00:01.1Z',
      action: 'push',
      target: {
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        size: 528,
        digest: manifestDigest,
        length: 528,
        repository: 'library/web',
        url: `http://reg/v2/library/web/manifests/${manifestDigest}`,
        tag: '1.2',
        references: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: layerDigest, size: 100 }],
      },
      request: { id: 'r2', addr: '10.0.0.1:5000', host: 'reg', method: 'PUT', useragent: 'docker/27' },
      actor: { name: 'ci' },
      source: { addr: 'reg:5000', instanceID: 'i' },
    },
    { id: 'p1', timestamp: '2026-11-25T09:00:02Z', action: 'pull', target: { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: manifestDigest, repository: 'library/web' } },
  ],
};

describe('parseEnvelope (Distribution notifications)', () => {
  it('starts replication only for the manifest push; blob pushes and pulls are acknowledged', () => {
    const events = parseEnvelope(JSON.stringify(distributionPush), V1);
    expect(events.map((e) => e.kind)).toEqual(['ignored', 'manifest-push', 'ignored']);
    expect(events[1]).toMatchObject({ kind: 'manifest-push', repository: 'library/web', digest: manifestDigest, tag: '1.2' });
  });

  it('accepts the 3.x media type, plain JSON and a charset parameter', () => {
    for (const type of ['application/vnd.docker.distribution.events.v2+json', 'application/json; charset=utf-8', undefined]) {
      expect(parseEnvelope(JSON.stringify(distributionPush), type)).toHaveLength(3);
    }
  });

  it('classifies manifest and tag deletes; a repository delete is acknowledged', () => {
    const body = JSON.stringify({
      events: [
        { id: 'd1', action: 'delete', target: { repository: 'library/web', digest: manifestDigest } },
        { id: 'd2', action: 'delete', target: { repository: 'library/web', tag: '1.2' } },
        { id: 'd3', action: 'delete', target: { repository: 'library/web' } },
      ],
    });
    expect(parseEnvelope(body, V1).map((e) => e.kind)).toEqual(['delete', 'delete', 'ignored']);
  });

  it('refuses only what is not an envelope, with a precise reason', () => {
    const refuse = (body: string, type = V1) => {
      try {
        parseEnvelope(body, type);
      } catch (e) {
        expect(e).toBeInstanceOf(EnvelopeError);
        return (e as Error).message;
      }
      throw new Error('expected an EnvelopeError');
    };
    expect(refuse('{"events": [')).toMatch(/not JSON/);
    expect(refuse('{"event": []}')).toMatch(/not a notification envelope \(events: missing\)/);
    expect(refuse('{}', 'text/plain')).toMatch(/Content-Type was "text\/plain"/);
  });

  it('a malformed event of many is a problem naming the event; the others are classified', () => {
    const body = JSON.stringify({
      events: [
        { id: 'x1', action: 'push', target: { repository: 'Bad Name' } },
        { id: 'x2', action: 'push', target: { repository: 'a', digest: 'md5:abc' } },
        { id: 'x3', action: 'push', target: { repository: 'a', mediaType: 'application/vnd.oci.image.manifest.v1+json' } },
        { id: 'x4', action: 'frobnicate', target: { repository: 'a' } },
        'not an object',
        distributionPush.events[1],
      ],
    });
    const events = parseEnvelope(body, V1);
    expect(events.map((e) => e.kind)).toEqual(['problem', 'problem', 'problem', 'problem', 'problem', 'manifest-push']);
    const problems = events.filter((e) => e.kind === 'problem');
    expect(problems.map((p) => [p.event.id, p.reason])).toEqual([
      ['x1', 'MalformedEvent'],
      ['x2', 'MalformedEvent'],
      ['x3', 'MalformedEvent'],
      ['x4', 'UnknownAction'],
      [undefined, 'MalformedEvent'],
    ]);
    expect(problems[0].description).toMatch(/events\[0\]: target.repository: not a valid repository name/);
    expect(problems[1].description).toMatch(/target.digest/);
    expect(problems[2].description).toMatch(/needs target.digest/);
  });

  it("reads Distribution 3's tag delete (empty digest and media type) as a tag delete", () => {
    const body = JSON.stringify({
      events: [{ id: 'd3x', timestamp: '2026-11-25T09:00:00Z', action: 'delete', target: { mediaType: '', digest: '', size: 0, repository: 'acc/app', tag: 'v1' }, request: { id: 'r', method: 'DELETE' } }],
    });
    const [event] = parseEnvelope(body, 'application/vnd.docker.distribution.events.v2+json');
    expect(event).toMatchObject({ kind: 'delete', repository: 'acc/app', tag: 'v1' });
    expect((event as { digest?: string }).digest).toBeUndefined();
  });
});
