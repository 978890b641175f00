import { app, type HttpRequest, type InvocationContext } from '@azure/functions';
import { handlePushNotification } from '../src/replication/push';
import { pushDeps, runtime } from '../src/runtime';

// The registry's notification endpoint (Distribution `notifications.endpoints[].url`).
app.http('push', {
  route: 'push',
  methods: ['POST'],
  authLevel: 'anonymous', // authenticated by GEOREG_PUSH_SECRET, as Distribution sends it
  handler: async (request: HttpRequest, context: InvocationContext) => {
    const headers = Object.fromEntries([...request.headers].map(([k, v]) => [k.toLowerCase(), v]));
    return handlePushNotification({ headers, body: await request.text() }, pushDeps(await runtime(), context));
  },
});
