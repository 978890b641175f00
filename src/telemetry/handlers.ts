import type { JobOutcome } from '../replication/replicate';
import type { DeliveryOutcome } from '../webhooks/deliver';
import { recordMetric } from './metrics';
import { processSpan, type ReceivedMessageInfo } from './trace';

/**
 * The consumer side of a trigger, as one call for the Functions registrations and the local host:
 * a `process` span continuing the message's trace, and the settled outcome counted.
 */

/** The region (the subscription the job came from) is the message's `region` property, else REGION_NAME. */
export async function tracedJob<T extends JobOutcome>(topic: string, message: ReceivedMessageInfo, run: () => Promise<T>): Promise<T> {
  const region = String(message.applicationProperties?.region ?? process.env.REGION_NAME ?? '');
  try {
    const outcome = await processSpan({ entity: topic, subscription: region }, message, async (span) => {
      const out = await run();
      span.setAttribute('georeg.outcome', out.outcome);
      if (out.outcome === 'dead-letter') span.setAttribute('georeg.dead_letter.reason', out.reason);
      return out;
    });
    recordMetric.job(region, outcome.outcome);
    return outcome;
  } catch (e) {
    recordMetric.job(region, 'abandoned');
    throw e;
  }
}

export async function tracedDelivery<T extends DeliveryOutcome>(queue: string, message: ReceivedMessageInfo, run: () => Promise<T>): Promise<T> {
  const props = message.applicationProperties ?? {};
  const region = String(props.region ?? '');
  const webhook = String(props.webhook ?? '');
  try {
    const outcome = await processSpan({ entity: queue }, message, async (span) => {
      span.setAttributes({ 'georeg.webhook': webhook, 'georeg.region': region });
      const out = await run();
      span.setAttribute('georeg.outcome', out.outcome);
      return out;
    });
    recordMetric.delivery(region, webhook, outcome.outcome);
    return outcome;
  } catch (e) {
    recordMetric.delivery(region, webhook, 'abandoned');
    throw e;
  }
}
