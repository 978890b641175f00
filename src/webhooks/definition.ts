import { randomBytes } from 'node:crypto';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { z } from 'zod';
import { parseScope, ScopeError } from './scope';
import { checkServiceUri, redactUri, UnsafeTargetError } from './url-safety';

/**
 * A regional webhook, as `az acr webhook create --location <region>` defines one: it fires when a
 * push or delete is complete in its region. Stored in the home account's state container (with
 * its signing secret); every read and write goes through these schemas.
 */

export const WebhookName = z.string().regex(/^[A-Za-z0-9]{5,50}$/, 'a webhook name is 5-50 letters and digits (as in ACR)');
export const WebhookAction = z.enum(['push', 'delete']);
export type WebhookAction = z.infer<typeof WebhookAction>;
export const WebhookStatus = z.enum(['enabled', 'disabled']);

/** Headers georeg sets itself, or that would break the request if overridden. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect']);
export const SIGNATURE_HEADER_PREFIX = 'x-georeg-';

/** Limits on custom headers: enough for tokens and routing keys, well inside what servers accept. */
export const MAX_CUSTOM_HEADERS = 32;
export const MAX_HEADER_VALUE_BYTES = 4 * 1024;

/**
 * Custom headers as an admin gives them: names and values checked with Node's own rules (the rules
 * the request is refused by at send time), so a header Node will not send is refused here, with a
 * 400, and not in every delivery.
 */
export const CustomHeaders = z
  .record(z.string(), z.string())
  .superRefine((headers, ctx) => {
    const names = Object.keys(headers);
    if (names.length > MAX_CUSTOM_HEADERS) ctx.addIssue({ code: 'custom', message: `${names.length} custom headers: at most ${MAX_CUSTOM_HEADERS}` });
    for (const name of names) {
      const problem = headerProblem(name, headers[name]);
      if (problem) ctx.addIssue({ code: 'custom', path: [name], message: problem });
    }
  });

/**
 * Custom headers as stored: a definition written before headers were checked this strictly still
 * loads, and its delivery fails once, permanently, naming the header (see sink.ts).
 */
const StoredCustomHeaders = z.record(z.string(), z.string());

function headerProblem(name: string, value: string): string | undefined {
  try {
    validateHeaderName(name);
  } catch {
    return `"${printable(name)}" is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_\`|~ only)`;
  }
  const lower = name.toLowerCase();
  if (RESERVED_HEADERS.has(lower) || lower.startsWith(SIGNATURE_HEADER_PREFIX)) return `header "${name}" is set by georeg and cannot be customized`;
  try {
    validateHeaderValue(name, value);
  } catch {
    return `the value of header "${name}" has a character HTTP does not allow (control characters, line breaks, text outside Latin-1): use printable ASCII`;
  }
  const bytes = Buffer.byteLength(value, 'latin1');
  if (bytes > MAX_HEADER_VALUE_BYTES) return `the value of header "${name}" is ${bytes} bytes: at most ${MAX_HEADER_VALUE_BYTES}`;
  return undefined;
}

/** A name for an error message: control characters shown as escapes, long names cut. */
function printable(text: string): string {
  const shown = JSON.stringify(text.slice(0, 64)).slice(1, -1);
  return text.length > 64 ? `${shown}...` : shown;
}

export const WebhookSecret = z.string().min(16, 'a signing secret has at least 16 characters').max(256);

const Scope = z.string().superRefine((s, ctx) => {
  try {
    parseScope(s);
  } catch (e) {
    if (e instanceof ScopeError) ctx.addIssue({ code: 'custom', message: e.message });
    else throw e;
  }
});

const Actions = z
  .array(WebhookAction)
  .min(1, 'give at least one action: push, delete')
  .transform((a) => [...new Set(a)].sort());

export const WebhookDefinition = z.object({
  version: z.literal(1),
  name: WebhookName,
  region: z.string().min(1),
  serviceUri: z.string().url(),
  actions: Actions,
  scope: Scope,
  customHeaders: StoredCustomHeaders,
  status: WebhookStatus,
  secret: WebhookSecret,
  createdAt: z.string().datetime(),
  updatedAt: z.string().datetime(),
});
export type WebhookDefinition = z.infer<typeof WebhookDefinition>;

/** What `create` accepts (admin API body, CLI flags). The secret is generated when absent. */
export const CreateWebhookInput = z
  .object({
    name: WebhookName,
    region: z.string().min(1),
    serviceUri: z.string().min(1),
    actions: Actions,
    scope: Scope.default(''),
    customHeaders: CustomHeaders.default({}),
    status: WebhookStatus.default('enabled'),
    secret: WebhookSecret.optional(),
  })
  .strict();
export type CreateWebhookInput = z.input<typeof CreateWebhookInput>;

/** What `update` accepts: any field but the name; `customHeaders` replaces the whole set. */
export const UpdateWebhookInput = z
  .object({
    serviceUri: z.string().min(1).optional(),
    actions: Actions.optional(),
    scope: Scope.optional(),
    customHeaders: CustomHeaders.optional(),
    status: WebhookStatus.optional(),
    secret: WebhookSecret.optional(),
    /** Generate a new secret (returned once, in the response). */
    rotateSecret: z.boolean().optional(),
  })
  .strict();
export type UpdateWebhookInput = z.input<typeof UpdateWebhookInput>;

export class WebhookDefinitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookDefinitionError';
  }
}

export interface DefinitionContext {
  /** Regions a webhook may belong to (the replica regions: each fires when its copy is committed). */
  regions: readonly string[];
  homeRegion: string;
  allowPrivateTargets: boolean;
  now?: Date;
}

export function newWebhook(input: z.output<typeof CreateWebhookInput>, ctx: DefinitionContext): { definition: WebhookDefinition; generatedSecret?: string } {
  checkRegion(input.region, ctx);
  const now = (ctx.now ?? new Date()).toISOString();
  const generatedSecret = input.secret ? undefined : generateSecret();
  const definition = WebhookDefinition.parse({
    version: 1,
    name: input.name,
    region: input.region,
    serviceUri: checkUri(input.serviceUri, ctx),
    actions: input.actions,
    scope: input.scope,
    customHeaders: input.customHeaders,
    status: input.status,
    secret: input.secret ?? generatedSecret,
    createdAt: now,
    updatedAt: now,
  });
  return { definition, generatedSecret };
}

export function applyUpdate(current: WebhookDefinition, input: z.output<typeof UpdateWebhookInput>, ctx: DefinitionContext & { generatedSecret?: string }): WebhookDefinition {
  return WebhookDefinition.parse({
    ...current,
    serviceUri: input.serviceUri !== undefined ? checkUri(input.serviceUri, ctx) : current.serviceUri,
    actions: input.actions ?? current.actions,
    scope: input.scope ?? current.scope,
    customHeaders: input.customHeaders ?? current.customHeaders,
    status: input.status ?? current.status,
    secret: input.secret ?? (input.rotateSecret ? ctx.generatedSecret : undefined) ?? current.secret,
    updatedAt: (ctx.now ?? new Date()).toISOString(),
  });
}

/** What list and show return: no secret, header values and URI credentials masked. */
export function publicView(w: WebhookDefinition) {
  return {
    name: w.name,
    region: w.region,
    serviceUri: redactUri(w.serviceUri),
    actions: w.actions,
    scope: w.scope,
    status: w.status,
    customHeaders: Object.fromEntries(Object.keys(w.customHeaders).map((k) => [k, '***'])),
    createdAt: w.createdAt,
    updatedAt: w.updatedAt,
  };
}
export type WebhookView = ReturnType<typeof publicView>;

export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

function checkRegion(region: string, ctx: DefinitionContext): void {
  if (region === ctx.homeRegion) {
    throw new WebhookDefinitionError(
      `region "${region}" is the home region: georeg fires webhooks when a push is complete in a replica region (${ctx.regions.join(', ')}); for the home region use the registry's own notifications`,
    );
  }
  if (!ctx.regions.includes(region)) throw new WebhookDefinitionError(`region "${region}" is not a replica region (GEOREG_REGIONS): use one of ${ctx.regions.join(', ')}`);
}

function checkUri(uri: string, ctx: DefinitionContext): string {
  try {
    return checkServiceUri(uri, ctx.allowPrivateTargets);
  } catch (e) {
    if (e instanceof UnsafeTargetError) throw new WebhookDefinitionError(`serviceUri: ${e.message}`);
    throw e;
  }
}
