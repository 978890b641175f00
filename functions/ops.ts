import { handleDashboard } from '../src/ops/dashboard';
import { handleDeadLetterAdmin } from '../src/ops/dlq-api';
import { handleMetrics } from '../src/ops/metrics-api';
import { handleOverview } from '../src/ops/overview';
import { dlqDeps, overviewDeps, replicaAdminDeps } from '../src/runtime';
import { httpFunction } from './http';

// Dead letters per region and for the webhook queue: list, redrive, discard (`georeg dlq`).
httpFunction('deadLetters', {
  route: 'deadletters/{op?}',
  methods: ['GET', 'POST'],
  authLevel: 'function',
  handle: async (request, rt, context) =>
    handleDeadLetterAdmin({ method: request.method, op: request.params.op, query: request.query, body: await request.body(), headers: request.headers }, dlqDeps(rt, context)),
});

// The dashboard page and its two static files; anonymous because they hold no data (see src/ops/dashboard.ts).
httpFunction('dashboard', {
  route: 'dashboard/{file?}',
  methods: ['GET'],
  authLevel: 'anonymous',
  handle: async (request) => handleDashboard(request.params.file),
});

// Everything the dashboard shows, as JSON (polled every few seconds).
httpFunction('overview', {
  route: 'overview',
  methods: ['GET'],
  authLevel: 'function',
  handle: async (request, rt, context) => handleOverview({ headers: request.headers }, overviewDeps(rt, context)),
});

// georeg's metrics as Prometheus text, for scrapers (behind the function key and the admin secret).
httpFunction('metrics', {
  route: 'metrics',
  methods: ['GET'],
  authLevel: 'function',
  handle: async (request, rt, context) => handleMetrics({ headers: request.headers }, replicaAdminDeps(rt, context)),
});
