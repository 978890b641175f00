import { describe, expect, it } from 'vitest';
import { parseScope, scopeMatches, ScopeError } from '../../src/webhooks/scope';

describe('webhook scope (ACR semantics)', () => {
  const cases: Array<[string, string, string | undefined, boolean]> = [
    ['', 'any/repo', 'any', true],
    ['', 'any/repo', undefined, true],
    ['web:*', 'web', '1.2', true],
    ['web:*', 'web', undefined, true],
    ['web:*', 'web2', '1.2', false],
    ['web:1.2', 'web', '1.2', true],
    ['web:1.2', 'web', '1.20', false],
    ['web:1.2', 'web', '132', false], // the dot is literal
    ['web', 'web', 'latest', true],
    ['web', 'web', '1.2', false],
    ['web', 'web', undefined, false],
    ['web:1.*', 'web', '1.2.3', true],
    ['web:1.*', 'web', '2.0', false],
    ['team/*:*', 'team/web', 'x', true],
    ['team/*:*', 'team/a/b', 'x', true],
    ['team/*:*', 'other/web', 'x', false],
    ['*:latest', 'a/b/c', 'latest', true],
    ['*', 'anything', 'latest', true],
    ['*', 'anything', 'v1', false],
    ['team/web-*:v*', 'team/web-api', 'v3', true],
  ];
  for (const [scope, repository, tag, expected] of cases) {
    it(`"${scope}" ${expected ? 'matches' : 'does not match'} ${repository}${tag ? `:${tag}` : ' (no tag)'}`, () => {
      expect(scopeMatches(scope, repository, tag)).toBe(expected);
    });
  }

  it('parses repository and tag, defaulting the tag to latest', () => {
    expect(parseScope('web')).toEqual({ all: false, repository: 'web', tag: 'latest' });
    expect(parseScope('team/web:1.*')).toEqual({ all: false, repository: 'team/web', tag: '1.*' });
    expect(parseScope('  ')).toMatchObject({ all: true });
  });

  it('refuses what is neither a name nor a pattern, saying which part', () => {
    expect(() => parseScope('Web:1')).toThrow(ScopeError);
    expect(() => parseScope('web:.hidden')).toThrow(/tag/);
    expect(() => parseScope('web:a b')).toThrow(/tag/);
    expect(() => parseScope('/web')).toThrow(/repository/);
  });
});
