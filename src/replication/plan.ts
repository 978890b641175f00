import type { DescriptorRef, ReplicationPlan } from '../bus/messages';

/**
 * The layer diff: what an image references, minus what a region already holds. Pure: the caller
 * looks the region up and passes what it found; nothing here talks to Azure.
 */

export interface ImageReferences {
  /** All manifests of the image, children before parents, the root last. */
  manifests: DescriptorRef[];
  /** Configs and layers, deduplicated. */
  blobs: DescriptorRef[];
  /** Foreign / non-distributable layers, never copied. */
  foreign: Array<DescriptorRef & { urls?: string[] }>;
}

/** Size of each digest in the region, or undefined when it is absent. */
export type RegionInventory = ReadonlyMap<string, number | undefined>;

export function planRegion(image: ImageReferences, inventory: RegionInventory): ReplicationPlan {
  const missing: string[] = [];
  const seen = new Set<string>();
  // Layers and configs first, manifests after: the order the copy and commit follow.
  for (const d of [...image.blobs, ...image.manifests]) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    // A blob of the wrong size in the region is a partial or corrupt copy: copy it again.
    if (inventory.get(d.digest) !== d.size) missing.push(d.digest);
  }
  return { manifests: image.manifests, blobs: image.blobs, missing, foreign: image.foreign };
}

/** Every digest the plan references that has data to copy (blobs, then manifests), deduplicated. */
export function planDescriptors(plan: ReplicationPlan): DescriptorRef[] {
  const byDigest = new Map<string, DescriptorRef>();
  for (const d of [...plan.blobs, ...plan.manifests]) if (!byDigest.has(d.digest)) byDigest.set(d.digest, d);
  return [...byDigest.values()];
}

export function missingBytes(plan: ReplicationPlan): number {
  const missing = new Set(plan.missing);
  return planDescriptors(plan)
    .filter((d) => missing.has(d.digest))
    .reduce((sum, d) => sum + d.size, 0);
}
