import { app } from '@azure/functions';
import { keepDeadLetter } from '../src/ops/dlq';
import { handleReplicationDeadLetter } from '../src/replication/dead-letters';
import { handleDeliveryDeadLetter } from '../src/webhooks/dead-letters';
import { deadLetterOf, settledHandler } from './servicebus';

// Dead letters are handled as they arrive, not when someone reads a replica: each region's
// subscription dead-letter queue (`<topic>/Subscriptions/<region>/$DeadLetterQueue`: the Service Bus
// extension builds the entity path from topic and subscription, so `<subscription>/$DeadLetterQueue`
// binds the sub-queue) and the webhook queue's. Each records the failure; neither sends anything.
app.serviceBusTopic('replicateDeadLetters', {
  connection: 'ServiceBusConnection',
  topicName: '%GEOREG_REPLICATION_TOPIC%',
  subscriptionName: '%REGION_NAME%/$DeadLetterQueue',
  handler: settledHandler('replication-dead-letters', async (message, rt, context) => {
    const letter = deadLetterOf(context);
    const recorded = await handleReplicationDeadLetter(message, letter, { state: rt.state, registry: rt.registry, log: context });
    // Kept after the failure is recorded, for `georeg dlq redrive` (the queue itself is drained here).
    await keepDeadLetter(rt.state, 'replication', message, letter, recorded);
    return recorded;
  }),
});

app.serviceBusQueue('deliverDeadLetters', {
  connection: 'ServiceBusConnection',
  queueName: '%GEOREG_WEBHOOK_QUEUE%/$DeadLetterQueue',
  handler: settledHandler('webhook-dead-letters', async (message, rt, context) => {
    const letter = deadLetterOf(context);
    const recorded = await handleDeliveryDeadLetter(message, letter, { state: rt.state, log: context });
    await keepDeadLetter(rt.state, 'webhooks', message, letter, recorded);
    return recorded;
  }),
});
