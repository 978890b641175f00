import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { ServiceBusMessage, ServiceBusSender } from '@azure/service-bus';

/**
 * georeg's spans, with OpenTelemetry's messaging conventions. One trace runs from the registry's
 * notification through every region's job to each webhook POST: the trace context travels in each
 * message's application properties (`traceparent`, and `Diagnostic-Id` as the Azure SDKs read it)
 * and in the webhook request's `traceparent` header. With no tracer provider registered every call
 * here is the API's no-op.
 */

const tracer = () => trace.getTracer('georeg');

/** Runs `fn` in a child span of the active one; the span ends with fn and records its error. */
export async function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>, options: { kind?: SpanKind; parent?: Context } = {}): Promise<T> {
  return tracer().startActiveSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes }, options.parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.recordException(e as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
      throw e;
    } finally {
      span.end();
    }
  });
}

/** An HTTP request handled (the push notification, an admin call), continuing a caller's `traceparent` if it sent one. */
export function serverSpan<T>(name: string, headers: Record<string, string | undefined>, fn: (span: Span) => Promise<T>): Promise<T> {
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  return inSpan(name, { 'http.request.method': name.split(' ')[0] }, fn, { kind: SpanKind.SERVER, parent });
}

/** An outgoing HTTP call (a webhook POST). */
export function clientSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return inSpan(name, attributes, fn, { kind: SpanKind.CLIENT });
}

/** The headers that carry the active trace to an HTTP peer (the webhook subscriber). */
export function traceHeaders(): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}

type Sendable = Parameters<ServiceBusSender['sendMessages']>[0];

/**
 * The sender, with a `send` producer span around each send or schedule and the span's context in
 * every message's application properties (for a batch: the context active when each message was added).
 */
export function tracedSender(sender: ServiceBusSender): ServiceBusSender {
  const attributes = (messages: ServiceBusMessage[], operation: string): Attributes => ({
    'messaging.system': 'servicebus',
    'messaging.destination.name': sender.entityPath,
    'messaging.operation.type': operation,
    'messaging.operation.name': operation,
    ...(messages.length === 1 ? { 'messaging.message.id': String(messages[0].messageId ?? ''), 'messaging.message.conversation_id': String(messages[0].correlationId ?? '') } : { 'messaging.batch.message_count': messages.length }),
  });
  const withContext = (messages: ServiceBusMessage[]) =>
    messages.map((m) => {
      const carrier: Record<string, string> = {};
      propagation.inject(context.active(), carrier);
      if (!carrier.traceparent) return m;
      return { ...m, applicationProperties: { ...m.applicationProperties, traceparent: carrier.traceparent, 'Diagnostic-Id': carrier.traceparent } };
    });
  return new Proxy(sender, {
    get(target, prop, receiver) {
      if (prop === 'sendMessages') {
        return (messages: Sendable, options?: Parameters<ServiceBusSender['sendMessages']>[1]) => {
          if (!Array.isArray(messages) && !isMessage(messages)) {
            const attrs = { 'messaging.system': 'servicebus', 'messaging.destination.name': target.entityPath, 'messaging.operation.type': 'send', 'messaging.batch.message_count': 'count' in messages ? messages.count : 1 };
            return inSpan(`send ${target.entityPath}`, attrs, () => target.sendMessages(messages, options), { kind: SpanKind.PRODUCER });
          }
          const list = Array.isArray(messages) ? (messages as ServiceBusMessage[]) : [messages as ServiceBusMessage];
          return inSpan(`send ${target.entityPath}`, attributes(list, 'send'), () => target.sendMessages(withContext(list), options), { kind: SpanKind.PRODUCER });
        };
      }
      if (prop === 'createMessageBatch') {
        // A batch is filled message by message: each carries the context active when it is added.
        return async (options?: Parameters<ServiceBusSender['createMessageBatch']>[0]) => {
          const batch = await target.createMessageBatch(options);
          return new Proxy(batch, {
            get(b, p, r) {
              if (p === 'tryAddMessage') return (m: ServiceBusMessage, o?: Parameters<typeof b.tryAddMessage>[1]) => b.tryAddMessage(withContext([m])[0], o);
              const v = Reflect.get(b, p, r);
              return typeof v === 'function' ? v.bind(b) : v;
            },
          });
        };
      }
      if (prop === 'scheduleMessages') {
        return (messages: ServiceBusMessage | ServiceBusMessage[], at: Date, options?: Parameters<ServiceBusSender['scheduleMessages']>[2]) => {
          const list = Array.isArray(messages) ? messages : [messages];
          return inSpan(`schedule ${target.entityPath}`, attributes(list, 'send'), () => target.scheduleMessages(withContext(list), at, options), { kind: SpanKind.PRODUCER });
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

function isMessage(m: unknown): m is ServiceBusMessage {
  return typeof m === 'object' && m !== null && 'body' in m;
}

/** What a received message tells a consumer span (the SDK's message, or the Functions trigger metadata). */
export interface ReceivedMessageInfo {
  messageId?: unknown;
  correlationId?: unknown;
  deliveryCount?: number;
  applicationProperties?: Record<string, unknown>;
}

/** A `process` consumer span for one received message, continuing the trace its sender put in it. */
export function processSpan<T>(destination: { entity: string; subscription?: string }, message: ReceivedMessageInfo, fn: (span: Span) => Promise<T>): Promise<T> {
  const props = message.applicationProperties ?? {};
  const traceparent = props.traceparent ?? props['Diagnostic-Id'];
  const parent = typeof traceparent === 'string' ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
  const attributes: Attributes = {
    'messaging.system': 'servicebus',
    'messaging.destination.name': destination.entity,
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.message.id': String(message.messageId ?? ''),
    'messaging.message.conversation_id': String(message.correlationId ?? ''),
    ...(destination.subscription ? { 'messaging.destination.subscription.name': destination.subscription } : {}),
    ...(message.deliveryCount !== undefined ? { 'messaging.servicebus.message.delivery_count': message.deliveryCount } : {}),
  };
  const name = `process ${destination.entity}${destination.subscription ? `/${destination.subscription}` : ''}`;
  return inSpan(name, attributes, fn, { kind: SpanKind.CONSUMER, parent });
}
