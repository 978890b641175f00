import { webhookAdminDeps } from '../src/runtime';
import { handleWebhookAdmin } from '../src/webhooks/admin-api';
import { httpFunction } from './http';

// The webhook admin API (`georeg webhook create|list|show|update|delete|ping|list-events`).
httpFunction('webhooks', {
  route: 'webhooks/{name?}/{op?}',
  methods: ['GET', 'POST', 'PATCH', 'DELETE'],
  authLevel: 'function',
  handle: async (request, rt, context) =>
    handleWebhookAdmin({ method: request.method, name: request.params.name, op: request.params.op, query: request.query, body: await request.body(), headers: request.headers }, webhookAdminDeps(rt, context)),
});
