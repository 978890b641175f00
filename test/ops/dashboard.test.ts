import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startStack, type Stack } from '../support/stack';
import { pushCorruptImage, pushImage, settled } from '../support/pipeline';
import { startSubscriber, type Subscriber } from '../webhooks/subscriber';

/**
 * The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core, against
 * the local stack (Azurite, the Service Bus emulator, the local host). The page polls
 * /api/overview by itself; the test waits for what a person would see. With $GEOREG_SCREENSHOT set
 * (`npm run screenshot` writes docs/dashboard.png) a full-page screenshot goes there.
 */

/**
 * Debian's old headless shell (package chromium-headless-shell, built from the same chromium source)
 * when installed: the same Blink, without the full browser's processes, and about half the CPU
 * (this file's browser and Azurite: 2.7-2.8 CPU-s against 5.0-5.4 with /usr/bin/chromium). Else
 * the full browser in its headless mode.
 */
const CHROMIUM = process.env.GEOREG_CHROMIUM ?? ['/usr/bin/chromium-headless-shell', '/usr/bin/chromium'].find((p) => existsSync(p)) ?? '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps calling Google's hosts, which this
// machine's closed network refuses.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const REPLICAS = ['eastus', 'westeurope'];
const hasChromium = existsSync(CHROMIUM);

let stack: Stack;
let launching: Promise<BrowserContext> | undefined;
let browser: BrowserContext;
let page: Page;
let subscriber: Subscriber;
let profile: string;

const suite = hasChromium ? describe : describe.skip;
if (!hasChromium) console.warn(`test/ops/dashboard.test.ts skipped: no Chromium at ${CHROMIUM} (apt-get install chromium-headless-shell or chromium, or set GEOREG_CHROMIUM)`);

suite(`the dashboard in headless Chromium (${hasChromium ? CHROMIUM : `skipped: no Chromium executable at ${CHROMIUM}`})`, () => {
  beforeAll(async () => {
    // Chromium starts while the stack does: two processes, each mostly waiting on its own start.
    profile = mkdtempSync(join(tmpdir(), 'georeg-chromium-'));
    launching = chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1360, height: 1000 } });
    launching.catch(() => undefined); // awaited below; a failed stack start must not leave it unhandled
    stack = await startStack({ replicas: REPLICAS, httpPort: 0, log: silentLogger });
    subscriber = await startSubscriber();
    const hook = await fetch(`${stack.host.url}/api/webhooks`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...stack.adminHeaders },
      body: JSON.stringify({ name: 'deployeast', region: 'eastus', serviceUri: subscriber.url, actions: ['push'] }),
    });
    expect(hook.status).toBe(201);
    browser = await launching;
    page = browser.pages()[0] ?? (await browser.newPage());
  }, 120_000);

  afterAll(async () => {
    await launching?.then((b) => b.close(), () => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
    await subscriber?.close();
    await stack?.close();
  });

  const regionStatus = (region: string) => page.locator(`#regions tr[data-region="${region}"] td.status`).textContent();
  const pushState = (pushId: string, region: string) => page.locator(`#pushes tr[data-push="${pushId}"] li[data-region="${region}"]`).getAttribute('data-state', { timeout: 1000 }).catch(() => null);
  const deadLetterCount = (region: string) => page.locator(`#deadletters [data-queue="region:${region}"] [data-count="deadletters"]`).textContent({ timeout: 1000 }).catch(() => null);
  const regionDeadLettered = (region: string) => page.locator(`#regions tr[data-region="${region}"] [data-count="deadlettered"]`).textContent({ timeout: 1000 }).catch(() => null);

  it('shows every region Ready, then a push made now complete in every region, with its detail', async () => {
    // Refreshed every second (the default is 3 s): each wait below is for the page's next poll.
    await page.goto(`${stack.host.url}/api/dashboard?key=${encodeURIComponent(stack.settings.adminSecret!)}&every=1`);
    // The key is kept for the tab and taken out of the address.
    expect(new URL(page.url()).search).toBe('?every=1');
    await expect.poll(() => page.locator('#refresh').textContent(), { timeout: 20_000 }).toMatch(/every 1 s$/);
    for (const region of ['westus', ...REPLICAS]) await expect.poll(() => regionStatus(region), { timeout: 20_000 }).toContain('Ready');

    const image = generated('dash/web', '1.0', { generate: { layers: 3, layerSize: 64 * 1024 }, seed: 'dash-web' });
    const p = await pushImage(stack, image);
    for (const region of REPLICAS) await expect.poll(() => pushState(p.pushId, region), { timeout: 30_000 }).toBe('complete');
    await expect.poll(() => page.locator(`#pushes tr[data-push="${p.pushId}"] th`).textContent(), { timeout: 10_000 }).toBe('dash/web:1.0');

    // By keyboard: the button keeps its focus across the page's next redraw.
    await page.locator(`#pushes tr[data-push="${p.pushId}"] button`).focus();
    await page.keyboard.press('Enter');
    const details = page.locator(`#d-${p.pushId}`);
    await expect.poll(() => details.locator('tbody tr').count(), { timeout: 10_000 }).toBe(REPLICAS.length);
    const updated = await page.locator('#refresh').textContent();
    await expect.poll(() => page.locator('#refresh').textContent(), { timeout: 15_000 }).not.toBe(updated);
    expect(await page.evaluate('document.activeElement && document.activeElement.dataset.key')).toBe(`details:${p.pushId}`);
    // 3 layers, the config and the manifest: all missing, all copied.
    expect(await details.locator('tbody tr').first().locator('td').nth(1).textContent()).toBe('5 of 5 planned');
    await expect.poll(() => page.locator('#webhooks tr[data-webhook="deployeast"] td').nth(2).textContent(), { timeout: 20_000 }).toBe('1');
    await expect.poll(() => page.locator('#latency figure[data-region="eastus"] figcaption').textContent(), { timeout: 10_000 }).toContain('completed push');
  });

  it('shows a dead-lettered job with its reason; redrive after the repair completes it and the count drops to 0', async () => {
    const { image, pushId, bad, repair } = await pushCorruptImage(stack, 'dash/broken', 'dash-broken');
    await settled(stack, pushId, REPLICAS);

    for (const region of REPLICAS) {
      await expect.poll(() => deadLetterCount(region), { timeout: 20_000 }).toBe('1');
      await expect.poll(() => pushState(pushId, region), { timeout: 10_000 }).toBe('failed');
    }
    // Each panel redraws from its own call on the page's next poll: wait for each, not just the count above.
    const row = page.locator(`#deadletters [data-queue="region:eastus"] tr[data-job="${pushId}:eastus"]`);
    const cell = (n: number) => row.locator('td').nth(n).textContent({ timeout: 1000 }).catch(() => null);
    await expect.poll(() => cell(1), { timeout: 10_000 }).toBe('DigestMismatch');
    await expect.poll(() => cell(2), { timeout: 10_000 }).toContain(bad.digest);
    await expect.poll(() => regionDeadLettered('eastus'), { timeout: 10_000 }).toBe('1');
    await saveScreenshot();

    await repair();
    for (const region of REPLICAS) {
      await page.getByRole('button', { name: `Redrive ${pushId}:${region}` }).click();
      await expect.poll(() => page.locator('#action-result').textContent(), { timeout: 15_000 }).toContain(`sent again as ${pushId}:${region}:redrive:1`);
    }
    for (const region of REPLICAS) {
      await expect.poll(() => pushState(pushId, region), { timeout: 30_000 }).toBe('complete');
      await expect.poll(() => deadLetterCount(region), { timeout: 20_000 }).toBe('0');
      await expect.poll(() => regionDeadLettered(region), { timeout: 20_000 }).toBe('0');
    }
    const eastus = stack.runtime.regions.get('eastus')!;
    expect(await eastus.readLink({ kind: 'tagCurrent', repository: 'dash/broken', tag: '1' })).toBe(image.manifests[0].digest);
  }, 120_000);

  it('asks for the key when the page has none, and the data calls refuse without it', async () => {
    const fresh = await browser.newPage();
    try {
      // A new tab has its own session storage: no key.
      await fresh.goto(`${stack.host.url}/api/dashboard`);
      await expect.poll(() => fresh.locator('#auth').textContent(), { timeout: 10_000 }).toContain('?key=');
      expect(await fresh.locator('#auth').isVisible()).toBe(true);
      expect((await fetch(`${stack.host.url}/api/overview`)).status).toBe(401);
    } finally {
      await fresh.close();
    }
  });
});

/** Only when asked for: rendering and encoding the full page cost the test run most of a second of Chromium's CPU. */
async function saveScreenshot(): Promise<void> {
  if (!process.env.GEOREG_SCREENSHOT) return;
  const path = resolve(process.env.GEOREG_SCREENSHOT);
  mkdirSync(dirname(path), { recursive: true });
  await page.screenshot({ path, fullPage: true });
}
