import { app } from '@azure/functions';
import { backfillDeps } from '../src/runtime';
import { BACKFILL_LANE, handleBackfillDeadLetter, handleBackfillPage } from '../src/replicas/backfill';
import { deadLetterOf, settledHandler } from './servicebus';

// A replica's back-fill, one page of home's tags per message: plans the page's jobs, sends them
// and the next page. Any region's Function App may take a page (as the push endpoint, it reads
// home and asks the target region what it holds).
app.serviceBusQueue('backfill', {
  connection: 'ServiceBusConnection',
  queueName: '%GEOREG_BACKFILL_QUEUE%',
  handler: settledHandler(BACKFILL_LANE, (message, rt, context) => handleBackfillPage(message, backfillDeps(rt, context))),
});

// A page that cannot be planned ends the run Failed (once its planned jobs finish), naming the page.
app.serviceBusQueue('backfillDeadLetters', {
  connection: 'ServiceBusConnection',
  queueName: '%GEOREG_BACKFILL_QUEUE%/$DeadLetterQueue',
  handler: settledHandler('backfill-dead-letters', (message, rt, context) => handleBackfillDeadLetter(message, deadLetterOf(context), { registry: rt.registry, state: rt.state, backfillSender: rt.backfillSender, log: context })),
});
