import { randomUUID } from 'node:crypto';

/**
 * The message lifecycle of one receivable entity (a queue, a subscription or a dead-letter
 * sub-queue), as Azure documents it: peek-lock with lock expiry and renewal, complete, abandon,
 * dead-letter, defer, max delivery count, scheduled enqueue, time to live. Round-robin hand-out
 * to the consumers (receiver links) that have credit. Nothing is persisted.
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

/** Lock token → the store and message holding it, one table per namespace (settlement finds a message by its token). */
export type LockTable = Map<string, { store: MessageStore; seq: number }>;

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
    private readonly locks: LockTable,
    readonly path: string,
    public options: StoreOptions,
    isDeadLetterQueue = false,
  ) {
    if (!isDeadLetterQueue) {
      this.deadLetterQueue = new MessageStore(locks, `${path}/$DeadLetterQueue`, { ...options, ttlMs: Number.MAX_SAFE_INTEGER, deadLetterOnExpiry: false, maxDeliveryCount: Number.MAX_SAFE_INTEGER }, true);
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
    this.locks.set(token, { store: this, seq: entry.seq });
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
    this.locks.delete(entry.lock.token);
  }

  entryForLock(token: string): StoredMessage {
    const found = this.locks.get(token);
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
    const found = this.locks.get(token);
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
    for (const e of this.messages.values()) if (e.lock) this.locks.delete(e.lock.token);
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
