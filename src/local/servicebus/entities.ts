import { randomUUID } from 'node:crypto';
import { compileSqlAction, compileSqlFilter, type FilterInput, type SqlAssignment } from './sql-filter';
import { parseDuration, type EntityPropertiesConfig, type RuleConfig, type SubscriptionConfig, type Topology } from './topology';

/**
 * The emulator's in-memory namespace: queues, topics with subscriptions and rules, dead-letter
 * sub-queues, and the message lifecycle Azure documents (peek-lock, lock expiry, abandon,
 * dead-letter, defer, max delivery count, scheduled enqueue, TTL, duplicate detection).
 * Nothing is persisted: a restart loses every message.
 */

/** A message as rhea decodes it (header, properties, annotations and body sections). */
export interface AmqpMessage {
  message_id?: string | number | Buffer;
  correlation_id?: string | number | Buffer;
  subject?: string;
  content_type?: string;
  to?: string;
  reply_to?: string;
  group_id?: string;
  reply_to_group_id?: string;
  ttl?: number;
  delivery_count?: number;
  application_properties?: Record<string, unknown>;
  message_annotations?: Record<string, unknown>;
  body?: unknown;
  [key: string]: unknown;
}

export interface StoredMessage {
  seq: number;
  message: AmqpMessage;
  size: number;
  enqueuedAt: number;
  expiresAt: number;
  /** Times delivered under a lock or by receive-and-delete. */
  deliveries: number;
  state: 'active' | 'deferred' | 'scheduled';
  scheduledAt?: number;
  lock?: { token: string; until: number; timer: NodeJS.Timeout; onLost?: (reason: string) => void };
  deadLetterSource?: string;
}

export interface EntityCounts {
  active: number;
  deadLetter: number;
  scheduled: number;
  transfer: number;
  transferDeadLetter: number;
  total: number;
}

export interface StoreOptions {
  lockMs: number;
  maxDeliveryCount: number;
  ttlMs: number;
  deadLetterOnExpiry: boolean;
}

/** Minimal binary heap of sequence numbers: the next available message is the lowest. */
class SeqHeap {
  private readonly items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  push(v: number): void {
    const a = this.items;
    a.push(v);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= a[i]) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  pop(): number | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l] < a[m]) m = l;
        if (r < a.length && a[r] < a[m]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

export interface Consumer {
  /** How many more messages this consumer can take now. */
  credit(): number;
  deliver(entry: StoredMessage, store: MessageStore): void;
  /** The entity was deleted; the consumer's link should be detached. */
  gone?(): void;
}

export class LockLostError extends Error {
  readonly condition = 'com.microsoft:message-lock-lost';
  constructor(token: string) {
    super(`The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue. Lock token: ${token}`);
  }
}

/** One receivable entity: a queue, a subscription, or a dead-letter sub-queue. */
export class MessageStore {
  readonly messages = new Map<number, StoredMessage>();
  private readonly available = new SeqHeap();
  private readonly consumers: Consumer[] = [];
  private nextConsumer = 0;
  private scheduleTimer?: NodeJS.Timeout;
  private nextScheduledAt = Infinity;
  readonly deadLetterQueue?: MessageStore;
  private pumping = false;
  /** Last send or receive, for the administration API's AccessedAt. */
  accessedAt = new Date();

  constructor(
    readonly ns: Namespace,
    readonly path: string,
    public options: StoreOptions,
    isDeadLetterQueue = false,
  ) {
    if (!isDeadLetterQueue) {
      this.deadLetterQueue = new MessageStore(ns, `${path}/$DeadLetterQueue`, { ...options, ttlMs: Number.MAX_SAFE_INTEGER, deadLetterOnExpiry: false, maxDeliveryCount: Number.MAX_SAFE_INTEGER }, true);
    }
  }

  enqueue(message: AmqpMessage, seq: number, size: number, scheduledAt?: number): StoredMessage {
    const now = Date.now();
    this.accessedAt = new Date(now);
    const ttl = Math.min(typeof message.ttl === 'number' && message.ttl > 0 ? message.ttl : Number.MAX_SAFE_INTEGER, this.options.ttlMs);
    const entry: StoredMessage = { seq, message, size, enqueuedAt: now, expiresAt: now + ttl, deliveries: 0, state: 'active' };
    this.messages.set(seq, entry);
    if (scheduledAt !== undefined && scheduledAt > now) {
      entry.state = 'scheduled';
      entry.scheduledAt = scheduledAt;
      this.armScheduleTimer(scheduledAt);
    } else {
      this.available.push(seq);
      this.pump();
    }
    return entry;
  }

  addConsumer(c: Consumer): void {
    this.consumers.push(c);
    this.pump();
  }

  removeConsumer(c: Consumer): void {
    const i = this.consumers.indexOf(c);
    if (i >= 0) this.consumers.splice(i, 1);
  }

  /** Hands available messages to consumers with credit, round robin. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.available.size && this.consumers.length) {
        const consumer = this.pickConsumer();
        if (!consumer) break;
        const entry = this.takeNext();
        if (!entry) break;
        consumer.deliver(entry, this);
      }
    } finally {
      this.pumping = false;
    }
  }

  private pickConsumer(): Consumer | undefined {
    for (let n = 0; n < this.consumers.length; n++) {
      const c = this.consumers[(this.nextConsumer + n) % this.consumers.length];
      if (c.credit() > 0) {
        this.nextConsumer = (this.nextConsumer + n + 1) % this.consumers.length;
        return c;
      }
    }
    return undefined;
  }

  /** The next available message, expiring what has outlived its time to live. */
  takeNext(): StoredMessage | undefined {
    for (;;) {
      const seq = this.available.pop();
      if (seq === undefined) return undefined;
      const entry = this.messages.get(seq);
      if (!entry || entry.state !== 'active' || entry.lock) continue;
      if (entry.expiresAt <= Date.now()) {
        this.expire(entry);
        continue;
      }
      return entry;
    }
  }

  /** Locks a message for a peek-lock receiver; returns the lock token. */
  lock(entry: StoredMessage, onLost?: (reason: string) => void): string {
    entry.deliveries += 1;
    this.accessedAt = new Date();
    const token = randomUUID();
    const until = Date.now() + this.options.lockMs;
    const timer = setTimeout(() => this.lockExpired(entry, token), this.options.lockMs);
    timer.unref();
    entry.lock = { token, until, timer, onLost };
    this.ns.locks.set(token, { store: this, seq: entry.seq });
    return token;
  }

  /** Receive-and-delete: the message is gone once handed over. */
  removeDelivered(entry: StoredMessage): void {
    entry.deliveries += 1;
    this.accessedAt = new Date();
    this.messages.delete(entry.seq);
  }

  private lockExpired(entry: StoredMessage, token: string): void {
    if (entry.lock?.token !== token) return;
    this.releaseLock(entry);
    entry.lock = undefined;
    this.returnOrDeadLetter(entry);
  }

  private releaseLock(entry: StoredMessage): void {
    if (!entry.lock) return;
    clearTimeout(entry.lock.timer);
    this.ns.locks.delete(entry.lock.token);
  }

  entryForLock(token: string): StoredMessage {
    const found = this.ns.locks.get(token);
    const entry = found?.store === this ? this.messages.get(found.seq) : undefined;
    if (!entry || entry.lock?.token !== token || entry.lock.until < Date.now()) throw new LockLostError(token);
    return entry;
  }

  complete(token: string): void {
    const entry = this.entryForLock(token);
    this.releaseLock(entry);
    this.messages.delete(entry.seq);
  }

  abandon(token: string, propertiesToModify?: Record<string, unknown>): void {
    const entry = this.entryForLock(token);
    this.releaseLock(entry);
    entry.lock = undefined;
    modify(entry, propertiesToModify);
    if (entry.state === 'deferred') return; // an abandoned deferred message stays deferred
    this.returnOrDeadLetter(entry);
  }

  defer(token: string, propertiesToModify?: Record<string, unknown>): void {
    const entry = this.entryForLock(token);
    this.releaseLock(entry);
    entry.lock = undefined;
    modify(entry, propertiesToModify);
    entry.state = 'deferred';
  }

  deadLetter(token: string, reason?: string, description?: string, propertiesToModify?: Record<string, unknown>): void {
    const entry = this.entryForLock(token);
    this.releaseLock(entry);
    entry.lock = undefined;
    modify(entry, propertiesToModify);
    this.moveToDeadLetter(entry, reason, description);
  }

  renewLock(token: string): number {
    const entry = this.entryForLock(token);
    clearTimeout(entry.lock!.timer);
    entry.lock!.until = Date.now() + this.options.lockMs;
    entry.lock!.timer = setTimeout(() => this.lockExpired(entry, token), this.options.lockMs);
    entry.lock!.timer.unref();
    return entry.lock!.until;
  }

  /** A lock abandoned because its receiver went away (link or connection closed). */
  releaseOnDetach(token: string): void {
    const found = this.ns.locks.get(token);
    const entry = found ? this.messages.get(found.seq) : undefined;
    if (!entry || entry.lock?.token !== token) return;
    this.releaseLock(entry);
    entry.lock = undefined;
    if (entry.state === 'active') this.returnOrDeadLetter(entry);
  }

  private returnOrDeadLetter(entry: StoredMessage): void {
    if (entry.deliveries >= this.options.maxDeliveryCount) {
      this.moveToDeadLetter(entry, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${this.options.maxDeliveryCount} delivery attempts.`);
      return;
    }
    this.available.push(entry.seq);
    this.pump();
  }

  private expire(entry: StoredMessage): void {
    if (this.options.deadLetterOnExpiry && this.deadLetterQueue) this.moveToDeadLetter(entry, 'TTLExpiredException', 'The message expired and was dead lettered.');
    else this.messages.delete(entry.seq);
  }

  private moveToDeadLetter(entry: StoredMessage, reason?: string, description?: string): void {
    this.messages.delete(entry.seq);
    const dlq = this.deadLetterQueue;
    if (!dlq) return;
    const message: AmqpMessage = {
      ...entry.message,
      application_properties: {
        ...entry.message.application_properties,
        ...(reason !== undefined ? { DeadLetterReason: reason } : {}),
        ...(description !== undefined ? { DeadLetterErrorDescription: description } : {}),
      },
      message_annotations: { ...entry.message.message_annotations, 'x-opt-deadletter-source': this.path },
    };
    const moved = dlq.enqueue(message, entry.seq, entry.size);
    moved.deliveries = entry.deliveries;
    moved.enqueuedAt = entry.enqueuedAt;
    moved.deadLetterSource = this.path;
  }

  peek(fromSeq: number, count: number): StoredMessage[] {
    const out: StoredMessage[] = [];
    const now = Date.now();
    for (const entry of this.messages.values()) {
      if (entry.seq < fromSeq || entry.expiresAt <= now) continue;
      out.push(entry);
      if (out.length >= count) break;
    }
    return out;
  }

  /** Deferred messages by sequence number, locked (peek-lock) or removed (receive-and-delete). */
  receiveDeferred(seqs: number[], receiveAndDelete: boolean): Array<{ entry: StoredMessage; token?: string }> {
    const out: Array<{ entry: StoredMessage; token?: string }> = [];
    for (const seq of seqs) {
      const entry = this.messages.get(seq);
      if (!entry || entry.state !== 'deferred' || entry.lock) continue;
      if (receiveAndDelete) {
        this.removeDelivered(entry);
        out.push({ entry });
      } else {
        out.push({ entry, token: this.lock(entry) });
      }
    }
    return out;
  }

  cancelScheduled(seqs: number[]): void {
    for (const seq of seqs) {
      const entry = this.messages.get(seq);
      if (entry?.state === 'scheduled') this.messages.delete(seq);
    }
  }

  counts(): EntityCounts {
    let active = 0;
    let scheduled = 0;
    for (const e of this.messages.values()) {
      if (e.state === 'scheduled') scheduled++;
      else active++;
    }
    const deadLetter = this.deadLetterQueue?.messages.size ?? 0;
    return { active, deadLetter, scheduled, transfer: 0, transferDeadLetter: 0, total: active + deadLetter + scheduled };
  }

  /** Bytes held, dead-letter sub-queue included (the administration API's SizeInBytes). */
  sizeInBytes(): number {
    let bytes = 0;
    for (const e of this.messages.values()) bytes += e.size;
    return bytes + (this.deadLetterQueue?.sizeInBytes() ?? 0);
  }

  /** New lock duration, delivery count or TTL from an update; messages already stored keep theirs. */
  reconfigure(options: StoreOptions): void {
    this.options = options;
    if (this.deadLetterQueue) this.deadLetterQueue.options = { ...this.deadLetterQueue.options, lockMs: options.lockMs };
  }

  /** The entity was deleted: its receivers are detached and its messages and locks dropped. */
  remove(): void {
    for (const c of this.consumers.splice(0)) c.gone?.();
    for (const e of this.messages.values()) if (e.lock) this.ns.locks.delete(e.lock.token);
    this.deadLetterQueue?.remove();
    this.close();
    this.messages.clear();
  }

  private armScheduleTimer(at: number): void {
    if (at >= this.nextScheduledAt && this.scheduleTimer) return;
    if (this.scheduleTimer) clearTimeout(this.scheduleTimer);
    this.nextScheduledAt = at;
    this.scheduleTimer = setTimeout(() => this.releaseScheduled(), Math.max(0, at - Date.now()));
    this.scheduleTimer.unref();
  }

  /** One timer per entity: at the earliest due time, every due message becomes active. */
  private releaseScheduled(): void {
    this.scheduleTimer = undefined;
    this.nextScheduledAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const e of this.messages.values()) {
      if (e.state !== 'scheduled') continue;
      if (e.scheduledAt! <= now) {
        e.state = 'active';
        e.enqueuedAt = now;
        this.available.push(e.seq);
      } else next = Math.min(next, e.scheduledAt!);
    }
    if (next !== Infinity) this.armScheduleTimer(next);
    this.pump();
  }

  close(): void {
    if (this.scheduleTimer) clearTimeout(this.scheduleTimer);
    for (const e of this.messages.values()) if (e.lock) clearTimeout(e.lock.timer);
    this.deadLetterQueue?.close();
  }
}

function modify(entry: StoredMessage, properties?: Record<string, unknown>): void {
  if (properties && Object.keys(properties).length) {
    entry.message = { ...entry.message, application_properties: { ...entry.message.application_properties, ...properties } };
  }
}

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

export type Filter = (input: FilterInput) => boolean;

export interface Rule {
  name: string;
  config: RuleConfig;
  filter: Filter;
  /** A SQL rule action: the subscription gets its own annotated copy for this rule. */
  action?: (message: AmqpMessage) => AmqpMessage;
  createdAt: Date;
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

/** An administration request the namespace refuses; the admin API maps `reason` to 404/409/400. */
export class EntityRequestError extends Error {
  constructor(
    readonly reason: 'not-found' | 'conflict' | 'bad-request',
    message: string,
  ) {
    super(message);
    this.name = 'EntityRequestError';
  }
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
    if (properties.RequiresSession) throw new EntityRequestError('bad-request', `queue ${name}: sessions are not supported by georeg's Service Bus emulator (RequiresSession must be false)`);
    this.store = new MessageStore(ns, name, storeOptions(properties));
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

/** A subscription created without rules gets the $Default rule, which matches everything. */
const DEFAULT_RULE: RuleConfig = { Name: '$Default', Properties: { FilterType: 'Sql', SqlFilter: { SqlExpression: '1=1' } } };

export class Subscription implements EntityTimes {
  readonly store: MessageStore;
  readonly rules = new Map<string, Rule>();
  readonly createdAt = new Date();
  updatedAt = this.createdAt;
  constructor(ns: Namespace, readonly topic: Topic, readonly name: string, public properties: EntityPropertiesConfig, rules: RuleConfig[]) {
    if (properties.RequiresSession) throw new EntityRequestError('bad-request', `subscription ${topic.name}/${name}: sessions are not supported by georeg's Service Bus emulator`);
    // Compile every rule before the subscription exists, so a bad filter leaves nothing behind.
    const compiled = (rules.length ? rules : [DEFAULT_RULE]).map(compileRule);
    this.store = new MessageStore(ns, `${topic.name}/Subscriptions/${name}`, storeOptions(properties));
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

/** Broker (system) properties by the names filters and actions use, and where AMQP carries them. */
const SYSTEM_PROPERTIES = {
  MessageId: 'message_id',
  CorrelationId: 'correlation_id',
  Label: 'subject',
  Subject: 'subject',
  ContentType: 'content_type',
  To: 'to',
  ReplyTo: 'reply_to',
  SessionId: 'group_id',
  ReplyToSessionId: 'reply_to_group_id',
} as const;

export function filterInput(m: AmqpMessage): FilterInput {
  const str = (v: unknown) => (v === undefined || v === null ? undefined : Buffer.isBuffer(v) ? v.toString('hex') : String(v));
  const system: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(SYSTEM_PROPERTIES)) system[name] = str(m[field]);
  return { application: (m.application_properties ?? {}) as Record<string, unknown>, system };
}

function systemField(ruleName: string, name: string): (typeof SYSTEM_PROPERTIES)[keyof typeof SYSTEM_PROPERTIES] {
  const field = Object.entries(SYSTEM_PROPERTIES).find(([known]) => known.toLowerCase() === name.toLowerCase())?.[1];
  if (!field) throw new EntityRequestError('bad-request', `rule ${ruleName}: sys.${name} is not a system property an action can set (use one of ${Object.keys(SYSTEM_PROPERTIES).join(', ')})`);
  return field;
}

function applyAction(message: AmqpMessage, ruleName: string, assignments: SqlAssignment[]): AmqpMessage {
  const copy: AmqpMessage = { ...message, application_properties: { ...message.application_properties } };
  const app = copy.application_properties!;
  for (const a of assignments) {
    if (a.scope === 'sys') {
      const field = systemField(ruleName, a.name);
      if (a.op === 'remove' || a.value === null) delete copy[field];
      else copy[field] = String(a.value);
    } else if (a.op === 'remove') delete app[a.name];
    else app[a.name] = a.value;
  }
  app.RuleName = ruleName;
  return copy;
}

function compileRule(config: RuleConfig): Rule {
  const actionText = config.Properties.Action?.SqlExpression?.trim();
  const assignments = actionText ? compileSqlAction(actionText) : undefined;
  // A bad system property name is refused when the rule is created, not when a message arrives.
  for (const a of assignments ?? []) if (a.scope === 'sys') systemField(config.Name, a.name);
  return {
    name: config.Name,
    config,
    filter: compileFilter(config),
    action: assignments ? (m) => applyAction(m, config.Name, assignments) : undefined,
    createdAt: new Date(),
  };
}

function compileFilter(config: RuleConfig): Filter {
  const p = config.Properties;
  if (p.FilterType === 'Sql') return compileSqlFilter(p.SqlFilter!.SqlExpression);
  const c = p.CorrelationFilter!;
  const system: Array<[string, string | undefined]> = [
    ['ContentType', c.ContentType],
    ['CorrelationId', c.CorrelationId],
    ['Label', c.Label],
    ['MessageId', c.MessageId],
    ['ReplyTo', c.ReplyTo],
    ['ReplyToSessionId', c.ReplyToSessionId],
    ['SessionId', c.SessionId],
    ['To', c.To],
  ];
  const wanted = system.filter(([, v]) => v !== undefined && v !== '');
  const props = Object.entries(c.Properties ?? {});
  // A correlation filter matches when every property it names is equal (and it names at least one).
  return (input) =>
    (wanted.length > 0 || props.length > 0) &&
    wanted.every(([k, v]) => input.system[k] === v) &&
    props.every(([k, v]) => input.application[k] === v);
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
  readonly locks = new Map<string, { store: MessageStore; seq: number }>();
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
