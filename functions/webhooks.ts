import { app, type HttpRequest, type InvocationContext } from '@azure/functions';
import { runtime, webhookAdminDeps } from '../src/runtime';
import { handleWebhookAdmin } from '../src/webhooks/admin-api';
import { headersOf } from './http';

// The webhook admin API (`georeg webhook create|list|show|update|delete|ping|list-events`).
app.http('webhooks', {
  route: 'webhooks/{name?}/{op?}',
  methods: ['GET', 'POST', 'PATCH', 'DELETE'],
  authLevel: 'function',
  handler: async (request: HttpRequest, context: InvocationContext) =>
    handleWebhookAdmin(
      { method: request.method, name: request.params.name, op: request.params.op, query: Object.fromEntries(request.query), body: await request.text(), headers: headersOf(request) },
      webhookAdminDeps(await runtime(), context),
    ),
});
