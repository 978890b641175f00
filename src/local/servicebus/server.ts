import { randomBytes, randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import * as rhea from 'rhea';
import type { Logger } from '../../common/log';
import type { AmqpSocketOptions } from './listener';
import { sasTokenProblem } from './sas';
import { LockLostError, Namespace, type AmqpMessage, type Consumer, type MessageStore, type SendableEntity, type StoredMessage } from './entities';

/**
 * The AMQP 1.0 side: what the @azure/service-bus SDK does on the wire, answered as Azure answers
 * it. SASL (ANONYMOUS or PLAIN), then claims-based security on `$cbs` (a SAS token signed with the
 * namespace key), sender and receiver links on entity paths, and request/response on
 * `<entity>/$management`.
 */

const BATCH_FORMAT = 0x80013700;
const DEAD_LETTER_CONDITION = 'com.microsoft:dead-letter';

interface ConnectionState {
  authorized: boolean;
  /** Response links by the reply-to address the client uses (its receiver link's name and target). */
  replyLinks: Map<string, rhea.Sender>;
  consumers: Array<{ store: MessageStore; consumer: Consumer }>;
}

/** rhea's link fields its typings leave out. */
interface LinkInternals {
  remote: {
    attach: {
      source?: { address?: string; filter?: Record<string, unknown> };
      target?: { address?: string };
      snd_settle_mode?: number;
      rcv_settle_mode?: number;
    };
  };
  local: { attach: Record<string, unknown> };
  credit: number;
}
const accepted = () => (rhea.message as unknown as { accepted(): { described(): unknown } }).accepted().described();
const internals = (link: rhea.Sender | rhea.Receiver) => link as unknown as LinkInternals;
const rejected = (error: { condition: string; description: string }) =>
  (rhea.message as unknown as { rejected(f: { error: unknown }): { described(): unknown } }).rejected({ error }).described();

interface DeliveryRef {
  store: MessageStore;
  token: string;
}

export interface EmulatorServerOptions {
  host: string;
  keyName: string;
  key: string;
  log?: Logger;
}

export class EmulatorServer {
  private readonly container = rhea.create_container({ id: 'georeg-servicebus-emulator', autoaccept: false, autosettle: false, treat_modified_as_released: false } as rhea.ContainerOptions);
  private readonly connections = new WeakMap<rhea.Connection, ConnectionState>();
  private readonly deliveries = new WeakMap<rhea.Delivery, DeliveryRef>();
  private readonly consumerOf = new WeakMap<rhea.Sender, { store: MessageStore; consumer: Consumer }>();
  private readonly open = new Set<rhea.Connection>();
  private readonly pending = new WeakMap<rhea.Connection, AmqpSocketOptions>();

  constructor(readonly ns: Namespace, private readonly options: EmulatorServerOptions) {
    const sasl = (this.container as unknown as { sasl_server_mechanisms: { enable_anonymous(): void; enable_plain(cb: () => boolean): void } }).sasl_server_mechanisms;
    sasl.enable_anonymous();
    sasl.enable_plain(() => true);
    this.container.on('connection_open', (ctx) => {
      const socket = this.pending.get(ctx.connection);
      socket?.opened();
      if (socket?.refuse) return ctx.connection.close({ condition: 'amqp:resource-limit-exceeded', description: socket.refuse });
      this.connections.set(ctx.connection, { authorized: false, replyLinks: new Map(), consumers: [] });
      this.open.add(ctx.connection);
    });
    this.container.on('disconnected', (ctx) => this.dropConnection(ctx.connection));
    this.container.on('connection_close', (ctx) => this.dropConnection(ctx.connection));
    this.container.on('sender_open', (ctx) => this.guard(() => this.onSenderOpen(ctx)));
    this.container.on('receiver_open', (ctx) => this.guard(() => this.onReceiverOpen(ctx)));
    this.container.on('sender_close', (ctx) => this.detachConsumer(ctx.sender!));
    this.container.on('message', (ctx) => this.guard(() => this.onMessage(ctx)));
    this.container.on('sendable', (ctx) => this.consumerOf.get(ctx.sender!)?.store.pump());
    this.container.on('sender_draining', (ctx) => this.onDraining(ctx.sender!));
    for (const outcome of ['accepted', 'rejected', 'modified', 'released'] as const) {
      this.container.on(outcome, (ctx) => this.guard(() => this.onOutcome(ctx.delivery!, outcome)));
    }
    this.container.on('error', (e) => this.options.log?.warn(`servicebus emulator: ${(e as Error).message}`));
  }

  /** Serves AMQP on a socket the shared listener has recognised by its protocol header. */
  accept(socket: Socket, options: AmqpSocketOptions): void {
    const connection = this.container.create_connection({} as rhea.ConnectionOptions);
    this.pending.set(connection, options);
    (connection as unknown as { accept(s: Socket): void }).accept(socket);
  }

  async close(): Promise<void> {
    for (const c of this.open) {
      try {
        c.close();
      } catch {
        /* already gone */
      }
    }
    for (const c of this.open) (c as unknown as { socket?: { destroy(): void } }).socket?.destroy();
    this.open.clear();
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.options.log?.error(`servicebus emulator: ${(e as Error).stack ?? e}`);
    }
  }

  private state(connection: rhea.Connection): ConnectionState {
    let s = this.connections.get(connection);
    if (!s) this.connections.set(connection, (s = { authorized: false, replyLinks: new Map(), consumers: [] }));
    return s;
  }

  private dropConnection(connection: rhea.Connection): void {
    const s = this.connections.get(connection);
    if (s) for (const { store, consumer } of s.consumers) store.removeConsumer(consumer);
    this.open.delete(connection);
  }

  private detachConsumer(sender: rhea.Sender): void {
    const c = this.consumerOf.get(sender);
    if (c) c.store.removeConsumer(c.consumer);
  }

  // ---- links ----

  /** The client attached a receiver: we send on this link (entity messages, or responses). */
  private onSenderOpen(ctx: rhea.EventContext): void {
    const sender = ctx.sender!;
    const link = internals(sender);
    const address = link.remote.attach.source?.address ?? '';
    const target = link.remote.attach.target?.address;
    sender.set_source({ address });
    sender.set_target({ address: target ?? '' });
    link.local.attach.snd_settle_mode = link.remote.attach.snd_settle_mode;
    link.local.attach.rcv_settle_mode = link.remote.attach.rcv_settle_mode;
    const s = this.state(ctx.connection);
    if (address === '$cbs' || address.endsWith('/$management') || address === '$management') {
      s.replyLinks.set(sender.name, sender);
      if (target) s.replyLinks.set(target, sender);
      return;
    }
    if (!s.authorized) return refuse(sender, 'amqp:unauthorized-access', `Unauthorized access to '${address}': put a token on $cbs first.`);
    const filter = link.remote.attach.source?.filter;
    if (filter && Object.keys(filter).some((k) => k.includes('session-filter'))) {
      return refuse(sender, 'amqp:not-implemented', `Sessions are not supported by georeg's Service Bus emulator (entity '${address}'); use a receiver without sessions.`);
    }
    const resolved = this.ns.resolve(address);
    if (!resolved?.store) return refuse(sender, 'amqp:not-found', this.notFound(address));
    const store = resolved.store;
    const receiveAndDelete = link.remote.attach.snd_settle_mode === 1;
    let unprocessed = 0;
    let resetScheduled = false;
    const consumer: Consumer = {
      // The entity was deleted: Azure detaches its receivers with amqp:not-found.
      gone: () => refuse(sender, 'amqp:not-found', this.notFound(address)),
      credit: () => (sender.is_open() ? Math.max(0, link.credit - unprocessed) : 0),
      deliver: (entry, from) => {
        unprocessed++;
        if (!resetScheduled) {
          resetScheduled = true;
          // rhea counts credit down when it writes the transfer (next tick): until then we do.
          setImmediate(() => {
            resetScheduled = false;
            unprocessed = 0;
            from.pump();
          });
        }
        if (receiveAndDelete) {
          from.removeDelivered(entry);
          sender.send(outgoing(entry, from) as rhea.Message);
          return;
        }
        const token = from.lock(entry);
        const delivery = sender.send(outgoing(entry, from) as rhea.Message, reorderGuid(uuidToBytes(token)));
        this.deliveries.set(delivery, { store: from, token });
      },
    };
    const entry = { store, consumer };
    this.consumerOf.set(sender, entry);
    s.consumers.push(entry);
    store.addConsumer(consumer);
  }

  private onDraining(sender: rhea.Sender): void {
    const c = this.consumerOf.get(sender);
    c?.store.pump();
    setImmediate(() => sender.set_drained(true));
  }

  /** The client attached a sender: messages arrive on this link. */
  private onReceiverOpen(ctx: rhea.EventContext): void {
    const receiver = ctx.receiver!;
    const link = internals(receiver);
    const address = link.remote.attach.target?.address ?? '';
    receiver.set_target({ address });
    receiver.set_source({ address: link.remote.attach.source?.address ?? '' });
    if (address === '$cbs' || address.endsWith('$management')) return;
    if (!this.state(ctx.connection).authorized) return refuse(receiver, 'amqp:unauthorized-access', `Unauthorized access to '${address}': put a token on $cbs first.`);
    const resolved = this.ns.resolve(address);
    if (!resolved?.sendable) return refuse(receiver, 'amqp:not-found', this.notFound(address));
    link.local.attach.max_message_size = resolved.sendable.maxMessageBytes;
  }

  private notFound(address: string): string {
    return `The messaging entity 'sb://${this.options.host}/${address}' could not be found. To know more visit https://aka.ms/sbResourceMgrExceptions.`;
  }

  // ---- incoming messages ----

  private onMessage(ctx: rhea.EventContext): void {
    const receiver = ctx.receiver!;
    const delivery = ctx.delivery!;
    const message = ctx.message as unknown as AmqpMessage;
    const address = internals(receiver).remote.attach.target?.address ?? '';
    if (address === '$cbs') {
      delivery.accept();
      return this.reply(ctx.connection, message, this.putToken(ctx.connection, message), 'cbs');
    }
    if (address.endsWith('$management')) {
      delivery.accept();
      return this.reply(ctx.connection, message, this.management(address.replace(/\/?\$management$/, ''), message), 'management');
    }
    const entity = this.ns.resolve(address)?.sendable;
    if (!entity) return delivery.reject({ condition: 'amqp:not-found', description: this.notFound(address) });
    // rhea decodes only standard-format transfers; a batch arrives as its encoded envelope.
    const messages = (delivery as unknown as { format?: number }).format === BATCH_FORMAT ? unbatch(rhea.message.decode(ctx.message as unknown as Buffer) as unknown as AmqpMessage) : [message];
    for (const m of messages) {
      const size = rhea.message.encode(m as rhea.Message).length;
      if (size > entity.maxMessageBytes) {
        return delivery.reject({
          condition: 'amqp:link:message-size-exceeded',
          description: `The received message (size ${size} bytes) exceeds the limit (${entity.maxMessageBytes} bytes) currently allowed on the link.`,
        });
      }
    }
    for (const m of messages) enqueue(entity, m);
    delivery.accept();
  }

  private reply(connection: rhea.Connection, request: AmqpMessage, response: { status: number; description?: string; condition?: string; body?: unknown }, kind: 'cbs' | 'management'): void {
    const replyTo = request.reply_to;
    const link = replyTo ? this.state(connection).replyLinks.get(replyTo) : undefined;
    if (!link) {
      this.options.log?.warn(`servicebus emulator: no response link for reply-to "${replyTo}"`);
      return;
    }
    const props: Record<string, unknown> =
      kind === 'cbs'
        ? { 'status-code': response.status, 'status-description': response.description ?? '' }
        : { statusCode: response.status, statusDescription: response.description ?? '', ...(response.condition ? { errorCondition: response.condition } : {}) };
    link.send({ correlation_id: request.message_id, to: replyTo, application_properties: props, body: response.body ?? {} } as rhea.Message);
  }

  // ---- $cbs ----

  private putToken(connection: rhea.Connection, request: AmqpMessage) {
    const props = request.application_properties ?? {};
    if (props.operation !== 'put-token') return { status: 400, description: `unsupported $cbs operation ${String(props.operation)}` };
    const token = typeof request.body === 'string' ? request.body : '';
    const problem = sasTokenProblem(token, this.options);
    if (problem) return { status: 401, description: problem };
    this.state(connection).authorized = true;
    return { status: 202, description: 'Accepted' };
  }

  // ---- $management ----

  private management(entityPath: string, request: AmqpMessage): { status: number; description?: string; condition?: string; body?: unknown } {
    const operation = String(request.application_properties?.operation ?? '');
    const body = (request.body ?? {}) as Record<string, unknown>;
    const resolved = this.ns.resolve(entityPath);
    if (!resolved) return { status: 404, condition: 'amqp:not-found', description: this.notFound(entityPath) };
    try {
      switch (operation) {
        case 'com.microsoft:peek-message': {
          if (!resolved.store) return { status: 400, description: `cannot peek a topic (${entityPath}): peek a subscription` };
          const from = toNumber(body['from-sequence-number']);
          const count = toNumber(body['message-count']) || 1;
          const entries = resolved.store.peek(from, count);
          if (!entries.length) return { status: 204, description: 'No messages' };
          return { status: 200, body: { messages: entries.map((e) => ({ message: rhea.message.encode(outgoing(e, resolved.store!, true) as rhea.Message) })) } };
        }
        case 'com.microsoft:renew-lock': {
          const store = this.requireStore(resolved.store, entityPath);
          const tokens = toArray(body['lock-tokens']).map(bytesToUuid);
          return { status: 200, body: { expirations: tokens.map((t) => new Date(store.renewLock(t))) } };
        }
        case 'com.microsoft:schedule-message': {
          const entity = resolved.sendable;
          if (!entity) return { status: 400, description: `cannot schedule on ${entityPath}: send to a queue or topic` };
          const seqs: number[] = [];
          for (const item of toArray(body.messages) as Array<Record<string, unknown>>) {
            const m = rhea.message.decode(item.message as Buffer) as unknown as AmqpMessage;
            if (m.message_id === undefined || m.message_id === null) m.message_id = String(item['message-id'] ?? randomUUID().replace(/-/g, ''));
            const at = m.message_annotations?.['x-opt-scheduled-enqueue-time'];
            const size = (item.message as Buffer).length;
            if (size > entity.maxMessageBytes) return { status: 413, condition: 'amqp:link:message-size-exceeded', description: `message of ${size} bytes exceeds ${entity.maxMessageBytes}` };
            seqs.push(entity.send(m, size, at instanceof Date ? at.getTime() : Number(at)).seq);
          }
          return { status: 200, body: { 'sequence-numbers': rhea.types.wrap_array(seqs.map((s) => longBytes(s)), 0x81, undefined) } };
        }
        case 'com.microsoft:cancel-scheduled-message': {
          const entity = resolved.sendable;
          if (!entity) return { status: 400, description: `cannot cancel on ${entityPath}` };
          entity.cancelScheduled(toArray(body['sequence-numbers']).map(toNumber));
          return { status: 200 };
        }
        case 'com.microsoft:receive-by-sequence-number': {
          const store = this.requireStore(resolved.store, entityPath);
          const receiveAndDelete = toNumber(body['receiver-settle-mode']) === 0;
          const found = store.receiveDeferred(toArray(body['sequence-numbers']).map(toNumber), receiveAndDelete);
          if (!found.length) return { status: 404, condition: 'com.microsoft:message-not-found', description: 'The requested deferred messages were not found.' };
          return {
            status: 200,
            body: {
              messages: found.map(({ entry, token }) => ({
                message: rhea.message.encode(outgoing(entry, store) as rhea.Message),
                ...(token ? { 'lock-token': rhea.types.wrap_uuid(uuidToBytes(token)) } : {}),
              })),
            },
          };
        }
        case 'com.microsoft:update-disposition': {
          const store = this.requireStore(resolved.store, entityPath);
          const status = String(body['disposition-status']);
          const props = body['properties-to-modify'] as Record<string, unknown> | undefined;
          for (const token of toArray(body['lock-tokens']).map(bytesToUuid)) {
            if (status === 'completed') store.complete(token);
            else if (status === 'abandoned') store.abandon(token, props);
            else if (status === 'defered' || status === 'deferred') store.defer(token, props);
            else if (status === 'suspended') store.deadLetter(token, body['deadletter-reason'] as string | undefined, body['deadletter-description'] as string | undefined, props);
            else return { status: 400, description: `unknown disposition-status ${status}` };
          }
          return { status: 200 };
        }
        default:
          return { status: 501, condition: 'amqp:not-implemented', description: `georeg's Service Bus emulator does not implement ${operation}` };
      }
    } catch (e) {
      if (e instanceof LockLostError) return { status: 410, condition: e.condition, description: e.message };
      throw e;
    }
  }

  private requireStore(store: MessageStore | undefined, path: string): MessageStore {
    if (!store) throw new Error(`${path} is not a queue or subscription`);
    return store;
  }

  // ---- settlement on the delivery link ----

  private onOutcome(delivery: rhea.Delivery, outcome: 'accepted' | 'rejected' | 'modified' | 'released'): void {
    const ref = this.deliveries.get(delivery);
    if (!ref) return;
    const state = (delivery as unknown as { remote_state?: { error?: { condition?: string; info?: Record<string, unknown> }; undeliverable_here?: boolean; message_annotations?: Record<string, unknown>; constructor: { composite_type?: string } } }).remote_state;
    if (outcome === 'released' && state?.constructor.composite_type === 'modified') return;
    this.deliveries.delete(delivery);
    try {
      if (outcome === 'accepted') ref.store.complete(ref.token);
      else if (outcome === 'released') ref.store.abandon(ref.token);
      else if (outcome === 'modified') {
        if (state?.undeliverable_here) ref.store.defer(ref.token, state.message_annotations);
        else ref.store.abandon(ref.token, state?.message_annotations);
      } else {
        const info = { ...(state?.error?.info ?? {}) };
        const reason = info.DeadLetterReason as string | undefined;
        const description = info.DeadLetterErrorDescription as string | undefined;
        delete info.DeadLetterReason;
        delete info.DeadLetterErrorDescription;
        if (state?.error?.condition === DEAD_LETTER_CONDITION || state?.error) ref.store.deadLetter(ref.token, reason, description, info);
      }
      // Settle: modified/released are echoed; a dead-letter (rejected) is confirmed as accepted,
      // since the SDK reads any error on the settling state as a failed settlement.
      const echo = outcome === 'modified' || outcome === 'released' ? (state as unknown as { described?: () => unknown } | undefined)?.described?.() : undefined;
      settleFinally(delivery, echo ?? accepted());
    } catch (e) {
      if (!(e instanceof LockLostError)) throw e;
      settleFinally(delivery, rejected({ condition: e.condition, description: e.message }));
    }
  }
}

/**
 * Settles a delivery for good. The SDK receives in settle mode "second": its disposition is
 * unsettled and it settles once we have, without telling us. rhea keeps every delivery until both
 * sides are settled, in a session buffer of 2,048, so without this the 2,049th delivery on a
 * receiver never goes out. As Azure does, the sender forgets a delivery once it has settled it.
 */
function settleFinally(delivery: rhea.Delivery, state: unknown): void {
  delivery.update(true, state as Parameters<rhea.Delivery["update"]>[1]);
  (delivery as unknown as { remote_settled: boolean }).remote_settled = true;
}

function refuse(link: rhea.Sender | rhea.Receiver, condition: string, description: string): void {
  link.close({ condition, description });
}


function enqueue(entity: SendableEntity, m: AmqpMessage): void {
  // The broker assigns a message id when the sender set none (the SDK's lock renewer relies on it).
  if (m.message_id === undefined || m.message_id === null) m.message_id = randomUUID().replace(/-/g, '');
  const at = m.message_annotations?.['x-opt-scheduled-enqueue-time'];
  const scheduledAt = at instanceof Date ? at.getTime() : typeof at === 'number' ? at : undefined;
  entity.send(m, rhea.message.encode(m as rhea.Message).length, scheduledAt);
}

/** A batch is one AMQP message whose data sections each hold an encoded message. */
function unbatch(batch: AmqpMessage): AmqpMessage[] {
  const body = batch.body as { content?: Buffer | Buffer[]; multiple?: boolean } | undefined;
  const parts = body?.multiple ? (body.content as Buffer[]) : body?.content ? [body.content as Buffer] : [];
  return parts.map((p) => rhea.message.decode(p) as unknown as AmqpMessage);
}

/** The message as a receiver sees it: broker annotations added, delivery count of earlier attempts. */
function outgoing(entry: StoredMessage, store: MessageStore, peek = false): AmqpMessage {
  const annotations: Record<string, unknown> = {
    ...entry.message.message_annotations,
    'x-opt-sequence-number': rhea.types.wrap_long(entry.seq),
    'x-opt-enqueued-time': new Date(entry.enqueuedAt),
  };
  if (entry.lock && !peek) annotations['x-opt-locked-until'] = new Date(entry.lock.until);
  if (entry.state === 'deferred') annotations['x-opt-message-state'] = 1;
  if (entry.state === 'scheduled') annotations['x-opt-message-state'] = 2;
  if (entry.deadLetterSource) annotations['x-opt-deadletter-source'] = entry.deadLetterSource;
  void store;
  return { ...entry.message, delivery_count: Math.max(0, entry.deliveries - (peek ? 0 : 1)), message_annotations: annotations };
}

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (Buffer.isBuffer(v)) return v.length === 8 ? Number(v.readBigInt64BE(0)) : v.readUIntBE(0, Math.min(6, v.length));
  if (v && typeof v === 'object' && 'value' in v) return toNumber((v as { value: unknown }).value);
  return Number(v ?? 0);
}

function toArray(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (v && typeof v === 'object' && 'value' in v && Array.isArray((v as { value: unknown }).value)) return (v as { value: unknown[] }).value;
  return v === undefined || v === null ? [] : [v];
}

function longBytes(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(n));
  return b;
}

export function uuidToBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

function bytesToUuid(v: unknown): string {
  const b = Buffer.isBuffer(v) ? v : Buffer.from(String(v).replace(/-/g, ''), 'hex');
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Delivery tags carry the lock token in .NET GUID byte order; the SDK swaps it back. */
function reorderGuid(b: Buffer): Buffer {
  return Buffer.from([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], ...b.subarray(8)]);
}

export function newKey(): string {
  return randomBytes(32).toString('base64');
}
