import { stringifyXML } from '@azure/core-xml';
import type { EntityCounts } from '../messages';
import type { Namespace, Queue, Subscription, Topic } from '../namespace';
import type { Rule } from '../rules';
import type { EntityPropertiesConfig } from '../topology';

/**
 * The ATOM documents Service Bus answers administration calls with: an `<entry>` per entity
 * (its `<id>` URL is where the SDK reads the entity's name from), a `<feed>` of entries for lists
 * (with a `next` link carrying `$skip` while more remain), and `<Error><Code/><Detail/></Error>`.
 * Element names and namespaces are those the @azure/service-bus deserializers read.
 */

export const API_VERSION = '2021-05';
const ATOM = 'http://www.w3.org/2005/Atom';
const CONNECT = 'http://schemas.microsoft.com/netservices/2010/10/servicebus/connect';
const XSI = 'http://www.w3.org/2001/XMLSchema-instance';
const COUNTS = 'http://schemas.microsoft.com/netservices/2011/06/servicebus';
const XSD = 'http://www.w3.org/2001/XMLSchema';
/** TimeSpan.MaxValue: what Azure reports for "never" (AutoDeleteOnIdle). */
const NEVER = 'P10675199DT2H48M5.4775807S';

type Xml = Record<string, unknown>;

export interface Document {
  kind: 'entry' | 'feed';
  xml: string;
}

/** One entity's `<entry>`; `path` is its address (`q`, `t/Subscriptions/s/Rules/r`). */
export function entry(host: string, path: string, title: string, element: string, description: Xml, times: { createdAt: Date; updatedAt: Date }): Document {
  return { kind: 'entry', xml: stringifyXML(entryObject(host, path, title, element, description, times), { rootName: 'entry' }) };
}

function entryObject(host: string, path: string, title: string, element: string, description: Xml, times: { createdAt: Date; updatedAt: Date }): Xml {
  const id = url(host, path);
  return {
    $: { xmlns: ATOM },
    id,
    title: { $: { type: 'text' }, _: title },
    published: times.createdAt.toISOString(),
    updated: times.updatedAt.toISOString(),
    link: { $: { rel: 'self', href: id } },
    content: { $: { type: 'application/xml' }, [element]: { $: { xmlns: CONNECT, 'xmlns:i': XSI }, ...description } },
  };
}

export interface FeedItem {
  path: string;
  title: string;
  element: string;
  description: Xml;
  times: { createdAt: Date; updatedAt: Date };
}

/**
 * A page of a list, as Azure pages it: `$skip`/`$top` (100 when absent) over a stable order, and a
 * `next` link while more remain. The links are always two or more elements: the SDK only reads
 * `link` when the parser made it an array.
 */
export function feed(host: string, listPath: string, title: string, items: FeedItem[], skip: number, top: number): Document {
  const page = items.slice(skip, skip + top);
  const self = url(host, listPath);
  const links: Xml[] = [{ $: { rel: 'self', href: self } }];
  if (skip + page.length < items.length) links.push({ $: { rel: 'next', href: url(host, listPath, { $skip: String(skip + page.length), $top: String(top) }) } });
  else links.push({ $: { rel: 'alternate', href: self } });
  const doc: Xml = {
    $: { xmlns: ATOM },
    title: { $: { type: 'text' }, _: title },
    id: self,
    updated: new Date().toISOString(),
    link: links,
  };
  if (page.length) doc.entry = page.map((i) => entryObject(host, i.path, i.title, i.element, i.description, i.times));
  return { kind: 'feed', xml: stringifyXML(doc, { rootName: 'feed' }) };
}

/** What Azure answers a GET of a queue or topic that does not exist: 200 and an empty feed. */
export function emptyFeed(host: string, path: string): Document {
  return { kind: 'feed', xml: stringifyXML({ $: { xmlns: ATOM }, title: { $: { type: 'text' }, _: 'Publicly Listed Services' }, id: url(host, path), updated: new Date().toISOString() }, { rootName: 'feed' }) };
}

export function errorDocument(status: number, detail: string): string {
  return stringifyXML({ Code: status, Detail: detail }, { rootName: 'Error' });
}

function url(host: string, path: string, query: Record<string, string> = {}): string {
  const u = new URL(`https://${host}/${path}`);
  u.searchParams.set('api-version', API_VERSION);
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  return u.toString();
}

// ---- descriptions ----

/** A property the admin API accepted beyond Config.json's (kept by the schema's passthrough). */
function extra(p: EntityPropertiesConfig, key: string): unknown {
  return (p as Record<string, unknown>)[key];
}

function countDetails(c: EntityCounts): Xml {
  return {
    $: { 'xmlns:d2p1': COUNTS },
    'd2p1:ActiveMessageCount': c.active,
    'd2p1:DeadLetterMessageCount': c.deadLetter,
    'd2p1:ScheduledMessageCount': c.scheduled,
    'd2p1:TransferMessageCount': c.transfer,
    'd2p1:TransferDeadLetterMessageCount': c.transferDeadLetter,
  };
}

function optional(key: string, value: unknown): Xml {
  return value === undefined || value === '' ? {} : { [key]: value };
}

export function queueDescription(q: Queue): Xml {
  const p = q.properties;
  const counts = q.store.counts();
  return {
    LockDuration: p.LockDuration,
    MaxSizeInMegabytes: extra(p, 'MaxSizeInMegabytes') ?? 1024,
    RequiresDuplicateDetection: p.RequiresDuplicateDetection,
    RequiresSession: p.RequiresSession,
    DefaultMessageTimeToLive: p.DefaultMessageTimeToLive,
    DeadLetteringOnMessageExpiration: p.DeadLetteringOnMessageExpiration,
    DuplicateDetectionHistoryTimeWindow: p.DuplicateDetectionHistoryTimeWindow,
    MaxDeliveryCount: p.MaxDeliveryCount,
    EnableBatchedOperations: extra(p, 'EnableBatchedOperations') ?? true,
    SizeInBytes: q.store.sizeInBytes(),
    MessageCount: counts.total,
    IsAnonymousAccessible: false,
    AuthorizationRules: '',
    Status: extra(p, 'Status') ?? 'Active',
    ...optional('UserMetadata', extra(p, 'UserMetadata')),
    CreatedAt: q.createdAt.toISOString(),
    UpdatedAt: q.updatedAt.toISOString(),
    AccessedAt: q.store.accessedAt.toISOString(),
    SupportOrdering: true,
    CountDetails: countDetails(counts),
    AutoDeleteOnIdle: extra(p, 'AutoDeleteOnIdle') ?? NEVER,
    EnablePartitioning: false,
    EntityAvailabilityStatus: 'Available',
    EnableExpress: false,
    MaxMessageSizeInKilobytes: p.MaxMessageSizeInKilobytes,
  };
}

export function topicDescription(t: Topic): Xml {
  const p = t.properties;
  let bytes = 0;
  for (const s of t.subscriptions.values()) bytes += s.store.sizeInBytes();
  return {
    DefaultMessageTimeToLive: p.DefaultMessageTimeToLive,
    MaxSizeInMegabytes: extra(p, 'MaxSizeInMegabytes') ?? 1024,
    RequiresDuplicateDetection: p.RequiresDuplicateDetection,
    DuplicateDetectionHistoryTimeWindow: p.DuplicateDetectionHistoryTimeWindow,
    EnableBatchedOperations: extra(p, 'EnableBatchedOperations') ?? true,
    SizeInBytes: bytes,
    FilteringMessagesBeforePublishing: false,
    IsAnonymousAccessible: false,
    AuthorizationRules: '',
    Status: extra(p, 'Status') ?? 'Active',
    ...optional('UserMetadata', extra(p, 'UserMetadata')),
    CreatedAt: t.createdAt.toISOString(),
    UpdatedAt: t.updatedAt.toISOString(),
    AccessedAt: t.accessedAt.toISOString(),
    SupportOrdering: extra(p, 'SupportOrdering') ?? true,
    CountDetails: countDetails({ active: 0, deadLetter: 0, scheduled: t.scheduledCount(), transfer: 0, transferDeadLetter: 0, total: 0 }),
    SubscriptionCount: t.subscriptions.size,
    AutoDeleteOnIdle: extra(p, 'AutoDeleteOnIdle') ?? NEVER,
    EnablePartitioning: false,
    EntityAvailabilityStatus: 'Available',
    EnableExpress: false,
    MaxMessageSizeInKilobytes: p.MaxMessageSizeInKilobytes,
  };
}

export function subscriptionDescription(s: Subscription): Xml {
  const p = s.properties;
  const counts = s.store.counts();
  return {
    LockDuration: p.LockDuration,
    RequiresSession: p.RequiresSession,
    DefaultMessageTimeToLive: p.DefaultMessageTimeToLive,
    DeadLetteringOnMessageExpiration: p.DeadLetteringOnMessageExpiration,
    DeadLetteringOnFilterEvaluationExceptions: extra(p, 'DeadLetteringOnFilterEvaluationExceptions') ?? true,
    MessageCount: counts.total,
    MaxDeliveryCount: p.MaxDeliveryCount,
    EnableBatchedOperations: extra(p, 'EnableBatchedOperations') ?? true,
    Status: extra(p, 'Status') ?? 'Active',
    ...optional('UserMetadata', extra(p, 'UserMetadata')),
    CreatedAt: s.createdAt.toISOString(),
    UpdatedAt: s.updatedAt.toISOString(),
    AccessedAt: s.store.accessedAt.toISOString(),
    CountDetails: countDetails(counts),
    AutoDeleteOnIdle: extra(p, 'AutoDeleteOnIdle') ?? NEVER,
    EntityAvailabilityStatus: 'Available',
  };
}

export function ruleDescription(r: Rule): Xml {
  const p = r.config.Properties;
  let filter: Xml;
  if (p.FilterType === 'Sql') filter = { $: { 'i:type': 'SqlFilter' }, SqlExpression: p.SqlFilter!.SqlExpression, CompatibilityLevel: 20 };
  else {
    const { Properties: props, ...fields } = p.CorrelationFilter!;
    filter = { $: { 'i:type': 'CorrelationFilter' }, ...fields };
    if (props && Object.keys(props).length) {
      filter.Properties = {
        KeyValueOfstringanyType: Object.entries(props).map(([Key, v]) => ({
          Key,
          // The SDK reads the type after a 5-character prefix ("d2p1:string").
          Value: { $: { 'i:type': `d2p1:${typeof v === 'number' ? 'double' : typeof v}`, 'xmlns:d2p1': XSD }, _: String(v) },
        })),
      };
    }
  }
  const action = p.Action?.SqlExpression ? { $: { 'i:type': 'SqlRuleAction' }, SqlExpression: p.Action.SqlExpression, CompatibilityLevel: 20 } : { $: { 'i:type': 'EmptyRuleAction' } };
  return { Filter: filter, Action: action, CreatedAt: r.createdAt.toISOString(), Name: r.name };
}

export function namespaceDescription(ns: Namespace): Xml {
  return {
    CreatedTime: ns.createdAt.toISOString(),
    MessagingSKU: 'Standard',
    ModifiedTime: ns.createdAt.toISOString(),
    Name: ns.name,
    NamespaceType: 'Messaging',
  };
}
