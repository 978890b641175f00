import { parseXML } from '@azure/core-xml';
import { z } from 'zod';
import { EntityRequestError } from '../errors';
import { firstIssue, QueueSchema, RuleSchema, SubscriptionSchema, TopicSchema, type EntityPropertiesConfig, type RuleConfig, type SubscriptionConfig } from '../topology';

/**
 * What a PUT from the administration client means, as the emulator's entity configs. The
 * `<QueueDescription>`/`<SubscriptionDescription>` elements carry the same property names as
 * Config.json, so after turning XML text into booleans and numbers they go through the very zod
 * schemas the topology file does; rules map `<Filter i:type=...>` onto `FilterType`.
 */

/** An ATOM `<entry>` as @azure/core-xml parses it: attributes under `$`, text under `_`. */
const Entry = z.object({ content: z.record(z.unknown()) }, { message: 'the body is not an ATOM <entry> with <content>' });
type XmlObject = Record<string, unknown>;

const BOOLEAN_FIELDS = new Set([
  'DeadLetteringOnMessageExpiration',
  'DeadLetteringOnFilterEvaluationExceptions',
  'RequiresDuplicateDetection',
  'RequiresSession',
  'EnableBatchedOperations',
  'EnablePartitioning',
  'EnableExpress',
  'SupportOrdering',
]);
const INTEGER_FIELDS = new Set(['MaxDeliveryCount', 'MaxSizeInMegabytes', 'MaxMessageSizeInKilobytes']);
/** Sent back by the SDK on update (it read them from us) but not settable. */
const IGNORED_FIELDS = new Set(['$', 'AuthorizationRules', 'EntityAvailabilityStatus', 'DefaultRuleDescription']);

export type Description = { kind: 'QueueDescription' | 'TopicDescription' | 'SubscriptionDescription' | 'RuleDescription'; body: XmlObject };

/** Parses the PUT body and returns its description element (`QueueDescription`, ...). */
export async function readDescription(xml: string): Promise<Description> {
  let parsed: unknown;
  try {
    parsed = await parseXML(xml);
  } catch (e) {
    throw new EntityRequestError('bad-request', `The request body is not XML: ${(e as Error).message}`);
  }
  const entry = Entry.safeParse(parsed);
  if (!entry.success) throw new EntityRequestError('bad-request', firstIssue(entry.error));
  const kind = Object.keys(entry.data.content).find((k) => k !== '$');
  if (kind !== 'QueueDescription' && kind !== 'TopicDescription' && kind !== 'SubscriptionDescription' && kind !== 'RuleDescription') {
    throw new EntityRequestError('bad-request', `The entry's content is <${kind ?? 'nothing'}>; expected QueueDescription, TopicDescription, SubscriptionDescription or RuleDescription.`);
  }
  const body = entry.data.content[kind];
  return { kind, body: typeof body === 'object' && body ? (body as XmlObject) : {} };
}

export function queueConfig(name: string, body: XmlObject): EntityPropertiesConfig {
  return validate(QueueSchema, { Name: name, Properties: properties(body) }, `queue ${name}`).Properties;
}

export function topicConfig(name: string, body: XmlObject): EntityPropertiesConfig {
  return validate(TopicSchema, { Name: name, Properties: properties(body) }, `topic ${name}`).Properties;
}

/** A subscription, with the rule from `DefaultRuleDescription` when the client gave one. */
export function subscriptionConfig(name: string, body: XmlObject): SubscriptionConfig {
  const defaultRule = body.DefaultRuleDescription as XmlObject | undefined;
  const rules = defaultRule ? [ruleInput(text(defaultRule.Name) ?? '$Default', defaultRule)] : [];
  return validate(SubscriptionSchema, { Name: name, Properties: properties(body), Rules: rules }, `subscription ${name}`);
}

export function ruleConfig(name: string, body: XmlObject): RuleConfig {
  return validate(RuleSchema, ruleInput(name, body), `rule ${name}`);
}

function validate<T extends z.ZodTypeAny>(schema: T, input: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new EntityRequestError('bad-request', `${what}: ${firstIssue(parsed.error)}`);
  return parsed.data;
}

/** XML text of an element: a plain string, or `_` when the element also has attributes. */
function text(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as XmlObject)._ === 'string') return (v as XmlObject)._ as string;
  return undefined;
}

/** The `i:type` / `p4:type` attribute, whatever the namespace prefix. */
function xsiType(v: unknown): string | undefined {
  const attrs = v && typeof v === 'object' ? ((v as XmlObject).$ as Record<string, string> | undefined) : undefined;
  const key = attrs && Object.keys(attrs).find((k) => k === 'type' || k.endsWith(':type'));
  return key ? attrs[key].replace(/^.*:/, '') : undefined;
}

function properties(body: XmlObject): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(body)) {
    if (IGNORED_FIELDS.has(key)) continue;
    const value = text(raw);
    if (value === undefined) continue;
    if (BOOLEAN_FIELDS.has(key)) out[key] = value.trim().toLowerCase() === 'true';
    else if (INTEGER_FIELDS.has(key)) out[key] = Number(value);
    else out[key] = value;
  }
  for (const key of ['ForwardTo', 'ForwardDeadLetteredMessagesTo'] as const) {
    if (out[key]) throw new EntityRequestError('bad-request', `${key} (${String(out[key])}) is not supported by the Service Bus emulator: it does not forward messages. Leave ${key} unset.`);
  }
  return out;
}

function ruleInput(name: string, body: XmlObject): unknown {
  const filter = (body.Filter ?? {}) as XmlObject;
  const action = body.Action as XmlObject | undefined;
  const filterType = xsiType(filter) ?? 'SqlFilter';
  const actionSql = xsiType(action) === 'SqlRuleAction' ? text(action?.SqlExpression) : undefined;
  if (filter.Parameters || action?.Parameters) throw new EntityRequestError('bad-request', `rule ${name}: SQL parameters (@name) are not supported by the Service Bus emulator; write the values into the expression.`);
  const Action = actionSql ? { SqlExpression: actionSql } : undefined;
  switch (filterType) {
    case 'SqlFilter':
      return { Name: name, Properties: { FilterType: 'Sql', SqlFilter: { SqlExpression: text(filter.SqlExpression) }, Action } };
    case 'TrueFilter':
    case 'FalseFilter':
      return { Name: name, Properties: { FilterType: 'Sql', SqlFilter: { SqlExpression: filterType === 'TrueFilter' ? '1=1' : '1=0' }, Action } };
    case 'CorrelationFilter': {
      const fields: Record<string, unknown> = {};
      for (const key of ['ContentType', 'CorrelationId', 'Label', 'MessageId', 'ReplyTo', 'ReplyToSessionId', 'SessionId', 'To']) {
        const v = text(filter[key]);
        if (v !== undefined) fields[key] = v;
      }
      const props = keyValues(name, filter.Properties);
      return { Name: name, Properties: { FilterType: 'Correlation', CorrelationFilter: { ...fields, ...(props ? { Properties: props } : {}) }, Action } };
    }
    default:
      throw new EntityRequestError('bad-request', `rule ${name}: filter type ${filterType} is not known; use SqlFilter, CorrelationFilter, TrueFilter or FalseFilter.`);
  }
}

/** `<KeyValueOfstringanyType><Key>k</Key><Value i:type="l28:string">v</Value>` pairs, typed. */
function keyValues(rule: string, raw: unknown): Record<string, string | number | boolean> | undefined {
  const pairs = raw && typeof raw === 'object' ? (raw as XmlObject).KeyValueOfstringanyType : undefined;
  if (!pairs) return undefined;
  const out: Record<string, string | number | boolean> = {};
  for (const pair of (Array.isArray(pairs) ? pairs : [pairs]) as XmlObject[]) {
    const key = text(pair.Key) ?? '';
    const value = text(pair.Value) ?? '';
    const type = xsiType(pair.Value);
    if (type === 'string') out[key] = value;
    else if (type === 'double' || type === 'long' || type === 'int') out[key] = Number(value);
    else if (type === 'boolean') out[key] = value === 'true';
    else throw new EntityRequestError('bad-request', `rule ${rule}: correlation property ${key} has type ${type}; the emulator supports string, number and boolean values.`);
  }
  return out;
}
