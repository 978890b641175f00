import type { HttpRequest } from '@azure/functions';

/** Request headers as the handlers take them: names in lower case. */
export function headersOf(request: HttpRequest): Record<string, string> {
  return Object.fromEntries([...request.headers].map(([k, v]) => [k.toLowerCase(), v]));
}
