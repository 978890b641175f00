import { app } from '@azure/functions';
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
  handler: settledHandler('replication-dead-letters', (message, rt, context) => handleReplicationDeadLetter(message, deadLetterOf(context), { state: rt.state, registry: rt.registry, log: context })),
});

app.serviceBusQueue('deliverDeadLetters', {
  connection: 'ServiceBusConnection',
  queueName: '%GEOREG_WEBHOOK_QUEUE%/$DeadLetterQueue',
  handler: settledHandler('webhook-dead-letters', (message, rt, context) => handleDeliveryDeadLetter(message, deadLetterOf(context), { state: rt.state, log: context })),
});
