import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Shared access signature checks, one place for both doors into the emulator: the AMQP `$cbs`
 * put-token and the `Authorization` header of the ATOM administration API.
 */

export interface SasKey {
  keyName: string;
  key: string;
}

/**
 * Why a `SharedAccessSignature sr=..&sig=..&se=..&skn=..` token is refused, as Azure words it
 * (`InvalidSignature: ...`, `ExpiredToken: ...`), or undefined when it is good.
 * The signature covers `sr` exactly as written in the token: core-amqp percent-encodes it in upper
 * case, the administration client in lower case, so it is not decoded and re-encoded here.
 */
export function sasTokenProblem(token: string | undefined, sas: SasKey): string | undefined {
  if (!token) return 'MissingToken: The request has no SharedAccessSignature token.';
  if (!token.startsWith('SharedAccessSignature ')) return 'InvalidSignature: The token is not a SharedAccessSignature.';
  const raw = rawFields(token.slice('SharedAccessSignature '.length));
  const { sr, sig, se, skn } = raw;
  if (!sr || !sig || !se || !skn) return 'InvalidSignature: The token is missing sr, sig, se or skn.';
  const keyName = decoded(skn);
  const signature = decoded(sig);
  if (keyName === undefined || signature === undefined || decoded(sr) === undefined) return 'InvalidSignature: The token is not correctly percent-encoded (sr, sig and skn are URL-encoded).';
  if (keyName !== sas.keyName) return `InvalidSignature: The key name '${keyName}' is not known to this namespace.`;
  if (!/^\d+$/.test(se)) return `InvalidSignature: The token's expiry (se) is not a number of seconds.`;
  if (Number(se) * 1000 < Date.now()) return 'ExpiredToken: The token has expired.';
  const expected = Buffer.from(createHmac('sha256', sas.key).update(`${sr}\n${se}`).digest('base64'));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'InvalidSignature: The token has an invalid signature.';
  return undefined;
}

/** The token's audience (`sr`), decoded: a URL or `sb://host/path` the token is good for. */
export function sasAudience(token: string): string | undefined {
  const sr = rawFields(token.replace(/^SharedAccessSignature /, '')).sr;
  return sr === undefined ? undefined : decoded(sr);
}

/** A percent-encoded field, or undefined when its encoding is broken (`%zz`): a refusal, not a crash. */
function decoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

function rawFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split('&')) {
    const at = pair.indexOf('=');
    if (at > 0) out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

/** A new random namespace key (32 bytes, base64), as Azure generates one. */
export function newKey(): string {
  return randomBytes(32).toString('base64');
}
