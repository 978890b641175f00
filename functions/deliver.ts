import { app, type InvocationContext } from '@azure/functions';
import { runtime, webhookDeliverDeps } from '../src/runtime';
import { handleWebhookDelivery } from '../src/webhooks/deliver';

// One attempt per message; the handler schedules the next attempt itself, so a 'rescheduled'
// outcome completes this message like a delivered one.
app.serviceBusQueue('deliver', {
  connection: 'ServiceBusConnection',
  queueName: '%GEOREG_WEBHOOK_QUEUE%',
  handler: async (message: unknown, context: InvocationContext) => {
    const result = await handleWebhookDelivery(message, webhookDeliverDeps(await runtime(), context));
    if (result.outcome === 'dead-letter') {
      // As in replicate: Node functions cannot dead-letter explicitly, so the invocation fails. The
      // delivery's record already says failed (with the reason, shown by list-events), so the
      // redeliveries send nothing and Service Bus dead-letters after MaxDeliveryCount.
      throw new Error(`${result.reason}: ${result.description}`);
    }
  },
});
