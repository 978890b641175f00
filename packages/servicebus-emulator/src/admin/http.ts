import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../log';
import { EntityRequestError } from '../errors';
import type { Namespace, Queue, Subscription, Topic } from '../namespace';
import type { Rule } from '../rules';
import { sasAudience, sasTokenProblem, type SasKey } from '../sas';
import { SqlFilterError } from '../sql-filter';
import { emptyFeed, entry, errorDocument, feed, namespaceDescription, queueDescription, ruleDescription, subscriptionDescription, topicDescription, type Document, type FeedItem } from './atom';
import { queueConfig, readDescription, ruleConfig, subscriptionConfig, topicConfig } from './bodies';

/**
 * The Service Bus administration REST API (ATOM/XML over HTTP) that `ServiceBusAdministrationClient`
 * calls, answered from the emulator's in-memory namespace so entities created here are live on the
 * AMQP side at once. Paths, as the SDK builds them:
 *
 * | path                                   | GET                 | PUT (If-Match: * = update) | DELETE |
 * |----------------------------------------|---------------------|----------------------------|--------|
 * | `$namespaceinfo`                       | namespace           |                            |        |
 * | `$Resources/Queues`, `$Resources/Topics` | list (`$skip`/`$top`) |                          |        |
 * | `<queue or topic>`                     | entity / empty feed | create / update            | delete |
 * | `<topic>/Subscriptions/`               | list                |                            |        |
 * | `<topic>/Subscriptions/<s>`            | subscription        | create / update            | delete |
 * | `<topic>/Subscriptions/<s>/Rules/`     | list                |                            |        |
 * | `<topic>/Subscriptions/<s>/Rules/<r>`  | rule                | create / update            | delete |
 */

export interface AdminServerOptions {
  namespace: Namespace;
  sas: SasKey;
  log?: Logger;
}

/** Azure's default page when a list call names no `$top`. */
const DEFAULT_PAGE = 100;
const MAX_BODY_BYTES = 1024 * 1024;

interface Request {
  method: string;
  host: string;
  segments: string[];
  query: URLSearchParams;
  ifMatch: boolean;
  body: string;
}

type Answer = { status: number; document?: Document };

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createAdminServer(options: AdminServerOptions): Server {
  return createServer((req, res) => {
    handle(options, req, res).catch((e) => {
      options.log?.error(`servicebus emulator admin: ${(e as Error).stack ?? e}`);
      if (!res.headersSent) send(res, 500, errorDocument(500, `the Service Bus emulator failed: ${(e as Error).message}`), 'application/xml; charset=utf-8');
    });
  });
}

async function handle(options: AdminServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://emulator');
    // Who asks comes first, then how much they send: nobody unauthenticated gets a body read.
    authorize(options.sas, req.headers.authorization, url.pathname);
    const body = await readBody(req);
    const answer = await route(options.namespace, {
      method: req.method ?? 'GET',
      host: req.headers.host ?? 'localhost',
      segments: url.pathname.split('/').slice(1).map(decodeSegment),
      query: url.searchParams,
      ifMatch: req.headers['if-match'] === '*',
      body,
    });
    if (!answer.document) return send(res, answer.status, '', undefined);
    send(res, answer.status, answer.document.xml, `application/atom+xml;type=${answer.document.kind};charset=utf-8`);
  } catch (e) {
    const status = e instanceof HttpError ? e.status : e instanceof EntityRequestError ? STATUS[e.reason] : e instanceof SqlFilterError ? 400 : undefined;
    if (status === undefined) throw e;
    // A body left unread is discarded by Node once the answer is sent, so the connection stays usable.
    send(res, status, errorDocument(status, (e as Error).message), 'application/xml; charset=utf-8');
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `The path segment "${segment.slice(0, 100)}" is not correctly percent-encoded.`);
  }
}

const STATUS: Record<EntityRequestError['reason'], number> = { 'not-found': 404, conflict: 409, 'bad-request': 400 };

function send(res: ServerResponse, status: number, body: string, contentType: string | undefined): void {
  res.writeHead(status, { ...(contentType ? { 'content-type': contentType } : {}), 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `The request body is ${declared} bytes, larger than the ${MAX_BODY_BYTES} bytes an entity description needs.`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `The request body is larger than the ${MAX_BODY_BYTES} bytes an entity description needs.`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The same SAS check as AMQP's `$cbs`, plus Azure's audience rule: the token's `sr` must cover the path. */
function authorize(sas: SasKey, header: string | undefined, path: string): void {
  const problem = sasTokenProblem(header, sas);
  if (problem) throw new HttpError(401, problem);
  const audience = new URL(sasAudience(header!) ?? '/', 'sb://emulator').pathname.toLowerCase();
  if (!path.toLowerCase().startsWith(audience)) throw new HttpError(401, `InvalidAudience: The token's audience (${audience}) does not cover ${path}.`);
}

async function route(ns: Namespace, r: Request): Promise<Answer> {
  const [first, second, third, fourth, fifth, ...rest] = r.segments;
  const is = (s: string | undefined, word: string) => s?.toLowerCase() === word.toLowerCase();
  if (rest.length) throw new HttpError(400, `The path /${r.segments.join('/')} is not a Service Bus entity path.`);
  if (r.segments.length === 1 && is(first, '$namespaceinfo')) return get(r, () => ({ status: 200, document: entry(r.host, '$namespaceinfo', ns.name, 'NamespaceInfo', namespaceDescription(ns), { createdAt: ns.createdAt, updatedAt: ns.createdAt }) }));
  if (r.segments.length === 2 && is(first, '$Resources') && (is(second, 'Queues') || is(second, 'Topics'))) {
    const items = is(second, 'Queues') ? [...ns.queues.values()].map(queueItem) : [...ns.topics.values()].map(topicItem);
    return get(r, () => list(r, `$Resources/${second}`, second!, items));
  }
  if (r.segments.length === 1) return entity(ns, r, first);
  if (is(second, 'Subscriptions') && (r.segments.length === 2 || (r.segments.length === 3 && third === ''))) {
    return get(r, () => list(r, `${first}/Subscriptions`, 'Subscriptions', [...ns.topic(first).subscriptions.values()].map(subscriptionItem)));
  }
  if (is(second, 'Subscriptions') && r.segments.length === 3) return subscription(ns, r, first, third);
  if (is(second, 'Subscriptions') && is(fourth, 'Rules') && (r.segments.length === 4 || fifth === '')) {
    const sub = ns.subscription(first, third);
    return get(r, () => list(r, `${first}/Subscriptions/${third}/Rules`, 'Rules', [...sub.rules.values()].map((rule) => ruleItem(sub, rule))));
  }
  if (is(second, 'Subscriptions') && is(fourth, 'Rules') && r.segments.length === 5) return rule(ns, r, first, third, fifth);
  throw new HttpError(400, `The path /${r.segments.join('/')} is not a Service Bus entity path.`);
}

function get(r: Request, answer: () => Answer): Answer {
  if (r.method !== 'GET') throw new HttpError(405, `${r.method} is not allowed on /${r.segments.join('/')}; only GET is.`);
  return answer();
}

function list(r: Request, path: string, title: string, items: FeedItem[]): Answer {
  const skip = Number(r.query.get('$skip') ?? 0);
  const top = Number(r.query.get('$top') ?? DEFAULT_PAGE);
  if (!Number.isInteger(skip) || skip < 0 || !Number.isInteger(top) || top < 1) throw new HttpError(400, `$skip must be 0 or more and $top 1 or more (got ${r.query.get('$skip')}, ${r.query.get('$top')}).`);
  // Name order keeps pages stable while entities come and go.
  const sorted = items.sort((a, b) => a.title.toLowerCase().localeCompare(b.title.toLowerCase()));
  return { status: 200, document: feed(r.host, path, title, sorted, skip, top) };
}

const queueItem = (q: Queue): FeedItem => ({ path: q.name, title: q.name, element: 'QueueDescription', description: queueDescription(q), times: q });
const topicItem = (t: Topic): FeedItem => ({ path: t.name, title: t.name, element: 'TopicDescription', description: topicDescription(t), times: t });
const subscriptionItem = (s: Subscription): FeedItem => ({ path: `${s.topic.name}/Subscriptions/${s.name}`, title: s.name, element: 'SubscriptionDescription', description: subscriptionDescription(s), times: s });
const ruleItem = (s: Subscription, rule: Rule): FeedItem => ({
  path: `${s.topic.name}/Subscriptions/${s.name}/Rules/${rule.name}`,
  title: rule.name,
  element: 'RuleDescription',
  description: ruleDescription(rule),
  times: { createdAt: rule.createdAt, updatedAt: rule.createdAt },
});

const one = (status: number, host: string, item: FeedItem): Answer => ({ status, document: entry(host, item.path, item.title, item.element, item.description, item.times) });

/** PUT without If-Match creates (201; 409 when taken), with `If-Match: *` it updates (200; 404 when missing). */
function createOrUpdate<E>(r: Request, what: string, existing: E | undefined, create: () => E, update: (e: E) => E, item: (e: E) => FeedItem): Answer {
  if (!r.ifMatch) return one(201, r.host, item(create()));
  if (!existing) throw new EntityRequestError('not-found', `${what} does not exist; create it first.`);
  return one(200, r.host, item(update(existing)));
}

async function entity(ns: Namespace, r: Request, name: string): Promise<Answer> {
  checkName(name, 'queue or topic');
  const queue = ns.queues.get(name.toLowerCase());
  const topic = ns.topics.get(name.toLowerCase());
  if (r.method === 'GET') {
    if (queue) return one(200, r.host, queueItem(queue));
    if (topic) return one(200, r.host, topicItem(topic));
    return { status: 200, document: emptyFeed(r.host, name) };
  }
  if (r.method === 'DELETE') {
    if (!ns.deleteQueue(name) && !ns.deleteTopic(name)) throw new EntityRequestError('not-found', `No queue or topic ${name} in namespace ${ns.name}.`);
    return { status: 200 };
  }
  if (r.method !== 'PUT') throw new HttpError(405, `${r.method} is not allowed on /${name}.`);
  const { kind, body } = await readDescription(r.body);
  if (kind === 'QueueDescription') {
    const properties = queueConfig(name, body);
    return createOrUpdate(r, `queue ${name}`, queue, () => ns.createQueue(name, properties), (q) => (q.update(properties), q), queueItem);
  }
  if (kind === 'TopicDescription') {
    const properties = topicConfig(name, body);
    return createOrUpdate(r, `topic ${name}`, topic, () => ns.createTopic(name, properties), (t) => (t.update(properties), t), topicItem);
  }
  throw new EntityRequestError('bad-request', `PUT /${name} carries a ${kind}; a queue or topic needs QueueDescription or TopicDescription.`);
}

async function subscription(ns: Namespace, r: Request, topicName: string, name: string): Promise<Answer> {
  checkName(name, 'subscription');
  if (r.method === 'GET') return one(200, r.host, subscriptionItem(ns.subscription(topicName, name)));
  if (r.method === 'DELETE') {
    if (!ns.deleteSubscription(topicName, name)) throw new EntityRequestError('not-found', `subscription ${topicName}/Subscriptions/${name} does not exist in namespace ${ns.name}.`);
    return { status: 200 };
  }
  if (r.method !== 'PUT') throw new HttpError(405, `${r.method} is not allowed on a subscription.`);
  const { kind, body } = await readDescription(r.body);
  if (kind !== 'SubscriptionDescription') throw new EntityRequestError('bad-request', `PUT of subscription ${name} carries a ${kind}; expected SubscriptionDescription.`);
  const config = subscriptionConfig(name, body);
  const existing = ns.topic(topicName).subscriptions.get(name.toLowerCase());
  return createOrUpdate(r, `subscription ${topicName}/Subscriptions/${name}`, existing, () => ns.createSubscription(topicName, config), (s) => (s.update(config.Properties), s), subscriptionItem);
}

async function rule(ns: Namespace, r: Request, topicName: string, subName: string, name: string): Promise<Answer> {
  checkName(name, 'rule');
  const sub = ns.subscription(topicName, subName);
  const existing = sub.rules.get(name.toLowerCase());
  const where = `rule ${name} on ${topicName}/Subscriptions/${subName}`;
  if (r.method === 'GET') {
    if (!existing) throw new EntityRequestError('not-found', `${where} does not exist.`);
    return one(200, r.host, ruleItem(sub, existing));
  }
  if (r.method === 'DELETE') {
    if (!sub.removeRule(name)) throw new EntityRequestError('not-found', `${where} does not exist.`);
    return { status: 200 };
  }
  if (r.method !== 'PUT') throw new HttpError(405, `${r.method} is not allowed on a rule.`);
  const { kind, body } = await readDescription(r.body);
  if (kind !== 'RuleDescription') throw new EntityRequestError('bad-request', `PUT of ${where} carries a ${kind}; expected RuleDescription.`);
  const config = ruleConfig(name, body);
  return createOrUpdate(r, where, existing, () => sub.addRule(config, 'create'), () => sub.addRule(config, 'replace'), (rule) => ruleItem(sub, rule));
}

/** The AMQP side addresses entities by `/`-separated paths, so names with `/` cannot be served. */
function checkName(name: string, what: string): void {
  if (!name || name.includes('/') || name.length > 260) throw new EntityRequestError('bad-request', `"${name}" is not a ${what} name the emulator accepts: 1 to 260 characters, no "/".`);
}
