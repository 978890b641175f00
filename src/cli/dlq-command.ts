import type { Command } from 'commander';
import type { DeadLetterQueueView } from '../ops/dlq-api';
import type { SettleResult } from '../ops/dlq';
import { adminCall, apiOptions } from './target';

/**
 * `georeg dlq list|redrive|discard`: the dead letters of each replica region's subscription and of
 * the webhook queue, through the admin API (`/api/deadletters`).
 */

interface Flags {
  region?: string;
  webhooks?: boolean;
  all?: boolean;
  job?: string[];
  url?: string;
  key?: string;
  output?: string;
}

export function registerDlqCommands(program: Command): void {
  const dlq = program.command('dlq').description('dead-lettered replication jobs and webhook deliveries: list, redrive, discard');
  const common = (c: Command) =>
    apiOptions(c)
      .option('--region <region>', 'the dead letters of this replica region')
      .option('--webhooks', 'the dead letters of the webhook delivery queue');

  common(dlq.command('list').description('dead letters with reason, description, job and age (every queue unless --region or --webhooks)')).action(async (flags: Flags) => {
    if (flags.region && flags.webhooks) throw new Error('give --region <region> or --webhooks, not both');
    const query = flags.region ? `?region=${encodeURIComponent(flags.region)}` : flags.webhooks ? '?webhooks=true' : '';
    const { queues } = (await adminCall(flags, 'GET', `/deadletters${query}`)) as { queues: DeadLetterQueueView[] };
    if (flags.output === 'json') return console.log(JSON.stringify(queues, null, 2));
    for (const q of queues) {
      console.log(`${q.source}: ${q.error ?? `${q.count} dead letter(s)`}`);
      if (!q.messages.length) continue;
      console.table(
        q.messages.map((m) => ({
          job: m.id,
          image: m.repository ? `${m.repository}:${m.tag ?? ''}` : '',
          ...(m.webhook ? { webhook: m.webhook } : {}),
          reason: m.reason ?? '',
          description: (m.description ?? '').slice(0, 100),
          age: m.ageSeconds === undefined ? '' : formatAge(m.ageSeconds),
          redrives: m.redrives,
        })),
      );
    }
  });

  for (const op of ['redrive', 'discard'] as const) {
    const what = op === 'redrive' ? 'send the jobs again with a fresh attempt count, then remove them from the dead-letter queue' : 'remove the dead letters for good';
    common(dlq.command(op).description(what))
      .option('--all', 'every dead letter of the queue')
      .option('--job <id...>', 'these job ids (replication) or delivery ids (webhooks)')
      .action(async (flags: Flags) => {
        if (Boolean(flags.region) === Boolean(flags.webhooks)) throw new Error(`give --region <region> or --webhooks: which dead-letter queue to ${op}`);
        if (Boolean(flags.all) === Boolean(flags.job?.length)) throw new Error(`give --all or --job <id...>: which dead letters to ${op}`);
        const body = { ...(flags.region ? { region: flags.region } : { webhooks: true }), ...(flags.all ? { all: true } : { jobs: flags.job }) };
        const result = (await adminCall(flags, 'POST', `/deadletters/${op}`, body)) as SettleResult;
        if (flags.output === 'json') return console.log(JSON.stringify(result, null, 2));
        const verb = op === 'redrive' ? 're-driven' : 'discarded';
        console.log(`${result.source}: ${result.done.length} ${verb}${result.done.length ? `: ${result.done.map((d) => (d.newMessageId ? `${d.id} (as ${d.newMessageId})` : d.id)).join(', ')}` : ''}`);
        if (result.notFound.length) console.log(`not in the dead-letter queue: ${result.notFound.join(', ')}`);
        for (const f of result.failed) console.log(`could not ${op} ${f.id}: ${f.error}`);
        if (result.failed.length) process.exitCode = 1;
      });
  }
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}
