import type { ContainerClient } from '@azure/storage-blob';
import { RegionStorageError } from './clients';
import { RegistryLayout, registryRootOfDirectory } from './paths';

/**
 * Finding the registry in a container, for `georeg doctor`: how many repositories a root holds, and
 * which roots a registry has written when the configured one is empty. The spellings differ by
 * Distribution version (2.8's Azure driver keeps a leading slash, `/docker/registry/v2`; 3.x trims
 * it and prefixes `rootdirectory`), and a wrong GEOREG_REGISTRY_ROOT makes every push a 404 in
 * home storage, so the mistake is worth naming before the first push.
 */

export interface RootContents {
  root: string;
  repositories: number;
  /** False when the count stopped at `maxBlobs` names: "at least". */
  complete: boolean;
}

/** Distinct repositories under `root`, reading at most `maxBlobs` blob names (a listing, no reads). */
export async function countRepositories(container: ContainerClient, root: string, options: { maxBlobs?: number } = {}): Promise<RootContents> {
  const layout = new RegistryLayout(root);
  const maxBlobs = options.maxBlobs ?? 50_000;
  const names = new Set<string>();
  let seen = 0;
  try {
    for await (const page of container.listBlobsFlat({ prefix: layout.prefix({ kind: 'repositories' }) }).byPage({ maxPageSize: 5000 })) {
      for (const item of page.segment.blobItems) {
        const repository = layout.parseRepositoryOf(item.name);
        if (repository) names.add(repository);
      }
      seen += page.segment.blobItems.length;
      if (seen >= maxBlobs) return { root: layout.root, repositories: names.size, complete: false };
    }
  } catch (e) {
    throw new RegionStorageError(`cannot list ${layout.prefix({ kind: 'repositories' })} in ${container.url}`, e);
  }
  return { root: layout.root, repositories: names.size, complete: true };
}

/**
 * Every registry root in the container with its repository count, most repositories first: a
 * breadth-first walk of the virtual directories (delimiter `/`) that stops descending at a root,
 * bounded in depth (a `rootdirectory` of up to three levels) and in listing calls, so it stays
 * cheap in a container that holds other things too.
 */
export async function findRegistryRoots(container: ContainerClient, options: { maxDepth?: number; maxListings?: number } = {}): Promise<RootContents[]> {
  const maxDepth = options.maxDepth ?? 7;
  let listings = options.maxListings ?? 100;
  const roots: string[] = [];
  let level = [''];
  for (let depth = 0; depth < maxDepth && level.length && listings > 0; depth++) {
    const next: string[] = [];
    for (const prefix of level) {
      if (listings-- <= 0) break;
      for (const child of await subdirectories(container, prefix)) {
        const root = registryRootOfDirectory(child);
        if (root !== undefined) roots.push(root);
        else next.push(child);
      }
    }
    level = next;
  }
  const counted = await Promise.all(roots.map((root) => countRepositories(container, root)));
  return counted.sort((a, b) => b.repositories - a.repositories);
}

/** The virtual directories directly under `prefix` (first few pages: enough to find a root). */
async function subdirectories(container: ContainerClient, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let pages = 0;
  try {
    for await (const page of container.listBlobsByHierarchy('/', { prefix }).byPage({ maxPageSize: 1000 })) {
      for (const p of page.segment.blobPrefixes ?? []) out.push(p.name);
      if (++pages >= 5) break;
    }
  } catch (e) {
    throw new RegionStorageError(`cannot list the folders under "${prefix}" in ${container.url}`, e);
  }
  return out;
}
