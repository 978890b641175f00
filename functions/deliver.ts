import { app } from '@azure/functions';
import { WEBHOOK_LANE } from '../src/bus/settlement';
import { webhookDeliverDeps } from '../src/runtime';
import { handleWebhookDelivery } from '../src/webhooks/deliver';
import { tracedDelivery } from '../src/telemetry/handlers';
import { settledHandler } from './servicebus';

// One attempt per message; the handler schedules the next attempt itself, so a 'rescheduled'
// outcome completes this message like a delivered one.
app.serviceBusQueue('deliver', {
  connection: 'ServiceBusConnection',
  queueName: '%GEOREG_WEBHOOK_QUEUE%',
  handler: settledHandler(WEBHOOK_LANE, (message, rt, context) =>
    tracedDelivery(rt.settings.serviceBus.webhookQueue, context.triggerMetadata ?? {}, () => handleWebhookDelivery(message, webhookDeliverDeps(rt, context))),
  ),
});
