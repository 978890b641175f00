import { app, type InvocationContext, type Timer } from '@azure/functions';
import { reconcileAll } from '../src/replication/reconcile';
import { hostedInvocation, reconcileDeps, runtime } from '../src/runtime';

// Anti-entropy: compares each replica's tags with home's and sends jobs for what lost notifications
// left behind. In Azure each region's Function App (REGION_NAME) reconciles its own region; the
// local host runs it once for every region (a lease per region keeps runs from overlapping).
app.timer('reconcile', {
  schedule: '%GEOREG_RECONCILE_SCHEDULE%',
  handler: async (_timer: Timer, context: InvocationContext) => {
    const region = hostedInvocation(context) ? undefined : process.env.REGION_NAME || undefined;
    await reconcileAll(reconcileDeps(await runtime(context), context), { region });
  },
});
