import { handleReplicaAdmin, handleRouteRequest } from '../src/replicas/admin-api';
import { replicaAdminDeps } from '../src/runtime';
import { httpFunction } from './http';

// Replica management (`georeg replication create|list|show|update|delete|resync`).
httpFunction('replications', {
  route: 'replications/{name?}/{op?}',
  methods: ['GET', 'POST', 'PATCH', 'DELETE'],
  authLevel: 'function',
  handle: async (request, rt, context) =>
    handleReplicaAdmin({ method: request.method, name: request.params.name, op: request.params.op, query: request.query, body: await request.body(), headers: request.headers }, replicaAdminDeps(rt, context)),
});

// Which regions can serve a pull of repository:tag now (enabled, and holding the image complete).
httpFunction('regionRoute', {
  route: 'regions/route',
  methods: ['GET'],
  authLevel: 'function',
  handle: async (request, rt, context) => handleRouteRequest({ query: request.query, headers: request.headers }, replicaAdminDeps(rt, context)),
});
