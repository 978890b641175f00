import type { z } from 'zod';

/**
 * The one way a zod error becomes text for a person: an issue a line, `path: message`, where the
 * path is where in the value the problem is (none for the value itself) and an absent required
 * field says "missing". Settings, messages, envelopes, state documents and HTTP bodies all say it so.
 */
export function zodIssues(error: z.ZodError, options: { max?: number; path?: (path: Array<string | number>) => string } = {}): string[] {
  const path = options.path ?? ((p) => p.join('.'));
  return error.issues.slice(0, options.max ?? 5).map((i) => {
    const message = i.code === 'invalid_type' && i.received === 'undefined' ? 'missing' : i.message;
    return i.path.length ? `${path(i.path)}: ${message}` : message;
  });
}

/** The first `max` issues of a zod error on one line. */
export function describeZodError(error: z.ZodError, max = 5): string {
  return zodIssues(error, { max }).join('; ');
}
