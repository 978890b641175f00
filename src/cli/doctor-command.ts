import { SettingsError } from '../config/settings';
import { formatCheck, runDoctor, type CheckResult } from '../doctor/doctor';
import { ExitCode } from './exit';
import { resolveSettingsSource, type SettingsSource } from './target';

/** `georeg doctor`: one line per check (src/doctor/), exit 1 when any failed. */
export async function doctorCommand(flags: { api?: string; output?: string }): Promise<void> {
  const json = flags.output === 'json';
  let source: SettingsSource;
  try {
    source = resolveSettingsSource({ url: flags.api });
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    const failed: CheckResult = { check: 'settings', status: 'fail', detail: e.problems.join('; ') };
    console.log(json ? JSON.stringify({ ok: false, results: [failed] }, null, 2) : formatCheck(failed));
    throw new ExitCode(1);
  }
  const report = await runDoctor({
    env: source.env,
    source: source.source,
    api: { url: source.apiUrl, required: source.apiExplicit },
    onResult: json ? undefined : (r) => console.log(formatCheck(r)),
  });
  const failed = report.results.filter((r) => r.status === 'fail').length;
  const warned = report.results.filter((r) => r.status === 'warn').length;
  if (json) console.log(JSON.stringify({ ok: report.ok, results: report.results }, null, 2));
  else console.log(`\n${report.results.length} checks: ${failed} failed, ${warned} warning(s)`);
  if (!report.ok) throw new ExitCode(1);
}
