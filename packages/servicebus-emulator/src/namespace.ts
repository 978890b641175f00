import { EntityRequestError } from './errors';
import { MessageStore, type AmqpMessage, type EntityCounts, type LockTable, type StoreOptions } from './messages';
import { compileRule, DEFAULT_RULE, filterInput, type Rule } from './rules';
import type { FilterInput } from './sql-filter';
import { parseDuration, type EntityPropertiesConfig, type RuleConfig, type SubscriptionConfig, type Topology } from './topology';

/**
 * The emulator's in-memory namespace: queues and topics (one set of names), subscriptions with
 * their rules, duplicate detection, and address resolution for links (`q`, `t/Subscriptions/s`,
 * each optionally `/$DeadLetterQueue`). Each queue and subscription keeps its messages in a
 * MessageStore (messages.ts). Nothing is persisted: a restart loses every message.
 */

export { EntityRequestError };

/** Remembers message ids for the duplicate detection window. */
class DuplicateDetector {
  private readonly seen = new Map<string, number>();
  constructor(private readonly windowMs: number) {}
  /** True when the id was seen within the window (the message is dropped). */
  isDuplicate(id: string): boolean {
    const now = Date.now();
    if (this.seen.size > 10_000) for (const [k, exp] of this.seen) if (exp <= now) this.seen.delete(k);
    const exp = this.seen.get(id);
    if (exp !== undefined && exp > now) return true;
    this.seen.set(id, now + this.windowMs);
    return false;
  }
}

export interface SendableEntity {
  kind: 'queue' | 'topic';
  name: string;
  maxMessageBytes: number;
  /** Accepts a message; returns false when it was a duplicate and dropped. */
  send(message: AmqpMessage, size: number, scheduledAt?: number): { accepted: boolean; seq: number };
  /** Where scheduled messages live, by sequence number (for cancel). */
  cancelScheduled(seqs: number[]): void;
}

/** What the administration API reports about an entity's own life. */
export interface EntityTimes {
  createdAt: Date;
  updatedAt: Date;
}

function storeOptions(p: EntityPropertiesConfig): StoreOptions {
  return {
    lockMs: parseDuration(p.LockDuration),
    maxDeliveryCount: p.MaxDeliveryCount,
    ttlMs: parseDuration(p.DefaultMessageTimeToLive),
    deadLetterOnExpiry: p.DeadLetteringOnMessageExpiration,
  };
}

/** Azure fixes these at creation; an update that changes one is refused, as Azure refuses it. */
function checkUpdate(what: string, before: EntityPropertiesConfig, after: EntityPropertiesConfig): void {
  for (const key of ['RequiresSession', 'RequiresDuplicateDetection'] as const) {
    if (before[key] !== after[key]) throw new EntityRequestError('bad-request', `${what}: ${key} cannot be changed on an existing entity; delete and re-create it instead.`);
  }
}

function duplicateDetector(p: EntityPropertiesConfig): DuplicateDetector | undefined {
  return p.RequiresDuplicateDetection ? new DuplicateDetector(parseDuration(p.DuplicateDetectionHistoryTimeWindow)) : undefined;
}

/** What queues and topics share: their properties, duplicate detection, size limit and times. */
abstract class SendableBase implements EntityTimes {
  private dedupe?: DuplicateDetector;
  maxMessageBytes: number;
  protected seq = 0;
  readonly createdAt = new Date();
  updatedAt = this.createdAt;
  constructor(readonly name: string, public properties: EntityPropertiesConfig) {
    this.dedupe = duplicateDetector(properties);
    this.maxMessageBytes = properties.MaxMessageSizeInKilobytes * 1024;
  }
  protected replaceProperties(what: string, properties: EntityPropertiesConfig): void {
    checkUpdate(what, this.properties, properties);
    if (properties.DuplicateDetectionHistoryTimeWindow !== this.properties.DuplicateDetectionHistoryTimeWindow) this.dedupe = duplicateDetector(properties);
    this.properties = properties;
    this.maxMessageBytes = properties.MaxMessageSizeInKilobytes * 1024;
    this.updatedAt = new Date();
  }
  protected isDuplicate(message: AmqpMessage): boolean {
    return Boolean(this.dedupe && message.message_id !== undefined && this.dedupe.isDuplicate(String(message.message_id)));
  }
}

export class Queue extends SendableBase implements SendableEntity {
  readonly kind = 'queue' as const;
  readonly store: MessageStore;
  constructor(ns: Namespace, name: string, properties: EntityPropertiesConfig) {
    super(name, properties);
    if (properties.RequiresSession) throw new EntityRequestError('bad-request', `queue ${name}: sessions are not supported by the Service Bus emulator (RequiresSession must be false)`);
    this.store = new MessageStore(ns.locks, name, storeOptions(properties));
  }
  update(properties: EntityPropertiesConfig): void {
    this.replaceProperties(`queue ${this.name}`, properties);
    this.store.reconfigure(storeOptions(properties));
  }
  send(message: AmqpMessage, size: number, scheduledAt?: number) {
    if (this.isDuplicate(message)) return { accepted: false, seq: -1 };
    const seq = ++this.seq;
    this.store.enqueue(message, seq, size, scheduledAt);
    return { accepted: true, seq };
  }
  cancelScheduled(seqs: number[]): void {
    this.store.cancelScheduled(seqs);
  }
}


export class Subscription implements EntityTimes {
  readonly store: MessageStore;
  readonly rules = new Map<string, Rule>();
  readonly createdAt = new Date();
  updatedAt = this.createdAt;
  constructor(ns: Namespace, readonly topic: Topic, readonly name: string, public properties: EntityPropertiesConfig, rules: RuleConfig[]) {
    if (properties.RequiresSession) throw new EntityRequestError('bad-request', `subscription ${topic.name}/${name}: sessions are not supported by the Service Bus emulator`);
    // Compile every rule before the subscription exists, so a bad filter leaves nothing behind.
    const compiled = (rules.length ? rules : [DEFAULT_RULE]).map(compileRule);
    this.store = new MessageStore(ns.locks, `${topic.name}/Subscriptions/${name}`, storeOptions(properties));
    for (const r of compiled) this.rules.set(r.name.toLowerCase(), r);
  }
  update(properties: EntityPropertiesConfig): void {
    checkUpdate(`subscription ${this.topic.name}/${this.name}`, this.properties, properties);
    this.properties = properties;
    this.store.reconfigure(storeOptions(properties));
    this.updatedAt = new Date();
  }
  /** Adds a rule (or replaces it: `replace` is an update, which needs the rule to exist). */
  addRule(config: RuleConfig, mode: 'create' | 'replace' | 'upsert' = 'upsert'): Rule {
    const key = config.Name.toLowerCase();
    const existing = this.rules.get(key);
    const where = `rule ${config.Name} on ${this.topic.name}/Subscriptions/${this.name}`;
    if (mode === 'create' && existing) throw new EntityRequestError('conflict', `${where} already exists.`);
    if (mode === 'replace' && !existing) throw new EntityRequestError('not-found', `${where} does not exist.`);
    const rule = compileRule(config);
    if (existing) rule.createdAt = existing.createdAt;
    this.rules.set(key, rule);
    return rule;
  }
  removeRule(name: string): boolean {
    return this.rules.delete(name.toLowerCase());
  }
  /**
   * The copies this subscription keeps of a message, as Azure makes them: all matching rules without
   * an action together give one copy; each matching rule with an action gives its own annotated copy.
   */
  route(message: AmqpMessage, input: FilterInput): AmqpMessage[] {
    const copies: AmqpMessage[] = [];
    let plain = false;
    for (const r of this.rules.values()) {
      if (!r.filter(input)) continue;
      if (r.action) copies.push(r.action(message));
      else plain = true;
    }
    return plain ? [{ ...message }, ...copies] : copies;
  }
}

export class Topic extends SendableBase implements SendableEntity {
  readonly kind = 'topic' as const;
  readonly subscriptions = new Map<string, Subscription>();
  accessedAt = this.createdAt;
  constructor(private readonly ns: Namespace, name: string, properties: EntityPropertiesConfig) {
    super(name, properties);
  }
  update(properties: EntityPropertiesConfig): void {
    this.replaceProperties(`topic ${this.name}`, properties);
  }
  addSubscription(config: SubscriptionConfig): Subscription {
    const key = config.Name.toLowerCase();
    if (this.subscriptions.has(key)) throw new EntityRequestError('conflict', `subscription ${this.name}/Subscriptions/${config.Name} already exists.`);
    const sub = new Subscription(this.ns, this, config.Name, config.Properties, config.Rules);
    this.subscriptions.set(key, sub);
    return sub;
  }
  send(message: AmqpMessage, size: number, scheduledAt?: number) {
    if (this.isDuplicate(message)) return { accepted: false, seq: -1 };
    this.accessedAt = new Date();
    const seq = ++this.seq;
    const input = filterInput(message);
    for (const sub of this.subscriptions.values()) {
      // A second copy in one subscription (a rule action) needs its own sequence number there.
      sub.route(message, input).forEach((copy, i) => sub.store.enqueue(copy, i === 0 ? seq : ++this.seq, size, scheduledAt));
    }
    return { accepted: true, seq };
  }
  cancelScheduled(seqs: number[]): void {
    for (const sub of this.subscriptions.values()) sub.store.cancelScheduled(seqs);
  }
  /** Messages scheduled on the topic, counted once however many subscriptions hold a copy. */
  scheduledCount(): number {
    const seqs = new Set<number>();
    for (const sub of this.subscriptions.values()) for (const e of sub.store.messages.values()) if (e.state === 'scheduled') seqs.add(e.seq);
    return seqs.size;
  }
}

export interface ResolvedEntity {
  /** Where messages are sent (queue or topic), for sender links. */
  sendable?: SendableEntity;
  /** Where messages are received (queue, subscription or a dead-letter sub-queue). */
  store?: MessageStore;
  /** The entity whose scheduled messages a management client may cancel. */
  path: string;
}

export class Namespace {
  readonly queues = new Map<string, Queue>();
  readonly topics = new Map<string, Topic>();
  /** Lock token → the store and message holding it. */
  readonly locks: LockTable = new Map();
  readonly createdAt = new Date();

  constructor(readonly name: string) {}

  static fromTopology(topology: Topology): Namespace {
    const config = topology.UserConfig.Namespaces[0];
    const ns = new Namespace(config.Name);
    for (const q of config.Queues) ns.createQueue(q.Name, q.Properties);
    for (const t of config.Topics) {
      const topic = ns.createTopic(t.Name, t.Properties);
      for (const s of t.Subscriptions) topic.addSubscription(s);
    }
    return ns;
  }

  /** Queues and topics share one set of names, case-insensitively, as in Azure. */
  private claimName(name: string): string {
    const key = name.toLowerCase();
    const taken = this.queues.has(key) ? 'queue' : this.topics.has(key) ? 'topic' : undefined;
    if (taken) throw new EntityRequestError('conflict', `${taken} ${name} already exists in namespace ${this.name}.`);
    return key;
  }

  createQueue(name: string, properties: EntityPropertiesConfig): Queue {
    const key = this.claimName(name);
    const q = new Queue(this, name, properties);
    this.queues.set(key, q);
    return q;
  }

  createTopic(name: string, properties: EntityPropertiesConfig): Topic {
    const key = this.claimName(name);
    const t = new Topic(this, name, properties);
    this.topics.set(key, t);
    return t;
  }

  topic(name: string): Topic {
    const t = this.topics.get(name.toLowerCase());
    if (!t) throw new EntityRequestError('not-found', `topic ${name} does not exist in namespace ${this.name}.`);
    return t;
  }

  subscription(topic: string, name: string): Subscription {
    const sub = this.topic(topic).subscriptions.get(name.toLowerCase());
    if (!sub) throw new EntityRequestError('not-found', `subscription ${topic}/Subscriptions/${name} does not exist in namespace ${this.name}.`);
    return sub;
  }

  createSubscription(topic: string, config: SubscriptionConfig): Subscription {
    return this.topic(topic).addSubscription(config);
  }

  deleteQueue(name: string): boolean {
    const q = this.queues.get(name.toLowerCase());
    if (!q) return false;
    q.store.remove();
    return this.queues.delete(name.toLowerCase());
  }

  /** Deleting a topic deletes its subscriptions (and detaches their receivers). */
  deleteTopic(name: string): boolean {
    const t = this.topics.get(name.toLowerCase());
    if (!t) return false;
    for (const s of t.subscriptions.values()) s.store.remove();
    t.subscriptions.clear();
    return this.topics.delete(name.toLowerCase());
  }

  deleteSubscription(topic: string, name: string): boolean {
    const t = this.topics.get(topic.toLowerCase());
    const sub = t?.subscriptions.get(name.toLowerCase());
    if (!t || !sub) return false;
    sub.store.remove();
    return t.subscriptions.delete(name.toLowerCase());
  }

  /** Resolves a link address: `q`, `t`, `t/Subscriptions/s`, each optionally `/$DeadLetterQueue`. */
  resolve(address: string): ResolvedEntity | undefined {
    const path = address.replace(/^amqps?:\/\/[^/]+\//, '').replace(/^\/+/, '');
    const parts = path.split('/');
    const dlq = parts[parts.length - 1].toLowerCase() === '$deadletterqueue';
    if (dlq) parts.pop();
    if (parts.length === 1) {
      const q = this.queues.get(parts[0].toLowerCase());
      if (q) return { sendable: dlq ? undefined : q, store: dlq ? q.store.deadLetterQueue : q.store, path };
      const t = this.topics.get(parts[0].toLowerCase());
      if (t && !dlq) return { sendable: t, path };
      return undefined;
    }
    if (parts.length === 3 && parts[1].toLowerCase() === 'subscriptions') {
      const sub = this.topics.get(parts[0].toLowerCase())?.subscriptions.get(parts[2].toLowerCase());
      if (sub) return { store: dlq ? sub.store.deadLetterQueue : sub.store, path, sendable: undefined };
    }
    return undefined;
  }

  /** Message counts of a queue (`q`) or subscription (`t/Subscriptions/s`). */
  counts(path: string): EntityCounts {
    const resolved = this.resolve(path);
    if (!resolved?.store) throw new Error(`no queue or subscription "${path}"`);
    return resolved.store.counts();
  }

  close(): void {
    for (const q of this.queues.values()) q.store.close();
    for (const t of this.topics.values()) for (const s of t.subscriptions.values()) s.store.close();
  }
}
