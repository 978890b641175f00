import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/oci/digest';
import { RegistryLayout, isRepositoryName, registryRootOfDirectory, statePaths } from '../../src/storage/paths';

const digest = digestOf('hello');
const hex = digest.slice('sha256:'.length);

describe('RegistryLayout (Distribution v2 storage layout)', () => {
  it('builds every path under the default Distribution 3 root', () => {
    const l = new RegistryLayout();
    expect(l.blobData(digest)).toBe(`docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`);
    expect(l.link({ kind: 'layer', repository: 'library/web', digest })).toBe(`docker/registry/v2/repositories/library/web/_layers/sha256/${hex}/link`);
    expect(l.link({ kind: 'revision', repository: 'library/web', digest })).toBe(`docker/registry/v2/repositories/library/web/_manifests/revisions/sha256/${hex}/link`);
    expect(l.link({ kind: 'tagCurrent', repository: 'library/web', tag: '1.2' })).toBe('docker/registry/v2/repositories/library/web/_manifests/tags/1.2/current/link');
    expect(l.link({ kind: 'tagIndex', repository: 'library/web', tag: '1.2', digest })).toBe(`docker/registry/v2/repositories/library/web/_manifests/tags/1.2/index/sha256/${hex}/link`);
  });

  it("keeps Distribution 2.8's leading slash and a rootdirectory prefix as configured", () => {
    expect(new RegistryLayout('/docker/registry/v2').blobData(digest)).toBe(`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`);
    expect(new RegistryLayout('myroot/docker/registry/v2/').link({ kind: 'tagCurrent', repository: 'a', tag: 'b' })).toBe('myroot/docker/registry/v2/repositories/a/_manifests/tags/b/current/link');
  });

  it('builds every prefix: the whole root, repositories, a repository\'s tags, a tag, its history', () => {
    const l = new RegistryLayout();
    expect(l.prefix({ kind: 'everything' })).toBe('docker/registry/v2/');
    expect(l.prefix({ kind: 'repositories' })).toBe('docker/registry/v2/repositories/');
    expect(l.prefix({ kind: 'tags', repository: 'library/web' })).toBe('docker/registry/v2/repositories/library/web/_manifests/tags/');
    expect(l.prefix({ kind: 'tag', repository: 'library/web', tag: '1.2' })).toBe('docker/registry/v2/repositories/library/web/_manifests/tags/1.2/');
    expect(l.prefix({ kind: 'tagIndex', repository: 'library/web', tag: '1.2' })).toBe('docker/registry/v2/repositories/library/web/_manifests/tags/1.2/index/');
    expect(() => l.prefix({ kind: 'tag', repository: 'web', tag: '.hidden' })).toThrow(/invalid tag ".hidden"/);
  });

  it('reads a tag link path back, and nothing else', () => {
    const l = new RegistryLayout('/docker/registry/v2');
    expect(l.parseTagCurrentLink(l.link({ kind: 'tagCurrent', repository: 'team/app/web', tag: 'v1' }))).toEqual({ repository: 'team/app/web', tag: 'v1' });
    expect(l.parseTagCurrentLink(l.link({ kind: 'tagIndex', repository: 'team/app/web', tag: 'v1', digest }))).toBeUndefined();
    expect(l.parseTagCurrentLink(l.link({ kind: 'layer', repository: 'web', digest }))).toBeUndefined();
    // Names no registry writes are not tags (their link could not be read by spec).
    expect(l.parseTagCurrentLink('/docker/registry/v2/repositories/Web/_manifests/tags/v1/current/link')).toBeUndefined();
    expect(l.parseTagCurrentLink('/docker/registry/v2/repositories/web/_manifests/tags/-v1/current/link')).toBeUndefined();
  });

  it('refuses names and tags the Distribution spec refuses, and bad digests', () => {
    const l = new RegistryLayout();
    expect(() => l.link({ kind: 'layer', repository: 'Web', digest })).toThrow(/invalid repository name "Web"/);
    expect(() => l.link({ kind: 'layer', repository: '../etc', digest })).toThrow(/invalid repository name/);
    expect(() => l.link({ kind: 'tagCurrent', repository: 'web', tag: '-bad' })).toThrow(/invalid tag "-bad"/);
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
    expect(l.parseRepositoryOf(l.link({ kind: 'layer', repository: 'team/web', digest }))).toBe('team/web');
    expect(l.parseRepositoryOf(l.link({ kind: 'tagCurrent', repository: 'a/b/c', tag: 'v1' }))).toBe('a/b/c');
    expect(l.parseRepositoryOf(l.blobData(digest))).toBeUndefined();
    expect(new RegistryLayout().parseRepositoryOf(l.link({ kind: 'layer', repository: 'team/web', digest }))).toBeUndefined();
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
