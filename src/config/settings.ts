import { z } from 'zod';
import { storageEndpoint, storageIdentity } from '../storage/endpoint';
import { zodIssues } from '../common/zod';

/**
 * Every setting georeg reads, validated once at start-up. Settings arrive as environment variables
 * (Function App application settings, `local.settings.json` Values, or the local stack), so each
 * is a string here and is parsed into its typed form. A bad or missing setting stops the process
 * with a message naming it.
 */

const boolString = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const intString = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().min(min).max(max));

export const RegionName = z
  .string()
  .regex(/^[a-z][a-z0-9]{1,49}$/, 'a region name is 2-50 lowercase letters and digits, starting with a letter (e.g. eastus)');

export const RegionSchema = z
  .object({
    name: RegionName,
    connectionString: z.string().min(1).optional(),
    accountUrl: z.string().url().optional(),
    endpointEnabled: z.boolean().default(true),
  })
  .strict()
  .refine((r) => Boolean(r.connectionString) !== Boolean(r.accountUrl), {
    message: 'give exactly one of connectionString or accountUrl (the latter uses DefaultAzureCredential)',
  });
export type Region = z.infer<typeof RegionSchema>;

const RawSettings = z.object({
  GEOREG_HOME_REGION: RegionName,
  GEOREG_REGIONS: z
    .string({ required_error: 'missing' })
    .transform((s, ctx) => {
      try {
        return JSON.parse(s) as unknown;
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: `not valid JSON (${(e as Error).message})` });
        return z.NEVER;
      }
    })
    .pipe(z.array(RegionSchema).min(1, 'list at least the home region')),
  GEOREG_REGISTRY_CONTAINER: z.string().regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, 'not a valid blob container name').default('registry'),
  GEOREG_REGISTRY_ROOT: z.string().min(1).default('docker/registry/v2'),
  GEOREG_STATE_CONTAINER: z.string().regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, 'not a valid blob container name').default('georeg'),
  ServiceBusConnection: z.string().min(1).optional(),
  ServiceBusConnection__fullyQualifiedNamespace: z.string().min(1).optional(),
  GEOREG_REPLICATION_TOPIC: z.string().min(1).default('replication'),
  GEOREG_WEBHOOK_QUEUE: z.string().min(1).default('webhook-deliveries'),
  GEOREG_BACKFILL_QUEUE: z.string().min(1).default('backfill-pages'),
  GEOREG_BACKFILL_PAGE_SIZE: intString(1, 5000).default('1000'),
  GEOREG_PUSH_SECRET: z.string().min(16, 'use at least 16 characters'),
  GEOREG_ADMIN_SECRET: z.string().min(16, 'use at least 16 characters').optional(),
  GEOREG_VERIFY_DIGESTS: boolString.default('true'),
  GEOREG_COPY_CONCURRENCY: intString(1, 64).default('8'),
  GEOREG_MAX_INLINE_PLAN_BYTES: intString(1024, 1024 * 1024).default(String(192 * 1024)),
  GEOREG_REPLICATE_MAX_ATTEMPTS: intString(1, 50).default('8'),
  GEOREG_REPLICATE_RETRY_BASE_MS: intString(10, 3_600_000).default('10000'),
  GEOREG_REPLICATE_RETRY_MAX_MS: intString(10, 24 * 3_600_000).default('300000'),
  GEOREG_WEBHOOK_ALLOW_PRIVATE: boolString.default('false'),
  GEOREG_ALLOW_PRIVATE_STORAGE: boolString.default('false'),
  GEOREG_WEBHOOK_MAX_ATTEMPTS: intString(1, 50).default('8'),
  GEOREG_WEBHOOK_TIMEOUT_MS: intString(100, 120_000).default('10000'),
  GEOREG_WEBHOOK_RETRY_BASE_MS: intString(10, 3_600_000).default('30000'),
  GEOREG_WEBHOOK_RETRY_MAX_MS: intString(10, 24 * 3_600_000).default('1800000'),
  // NCRONTAB, six fields with seconds first (as Azure Functions timer triggers read it).
  GEOREG_RECONCILE_SCHEDULE: z
    .string()
    .trim()
    .refine((v) => v.split(/\s+/).length === 6, 'expected an NCRONTAB expression of six fields, seconds first (e.g. "0 */5 * * * *")')
    .default('0 */5 * * * *'),
});

/**
 * The value a `%NAME%` binding expression in functions/ resolves to: the environment's, else the
 * setting's default here (the Functions host needs it set; the local host fills it in).
 */
export function bindingSetting(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env[name] !== undefined) return env[name];
  const field = (RawSettings.shape as Record<string, z.ZodTypeAny>)[name];
  if (!field) return undefined;
  const parsed = field.safeParse(undefined);
  return parsed.success && typeof parsed.data === 'string' ? parsed.data : undefined;
}

export class SettingsError extends Error {
  constructor(readonly problems: string[]) {
    super(`georeg cannot start, fix these settings:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'SettingsError';
  }
}

/**
 * The settings as georeg uses them: RawSettings checked across fields (the home region is one of
 * the regions, no two regions share storage, ...), then grouped.
 */
const CheckedSettings = z.custom<z.output<typeof RawSettings>>().superRefine((s, ctx) => {
  const problem = (setting: keyof typeof s, message: string) => ctx.addIssue({ code: 'custom', path: [setting], message });
  const names = s.GEOREG_REGIONS.map((r) => r.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate) problem('GEOREG_REGIONS', `region "${duplicate}" is listed twice`);
  if (!names.includes(s.GEOREG_HOME_REGION)) problem('GEOREG_HOME_REGION', `"${s.GEOREG_HOME_REGION}" is not one of GEOREG_REGIONS (${names.join(', ')})`);
  if (s.GEOREG_REPLICATE_RETRY_MAX_MS < s.GEOREG_REPLICATE_RETRY_BASE_MS) {
    problem('GEOREG_REPLICATE_RETRY_MAX_MS', `${s.GEOREG_REPLICATE_RETRY_MAX_MS} is below GEOREG_REPLICATE_RETRY_BASE_MS (${s.GEOREG_REPLICATE_RETRY_BASE_MS})`);
  }
  if (s.GEOREG_WEBHOOK_RETRY_MAX_MS < s.GEOREG_WEBHOOK_RETRY_BASE_MS) {
    problem('GEOREG_WEBHOOK_RETRY_MAX_MS', `${s.GEOREG_WEBHOOK_RETRY_MAX_MS} is below GEOREG_WEBHOOK_RETRY_BASE_MS (${s.GEOREG_WEBHOOK_RETRY_BASE_MS})`);
  }
  // Two regions on one storage would be one copy: a replica copying onto its source, a purge deleting both.
  const storages = new Map<string, string>();
  for (const r of s.GEOREG_REGIONS) {
    let identity: string;
    try {
      identity = storageIdentity(storageEndpoint(r), s.GEOREG_REGISTRY_CONTAINER, s.GEOREG_REGISTRY_ROOT);
    } catch {
      continue; // reported with the region's name when its client is made
    }
    const other = storages.get(identity);
    if (other) problem('GEOREG_REGIONS', `${other} and ${r.name} use the same storage (${identity}): give each region a storage account of its own`);
    else storages.set(identity, r.name);
  }
  if (!s.ServiceBusConnection && !s.ServiceBusConnection__fullyQualifiedNamespace) {
    problem('ServiceBusConnection', 'missing (a connection string, or set ServiceBusConnection__fullyQualifiedNamespace to use a managed identity)');
  }
}).transform((s) => {
  const homeRegion = s.GEOREG_REGIONS.find((r) => r.name === s.GEOREG_HOME_REGION)!;
  return {
    homeRegion,
    regions: s.GEOREG_REGIONS,
    replicaRegions: s.GEOREG_REGIONS.filter((r) => r.name !== homeRegion.name),
    registry: { container: s.GEOREG_REGISTRY_CONTAINER, root: s.GEOREG_REGISTRY_ROOT },
    stateContainer: s.GEOREG_STATE_CONTAINER,
    serviceBus: {
      connectionString: s.ServiceBusConnection,
      fullyQualifiedNamespace: s.ServiceBusConnection__fullyQualifiedNamespace,
      replicationTopic: s.GEOREG_REPLICATION_TOPIC,
      webhookQueue: s.GEOREG_WEBHOOK_QUEUE,
      backfillQueue: s.GEOREG_BACKFILL_QUEUE,
    },
    /** Back-fill planning: registry blobs listed per page (a page, one message on the back-fill queue, holds at most this many tags). */
    backfill: { pageSize: s.GEOREG_BACKFILL_PAGE_SIZE },
    pushSecret: s.GEOREG_PUSH_SECRET,
    /** Asked of every admin API call when set (the local host has no function keys). */
    adminSecret: s.GEOREG_ADMIN_SECRET,
    verifyDigests: s.GEOREG_VERIFY_DIGESTS,
    copyConcurrency: s.GEOREG_COPY_CONCURRENCY,
    maxInlinePlanBytes: s.GEOREG_MAX_INLINE_PLAN_BYTES,
    /** Replica storage created at run time may be plain http on a private or loopback address (Azurite); https and public otherwise. */
    allowPrivateStorage: s.GEOREG_ALLOW_PRIVATE_STORAGE,
    /** A replication job that fails for a passing reason is tried again this often, with this back-off (first and largest delay). */
    replicate: { maxAttempts: s.GEOREG_REPLICATE_MAX_ATTEMPTS, retryBaseMs: s.GEOREG_REPLICATE_RETRY_BASE_MS, retryMaxMs: s.GEOREG_REPLICATE_RETRY_MAX_MS },
    /** Webhook delivery: private/loopback targets allowed, attempts, per-attempt timeout, back-off (first and largest delay). */
    webhooks: {
      allowPrivateTargets: s.GEOREG_WEBHOOK_ALLOW_PRIVATE,
      maxAttempts: s.GEOREG_WEBHOOK_MAX_ATTEMPTS,
      timeoutMs: s.GEOREG_WEBHOOK_TIMEOUT_MS,
      retryBaseMs: s.GEOREG_WEBHOOK_RETRY_BASE_MS,
      retryMaxMs: s.GEOREG_WEBHOOK_RETRY_MAX_MS,
    },
    /** Anti-entropy: how often each replica's tags are compared with home's (NCRONTAB, seconds first). */
    reconcile: { schedule: s.GEOREG_RECONCILE_SCHEDULE },
  };
});
// Through a pipe: the checks across fields run only once every field has parsed.
const SettingsSchema = RawSettings.pipe(CheckedSettings);
export type Settings = z.infer<typeof SettingsSchema>;

export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const parsed = SettingsSchema.safeParse(env);
  // A setting's name, then where inside its value: GEOREG_REGIONS[0.name].
  if (!parsed.success) throw new SettingsError(zodIssues(parsed.error, { max: Infinity, path: ([name, ...rest]) => (rest.length ? `${name}[${rest.join('.')}]` : String(name)) }));
  return parsed.data;
}
