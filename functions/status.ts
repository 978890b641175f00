import { app, type HttpRequest } from '@azure/functions';
import { handleStatusRequest } from '../src/replication/status-api';
import { runtime } from '../src/runtime';

app.http('pushStatus', {
  route: 'pushes/{id?}',
  methods: ['GET'],
  authLevel: 'function',
  handler: async (request: HttpRequest) =>
    handleStatusRequest(
      { id: request.params.id, repository: request.query.get('repository') ?? undefined, tag: request.query.get('tag') ?? undefined, problems: request.query.has('problems'), limit: request.query.get('limit') ?? undefined },
      (await runtime()).state,
    ),
});
