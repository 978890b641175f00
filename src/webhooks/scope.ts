/**
 * Webhook scope as ACR accepts it: `repository:tag`, either side with `*` wildcards (`web:*`,
 * `team/*:1.*`, `web:1.2`); a scope without a tag means `:latest` (`web` is `web:latest`); an empty
 * scope matches every event. `*` matches any run of characters, `/` included, so `team/*` covers
 * nested repositories.
 *
 * An event with no tag (a push or delete by digest) matches when its repository matches and the
 * scope's tag part is `*` (or the scope is empty): a scope naming one tag is about that tag.
 */

export class ScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScopeError';
  }
}

export interface Scope {
  all: boolean;
  repository: string;
  tag: string;
}

const REPOSITORY_PATTERN = /^[a-z0-9*]+([._/-]+[a-z0-9*]+|\*)*$/;
const TAG_PATTERN = /^[A-Za-z0-9_*][A-Za-z0-9._*-]{0,127}$/;

export function parseScope(scope: string | undefined): Scope {
  const text = (scope ?? '').trim();
  if (text === '') return { all: true, repository: '*', tag: '*' };
  const colon = text.lastIndexOf(':');
  const repository = colon >= 0 ? text.slice(0, colon) : text;
  const tag = colon >= 0 ? text.slice(colon + 1) : 'latest';
  if (!REPOSITORY_PATTERN.test(repository) || repository.length > 255) {
    throw new ScopeError(`scope "${text}": "${repository}" is not a repository name or pattern (lowercase a-z 0-9 . _ - / and * wildcards, e.g. team/web or team/*)`);
  }
  if (!TAG_PATTERN.test(tag)) throw new ScopeError(`scope "${text}": "${tag}" is not a tag or pattern (A-Z a-z 0-9 _ . - and * wildcards, e.g. 1.2 or 1.*)`);
  return { all: false, repository, tag };
}

export function scopeMatches(scope: string | Scope | undefined, repository: string, tag: string | undefined): boolean {
  const s = typeof scope === 'object' ? scope : parseScope(scope);
  if (s.all) return true;
  if (!wildcard(s.repository).test(repository)) return false;
  return tag === undefined ? s.tag === '*' : wildcard(s.tag).test(tag);
}

function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&')).join('.*')}$`);
}
