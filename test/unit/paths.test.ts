import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/oci/digest';
import { RegistryLayout, isRepositoryName, registryRootOfDirectory, statePaths } from '../../src/storage/paths';

const digest = digestOf('hello');
const hex = digest.slice('sha256:'.length);

describe('RegistryLayout (Distribution v2 storage layout)', () => {
  it('builds every path under the default Distribution 3 root', () => {
    const l = new RegistryLayout();
    expect(l.blobData(digest)).toBe(`docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`);
    expect(l.layerLink('library/web', digest)).toBe(`docker/registry/v2/repositories/library/web/_layers/sha256/${hex}/link`);
    expect(l.manifestRevisionLink('library/web', digest)).toBe(`docker/registry/v2/repositories/library/web/_manifests/revisions/sha256/${hex}/link`);
    expect(l.tagCurrentLink('library/web', '1.2')).toBe('docker/registry/v2/repositories/library/web/_manifests/tags/1.2/current/link');
    expect(l.tagIndexLink('library/web', '1.2', digest)).toBe(`docker/registry/v2/repositories/library/web/_manifests/tags/1.2/index/sha256/${hex}/link`);
  });

  it("keeps Distribution 2.8's leading slash and a rootdirectory prefix as configured", () => {
    expect(new RegistryLayout('/docker/registry/v2').blobData(digest)).toBe(`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`);
    expect(new RegistryLayout('myroot/docker/registry/v2/').tagCurrentLink('a', 'b')).toBe('myroot/docker/registry/v2/repositories/a/_manifests/tags/b/current/link');
  });

  it('reads a tag link path back, and nothing else', () => {
    const l = new RegistryLayout('/docker/registry/v2');
    expect(l.parseTagCurrentLink(l.tagCurrentLink('team/app/web', 'v1'))).toEqual({ repository: 'team/app/web', tag: 'v1' });
    expect(l.parseTagCurrentLink(l.tagIndexLink('team/app/web', 'v1', digest))).toBeUndefined();
    expect(l.parseTagCurrentLink(l.layerLink('web', digest))).toBeUndefined();
  });

  it('refuses names and tags the Distribution spec refuses, and bad digests', () => {
    const l = new RegistryLayout();
    expect(() => l.layerLink('Web', digest)).toThrow(/invalid repository name "Web"/);
    expect(() => l.layerLink('../etc', digest)).toThrow(/invalid repository name/);
    expect(() => l.tagCurrentLink('web', '-bad')).toThrow(/invalid tag "-bad"/);
    expect(() => l.blobData('sha256:abc')).toThrow(/sha256 needs 64 lowercase hex/);
    expect(() => new RegistryLayout('/')).toThrow(/empty/);
    expect(isRepositoryName('a/b-c/d__e.f')).toBe(true);
    expect(isRepositoryName('a//b')).toBe(false);
  });

  it('names state blobs and refuses path tricks in them', () => {
    expect(statePaths.regionStatus('p1', 'eastus')).toBe('pushes/p1/regions/eastus.json');
    expect(() => statePaths.push('../x')).toThrow(/invalid state path segment/);
  });

  it('reads the repository back from any path under repositories/, and recognises a registry root by its directory', () => {
    const l = new RegistryLayout('/docker/registry/v2');
    expect(l.parseRepositoryOf(l.layerLink('team/web', digest))).toBe('team/web');
    expect(l.parseRepositoryOf(l.tagCurrentLink('a/b/c', 'v1'))).toBe('a/b/c');
    expect(l.parseRepositoryOf(l.blobData(digest))).toBeUndefined();
    expect(new RegistryLayout().parseRepositoryOf(l.layerLink('team/web', digest))).toBeUndefined();
    expect(['docker/registry/v2/', '/docker/registry/v2/', 'tenant/docker/registry/v2/', 'docker/registry/', 'notdocker/registry/v2/'].map(registryRootOfDirectory)).toEqual([
      'docker/registry/v2',
      '/docker/registry/v2',
      'tenant/docker/registry/v2',
      undefined,
      undefined,
    ]);
  });

  it('names the recent-push index newest first and reads a name back', () => {
    const older = statePaths.recentPush(new Date('2026-12-01T10:00:00Z'), '0b6f-uuid-with-dashes');
    const newer = statePaths.recentPush(new Date('2026-12-01T10:00:01Z'), 'p2');
    expect([older, newer].sort()).toEqual([newer, older]);
    expect(statePaths.recentPushOf(older)).toEqual({ at: new Date('2026-12-01T10:00:00Z'), pushId: '0b6f-uuid-with-dashes' });
    expect(statePaths.recentPushOf('pushes/p1/push.json')).toBeUndefined();
  });
});
