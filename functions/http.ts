import { app, type HttpHandler, type HttpMethod, type HttpRequest, type InvocationContext } from '@azure/functions';
import { authLevelDenied, bodyTooLarge, declaredLengthRefused, HttpInputError, MAX_BODY_BYTES, type AuthLevel, type HttpOutput } from '../src/common/http';
import { runtime, type Runtime } from '../src/runtime';

/** Request headers as the handlers take them: names in lower case. */
export function headersOf(request: HttpRequest): Record<string, string> {
  return Object.fromEntries([...request.headers].map(([k, v]) => [k.toLowerCase(), v]));
}

/** What an HTTP function's handler gets once the shared checks passed. */
export interface CheckedRequest {
  method: string;
  params: Record<string, string | undefined>;
  query: Record<string, string | undefined>;
  headers: Record<string, string>;
  /** The body, read only after the route's auth level was checked, and at most MAX_BODY_BYTES. */
  body(): Promise<string>;
}

/**
 * Registers an HTTP function whose handler runs the shared HTTP hygiene (src/common/http.ts) before
 * calling into src/: the auth level's admin secret before the body is read, the body limit (413),
 * then the handler. The auth level is given once, so what Azure enforces and what the wrapper
 * checks cannot drift apart.
 */
export function httpFunction(
  name: string,
  options: { route: string; methods: HttpMethod[]; authLevel: AuthLevel; handle: (request: CheckedRequest, rt: Runtime, context: InvocationContext) => Promise<HttpOutput> },
): void {
  const handler: HttpHandler = async (request, context) => {
    const rt = await runtime(context);
    const headers = headersOf(request);
    const refused = authLevelDenied(options.authLevel, headers, rt.settings.adminSecret) ?? declaredLengthRefused(headers['content-length']);
    if (refused) return refused;
    const checked: CheckedRequest = {
      method: request.method,
      params: { ...request.params },
      query: Object.fromEntries(request.query),
      headers,
      body: async () => {
        // The Functions host has buffered the body already; the local host has read at most the limit.
        const bytes = Buffer.from(await request.arrayBuffer());
        if (bytes.length > MAX_BODY_BYTES) throw new HttpInputError(bodyTooLarge());
        return bytes.toString('utf8');
      },
    };
    try {
      return await options.handle(checked, rt, context);
    } catch (e) {
      if (e instanceof HttpInputError) return e.output;
      throw e;
    }
  };
  app.http(name, { route: options.route, methods: options.methods, authLevel: options.authLevel, handler });
}
