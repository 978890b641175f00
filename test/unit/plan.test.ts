import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/oci/digest';
import { missingBytes, planDescriptors, planRegion, pushJobFor, pushRecordFor, type ImageReferences } from '../../src/replication/plan';

const d = (name: string, size: number, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip') => ({ digest: digestOf(name), size, mediaType });

const base = d('base', 1000);
const app = d('app', 200);
const config = d('config', 50, 'application/vnd.oci.image.config.v1+json');
const manifest = d('manifest', 400, 'application/vnd.oci.image.manifest.v1+json');
const image: ImageReferences = { manifests: [manifest], blobs: [base, app, config], foreign: [] };

describe('planRegion (the layer diff)', () => {
  it('an empty region lacks every blob and the manifest, blobs before manifests', () => {
    const plan = planRegion(image, new Map());
    expect(plan.missing).toEqual([base.digest, app.digest, config.digest, manifest.digest]);
    expect(missingBytes(plan)).toBe(1650);
  });

  it('a region holding the shared base layer lacks only the rest', () => {
    const plan = planRegion(image, new Map([[base.digest, 1000]]));
    expect(plan.missing).toEqual([app.digest, config.digest, manifest.digest]);
    expect(missingBytes(plan)).toBe(650);
  });

  it('a region holding everything lacks nothing', () => {
    const all = new Map(planDescriptors(planRegion(image, new Map())).map((x) => [x.digest, x.size] as const));
    const plan = planRegion(image, all);
    expect(plan.missing).toEqual([]);
    expect(missingBytes(plan)).toBe(0);
  });

  it('a blob of the wrong size in the region is copied again', () => {
    const plan = planRegion(image, new Map([[base.digest, 999]]));
    expect(plan.missing).toContain(base.digest);
  });

  it('a digest referenced twice (shared layer across an index) is planned once', () => {
    const child2 = d('child2', 300, 'application/vnd.oci.image.manifest.v1+json');
    const idx = d('index', 500, 'application/vnd.oci.image.index.v1+json');
    const plan = planRegion({ manifests: [manifest, child2, idx], blobs: [base, app, base, config], foreign: [] }, new Map());
    expect(plan.missing.filter((x) => x === base.digest)).toHaveLength(1);
    expect(missingBytes(plan)).toBe(1000 + 200 + 50 + 400 + 300 + 500);
  });

  it('foreign layers are carried in the plan but never missing', () => {
    const foreign = { ...d('windows-base', 5_000_000, 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'), urls: ['https://mcr.microsoft.com/x'] };
    const plan = planRegion({ ...image, foreign: [foreign] }, new Map());
    expect(plan.foreign).toEqual([foreign]);
    expect(plan.missing).not.toContain(foreign.digest);
  });
});

describe('pushJobFor / pushRecordFor (image → region plan → job)', () => {
  const rooted = { ...image, root: manifest };

  it("a region's job carries its diff, and its pending status counts what is missing against the whole image", () => {
    const { job, status, summary } = pushJobFor({ image: rooted, pushId: 'p1', eventId: 'e1', region: 'westus', repository: 'app', tag: 'v1' }, new Map([[base.digest, 1000]]));
    expect(job).toMatchObject({ jobId: 'p1:westus', action: 'push', tag: 'v1', manifest, plan: { inline: { missing: [app.digest, config.digest, manifest.digest] } } });
    expect(summary).toEqual({ region: 'westus', jobId: 'p1:westus', missingBlobs: 3, missingBytes: 650 });
    expect(status).toMatchObject({ state: 'pending', digest: manifest.digest, blobs: { total: 4, planned: 3 }, bytes: { total: 1650, planned: 650 } });
  });

  it('a job planned without asking the region is unchecked: every digest is for its own check, and the summary claims no diff', () => {
    const { job, summary } = pushJobFor({ image: rooted, pushId: 'p1', eventId: 'e1', region: 'westus', repository: 'app', tag: 'v1' }, undefined);
    expect(job.plan).toMatchObject({ inline: { unchecked: true, missing: [base.digest, app.digest, config.digest, manifest.digest] } });
    expect(summary).toEqual({ region: 'westus', jobId: 'p1:westus' });
  });

  it("the push's record names the image's root and every region's job", () => {
    const a = pushJobFor({ image: rooted, pushId: 'p1', eventId: 'e1', region: 'westus', repository: 'app', tag: 'v1' }, new Map());
    const record = pushRecordFor({ pushId: 'p1', eventId: 'e1', repository: 'app', tag: 'v1', image: rooted, regions: [a.summary] });
    expect(record).toMatchObject({ action: 'push', digest: manifest.digest, mediaType: manifest.mediaType, size: 400, regions: [{ region: 'westus', missingBlobs: 4 }] });
  });
});
