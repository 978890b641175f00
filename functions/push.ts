import { handlePushNotification } from '../src/replication/push';
import { pushDeps } from '../src/runtime';
import { httpFunction } from './http';

// The registry's notification endpoint (Distribution `notifications.endpoints[].url`).
httpFunction('push', {
  route: 'push',
  methods: ['POST'],
  authLevel: 'anonymous', // authenticated by GEOREG_PUSH_SECRET, as Distribution sends it
  handle: async (request, rt, context) => handlePushNotification({ headers: request.headers, body: await request.body() }, pushDeps(rt, context)),
});
