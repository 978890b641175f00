import { DigestMismatchError, digestOf, parseDigest } from './digest';
import { ManifestError, parseManifest, type Descriptor, type DescriptorRef, type Manifest } from './manifest';
import { isForeignLayerType } from './mediatypes';

/** What one manifest references: blobs to copy, foreign layers never copied, child manifests. */
export function blobReferences(manifest: Manifest): { blobs: Descriptor[]; foreign: Descriptor[]; children: Descriptor[]; subject?: Descriptor } {
  if (manifest.kind === 'index') return { blobs: [], foreign: [], children: manifest.manifests, subject: manifest.subject };
  const blobs: Descriptor[] = [];
  const foreign: Descriptor[] = [];
  for (const d of [...(manifest.config ? [manifest.config] : []), ...manifest.layers]) {
    (d.urls?.length || isForeignLayerType(d.mediaType) ? foreign : blobs).push(d);
  }
  return { blobs, foreign, children: [], subject: manifest.subject };
}

export interface ImageGraph {
  root: DescriptorRef;
  /** Every manifest, children before parents, the root last; deduplicated. */
  manifests: DescriptorRef[];
  /** Configs and layers of every manifest, deduplicated, foreign layers excluded. */
  blobs: DescriptorRef[];
  foreign: Array<DescriptorRef & { urls?: string[] }>;
  totalBytes: number;
}

const MAX_DEPTH = 8;

/**
 * Walks an image from its root manifest: an index's children, then each manifest's config and
 * layers. Every manifest is verified against the digest it was fetched by.
 */
export async function walkReferences(
  rootDigest: string,
  fetchManifest: (digest: string) => Promise<{ bytes: Uint8Array; mediaType?: string }>,
): Promise<ImageGraph> {
  parseDigest(rootDigest);
  const manifests = new Map<string, DescriptorRef>();
  const blobs = new Map<string, DescriptorRef>();
  const foreign = new Map<string, DescriptorRef & { urls?: string[] }>();

  const visit = async (digest: string, declared: Descriptor | undefined, path: string[]): Promise<DescriptorRef> => {
    if (path.includes(digest)) throw new ManifestError(`manifest ${digest} references itself through ${path.join(' → ')}`);
    if (path.length >= MAX_DEPTH) throw new ManifestError(`manifest ${path[0]} nests indexes deeper than ${MAX_DEPTH} levels`);
    const seen = manifests.get(digest);
    if (seen) return seen;
    const { bytes, mediaType: fetchedType } = await fetchManifest(digest);
    const { algorithm } = parseDigest(digest);
    const actual = digestOf(bytes, algorithm);
    if (actual !== digest) throw new DigestMismatchError(digest, actual, path.length ? `child of ${path[path.length - 1]}` : 'the root manifest');
    if (declared && declared.size !== bytes.length) {
      throw new ManifestError(`manifest ${digest} is ${bytes.length} bytes but its descriptor in ${path[path.length - 1]} says ${declared.size}`);
    }
    const manifest = parseManifest(bytes, declared?.mediaType ?? fetchedType);
    const refs = blobReferences(manifest);
    for (const child of refs.children) await visit(child.digest, child, [...path, digest]);
    for (const b of refs.blobs) if (!blobs.has(b.digest)) blobs.set(b.digest, { digest: b.digest, mediaType: b.mediaType, size: b.size });
    for (const f of refs.foreign) if (!foreign.has(f.digest)) foreign.set(f.digest, { digest: f.digest, mediaType: f.mediaType, size: f.size, urls: f.urls });
    const ref = { digest, mediaType: manifest.mediaType, size: bytes.length };
    manifests.set(digest, ref);
    return ref;
  };

  const root = await visit(rootDigest, undefined, []);
  const all = [...manifests.values(), ...blobs.values()];
  return { root, manifests: [...manifests.values()], blobs: [...blobs.values()], foreign: [...foreign.values()], totalBytes: all.reduce((s, d) => s + d.size, 0) };
}
