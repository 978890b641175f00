import { z } from 'zod';
import { RegionName } from '../config/settings';

/**
 * A replica region, as `az acr replication create|update` defines one: a name, the storage
 * account its registry data lives in, and whether its endpoint takes part in routing. Regions
 * listed in GEOREG_REGIONS are replicas from the start; `replication create` adds more while the
 * registry runs. Both end up as a ReplicaRecord in the home account's state container once
 * anything about them changes (update, resync, delete).
 */

export const ReplicaStatus = z.enum(['Creating', 'Syncing', 'Ready', 'Failed', 'Deleted']);
export type ReplicaStatus = z.infer<typeof ReplicaStatus>;

export const ReplicaStorage = z
  .object({ connectionString: z.string().min(1).optional(), accountUrl: z.string().url().optional() })
  .strict()
  .refine((s) => Boolean(s.connectionString) !== Boolean(s.accountUrl), { message: 'give exactly one of a connection string or an account URL' });
export type ReplicaStorage = z.infer<typeof ReplicaStorage>;

/** One back-fill or resync run: its jobs, what they had to move, and how far they got. */
export const SyncRun = z.object({
  operationId: z.string().regex(/^[a-z0-9]{6,32}$/),
  kind: z.enum(['backfill', 'resync']),
  repository: z.string().optional(),
  startedAt: z.string().datetime(),
  completedAt: z.string().datetime().optional(),
  total: z.object({ jobs: z.number().int().nonnegative(), tags: z.number().int().nonnegative(), blobs: z.number().int().nonnegative(), bytes: z.number().nonnegative() }),
  done: z.object({ jobs: z.number().int().nonnegative(), blobs: z.number().int().nonnegative(), bytes: z.number().nonnegative() }),
  /** Jobs finished so far, one bit per job sequence number (base64): a redelivered job counts once. */
  finished: z.string(),
  /** Jobs that dead-lettered (and tags that could not be planned), with the image they were for. */
  failures: z.array(z.object({ jobId: z.string(), image: z.string().optional(), reason: z.string(), description: z.string() })),
  /** What the run found missing, per tag (resync reports it; capped, see `missingTruncated`). */
  missing: z.array(z.object({ repository: z.string(), tag: z.string(), blobs: z.number().int(), bytes: z.number(), links: z.number().int() })),
  missingTruncated: z.boolean().default(false),
  /** Tags a resync found in the region though home deleted them, and sent delete jobs for (capped like `missing`). */
  deleted: z.array(z.object({ repository: z.string(), tag: z.string() })).default([]),
  deletedTruncated: z.boolean().default(false),
  /**
   * A back-fill plans page by page (messages on the back-fill queue, several at once): pages
   * counted so far, which ones (bits by page number) and which have sent their jobs, the number of
   * the last page once it is listed, and whether every page up to it is counted. `total` grows
   * with each page; the run settles only once planning is complete. A run planned in one go
   * (resync) is complete at once.
   */
  planning: z
    .object({ pages: z.number().int().nonnegative(), counted: z.string().default(''), sent: z.string().default(''), last: z.number().int().nonnegative().optional(), complete: z.boolean() })
    .default({ pages: 0, counted: '', sent: '', complete: true }),
});
export type SyncRun = z.infer<typeof SyncRun>;

export const ReplicaRecord = z.object({
  version: z.literal(1),
  name: RegionName,
  /** Absent for a region from GEOREG_REGIONS (its storage comes from the settings), unless it was deleted and created again with other storage. */
  storage: ReplicaStorage.optional(),
  endpointEnabled: z.boolean(),
  status: ReplicaStatus,
  createdAt: z.string().datetime(),
  updatedAt: z.string().datetime(),
  sync: SyncRun.optional(),
  error: z.string().optional(),
});
export type ReplicaRecord = z.infer<typeof ReplicaRecord>;

/** The body of `POST /api/replications`. */
export const CreateReplicaInput = z
  .object({
    name: RegionName,
    storage: z.string().min(1, 'give the region\'s storage: a connection string or an account URL'),
    endpointEnabled: z.boolean().default(true),
  })
  .strict();
export type CreateReplicaInput = z.infer<typeof CreateReplicaInput>;

/** The body of `PATCH /api/replications/{name}`. */
export const UpdateReplicaInput = z.object({ endpointEnabled: z.boolean() }).strict();

/** `--storage` is a connection string (has `AccountName=` or `BlobEndpoint=`) or an https account URL. */
export function parseStorage(value: string): ReplicaStorage {
  const v = value.trim();
  if (/(^|;)\s*(AccountName|BlobEndpoint|UseDevelopmentStorage)\s*=/i.test(v)) return { connectionString: v };
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new ReplicaInputError(`--storage "${mask(v)}": neither a storage connection string (AccountName=...;AccountKey=...) nor an account URL (https://<account>.blob.core.windows.net)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ReplicaInputError(`--storage "${mask(v)}": an account URL is https://<account>.blob.core.windows.net`);
  if (url.search) throw new ReplicaInputError('--storage: give the account URL without a SAS; the functions use DefaultAzureCredential for it');
  return { accountUrl: v.replace(/\/+$/, '') };
}

export class ReplicaInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplicaInputError';
  }
}

/** A connection string with its key or SAS hidden: what list, show and logs print. */
export function maskStorage(storage: ReplicaStorage | { connectionString?: string; accountUrl?: string }): string {
  return storage.accountUrl ?? mask(storage.connectionString ?? '');
}

function mask(text: string): string {
  return text.replace(/((?:AccountKey|SharedAccessSignature|SharedAccessKey)\s*=\s*)[^;]+/gi, '$1***');
}
