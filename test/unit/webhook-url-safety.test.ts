import { describe, expect, it } from 'vitest';
import { classifyAddress } from '../../src/common/address-safety';
import { checkServiceUri, redactUri, UnsafeTargetError } from '../../src/webhooks/url-safety';

describe('webhook target safety', () => {
  const classes: Array<[string, string]> = [
    ['8.8.8.8', 'public'],
    ['2606:4700::1111', 'public'],
    ['169.254.169.254', 'forbidden'],
    ['169.254.0.1', 'forbidden'],
    ['168.63.129.16', 'forbidden'],
    ['100.100.100.200', 'forbidden'],
    ['0.0.0.0', 'forbidden'],
    ['224.0.0.1', 'forbidden'],
    ['255.255.255.255', 'forbidden'],
    ['fe80::1', 'forbidden'],
    ['fd00:ec2::254', 'forbidden'],
    ['fd12:3456::1', 'forbidden'],
    ['::', 'forbidden'],
    ['ff02::1', 'forbidden'],
    ['::ffff:169.254.169.254', 'forbidden'],
    ['::ffff:a9fe:a9fe', 'forbidden'],
    ['64:ff9b::a9fe:a9fe', 'forbidden'],
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['fc00::1', 'private'],
  ];
  for (const [address, cls] of classes) {
    it(`${address} is ${cls}`, () => expect(classifyAddress(address).cls).toBe(cls));
  }

  it('accepts public http(s) URIs and drops the fragment', () => {
    expect(checkServiceUri('https://hooks.example.com/georeg?x=1#frag', false)).toBe('https://hooks.example.com/georeg?x=1');
    expect(checkServiceUri('http://8.8.8.8:8080/h', false)).toBe('http://8.8.8.8:8080/h');
  });

  it('refuses other schemes and non-URLs', () => {
    for (const uri of ['ftp://example.com/', 'file:///etc/passwd', 'javascript:alert(1)', 'gopher://x/', 'example.com/hook', '']) {
      expect(() => checkServiceUri(uri, true), uri).toThrow(UnsafeTargetError);
    }
  });

  it('refuses link-local and metadata targets even when private targets are allowed', () => {
    for (const uri of ['http://169.254.169.254/latest/meta-data', 'http://[fd00:ec2::254]/', 'http://[fe80::1]/', 'http://168.63.129.16/machine', 'http://[::ffff:169.254.169.254]/', 'http://0.0.0.0:7071/']) {
      expect(() => checkServiceUri(uri, true), uri).toThrow(/never sent there/);
    }
  });

  it('refuses private and loopback targets unless allowed, naming the setting', () => {
    for (const uri of ['http://127.0.0.1:8080/', 'http://10.0.0.5/', 'http://[::1]/', 'http://192.168.0.10/', 'http://localhost:3000/']) {
      expect(() => checkServiceUri(uri, false), uri).toThrow(/GEOREG_WEBHOOK_ALLOW_PRIVATE/);
      expect(checkServiceUri(uri, true)).toBe(new URL(uri).toString());
    }
  });

  it('redacts credentials and query values', () => {
    expect(redactUri('https://user:pass@hooks.example.com/a?token=abc&x=1')).toBe('https://***@hooks.example.com/a?token=***&x=***');
    expect(redactUri('https://hooks.example.com/a')).toBe('https://hooks.example.com/a');
  });
});
