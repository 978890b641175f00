import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { assertHostAllowed, safeLookup, UnsafeTargetError } from '../common/address-safety';
import type { WebhookDeliveryMessage } from '../bus/messages';
import type { WebhookDefinition } from './definition';
import { SIGNATURE_HEADER, SIGNATURE_SCHEME, signatureHeaders } from './signature';
import { redactUri, webhookTargets } from './url-safety';
import { clientSpan, traceHeaders } from '../telemetry/trace';

/**
 * The HTTP sink: one signed POST of one event to one webhook, with a timeout, and a verdict on the
 * answer. It knows nothing of retries (the retrying wrapper in retry.ts decides what happens next),
 * follows no redirects (a redirect could lead past the target checks) and reads only the first
 * bytes of the answer.
 */

export interface Delivery {
  message: WebhookDeliveryMessage;
  webhook: WebhookDefinition;
}

export interface SentRequest {
  method: 'POST';
  /** Redacted for logs. */
  uri: string;
  /** As sent, with custom header values and the signature masked (the timestamp is kept). */
  headers: Record<string, string>;
  body: string;
}

export interface AttemptResult {
  /** delivered: 2xx. retryable: timeout, network error, 408, 429, 5xx. permanent: any other answer, a refused target, a request Node will not send. */
  verdict: 'delivered' | 'retryable' | 'permanent';
  /** Why a permanent failure without an answer is permanent: the dead-letter reason. */
  refusal?: 'TargetRefused' | 'InvalidRequest';
  startedAt: Date;
  latencyMs: number;
  statusCode?: number;
  error?: string;
  /** The first bytes of the answer. */
  response?: string;
  request: SentRequest;
}

export type Sink = (delivery: Delivery) => Promise<AttemptResult>;

export interface HttpSinkOptions {
  timeoutMs: number;
  allowPrivateTargets: boolean;
  /** How much of the answer to keep (default 1024 bytes). */
  responseBytes?: number;
  userAgent?: string;
}

export const USER_AGENT = 'georeg-webhook/0.1';

export function httpSink(options: HttpSinkOptions): Sink {
  return async ({ message, webhook }) => {
    const body = JSON.stringify(message.event);
    const startedAt = new Date();
    const headers = requestHeaders(message, webhook, body, startedAt, options.userAgent ?? USER_AGENT);
    const request: SentRequest = { method: 'POST', uri: redactUri(webhook.serviceUri), headers: maskHeaders(headers, webhook), body };
    const done = (r: Omit<AttemptResult, 'startedAt' | 'latencyMs' | 'request'>): AttemptResult => ({ ...r, startedAt, latencyMs: Date.now() - startedAt.getTime(), request });
    try {
      // The subscriber gets the trace too (`traceparent`), from a client span of this attempt.
      const answer = await clientSpan(`POST ${webhook.name}`, { 'http.request.method': 'POST', 'georeg.webhook': webhook.name }, () => post(webhook.serviceUri, { ...headers, ...traceHeaders() }, body, options));
      const s = answer.statusCode;
      const verdict = s >= 200 && s < 300 ? 'delivered' : s === 408 || s === 429 || s >= 500 ? 'retryable' : 'permanent';
      const error = verdict === 'delivered' ? undefined : s >= 300 && s < 400 ? `answered ${s} ${answer.statusMessage}: redirects are not followed; point the webhook at the final URI` : `answered ${s} ${answer.statusMessage}`;
      return done({ verdict, statusCode: s, response: answer.response, error });
    } catch (e) {
      if (e instanceof UnsafeTargetError) return done({ verdict: 'permanent', refusal: 'TargetRefused', error: `refused target: ${e.message}` });
      if (e instanceof InvalidRequestError) return done({ verdict: 'permanent', refusal: 'InvalidRequest', error: e.message });
      if (e instanceof TimeoutError) return done({ verdict: 'retryable', error: e.message });
      const err = e as NodeJS.ErrnoException;
      return done({ verdict: 'retryable', error: `${err.code ? `${err.code}: ` : ''}${err.message}` });
    }
  };
}

function requestHeaders(message: WebhookDeliveryMessage, webhook: WebhookDefinition, body: string, now: Date, userAgent: string): Record<string, string> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', 'User-Agent': userAgent };
  // Custom headers replace the defaults whatever their case (a subscriber may want its own Content-Type).
  for (const [name, value] of Object.entries(webhook.customHeaders)) {
    for (const existing of Object.keys(headers)) if (existing.toLowerCase() === name.toLowerCase()) delete headers[existing];
    headers[name] = value;
  }
  return {
    ...headers,
    'X-Georeg-Event-Id': message.event.id,
    'X-Georeg-Delivery': message.deliveryId,
    'X-Georeg-Attempt': String(message.attempt),
    'X-Georeg-Webhook': webhook.name,
    'X-Georeg-Region': message.region,
    ...signatureHeaders(webhook.secret, body, now),
  };
}

/** The log keeps the timestamp but not the signature: a signature and its body would be a replayable request. */
function maskHeaders(headers: Record<string, string>, webhook: WebhookDefinition): Record<string, string> {
  const custom = new Set(Object.keys(webhook.customHeaders).map((k) => k.toLowerCase()));
  const signature = SIGNATURE_HEADER.toLowerCase();
  return Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [k, k.toLowerCase() === signature ? `${SIGNATURE_SCHEME}=***` : custom.has(k.toLowerCase()) ? '***' : v]),
  );
}

class TimeoutError extends Error {
  constructor(ms: number) {
    super(`no complete answer within ${ms} ms (GEOREG_WEBHOOK_TIMEOUT_MS)`);
    this.name = 'TimeoutError';
  }
}

/** Node refused to build the request (a header it will not send): no later attempt can do better. */
class InvalidRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRequestError';
  }
}

function post(uri: string, headers: Record<string, string>, body: string, options: HttpSinkOptions): Promise<{ statusCode: number; statusMessage: string; response: string }> {
  const url = new URL(uri);
  const targets = webhookTargets(options.allowPrivateTargets);
  assertHostAllowed(url.hostname, targets);
  const payload = Buffer.from(body);
  const keep = options.responseBytes ?? 1024;
  return new Promise((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let req: ClientRequest;
    try {
      req = request(url, { method: 'POST', headers: { ...headers, 'Content-Length': String(payload.length) }, lookup: safeLookup(targets), agent: false });
    } catch (e) {
      // ERR_INVALID_CHAR, ERR_INVALID_HTTP_TOKEN, ...: a header stored before definitions were checked as strictly as now.
      const err = e as NodeJS.ErrnoException;
      return reject(new InvalidRequestError(`the request cannot be sent (${err.code ?? 'error'}: ${err.message}): fix the webhook's custom headers with \`georeg webhook update\``));
    }
    const timer = setTimeout(() => {
      reject(new TimeoutError(options.timeoutMs));
      req.destroy();
    }, options.timeoutMs);
    const fail = (e: Error) => {
      clearTimeout(timer);
      reject(e);
    };
    req.on('error', fail);
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = () => {
        clearTimeout(timer);
        resolve({ statusCode: res.statusCode ?? 0, statusMessage: res.statusMessage ?? '', response: Buffer.concat(chunks).subarray(0, keep).toString('utf8') });
      };
      res.on('data', (c: Buffer) => {
        if (size < keep) chunks.push(c);
        size += c.length;
        // Enough to show; the rest of a large answer is not worth waiting for.
        if (size >= keep) {
          finish();
          res.destroy();
        }
      });
      res.on('end', finish);
      res.on('error', (e) => (size >= keep ? undefined : fail(e)));
    });
    req.end(payload);
  });
}
