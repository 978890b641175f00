import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type ServiceBusEmulator } from '../src';

/** The command line in-process, output captured; the emulator it starts is handed back, not left to signals. */
async function cli(...args: string[]): Promise<{ code: number | undefined; out: string; err: string; emulator?: ServiceBusEmulator }> {
  let out = '';
  let err = '';
  let emulator: ServiceBusEmulator | undefined;
  const code = await runCli(['node', 'servicebus-emulator', ...args], { out: (t) => void (out += t), err: (t) => void (err += t), started: (e) => void (emulator = e) });
  return { code, out, err, emulator };
}

const dir = mkdtempSync(join(tmpdir(), 'servicebus-emulator-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('servicebus-emulator command line', () => {
  it('serves the entities of a Config.json on the port given and prints the connection string', async () => {
    const config = join(dir, 'Config.json');
    writeFileSync(config, JSON.stringify({ UserConfig: { Namespaces: [{ Name: 'sbemulatorns', Queues: [{ Name: 'orders' }], Topics: [] }] } }));
    const { code, out, emulator } = await cli('--config', config, '--port', '0', '--key', 'Y2xpLXRlc3Qta2V5');
    expect(code).toBeUndefined();
    try {
      expect(out).toMatch(/namespace sbemulatorns: 1 queue\(s\), 0 topic\(s\)/);
      expect(out).toContain(`Endpoint=sb://127.0.0.1:${emulator!.port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=Y2xpLXRlc3Qta2V5;UseDevelopmentEmulator=true;`);
      const client = new ServiceBusClient(emulator!.connectionString);
      await client.createSender('orders').sendMessages({ body: 'from the CLI' });
      expect(emulator!.counts('orders').active).toBe(1);
      await client.close();
    } finally {
      await emulator?.close();
    }
  });

  it('names the Config.json field that is wrong and exits 1', async () => {
    const config = join(dir, 'bad.json');
    writeFileSync(config, JSON.stringify({ UserConfig: { Namespaces: [{ Name: 'ns', Queues: [{ Name: 'q', Properties: { LockDuration: 'one minute' } }] }] } }));
    const { code, err, emulator } = await cli('--config', config, '--port', '0');
    expect(emulator).toBeUndefined();
    expect(code).toBe(1);
    expect(err).toContain(`${config}: UserConfig.Namespaces.0.Queues.0.Properties.LockDuration: not an ISO 8601 duration`);
  });

  it('refuses a port that is not one', async () => {
    const { code, err } = await cli('--port', '70000');
    expect(code).toBe(1);
    expect(err).toContain("option '-p, --port <port>' argument '70000' is invalid. expected a port number from 0 to 65535");
  });

  it('the bin answers --help as a process, with no build step', () => {
    const run = spawnSync(process.execPath, [join(__dirname, '..', 'bin', 'servicebus-emulator.js'), '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('Usage: servicebus-emulator [options]');
    expect(run.stdout).toContain('--config <file>');
  });
});
