import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookDeliveryMessage } from '../../src/bus/messages';
import type { WebhookDefinition } from '../../src/webhooks/definition';
import { verifySignature } from '../../src/webhooks/signature';
import { httpSink } from '../../src/webhooks/sink';

// The HTTP sink against a real server on 127.0.0.1: verdicts, headers, the connect-time address check.
let server: Server;
let port: number;
const seen: Array<{ headers: Record<string, unknown>; body: string }> = [];
let answer: { status: number; body: string; delayMs?: number } = { status: 200, body: 'ok' };

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(answer.status);
        res.end(answer.body);
      }, answer.delayMs ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const webhook = (uri: string): WebhookDefinition => ({ version: 1, name: 'sinktest', region: 'eastus', serviceUri: uri, actions: ['push'], scope: '', customHeaders: { 'X-Token': 'tok-123' }, status: 'enabled', secret: 'sink-test-secret-123456', createdAt: '2025-01-01T00:00:00.000Z', updatedAt: '2025-01-01T00:00:00.000Z' });
const message: WebhookDeliveryMessage = { version: 1, deliveryId: 'p:eastus:sinktest', webhook: 'sinktest', region: 'eastus', attempt: 2, firstQueuedAt: '2025-01-01T00:00:00.000Z', event: { id: 'e1', timestamp: '2025-01-01T00:00:00.000Z', action: 'ping', region: 'eastus' } };

describe('the webhook HTTP sink', () => {
  it('POSTs the signed event with georeg and custom headers; 2xx is delivered', async () => {
    answer = { status: 202, body: 'accepted' };
    const r = await httpSink({ timeoutMs: 2000, allowPrivateTargets: true })({ message, webhook: webhook(`http://127.0.0.1:${port}/x`) });
    expect(r).toMatchObject({ verdict: 'delivered', statusCode: 202, response: 'accepted' });
    const last = seen.at(-1)!;
    expect(JSON.parse(last.body)).toEqual(message.event);
    expect(last.headers).toMatchObject({ 'content-type': 'application/json', 'x-token': 'tok-123', 'x-georeg-attempt': '2', 'x-georeg-event-id': 'e1', 'x-georeg-webhook': 'sinktest', 'x-georeg-region': 'eastus' });
    expect(verifySignature({ secret: 'sink-test-secret-123456', body: last.body, timestamp: last.headers['x-georeg-timestamp'] as string, signature: last.headers['x-georeg-signature'] as string }).ok).toBe(true);
    // What the log keeps: custom header values and the signature masked, the timestamp as sent.
    expect(r.request.headers['X-Token']).toBe('***');
    expect(r.request.headers['X-Georeg-Signature']).toBe('v1=***');
    expect(r.request.headers['X-Georeg-Timestamp']).toBe(last.headers['x-georeg-timestamp']);
    expect(JSON.stringify(r.request)).not.toContain((last.headers['x-georeg-signature'] as string).slice(3));
  });

  it('classifies answers: 5xx, 429, 408 retry; other 4xx and 3xx stop; only the first bytes are kept', async () => {
    const sink = httpSink({ timeoutMs: 2000, allowPrivateTargets: true, responseBytes: 16 });
    const verdicts: Array<[number, string]> = [];
    for (const status of [500, 503, 429, 408, 400, 404, 301]) {
      answer = { status, body: 'x'.repeat(100) };
      const r = await sink({ message, webhook: webhook(`http://127.0.0.1:${port}/x`) });
      verdicts.push([status, r.verdict]);
      expect(r.response).toBe('x'.repeat(16));
    }
    expect(verdicts).toEqual([[500, 'retryable'], [503, 'retryable'], [429, 'retryable'], [408, 'retryable'], [400, 'permanent'], [404, 'permanent'], [301, 'permanent']]);
  });

  it('a header Node will not send (stored before headers were checked) is a permanent failure, and nothing is sent', async () => {
    const before = seen.length;
    const r = await httpSink({ timeoutMs: 2000, allowPrivateTargets: true })({ message, webhook: { ...webhook(`http://127.0.0.1:${port}/x`), customHeaders: { 'X-Token': 'a\x01b' } } });
    expect(r).toMatchObject({ verdict: 'permanent', refusal: 'InvalidRequest', error: expect.stringMatching(/ERR_INVALID_CHAR.*X-Token.*georeg webhook update/) });
    expect(seen.length).toBe(before);
  });

  it('a timeout or a refused connection is retryable', async () => {
    answer = { status: 200, body: 'late', delayMs: 1500 };
    const slow = await httpSink({ timeoutMs: 200, allowPrivateTargets: true })({ message, webhook: webhook(`http://127.0.0.1:${port}/x`) });
    expect(slow).toMatchObject({ verdict: 'retryable', error: expect.stringContaining('200 ms') });
    const closed = await httpSink({ timeoutMs: 2000, allowPrivateTargets: true })({ message, webhook: webhook('http://127.0.0.1:1/x') });
    expect(closed).toMatchObject({ verdict: 'retryable', error: expect.stringContaining('ECONNREFUSED') });
  });

  it('checks the address it connects to: a name resolving to loopback is refused unless private targets are allowed', async () => {
    answer = { status: 200, body: 'ok' };
    const before = seen.length;
    const refused = await httpSink({ timeoutMs: 2000, allowPrivateTargets: false })({ message, webhook: webhook(`http://localhost:${port}/x`) });
    expect(refused).toMatchObject({ verdict: 'permanent', error: expect.stringContaining('GEOREG_WEBHOOK_ALLOW_PRIVATE') });
    const literal = await httpSink({ timeoutMs: 2000, allowPrivateTargets: false })({ message, webhook: webhook(`http://127.0.0.1:${port}/x`) });
    expect(literal.verdict).toBe('permanent');
    expect(seen.length).toBe(before);
    const allowed = await httpSink({ timeoutMs: 2000, allowPrivateTargets: true })({ message, webhook: webhook(`http://localhost:${port}/x`) });
    expect(allowed.verdict).toBe('delivered');
  });
});
