import { handlePushNotification } from '../src/replication/push';
import { pushDeps } from '../src/runtime';
import { serverSpan } from '../src/telemetry/trace';
import { httpFunction } from './http';

// The registry's notification endpoint (Distribution `notifications.endpoints[].url`).
httpFunction('push', {
  route: 'push',
  methods: ['POST'],
  authLevel: 'anonymous', // authenticated by GEOREG_PUSH_SECRET, as Distribution sends it
  handle: (request, rt, context) => serverSpan('POST /api/push', request.headers, async () => handlePushNotification({ headers: request.headers, body: await request.body() }, pushDeps(rt, context))),
});
