import { app, type HttpRequest, type InvocationContext } from '@azure/functions';
import { handlePushNotification } from '../src/replication/push';
import { pushDeps, runtime } from '../src/runtime';
import { headersOf } from './http';

// The registry's notification endpoint (Distribution `notifications.endpoints[].url`).
app.http('push', {
  route: 'push',
  methods: ['POST'],
  authLevel: 'anonymous', // authenticated by GEOREG_PUSH_SECRET, as Distribution sends it
  handler: async (request: HttpRequest, context: InvocationContext) => {
    return handlePushNotification({ headers: headersOf(request), body: await request.text() }, pushDeps(await runtime(), context));
  },
});
