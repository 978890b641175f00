import type { ServiceBusReceivedMessage } from '@azure/service-bus';

/**
 * Holds replication jobs before they run (the local host's `beforeJob` hook), so a test decides
 * the order jobs complete in: hold a push's jobs, or every job, and release them one by one.
 */
export interface HeldJob {
  region: string;
  pushId: string;
  message: ServiceBusReceivedMessage;
  release(): void;
}

export class JobGate {
  /** Every job body the host received, by message id (to send again as a redelivery). */
  readonly seen = new Map<string, { region: string; body: unknown }>();
  readonly held: HeldJob[] = [];
  private readonly holding = new Set<string>();
  holdAll = false;

  hold(pushId: string): void {
    this.holding.add(pushId);
  }

  readonly beforeJob = async (region: string, message: ServiceBusReceivedMessage): Promise<void> => {
    const pushId = String((message.body as { pushId?: unknown } | undefined)?.pushId ?? '');
    this.seen.set(String(message.messageId), { region, body: message.body });
    if (!this.holdAll && !this.holding.has(pushId)) return;
    await new Promise<void>((resolve) => this.held.push({ region, pushId, message, release: resolve }));
  };

  /** Releases the held jobs that match (all by default); returns how many. */
  release(match: (job: HeldJob) => boolean = () => true): number {
    const released = this.held.filter(match);
    for (const job of released) {
      this.held.splice(this.held.indexOf(job), 1);
      this.holding.delete(job.pushId);
      job.release();
    }
    return released.length;
  }

  /** Stops holding and lets every held job go. */
  open(): void {
    this.holdAll = false;
    this.holding.clear();
    this.release();
  }
}

/** A small seeded generator (mulberry32): the same seed replays the same interleaving. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
