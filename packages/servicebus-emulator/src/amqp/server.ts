import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type * as rhea from 'rhea';
import type { AmqpSocketOptions } from '../listener';
import type { Logger } from '../log';
import { LockLostError, type AmqpMessage, type Consumer, type MessageStore } from '../messages';
import type { Namespace, SendableEntity } from '../namespace';
import { sasTokenProblem } from '../sas';
import { lockTokenTag, outgoing, scheduledEnqueueTime } from './codec';
import { management, type ManagementResponse } from './management';
import {
  acceptedOutcome,
  acceptSocket,
  asRhea,
  createServerContainer,
  destroySocket,
  echoSettleModes,
  encodeMessage,
  incomingMessages,
  linkCredit,
  rejectedOutcome,
  remoteAttach,
  remoteOutcome,
  setMaxMessageSize,
  settleFinally,
} from './rhea-adapter';

/**
 * The AMQP 1.0 side: what the @azure/service-bus SDK does on the wire, answered as Azure answers
 * it. SASL (ANONYMOUS or PLAIN), then claims-based security on `$cbs` (a SAS token signed with the
 * namespace key), sender and receiver links on entity paths, and request/response on
 * `<entity>/$management`.
 */

interface ConnectionState {
  authorized: boolean;
  /** Response links by the reply-to address the client uses (its receiver link's name and target). */
  replyLinks: Map<string, rhea.Sender>;
  consumers: Array<{ store: MessageStore; consumer: Consumer }>;
}

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
  private readonly container = createServerContainer('servicebus-emulator');
  private readonly connections = new WeakMap<rhea.Connection, ConnectionState>();
  private readonly deliveries = new WeakMap<rhea.Delivery, DeliveryRef>();
  private readonly consumerOf = new WeakMap<rhea.Sender, { store: MessageStore; consumer: Consumer }>();
  private readonly open = new Set<rhea.Connection>();
  private readonly pending = new WeakMap<rhea.Connection, AmqpSocketOptions>();

  constructor(readonly ns: Namespace, private readonly options: EmulatorServerOptions) {
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
    acceptSocket(connection, socket);
  }

  async close(): Promise<void> {
    for (const c of this.open) {
      try {
        c.close();
      } catch {
        /* already gone */
      }
    }
    for (const c of this.open) destroySocket(c);
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
    const attach = remoteAttach(sender);
    const address = attach.source?.address ?? '';
    const target = attach.target?.address;
    sender.set_source({ address });
    sender.set_target({ address: target ?? '' });
    echoSettleModes(sender);
    const s = this.state(ctx.connection);
    if (address === '$cbs' || address.endsWith('/$management') || address === '$management') {
      s.replyLinks.set(sender.name, sender);
      if (target) s.replyLinks.set(target, sender);
      return;
    }
    if (!s.authorized) return refuse(sender, 'amqp:unauthorized-access', `Unauthorized access to '${address}': put a token on $cbs first.`);
    const filter = attach.source?.filter;
    if (filter && Object.keys(filter).some((k) => k.includes('session-filter'))) {
      return refuseWhenClosed(sender, 'amqp:not-implemented', `Sessions are not supported by the Service Bus emulator (entity '${address}'); use a receiver without sessions.`);
    }
    const resolved = this.ns.resolve(address);
    if (!resolved?.store) return refuse(sender, 'amqp:not-found', this.notFound(address));
    const store = resolved.store;
    const receiveAndDelete = attach.snd_settle_mode === 1;
    let unprocessed = 0;
    let resetScheduled = false;
    const consumer: Consumer = {
      // The entity was deleted: Azure detaches its receivers with amqp:not-found.
      gone: () => refuse(sender, 'amqp:not-found', this.notFound(address)),
      credit: () => (sender.is_open() ? Math.max(0, linkCredit(sender) - unprocessed) : 0),
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
          sender.send(asRhea(outgoing(entry)));
          return;
        }
        const token = from.lock(entry);
        const delivery = sender.send(asRhea(outgoing(entry)), lockTokenTag(token));
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
    const attach = remoteAttach(receiver);
    const address = attach.target?.address ?? '';
    receiver.set_target({ address });
    receiver.set_source({ address: attach.source?.address ?? '' });
    if (address === '$cbs' || address.endsWith('$management')) return;
    if (!this.state(ctx.connection).authorized) return refuse(receiver, 'amqp:unauthorized-access', `Unauthorized access to '${address}': put a token on $cbs first.`);
    const resolved = this.ns.resolve(address);
    if (!resolved?.sendable) return refuse(receiver, 'amqp:not-found', this.notFound(address));
    setMaxMessageSize(receiver, resolved.sendable.maxMessageBytes);
  }

  private notFound(address: string): string {
    return `The messaging entity 'sb://${this.options.host}/${address}' could not be found. To know more visit https://aka.ms/sbResourceMgrExceptions.`;
  }

  // ---- incoming messages ----

  private onMessage(ctx: rhea.EventContext): void {
    const receiver = ctx.receiver!;
    const delivery = ctx.delivery!;
    const address = remoteAttach(receiver).target?.address ?? '';
    if (address === '$cbs' || address.endsWith('$management')) {
      const [request] = incomingMessages(ctx);
      delivery.accept();
      const response = address === '$cbs' ? this.putToken(ctx.connection, request) : management(this.ns, address.replace(/\/?\$management$/, ''), request, (p) => this.notFound(p));
      return this.reply(ctx.connection, request, response, address === '$cbs' ? 'cbs' : 'management');
    }
    const entity = this.ns.resolve(address)?.sendable;
    if (!entity) return delivery.reject({ condition: 'amqp:not-found', description: this.notFound(address) });
    const messages = incomingMessages(ctx);
    for (const m of messages) {
      const size = encodeMessage(m).length;
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

  private reply(connection: rhea.Connection, request: AmqpMessage, response: ManagementResponse, kind: 'cbs' | 'management'): void {
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
    link.send(asRhea({ correlation_id: request.message_id, to: replyTo, application_properties: props, body: response.body ?? {} }));
  }

  // ---- $cbs ----

  private putToken(connection: rhea.Connection, request: AmqpMessage): ManagementResponse {
    const props = request.application_properties ?? {};
    if (props.operation !== 'put-token') return { status: 400, description: `unsupported $cbs operation ${String(props.operation)}` };
    const token = typeof request.body === 'string' ? request.body : '';
    const problem = sasTokenProblem(token, this.options);
    if (problem) return { status: 401, description: problem };
    this.state(connection).authorized = true;
    return { status: 202, description: 'Accepted' };
  }

  // ---- settlement on the delivery link ----

  private onOutcome(delivery: rhea.Delivery, outcome: 'accepted' | 'rejected' | 'modified' | 'released'): void {
    const ref = this.deliveries.get(delivery);
    if (!ref) return;
    const state = remoteOutcome(delivery);
    if (outcome === 'released' && state.composite === 'modified') return;
    this.deliveries.delete(delivery);
    try {
      if (outcome === 'accepted') ref.store.complete(ref.token);
      else if (outcome === 'released') ref.store.abandon(ref.token);
      else if (outcome === 'modified') {
        if (state.undeliverableHere) ref.store.defer(ref.token, state.annotations);
        else ref.store.abandon(ref.token, state.annotations);
      } else {
        const info = { ...(state.error?.info ?? {}) };
        const reason = info.DeadLetterReason as string | undefined;
        const description = info.DeadLetterErrorDescription as string | undefined;
        delete info.DeadLetterReason;
        delete info.DeadLetterErrorDescription;
        if (state.error) ref.store.deadLetter(ref.token, reason, description, info);
      }
      // Settle: modified/released are echoed; a dead-letter (rejected) is confirmed as accepted,
      // since the SDK reads any error on the settling state as a failed settlement.
      const echo = outcome === 'modified' || outcome === 'released' ? state.echo() : undefined;
      settleFinally(delivery, echo ?? acceptedOutcome());
    } catch (e) {
      if (!(e instanceof LockLostError)) throw e;
      settleFinally(delivery, rejectedOutcome({ condition: e.condition, description: e.message }));
    }
  }
}

function refuse(link: rhea.Sender | rhea.Receiver, condition: string, description: string): void {
  link.close({ condition, description });
}

/** How long a refused session receiver waits for the client to close it before the refusal goes anyway. */
const SESSION_REFUSAL_MS = 5000;

/**
 * Refuses a session receiver in answer to the client's own detach: the attach goes back without a
 * session, the SDK closes the link on seeing none, and reports the error that answers that close.
 * A detach sent right after the attach reached the user only when TCP delivered it after the SDK
 * had looked for the session (Nagle's algorithm usually held it back until the attach's ACK): when
 * both arrived in one read (with TCP_NODELAY on the socket, or when the attach itself waited for an
 * ACK), the SDK reported "may be locked by another receiver" instead. A client that keeps the link
 * open gets the refusal after SESSION_REFUSAL_MS.
 */
function refuseWhenClosed(link: rhea.Sender, condition: string, description: string): void {
  const timer = setTimeout(() => {
    if (link.connection.is_open()) refuse(link, condition, description);
  }, SESSION_REFUSAL_MS);
  timer.unref();
  // A listener on the link keeps the event from the container's handler (no consumer to detach here),
  // and closing within it answers the client's detach with ours (rhea's own close would carry no error).
  link.once('sender_close', () => {
    clearTimeout(timer);
    refuse(link, condition, description);
  });
}

function enqueue(entity: SendableEntity, m: AmqpMessage): void {
  // The broker assigns a message id when the sender set none (the SDK's lock renewer relies on it).
  if (m.message_id === undefined || m.message_id === null) m.message_id = randomUUID().replace(/-/g, '');
  entity.send(m, encodeMessage(m).length, scheduledEnqueueTime(m));
}
