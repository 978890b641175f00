import { timingSafeEqual } from 'node:crypto';
import type { z } from 'zod';
import { summarizeZodError } from '../bus/messages';

/**
 * What every HTTP handler takes and returns (plain values, so the same handler runs under the
 * Functions host and the local host), and the small answers they share.
 */

export interface HttpOutput {
  status: number;
  jsonBody: unknown;
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
  return result.success ? { value: result.data } : { error: `${what}: ${summarizeZodError(result.error)}` };
}

/** An `Authorization` header carrying `secret`, bare or as a Bearer token (compared in constant time). */
export function secretMatches(header: string | undefined, secret: string): boolean {
  if (!header) return false;
  const presented = header.startsWith('Bearer ') ? header.slice(7) : header;
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
