import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { ReplicaView } from '../replicas/admin-api';
import { adminCall, apiOptions } from './target';

/**
 * `georeg replication create|list|show|update|delete|resync`, as `az acr replication` has them,
 * against the admin API (`/api/replications`). `--wait` follows a back-fill or resync with
 * progress bars (tags, blobs, bytes) until the region is Ready or Failed.
 */

interface CommonFlags {
  url?: string;
  key?: string;
  output?: string;
}

interface RegionFlags extends CommonFlags {
  region?: string;
  location?: string;
  name?: string;
}

export function registerReplicationCommands(program: Command): void {
  const replication = program.command('replication').description('replica regions: create (with back-fill), list, show, update, delete, resync');
  const common = apiOptions;
  const region = (c: Command) =>
    c
      .option('-r, --region <name>', 'the replica region, e.g. eastus')
      .addOption(new Option('-l, --location <name>', 'same as --region (az acr replication spelling)').hideHelp())
      .addOption(new Option('-n, --name <name>', 'same as --region').hideHelp());

  common(region(replication.command('create').description('add a replica region: its subscription, then a back-fill of every tag')))
    .requiredOption('--storage <connection-string-or-url>', "the region's storage account: a connection string, or https://<account>.blob.core.windows.net (DefaultAzureCredential)")
    .addOption(new Option('--region-endpoint-enabled <bool>', 'whether the region takes part in routing (it syncs either way)').argParser(bool).default(true))
    .option('--wait', 'follow the back-fill until the region is Ready or Failed')
    .action(async (flags: RegionFlags & { storage: string; regionEndpointEnabled: boolean; wait?: boolean }) => {
      const name = regionOf(flags);
      const res = await adminCall(flags, 'POST', '/replications', { name, storage: flags.storage, endpointEnabled: flags.regionEndpointEnabled });
      const view = res.replication as ReplicaView;
      if (flags.wait) return finish(await follow(flags, name, view), flags);
      print([view], flags);
      if (view.status === 'Syncing') console.log(`back-fill of ${view.sync?.total.tags ?? 0} tag(s) running: \`georeg replication show --region ${name}\` follows it, or create with --wait`);
    });

  common(replication.command('list').description('list the home region and every replica')).action(async (flags: CommonFlags) => {
    print((await adminCall(flags, 'GET', '/replications')).replications, flags);
  });

  common(region(replication.command('show').description('show one region: status, sync progress, lag, queued jobs'))).action(async (flags: RegionFlags) => {
    const view = (await adminCall(flags, 'GET', `/replications/${encodeURIComponent(regionOf(flags))}`)).replication as ReplicaView;
    print([view], flags);
    if (flags.output !== 'json') details(view);
  });

  common(region(replication.command('update').description('switch the region endpoint on or off (the region keeps syncing)')))
    .addOption(new Option('--region-endpoint-enabled <bool>', 'true or false').argParser(bool))
    .addOption(new Option('--global-endpoint-routing <bool>', 'same as --region-endpoint-enabled (current Azure CLI name)').argParser(bool))
    .action(async (flags: RegionFlags & { regionEndpointEnabled?: boolean; globalEndpointRouting?: boolean }) => {
      const enabled = flags.regionEndpointEnabled ?? flags.globalEndpointRouting;
      if (enabled === undefined) throw new InvalidArgumentError('give --region-endpoint-enabled true|false (or --global-endpoint-routing true|false)');
      print([(await adminCall(flags, 'PATCH', `/replications/${encodeURIComponent(regionOf(flags))}`, { endpointEnabled: enabled })).replication], flags);
    });

  common(region(replication.command('delete').description('stop replicating to the region; its data stays unless --purge')))
    .option('--purge', "also delete the registry's data in the region's storage")
    .action(async (flags: RegionFlags & { purge?: boolean }) => {
      const name = regionOf(flags);
      const res = await adminCall(flags, 'DELETE', `/replications/${encodeURIComponent(name)}${flags.purge ? '?purge=true' : ''}`);
      if (flags.output === 'json') return console.log(JSON.stringify(res, null, 2));
      console.log(`replication ${name} deleted${res.purgedBlobs !== undefined ? `, ${res.purgedBlobs} blob(s) purged` : ''}`);
      if (res.note) console.log(res.note);
    });

  common(region(replication.command('resync').description('re-run the diff for every tag (or one repository) and copy what the region is missing')))
    .option('--repository <name>', 'only this repository')
    .option('--wait', 'follow the resync until the region is Ready or Failed')
    .action(async (flags: RegionFlags & { repository?: string; wait?: boolean }) => {
      const name = regionOf(flags);
      const view = (await adminCall(flags, 'POST', `/replications/${encodeURIComponent(name)}/resync`, flags.repository ? { repository: flags.repository } : {})).replication as ReplicaView;
      if (flags.output !== 'json') missingReport(view);
      if (flags.wait) return finish(await follow(flags, name, view), flags);
      print([view], flags);
    });
}

function regionOf(flags: RegionFlags): string {
  const name = flags.region ?? flags.location ?? flags.name;
  if (!name) throw new InvalidArgumentError('give the region: --region <name> (e.g. --region eastus)');
  return name;
}

function bool(value: string): boolean {
  if (/^(true|yes|1)$/i.test(value)) return true;
  if (/^(false|no|0)$/i.test(value)) return false;
  throw new InvalidArgumentError(`"${value}": expected true or false`);
}

/** Polls the region until its run is over, with a bar per measure on a terminal, plain lines elsewhere. */
async function follow(flags: CommonFlags, name: string, first: ReplicaView): Promise<ReplicaView> {
  // Progress goes to stderr, so `-o json` leaves stdout to the answer alone.
  const out = process.stderr;
  const multibar = out.isTTY ? new cliProgress.MultiBar({ format: ' {what} [{bar}] {value}/{total} {unit}', hideCursor: true, clearOnComplete: false, stream: out }, cliProgress.Presets.shades_classic) : undefined;
  const bars = multibar && {
    tags: multibar.create(1, 0, { what: 'jobs (tags)'.padEnd(12), unit: '' }),
    blobs: multibar.create(1, 0, { what: 'blobs'.padEnd(12), unit: '' }),
    bytes: multibar.create(1, 0, { what: 'MiB'.padEnd(12), unit: '' }),
  };
  let view = first;
  let lastLine = '';
  for (;;) {
    const s = view.sync;
    if (s) {
      if (bars) {
        bars.tags.setTotal(Math.max(s.total.jobs, 1));
        bars.tags.update(s.done.jobs);
        bars.blobs.setTotal(Math.max(s.total.blobs, 1));
        bars.blobs.update(Math.min(s.done.blobs, s.total.blobs));
        bars.bytes.setTotal(Math.max(+(s.total.bytes / 1048576).toFixed(1), 0.1));
        bars.bytes.update(+(Math.min(s.done.bytes, s.total.bytes) / 1048576).toFixed(1));
      } else {
        const line = `  ${name} ${view.status}: ${s.done.jobs}/${s.total.jobs} jobs, ${s.done.blobs}/${s.total.blobs} blobs, ${mib(s.done.bytes)}/${mib(s.total.bytes)} MiB`;
        if (line !== lastLine) out.write(`${line}\n`);
        lastLine = line;
      }
    }
    if (view.status === 'Ready' || view.status === 'Failed' || view.status === 'Deleted') break;
    await new Promise((r) => setTimeout(r, 250));
    view = (await adminCall(flags, 'GET', `/replications/${encodeURIComponent(name)}`)).replication as ReplicaView;
  }
  multibar?.stop();
  return view;
}

function finish(view: ReplicaView, flags: CommonFlags): void {
  print([view], flags);
  if (flags.output !== 'json') details(view);
  if (view.status === 'Failed') process.exitCode = 1;
}

function print(views: ReplicaView[], flags: CommonFlags): void {
  if (flags.output === 'json') return console.log(JSON.stringify(views.length === 1 ? views[0] : views, null, 2));
  console.table(
    views.map((v) => ({
      name: v.name + (v.home ? ' (home)' : ''),
      status: v.status,
      'endpoint enabled': v.endpointEnabled,
      storage: v.storage,
      'last synced push': v.lastSyncedPush ? `${v.lastSyncedPush.repository}:${v.lastSyncedPush.tag ?? v.lastSyncedPush.digest ?? ''} ${v.lastSyncedPush.at}` : '',
      'lag (s)': v.lagSeconds ?? '',
      'pending jobs': v.pendingJobs ?? '',
      'dead letters': v.deadLetters ?? '',
    })),
  );
}

function details(v: ReplicaView): void {
  const s = v.sync;
  if (s) {
    console.log(`${s.kind} ${s.operationId}${s.repository ? ` (${s.repository})` : ''}: ${s.done.jobs}/${s.total.jobs} jobs over ${s.total.tags} tag(s), ${s.done.blobs}/${s.total.blobs} blobs, ${mib(s.done.bytes)}/${mib(s.total.bytes)} MiB copied; started ${s.startedAt}${s.completedAt ? `, finished ${s.completedAt}` : ''}`);
    for (const f of s.failures) console.log(`  failed ${f.image ?? f.jobId} (job ${f.jobId}): ${f.reason}: ${f.description}`);
  }
  if (v.error) console.log(`error: ${v.error}`);
}

function missingReport(v: ReplicaView): void {
  const s = v.sync;
  if (!s) return;
  const deleted = s.deleted ?? [];
  if (deleted.length) {
    console.log(`resync ${v.name}: ${deleted.length}${s.deletedTruncated ? '+' : ''} tag(s) deleted at home were removed from the region: ${deleted.map((d) => `${d.repository}:${d.tag}`).join(', ')}`);
  }
  if (!s.missing.length) return console.log(`resync ${v.name}: nothing missing in ${s.total.tags} tag(s)`);
  console.log(`resync ${v.name}: ${s.missing.length}${s.missingTruncated ? '+' : ''} of ${s.total.tags} tag(s) were missing something:`);
  console.table(s.missing.map((m) => ({ image: `${m.repository}:${m.tag}`, 'missing blobs': m.blobs, 'missing MiB': +mib(m.bytes), 'missing links': m.links })));
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}
