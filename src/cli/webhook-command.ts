import { Command, InvalidArgumentError, Option } from 'commander';
import type { DeliveryAttempt } from '../webhooks/store';
import type { WebhookView } from '../webhooks/definition';
import { adminCall, apiOptions } from './target';

/**
 * `georeg webhook create|list|show|update|delete|ping|list-events`, as `az acr webhook` has them,
 * against the admin API (`/api/webhooks`). A generated or rotated secret is printed once.
 */

interface CommonFlags {
  url?: string;
  key?: string;
  output?: string;
}

interface DefinitionFlags extends CommonFlags {
  location?: string;
  uri?: string;
  actions?: string[];
  scope?: string;
  headers?: string[];
  status?: string;
  secret?: string;
  rotateSecret?: boolean;
}

export function registerWebhookCommands(program: Command): void {
  const webhook = program.command('webhook').description('regional webhooks: fired when a push or delete is complete in their region');
  const common = apiOptions;
  const definition = (c: Command) =>
    c
      .option('--uri <service-uri>', 'the subscriber URL (http or https)')
      .option('--actions <actions...>', 'push and/or delete (space- or comma-separated)', collectList)
      .option('--scope <repo:tag>', 'e.g. web:*, web:1.2, team/*:* ("web" means web:latest; empty: everything)')
      .option('--headers <name=value...>', 'custom headers sent with each event')
      .addOption(new Option('--status <status>', 'enabled or disabled').choices(['enabled', 'disabled']))
      .option('--secret <secret>', 'signing secret (at least 16 characters; generated when omitted)');

  common(definition(webhook.command('create').description('create a webhook in a region').argument('<name>', '5-50 letters and digits')))
    .requiredOption('-l, --location <region>', 'the replica region whose completed pushes fire it')
    .action(async (name: string, flags: DefinitionFlags) => {
      if (!flags.uri) throw new Error('--uri is required');
      const body = { name, region: flags.location, serviceUri: flags.uri, actions: flags.actions ?? ['push'], scope: flags.scope, customHeaders: headers(flags.headers), status: flags.status, secret: flags.secret };
      const res = await call(flags, 'POST', '', body);
      printWebhooks([res.webhook], flags);
      printSecret(res);
    });

  common(webhook.command('list').description('list webhooks').option('-l, --location <region>', 'only this region')).action(async (flags: DefinitionFlags) => {
    const res = await call(flags, 'GET', flags.location ? `?region=${encodeURIComponent(flags.location)}` : '');
    printWebhooks(res.webhooks, flags);
  });

  common(webhook.command('show').description('show one webhook').argument('<name>')).action(async (name: string, flags: CommonFlags) => {
    printWebhooks([(await call(flags, 'GET', `/${encodeURIComponent(name)}`)).webhook], flags);
  });

  common(definition(webhook.command('update').description('change a webhook (only what you give)').argument('<name>')))
    .option('--rotate-secret', 'generate a new signing secret (printed once)')
    .action(async (name: string, flags: DefinitionFlags) => {
      const body = { serviceUri: flags.uri, actions: flags.actions, scope: flags.scope, customHeaders: flags.headers ? headers(flags.headers) : undefined, status: flags.status, secret: flags.secret, rotateSecret: flags.rotateSecret };
      const res = await call(flags, 'PATCH', `/${encodeURIComponent(name)}`, body);
      printWebhooks([res.webhook], flags);
      printSecret(res);
    });

  common(webhook.command('delete').description('delete a webhook and its delivery log').argument('<name>')).action(async (name: string, flags: CommonFlags) => {
    await call(flags, 'DELETE', `/${encodeURIComponent(name)}`);
    console.log(`webhook ${name} deleted`);
  });

  common(webhook.command('ping').description('send a ping event through the delivery path and report the outcome').argument('<name>')).action(async (name: string, flags: CommonFlags) => {
    const res = await call(flags, 'POST', `/${encodeURIComponent(name)}/ping`);
    if (flags.output === 'json') return console.log(JSON.stringify(res, null, 2));
    const answer = res.statusCode ? `HTTP ${res.statusCode}` : (res.error ?? '');
    console.log(`ping ${res.eventId}: ${res.state}${answer ? ` (${answer}${res.latencyMs !== undefined ? `, ${res.latencyMs} ms` : ''})` : ''}${res.nextAttemptAt ? `, next attempt at ${res.nextAttemptAt}` : ''}`);
    if (res.note) console.log(res.note);
    if (res.state === 'failed' || res.state === 'retrying') process.exitCode = 1;
  });

  common(webhook.command('list-events').description('delivery attempts, newest first').argument('<name>').option('--top <n>', 'how many (default 50)', (v) => Number(v))).action(
    async (name: string, flags: CommonFlags & { top?: number }) => {
      const res = await call(flags, 'GET', `/${encodeURIComponent(name)}/events${flags.top ? `?top=${flags.top}` : ''}`);
      const events = res.events as DeliveryAttempt[];
      if (flags.output === 'json') return console.log(JSON.stringify(events, null, 2));
      if (!events.length) return console.log(`no delivery attempts for ${name} yet`);
      console.table(
        events.map((e) => ({
          time: e.at,
          event: e.eventId,
          action: e.action,
          region: e.region,
          attempt: `${e.attempt}/${e.maxAttempts}`,
          outcome: e.outcome,
          status: e.statusCode ?? '',
          'latency (ms)': e.latencyMs,
          error: e.error ?? '',
          response: (e.response ?? '').slice(0, 60).replace(/\s+/g, ' '),
        })),
      );
    },
  );
}

function call(flags: CommonFlags, method: string, path: string, body?: unknown): Promise<any> {
  return adminCall(flags, method, `/webhooks${path}`, body === undefined ? undefined : dropUndefined(body as Record<string, unknown>));
}

function printWebhooks(webhooks: WebhookView[], flags: CommonFlags): void {
  if (flags.output === 'json') return console.log(JSON.stringify(webhooks.length === 1 ? webhooks[0] : webhooks, null, 2));
  if (!webhooks.length) return console.log('no webhooks');
  console.table(
    webhooks.map((w) => ({ name: w.name, location: w.region, status: w.status, actions: w.actions.join(','), scope: w.scope || '(all)', serviceUri: w.serviceUri, headers: Object.keys(w.customHeaders).join(',') })),
  );
}

function printSecret(res: { secret?: string; note?: string }): void {
  if (res.secret) console.log(`\nsigning secret: ${res.secret}\n(${res.note ?? 'shown this once'}; verify X-Georeg-Signature with it, see docs/webhooks.md)`);
}

function collectList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

function headers(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs) return undefined;
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`--headers "${pair}": expected name=value`);
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1);
  }
  return out;
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
