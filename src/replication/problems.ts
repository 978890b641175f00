import { createHash } from 'node:crypto';
import { z } from 'zod';
import { statePaths } from '../storage/paths';
import { StateConflictError, type StateStore } from '../storage/state-store';

/**
 * Notification events georeg could not act on (a malformed event, an unknown action, a manifest
 * missing from home storage): the push endpoint still answers 2xx, so that a registry's queue never
 * stalls behind them, and records each here for `georeg status --problems` and
 * `GET /api/problems`. One document per event, named newest first; the name comes from the event's
 * id and timestamp, so a registry re-sending the envelope records (and logs) it once.
 */

export const Problem = z.object({
  at: z.string(),
  eventId: z.string().optional(),
  index: z.number().int().nonnegative(),
  action: z.string().optional(),
  repository: z.string().optional(),
  tag: z.string().optional(),
  digest: z.string().optional(),
  reason: z.string(),
  description: z.string(),
});
export type Problem = z.infer<typeof Problem>;

export class ProblemStore {
  constructor(private readonly state: StateStore) {}

  /** True when this call recorded it (first time seen); false for a re-sent event. */
  async record(problem: Omit<Problem, 'at'> & { eventTimestamp?: string }): Promise<boolean> {
    const { eventTimestamp, ...rest } = problem;
    const stamped = eventTimestamp && !Number.isNaN(Date.parse(eventTimestamp)) ? new Date(eventTimestamp) : new Date();
    const key = createHash('sha256').update(`${rest.eventId ?? ''}\n${rest.index}\n${rest.reason}\n${eventTimestamp ?? ''}`).digest('hex').slice(0, 24);
    try {
      await this.state.create(statePaths.problem(stamped, key), { ...rest, at: stamped.toISOString() } satisfies Problem);
      return true;
    } catch (e) {
      if (e instanceof StateConflictError) return false;
      throw e;
    }
  }

  /** The newest `limit` problems, newest first. */
  async list(limit = 50): Promise<Problem[]> {
    const names = (await this.state.list(statePaths.problemsPrefix())).slice(0, limit);
    const found = await Promise.all(names.map((n) => this.state.get(n, Problem)));
    return found.flatMap((f) => (f ? [f.value] : []));
  }
}
