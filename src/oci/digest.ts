import { createHash, type Hash } from 'node:crypto';
import { z } from 'zod';

/**
 * Content digests as the OCI image spec defines them: `<algorithm>:<encoded>`. Distribution stores
 * sha256 (the default) and accepts sha384/sha512; the encoded part is lowercase hex of fixed length.
 */
const HEX_LENGTH = { sha256: 64, sha384: 96, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof HEX_LENGTH;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

export class InvalidDigestError extends Error {
  constructor(readonly input: string, reason: string) {
    super(`invalid digest ${JSON.stringify(input)}: ${reason} (expected e.g. sha256:<64 lowercase hex>)`);
    this.name = 'InvalidDigestError';
  }
}

export function parseDigest(input: string): ParsedDigest {
  const colon = input.indexOf(':');
  if (colon < 0) throw new InvalidDigestError(input, 'no algorithm prefix');
  const algorithm = input.slice(0, colon);
  const hex = input.slice(colon + 1);
  if (!(algorithm in HEX_LENGTH)) {
    throw new InvalidDigestError(input, `unsupported algorithm "${algorithm}" (sha256, sha384, sha512)`);
  }
  const length = HEX_LENGTH[algorithm as DigestAlgorithm];
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    throw new InvalidDigestError(input, `${algorithm} needs ${length} lowercase hex characters`);
  }
  return { algorithm: algorithm as DigestAlgorithm, hex };
}

export function isDigest(input: string): boolean {
  try {
    parseDigest(input);
    return true;
  } catch {
    return false;
  }
}

/** A digest string, validated; use at every edge where a digest arrives from outside. */
export const DigestSchema = z.string().refine(isDigest, { message: 'not a valid digest (sha256:<64 lowercase hex>)' });
export type Digest = z.infer<typeof DigestSchema>;

export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Incremental digest for streamed content. */
export class Digester {
  private readonly hash: Hash;
  private bytes = 0;
  constructor(readonly algorithm: DigestAlgorithm = 'sha256') {
    this.hash = createHash(algorithm);
  }
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }
  get size(): number {
    return this.bytes;
  }
  digest(): string {
    return `${this.algorithm}:${this.hash.digest('hex')}`;
  }
}

export class DigestMismatchError extends Error {
  constructor(readonly expected: string, readonly actual: string, where: string) {
    super(`digest mismatch for ${expected} at ${where}: content hashes to ${actual}`);
    this.name = 'DigestMismatchError';
  }
}

/** Throws DigestMismatchError unless `data` hashes to `expected`. */
export function verifyDigest(expected: string, data: Uint8Array, where: string): void {
  const { algorithm } = parseDigest(expected);
  const actual = digestOf(data, algorithm);
  if (actual !== expected) throw new DigestMismatchError(expected, actual, where);
}
