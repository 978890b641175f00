import { app, type HttpRequest, type InvocationContext } from '@azure/functions';
import { handleReplicaAdmin, handleRouteRequest } from '../src/replicas/admin-api';
import { replicaAdminDeps, runtime } from '../src/runtime';
import { headersOf } from './http';

// Replica management (`georeg replication create|list|show|update|delete|resync`).
app.http('replications', {
  route: 'replications/{name?}/{op?}',
  methods: ['GET', 'POST', 'PATCH', 'DELETE'],
  authLevel: 'function',
  handler: async (request: HttpRequest, context: InvocationContext) =>
    handleReplicaAdmin(
      { method: request.method, name: request.params.name, op: request.params.op, query: Object.fromEntries(request.query), body: await request.text(), headers: headersOf(request) },
      replicaAdminDeps(await runtime(), context),
    ),
});

// Which regions can serve a pull of repository:tag now (enabled, and holding the image complete).
app.http('regionRoute', {
  route: 'regions/route',
  methods: ['GET'],
  authLevel: 'function',
  handler: async (request: HttpRequest, context: InvocationContext) =>
    handleRouteRequest({ query: Object.fromEntries(request.query), headers: headersOf(request) }, replicaAdminDeps(await runtime(), context)),
});
