import { app } from '@azure/functions';
import { REPLICATION_LANE } from '../src/bus/settlement';
import { handleReplicationJob } from '../src/replication/replicate';
import { replicateDeps } from '../src/runtime';
import { tracedJob } from '../src/telemetry/handlers';
import { settledHandler } from './servicebus';

// One Function App per region, each with REGION_NAME set: the binding expression picks that
// region's subscription on the replication topic. A job that cannot succeed is dead-lettered with
// its reason by the shared settlement (functions/servicebus.ts), without repeating its work.
app.serviceBusTopic('replicate', {
  connection: 'ServiceBusConnection',
  topicName: '%GEOREG_REPLICATION_TOPIC%',
  subscriptionName: '%REGION_NAME%',
  handler: settledHandler(REPLICATION_LANE, (message, rt, context) =>
    tracedJob(rt.settings.serviceBus.replicationTopic, context.triggerMetadata ?? {}, () => handleReplicationJob(message, replicateDeps(rt, context))),
  ),
});
