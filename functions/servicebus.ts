import type { InvocationContext } from '@azure/functions';
import { settle, type DeadLetter, type HandlerOutcome } from '../src/bus/settlement';
import { hostedInvocation, runtime, type Runtime } from '../src/runtime';

/**
 * A Service Bus trigger's handler: the call into src/ wrapped in the one settlement
 * (src/bus/settlement.ts). Message actions come from the host when it has them (the local host);
 * in Azure the Functions host settles by the result. Returns the outcome (the Functions host
 * ignores a Service Bus function's return value; the local host reports it to its observers).
 */
export function settledHandler<O extends HandlerOutcome>(lane: string, handle: (message: unknown, rt: Runtime, context: InvocationContext) => Promise<O>) {
  return async (message: unknown, context: InvocationContext): Promise<O> => {
    const rt = await runtime(context);
    const meta = context.triggerMetadata ?? {};
    const delivery = {
      lane,
      messageId: String(meta.messageId ?? context.invocationId),
      sequenceNumber: meta.sequenceNumber === undefined ? undefined : String(meta.sequenceNumber),
      deliveryCount: Number(meta.deliveryCount ?? 1),
    };
    return settle(delivery, () => handle(message, rt, context), { state: rt.state, log: context, actions: hostedInvocation(context)?.messageActions });
  };
}

/**
 * What a dead-letter trigger knows of why a message was dead-lettered. Service Bus keeps the
 * reason and description as application properties of the dead letter; the trigger metadata
 * carries them there.
 */
export function deadLetterOf(context: InvocationContext): DeadLetter {
  const meta = context.triggerMetadata ?? {};
  const props = (meta.applicationProperties ?? {}) as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  return {
    messageId: text(meta.messageId),
    reason: text(props.DeadLetterReason) ?? text(meta.deadLetterReason),
    description: text(props.DeadLetterErrorDescription) ?? text(meta.deadLetterErrorDescription),
    deliveryCount: meta.deliveryCount === undefined ? undefined : Number(meta.deliveryCount),
  };
}
