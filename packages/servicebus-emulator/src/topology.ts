import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * The emulator's entities, in the shape of Microsoft's Service Bus emulator `Config.json`
 * (`UserConfig.Namespaces[].Queues[]/Topics[].Subscriptions[].Rules[]`), so one file serves both.
 */

/** ISO 8601 durations as Config.json writes them (PT1M, P14D, PT20S, P1DT2H). */
export function parseDuration(text: string): number {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(text);
  if (!m || text === 'P' || text.endsWith('T')) throw new Error(`"${text}" is not an ISO 8601 duration (e.g. PT1M, P14D)`);
  const [, d, h, min, s] = m;
  return ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(min ?? 0)) * 60_000 + Math.round(Number(s ?? 0) * 1000);
}

const Duration = z.string().refine((v) => {
  try {
    parseDuration(v);
    return true;
  } catch {
    return false;
  }
}, 'not an ISO 8601 duration (e.g. PT1M, P14D)');

const EntityProperties = z
  .object({
    DeadLetteringOnMessageExpiration: z.boolean().default(false),
    DefaultMessageTimeToLive: Duration.default('P14D'),
    DuplicateDetectionHistoryTimeWindow: Duration.default('PT10M'),
    ForwardDeadLetteredMessagesTo: z.string().default(''),
    ForwardTo: z.string().default(''),
    LockDuration: Duration.default('PT1M'),
    MaxDeliveryCount: z.number().int().min(1).default(10),
    RequiresDuplicateDetection: z.boolean().default(false),
    RequiresSession: z.boolean().default(false),
    MaxMessageSizeInKilobytes: z.number().int().min(1).default(256),
  })
  .passthrough();

const CorrelationFilter = z
  .object({
    ContentType: z.string().optional(),
    CorrelationId: z.string().optional(),
    Label: z.string().optional(),
    MessageId: z.string().optional(),
    ReplyTo: z.string().optional(),
    ReplyToSessionId: z.string().optional(),
    SessionId: z.string().optional(),
    To: z.string().optional(),
    Properties: z.record(z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .passthrough();

export const RuleSchema = z.object({
  Name: z.string().min(1),
  Properties: z
    .object({
      FilterType: z.enum(['Correlation', 'Sql']),
      CorrelationFilter: CorrelationFilter.optional(),
      SqlFilter: z.object({ SqlExpression: z.string().min(1) }).optional(),
      Action: z.object({ SqlExpression: z.string() }).optional(),
    })
    .refine((p) => (p.FilterType === 'Sql' ? Boolean(p.SqlFilter) : Boolean(p.CorrelationFilter)), { message: 'a Sql rule needs SqlFilter, a Correlation rule CorrelationFilter' }),
});
export type RuleConfig = z.infer<typeof RuleSchema>;

export const SubscriptionSchema = z.object({ Name: z.string().min(1), Properties: EntityProperties.default({}), Rules: z.array(RuleSchema).default([]) });
export const TopicSchema = z.object({
  Name: z.string().min(1),
  Properties: EntityProperties.default({}),
  Subscriptions: z.array(SubscriptionSchema).default([]),
});
export const QueueSchema = z.object({ Name: z.string().min(1), Properties: EntityProperties.default({}) });

export const TopologySchema = z.object({
  UserConfig: z.object({
    Namespaces: z.array(z.object({ Name: z.string().min(1), Queues: z.array(QueueSchema).default([]), Topics: z.array(TopicSchema).default([]) })).min(1),
    Logging: z.unknown().optional(),
  }),
});
export type Topology = z.infer<typeof TopologySchema>;
export type TopologyInput = z.input<typeof TopologySchema>;
export type EntityPropertiesConfig = z.infer<typeof EntityProperties>;
export type SubscriptionConfig = z.infer<typeof SubscriptionSchema>;

export function parseTopology(json: unknown, source = 'topology'): Topology {
  const parsed = TopologySchema.safeParse(json);
  if (!parsed.success) throw new Error(`${source}: ${firstIssue(parsed.error)}`);
  return parsed.data;
}

/** `Path.To.Field: what is wrong`, for the first problem zod found. */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return `${issue.path.join('.') || '(root)'}: ${issue.message}`;
}

export function loadTopologyFile(path: string): Topology {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`Service Bus emulator topology ${path}: ${(e as Error).message}`);
  }
  try {
    return parseTopology(JSON.parse(text), path);
  } catch (e) {
    throw new Error(e instanceof SyntaxError ? `${path}: not valid JSON (${e.message})` : (e as Error).message);
  }
}
