import { timingSafeEqual } from 'node:crypto';
import type { z } from 'zod';
import { describeZodError } from './zod';

/**
 * What every HTTP handler takes and returns (plain values, so the same handler runs under the
 * Functions host and the local host), and the small answers they share.
 */

export interface HttpOutput {
  status: number;
  jsonBody?: unknown;
  /** A body that is not JSON (the dashboard's page and script, Prometheus text), with its Content-Type in `headers`. */
  body?: string;
  headers?: Record<string, string>;
}

/** A call to an admin API: `/<collection>/{name?}/{op?}` with its query, body and headers. */
export interface AdminRequest {
  method: string;
  name?: string;
  op?: string;
  query: Record<string, string | undefined>;
  body: string;
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
}

export function json(status: number, jsonBody: unknown): HttpOutput {
  return { status, jsonBody };
}

export function notAllowed(method: string, path: string, allowed: string): HttpOutput {
  return { status: 405, jsonBody: { error: `${method} is not supported on ${path}: use ${allowed}` }, headers: { Allow: allowed } };
}

/** A JSON body checked against its schema; an empty body is `{}`. */
export function parseJsonBody<T extends z.ZodTypeAny>(schema: T, body: string, what: string): { value: z.output<T> } | { error: string } {
  let parsed: unknown;
  try {
    parsed = body.trim() ? JSON.parse(body) : {};
  } catch (e) {
    return { error: `${what}: the body is not JSON (${(e as Error).message})` };
  }
  const result = schema.safeParse(parsed);
  return result.success ? { value: result.data } : { error: `${what}: ${describeZodError(result.error)}` };
}

/** An `Authorization` header carrying `secret`, bare or as a Bearer token (the scheme in any case, RFC 9110; compared in constant time). */
export function secretMatches(header: string | undefined, secret: string): boolean {
  if (!header) return false;
  const presented = header.replace(/^bearer +/i, '');
  const a = Buffer.from(presented);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The admin APIs' check. In Azure the Functions host asks for a function key first
 * (authLevel: function); GEOREG_ADMIN_SECRET, when set, is asked for as well, and is what guards
 * the local host, which has no function keys. Undefined when the request may go on.
 */
export function adminDenied(headers: Record<string, string | undefined>, adminSecret: string | undefined): HttpOutput | undefined {
  if (!adminSecret || secretMatches(headers.authorization, adminSecret)) return undefined;
  return {
    status: 401,
    jsonBody: { error: 'missing or wrong Authorization header: send GEOREG_ADMIN_SECRET as "Authorization: Bearer <secret>" (the CLI does when the secret is in its settings)' },
    headers: { 'WWW-Authenticate': 'Bearer realm="georeg-admin"' },
  };
}

/**
 * The HTTP hygiene every host applies, in one place: the local host before it reads a body, the
 * functions/ HTTP wrapper (functions/http.ts) in Azure and locally. Bodies are notifications and
 * admin documents: small. A registry's envelope of 1,000 events is about 1 MiB.
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export type AuthLevel = 'anonymous' | 'function' | 'admin';

/**
 * A route's auth level, as the local host and the functions/ wrapper both check it: `function` and
 * `admin` ask for GEOREG_ADMIN_SECRET when it is set (in Azure the function key is asked first);
 * `anonymous` routes authenticate in their handler (the push secret).
 */
export function authLevelDenied(authLevel: AuthLevel, headers: Record<string, string | undefined>, adminSecret: string | undefined): HttpOutput | undefined {
  return authLevel === 'anonymous' ? undefined : adminDenied(headers, adminSecret);
}

/** Bad input found below a handler (a body over the limit): the wrapper answers with `output`. */
export class HttpInputError extends Error {
  constructor(readonly output: HttpOutput) {
    super((output.jsonBody as { error?: string }).error ?? `HTTP ${output.status}`);
    this.name = 'HttpInputError';
  }
}

export function bodyTooLarge(limit = MAX_BODY_BYTES): HttpOutput {
  return { status: 413, jsonBody: { error: `request body over ${limit} bytes: georeg takes notification envelopes and admin documents, which are far smaller` } };
}

export function badRequest(error: string): HttpOutput {
  return { status: 400, jsonBody: { error } };
}

/** A declared Content-Length over the limit (or not a number): refused before any byte is read. */
export function declaredLengthRefused(contentLength: string | undefined, limit = MAX_BODY_BYTES): HttpOutput | undefined {
  if (contentLength === undefined) return undefined;
  if (!/^\d+$/.test(contentLength.trim())) return badRequest(`Content-Length "${contentLength}" is not a number of bytes`);
  return Number(contentLength) > limit ? bodyTooLarge(limit) : undefined;
}
