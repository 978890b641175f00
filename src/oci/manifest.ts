import { z } from 'zod';
import { DigestSchema } from './digest';
import { INDEX_TYPES, IMAGE_MANIFEST_TYPES, MediaTypes, SCHEMA1_TYPES } from './mediatypes';
import { describeZodError } from '../common/zod';

/** Manifests of every kind a registry stores, parsed into one shape: an image or an index. */

const Platform = z.object({ os: z.string(), architecture: z.string(), variant: z.string().optional(), 'os.version': z.string().optional(), 'os.features': z.array(z.string()).optional(), features: z.array(z.string()).optional() }).passthrough();

/**
 * What names a blob or manifest wherever georeg passes one around (a plan, a job, a notification):
 * the first three fields of every OCI descriptor.
 */
export const DescriptorRef = z.object({
  mediaType: z.string().min(1),
  digest: DigestSchema,
  size: z.number().int().nonnegative(),
});
export type DescriptorRef = z.infer<typeof DescriptorRef>;

/** An OCI descriptor as a manifest or index holds it. */
export const DescriptorSchema = DescriptorRef
  .extend({
    urls: z.array(z.string()).optional(),
    annotations: z.record(z.string()).optional(),
    platform: Platform.optional(),
    artifactType: z.string().optional(),
  })
  .passthrough();
export type Descriptor = z.infer<typeof DescriptorSchema>;

const ImageManifestSchema = z
  .object({
    schemaVersion: z.literal(2),
    mediaType: z.string().optional(),
    artifactType: z.string().optional(),
    config: DescriptorSchema,
    layers: z.array(DescriptorSchema),
    subject: DescriptorSchema.optional(),
    annotations: z.record(z.string()).optional(),
  })
  .passthrough();

const ArtifactManifestSchema = z
  .object({
    mediaType: z.literal(MediaTypes.ociArtifactManifest),
    artifactType: z.string(),
    blobs: z.array(DescriptorSchema).default([]),
    subject: DescriptorSchema.optional(),
    annotations: z.record(z.string()).optional(),
  })
  .passthrough();

const IndexSchema = z
  .object({
    schemaVersion: z.literal(2),
    mediaType: z.string().optional(),
    artifactType: z.string().optional(),
    manifests: z.array(DescriptorSchema),
    subject: DescriptorSchema.optional(),
    annotations: z.record(z.string()).optional(),
  })
  .passthrough();

export type Manifest =
  | { kind: 'image'; mediaType: string; config?: Descriptor; layers: Descriptor[]; subject?: Descriptor; artifactType?: string }
  | { kind: 'index'; mediaType: string; manifests: Descriptor[]; subject?: Descriptor; artifactType?: string };

export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

export function parseManifest(bytes: Uint8Array, declaredMediaType?: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new ManifestError(`the manifest is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ManifestError('the manifest is not a JSON object');
  const doc = json as Record<string, unknown>;
  const mediaType = detectMediaType(doc, declaredMediaType);
  if (SCHEMA1_TYPES.includes(mediaType) || doc.schemaVersion === 1) {
    throw new ManifestError('Docker schema 1 manifests are not supported: re-push the image with a current Docker or BuildKit (schema 2)');
  }
  if (mediaType === MediaTypes.ociArtifactManifest) {
    const m = check(ArtifactManifestSchema, doc, mediaType);
    return { kind: 'image', mediaType, layers: m.blobs, subject: m.subject, artifactType: m.artifactType };
  }
  if (IMAGE_MANIFEST_TYPES.includes(mediaType)) {
    const m = check(ImageManifestSchema, doc, mediaType);
    return { kind: 'image', mediaType, config: m.config, layers: m.layers, subject: m.subject, artifactType: m.artifactType };
  }
  if (INDEX_TYPES.includes(mediaType)) {
    const m = check(IndexSchema, doc, mediaType);
    return { kind: 'index', mediaType, manifests: m.manifests, subject: m.subject, artifactType: m.artifactType };
  }
  throw new ManifestError(`unknown manifest media type "${mediaType}": georeg replicates Docker v2 schema 2 manifests and lists, OCI manifests, indexes and artifact manifests`);
}

/** The manifest's own mediaType, else the declared one, else by shape (OCI lets mediaType be omitted). */
function detectMediaType(doc: Record<string, unknown>, declared?: string): string {
  if (typeof doc.mediaType === 'string' && doc.mediaType) return doc.mediaType;
  if (declared && declared !== 'application/octet-stream' && declared !== 'application/json') return declared;
  if (doc.schemaVersion === 1) return MediaTypes.dockerSchema1;
  if (Array.isArray(doc.manifests)) return MediaTypes.ociIndex;
  if (doc.config && Array.isArray(doc.layers)) return MediaTypes.ociManifest;
  throw new ManifestError('cannot tell what kind of manifest this is: no mediaType, and neither "manifests" nor "config" and "layers"');
}

function check<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, doc: unknown, mediaType: string): T {
  const parsed = schema.safeParse(doc);
  if (parsed.success) return parsed.data;
  throw new ManifestError(`invalid ${mediaType} manifest: ${describeZodError(parsed.error, 1)}`);
}
