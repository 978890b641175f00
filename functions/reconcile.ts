import { app, type InvocationContext, type Timer } from '@azure/functions';
import { reconcileAll } from '../src/replication/reconcile';
import { reconcileDeps, runtime } from '../src/runtime';

// Anti-entropy: compares each replica's tags with home's and sends jobs for what lost notifications
// left behind. In Azure each region's Function App (REGION_NAME) reconciles its own region; the
// local host runs it once for every region.
app.timer('reconcile', {
  schedule: '%GEOREG_RECONCILE_SCHEDULE%',
  handler: async (_timer: Timer, context: InvocationContext) => {
    await reconcileAll(reconcileDeps(await runtime(), context), { region: process.env.REGION_NAME || undefined });
  },
});
