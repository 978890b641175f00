import { handleStatusRequest } from '../src/replication/status-api';
import { httpFunction } from './http';

// Push status (`georeg status`): behind the function key in Azure, and GEOREG_ADMIN_SECRET when set.
httpFunction('pushStatus', {
  route: 'pushes/{id?}',
  methods: ['GET'],
  authLevel: 'function',
  handle: async (request, rt) =>
    handleStatusRequest({ id: request.params.id, repository: request.query.repository, tag: request.query.tag, problems: request.query.problems !== undefined, limit: request.query.limit }, rt.state),
});
