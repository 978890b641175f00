import { describe, expect, it } from 'vitest';
import { applyUpdate, CreateWebhookInput, newWebhook, publicView, UpdateWebhookInput, WebhookDefinition, WebhookDefinitionError } from '../../src/webhooks/definition';

const ctx = { regions: ['eastus', 'westeurope'], homeRegion: 'westus', allowPrivateTargets: false, now: new Date('2025-01-01T00:00:00Z') };
const input = (over: Record<string, unknown> = {}) => CreateWebhookInput.parse({ name: 'deployeast', region: 'eastus', serviceUri: 'https://hooks.example.com/deploy?token=abc', actions: ['push', 'delete', 'push'], ...over });

describe('webhook definitions', () => {
  it('fills defaults, generates a secret when none is given, and stores a valid document', () => {
    const { definition, generatedSecret } = newWebhook(input(), ctx);
    expect(definition).toMatchObject({ version: 1, name: 'deployeast', region: 'eastus', actions: ['delete', 'push'], scope: '', status: 'enabled', customHeaders: {}, createdAt: '2025-01-01T00:00:00.000Z' });
    expect(generatedSecret).toBe(definition.secret);
    expect(generatedSecret!.length).toBeGreaterThanOrEqual(40);
    expect(WebhookDefinition.parse(JSON.parse(JSON.stringify(definition)))).toEqual(definition);
    expect(newWebhook(input({ secret: 'my-own-secret-1234567' }), ctx).generatedSecret).toBeUndefined();
  });

  it('names are 5-50 letters and digits, as ACR has them', () => {
    for (const ok of ['abcde', 'Deploy01', 'a'.repeat(50)]) expect(CreateWebhookInput.safeParse({ ...input(), name: ok }).success).toBe(true);
    for (const bad of ['abcd', 'a'.repeat(51), 'deploy-east', 'deploy_east', 'déploy']) expect(CreateWebhookInput.safeParse({ ...input(), name: bad }).success).toBe(false);
  });

  it('belongs to a replica region, not the home region or an unknown one', () => {
    expect(() => newWebhook(input({ region: 'westus' }), ctx)).toThrow(/home region/);
    expect(() => newWebhook(input({ region: 'mars' }), ctx)).toThrow(WebhookDefinitionError);
  });

  it('refuses unsafe URIs, bad scopes, reserved headers and header values with line breaks', () => {
    expect(() => newWebhook(input({ serviceUri: 'http://169.254.169.254/' }), ctx)).toThrow(/serviceUri/);
    expect(() => newWebhook(input({ serviceUri: 'http://127.0.0.1:9000/' }), ctx)).toThrow(/GEOREG_WEBHOOK_ALLOW_PRIVATE/);
    expect(newWebhook(input({ serviceUri: 'http://127.0.0.1:9000/' }), { ...ctx, allowPrivateTargets: true }).definition.serviceUri).toBe('http://127.0.0.1:9000/');
    expect(CreateWebhookInput.safeParse({ ...input(), scope: 'Web' }).success).toBe(false);
    for (const headers of [{ Host: 'x' }, { 'Content-Length': '1' }, { 'x-georeg-signature': 'x' }, { 'Bad Header': 'x' }, { 'X-Ok': 'a\r\nInjected: 1' }]) {
      expect(CreateWebhookInput.safeParse({ ...input(), customHeaders: headers }).success, JSON.stringify(headers)).toBe(false);
    }
    expect(CreateWebhookInput.safeParse({ ...input(), customHeaders: { Authorization: 'Bearer x', 'Content-Type': 'text/plain' } }).success).toBe(true);
    expect(CreateWebhookInput.safeParse({ ...input(), unknownField: 1 }).success).toBe(false);
  });

  it('checks custom headers as Node sends them: no control characters or text outside Latin-1, values up to 4 KiB, at most 32 headers', () => {
    const refused = (customHeaders: Record<string, string>) => {
      const r = CreateWebhookInput.safeParse({ ...input(), customHeaders });
      return r.success ? undefined : r.error.issues.map((i) => i.message).join('; ');
    };
    expect(refused({ 'X-Token': 'a\x01b' })).toMatch(/X-Token.*character HTTP does not allow/);
    expect(refused({ 'X-Token': 'caf\u00e9 \u2603' })).toMatch(/character HTTP does not allow/);
    expect(refused({ 'X-Token': 'x'.repeat(4097) })).toMatch(/4097 bytes: at most 4096/);
    expect(refused({ 'X\u0001Bad': 'x' })).toMatch(/"X\\u0001Bad" is not a valid HTTP header name/);
    expect(refused(Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`X-H${i}`, 'v'])))).toMatch(/33 custom headers: at most 32/);
    // What Node sends is accepted: tabs, Latin-1 text, a value of exactly 4 KiB, 32 headers.
    expect(refused({ 'X-Token': 'a\tcaf\u00e9', 'X-Big': 'x'.repeat(4096) })).toBeUndefined();
    expect(refused(Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`X-H${i}`, 'v'])))).toBeUndefined();
  });

  it('updates only what is given, and rotates the secret on request', () => {
    const { definition } = newWebhook(input({ secret: 'original-secret-123456' }), ctx);
    const later = { ...ctx, now: new Date('2025-02-01T00:00:00Z') };
    const disabled = applyUpdate(definition, UpdateWebhookInput.parse({ status: 'disabled' }), later);
    expect(disabled).toMatchObject({ status: 'disabled', secret: 'original-secret-123456', serviceUri: definition.serviceUri, updatedAt: '2025-02-01T00:00:00.000Z', createdAt: definition.createdAt });
    const rotated = applyUpdate(definition, UpdateWebhookInput.parse({ rotateSecret: true }), { ...later, generatedSecret: 'rotated-secret-7654321' });
    expect(rotated.secret).toBe('rotated-secret-7654321');
    expect(() => applyUpdate(definition, UpdateWebhookInput.parse({ serviceUri: 'gopher://x' }), later)).toThrow(/scheme/);
    expect(UpdateWebhookInput.safeParse({ name: 'renamed' }).success).toBe(false);
  });

  it('shows no secret, masks header values and URI credentials', () => {
    const { definition } = newWebhook(input({ customHeaders: { Authorization: 'Bearer s3cr3t' }, serviceUri: 'https://u:p@hooks.example.com/x?token=abc' }), ctx);
    const view = publicView(definition);
    const text = JSON.stringify(view);
    expect(view).not.toHaveProperty('secret');
    expect(text).not.toContain(definition.secret);
    expect(text).not.toContain('s3cr3t');
    expect(text).not.toContain('abc');
    expect(view.customHeaders).toEqual({ Authorization: '***' });
  });
});
