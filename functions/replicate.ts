import { app, type InvocationContext } from '@azure/functions';
import { handleReplicationJob } from '../src/replication/replicate';
import { replicateDeps, runtime } from '../src/runtime';

// One Function App per region, each with REGION_NAME set: the binding expression picks that
// region's subscription on the replication topic.
app.serviceBusTopic('replicate', {
  connection: 'ServiceBusConnection',
  topicName: '%GEOREG_REPLICATION_TOPIC%',
  subscriptionName: '%REGION_NAME%',
  handler: async (message: unknown, context: InvocationContext) => {
    const result = await handleReplicationJob(message, replicateDeps(await runtime(), context));
    // 'rescheduled': the retry is already on the bus, so this message completes.
    if (result.outcome === 'dead-letter') {
      // Node functions cannot dead-letter explicitly (no message actions in the v4 model without
      // the preview SDK binding): fail the invocation; the region status already holds the reason,
      // and Service Bus dead-letters after MaxDeliveryCount attempts.
      throw new Error(`${result.reason}: ${result.description}`);
    }
  },
});
