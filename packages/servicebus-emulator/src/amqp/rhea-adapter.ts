import type { Socket } from 'node:net';
import * as rhea from 'rhea';
import type { AmqpMessage } from '../messages';

/**
 * Every place the emulator reaches past rhea's published typings, in one file. rhea is built as a
 * client library: serving a socket we accepted ourselves, echoing a client's settle modes, reading
 * a peer's link credit or a delivery's message format, and settling a delivery for good are all
 * done through fields its typings leave out. Each cast below says which field and why. These are
 * rhea internals, not its API: package.json pins rhea to one exact version, and a rhea upgrade
 * is checked against this file (and the package's tests) first.
 */

/** An AMQP 1.0 message's custom format for a batch: one message whose data sections each hold an encoded message. */
const BATCH_FORMAT = 0x80013700;

/** A container that serves accepted sockets, settles explicitly, and takes SASL ANONYMOUS or PLAIN (auth is on `$cbs`). */
export function createServerContainer(id: string): rhea.Container {
  // `treat_modified_as_released` is a container option rhea reads but its ContainerOptions type lacks.
  const container = rhea.create_container({ id, autoaccept: false, autosettle: false, treat_modified_as_released: false } as rhea.ContainerOptions);
  // Cast 1: `sasl_server_mechanisms` is typed `any`; these are the two calls rhea's server examples make.
  const sasl = (container as unknown as { sasl_server_mechanisms: { enable_anonymous(): void; enable_plain(check: () => boolean): void } }).sasl_server_mechanisms;
  sasl.enable_anonymous();
  sasl.enable_plain(() => true);
  return container;
}

/** Serves AMQP on a socket we accepted (the shared listener hands it over after sniffing the protocol header). */
export function acceptSocket(connection: rhea.Connection, socket: Socket): void {
  // Cast 2: Connection.accept(socket) is what rhea's own container.listen() calls; it is untyped.
  (connection as unknown as { accept(s: Socket): void }).accept(socket);
}

/** Drops a connection's socket at once (emulator shutdown: a client that does not answer the close must not hold it open). */
export function destroySocket(connection: rhea.Connection): void {
  // Cast 3: the connection's socket is internal state.
  (connection as unknown as { socket?: { destroy(): void } }).socket?.destroy();
}

/** What the client asked for when it attached a link. */
export interface RemoteAttach {
  source?: { address?: string; filter?: Record<string, unknown> };
  target?: { address?: string };
  snd_settle_mode?: number;
  rcv_settle_mode?: number;
}

/** rhea's per-link state beyond its typings. */
interface LinkInternals {
  remote: { attach: RemoteAttach };
  local: { attach: Record<string, unknown> };
  credit: number;
}

// Cast 4: the remote and local attach frames and the credit counter are link state rhea keeps but does not type.
const internals = (link: rhea.Sender | rhea.Receiver) => link as unknown as LinkInternals;

export function remoteAttach(link: rhea.Sender | rhea.Receiver): RemoteAttach {
  return internals(link).remote.attach;
}

/** Answers the attach with the client's own settle modes (receive-and-delete is snd_settle_mode 1). */
export function echoSettleModes(link: rhea.Sender | rhea.Receiver): void {
  const l = internals(link);
  l.local.attach.snd_settle_mode = l.remote.attach.snd_settle_mode;
  l.local.attach.rcv_settle_mode = l.remote.attach.rcv_settle_mode;
}

/** Announces the entity's size limit on the attach, as Azure does (the SDK sizes its batches by it). */
export function setMaxMessageSize(link: rhea.Receiver, bytes: number): void {
  internals(link).local.attach.max_message_size = bytes;
}

/** The credit the client has given this link, as rhea counts it. */
export function linkCredit(link: rhea.Sender): number {
  return internals(link).credit;
}

/** The messages one transfer carries: one, or each message of a batch. */
export function incomingMessages(ctx: rhea.EventContext): AmqpMessage[] {
  // Cast 5: `format` is the transfer's message format; rhea decodes only the standard one and hands
  // a batch over as the encoded envelope (a Buffer where the message would be).
  if ((ctx.delivery as unknown as { format?: number }).format !== BATCH_FORMAT) return [asAmqp(ctx.message)];
  const batch = decodeMessage(ctx.message as unknown as Buffer);
  const body = batch.body as { content?: Buffer | Buffer[]; multiple?: boolean } | undefined;
  const parts = body?.multiple ? (body.content as Buffer[]) : body?.content ? [body.content as Buffer] : [];
  return parts.map(decodeMessage);
}

export function decodeMessage(encoded: Buffer): AmqpMessage {
  return asAmqp(rhea.message.decode(encoded));
}

export function encodeMessage(message: AmqpMessage): Buffer {
  return rhea.message.encode(message);
}

/** Our message shape as rhea's (the same fields; rhea's type also lists methods its decoder adds). */
export function asRhea(message: AmqpMessage): rhea.Message {
  return message as rhea.Message;
}

/** rhea types a received message two ways (connection.d.ts and message.d.ts) with methods its decoder adds; the fields are ours. */
function asAmqp(message: rhea.Message | ReturnType<typeof rhea.message.decode> | undefined): AmqpMessage {
  // Cast 6: neither of rhea's Message types is assignable to the plain field record it decodes to.
  return message as unknown as AmqpMessage;
}

/** What the client's disposition of one of our deliveries says. */
export interface RemoteOutcome {
  /** rhea raises `released` for a `modified` outcome too; this is the outcome the client sent. */
  composite?: string;
  error?: { condition?: string; info?: Record<string, unknown> };
  undeliverableHere?: boolean;
  annotations?: Record<string, unknown>;
  /** The outcome encoded back, to echo in our settlement. */
  echo(): unknown;
}

export function remoteOutcome(delivery: rhea.Delivery): RemoteOutcome {
  // Cast 7: `remote_state` is the decoded outcome of the client's disposition; untyped in rhea.
  const state = (delivery as unknown as { remote_state?: { error?: RemoteOutcome['error']; undeliverable_here?: boolean; message_annotations?: Record<string, unknown>; described?: () => unknown; constructor: { composite_type?: string } } }).remote_state;
  return {
    composite: state?.constructor.composite_type,
    error: state?.error,
    undeliverableHere: state?.undeliverable_here,
    annotations: state?.message_annotations,
    echo: () => state?.described?.(),
  };
}

// Cast 8: the outcome constructors exist on rhea.message at run time but are not in its typings.
const outcomes = rhea.message as unknown as { accepted(): { described(): unknown }; rejected(f: { error: unknown }): { described(): unknown } };
export const acceptedOutcome = (): unknown => outcomes.accepted().described();
export const rejectedOutcome = (error: { condition: string; description: string }): unknown => outcomes.rejected({ error }).described();

/**
 * Settles a delivery for good. The SDK receives in settle mode "second": its disposition is
 * unsettled and it settles once we have, without telling us. rhea keeps every delivery until both
 * sides are settled, in a session buffer of 2,048, so without this the 2,049th delivery on a
 * receiver never goes out. As Azure does, the sender forgets a delivery once it has settled it.
 */
export function settleFinally(delivery: rhea.Delivery, state: unknown): void {
  delivery.update(true, state as Parameters<rhea.Delivery['update']>[1]);
  // Cast 9: `remote_settled` is what rhea checks before it frees the delivery's slot.
  (delivery as unknown as { remote_settled: boolean }).remote_settled = true;
}
