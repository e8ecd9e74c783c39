/**
 * Content digests of a framed transfer: SHA-256 (the default, and the only
 * one under a key) or XXH3-128 (`--digest xxh128`), both incremental.
 *
 * SHA-256 is a cryptographic hash: its digest can be compared with a
 * published `sha256sum`, and a key's tags rely on it. XXH3-128 is rsync's
 * default transfer checksum since 3.2: a 128-bit non-cryptographic hash that
 * catches accidental corruption (bit flips, truncation, reordering) with a
 * chance of 2^-128 of missing it, at about 7-9 GB/s per core against
 * SHA-256's 1.8 GB/s here. Without a key neither stops an attacker who can
 * change the stream (they rewrite the trailer too), so XXH3-128 gives up
 * nothing a keyless transfer had, and it stops the digest from being the
 * transfer's bottleneck on small machines. XXH3-128 comes from the npm
 * package `hash-wasm` (WebAssembly), loaded only when asked for.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";

/** A digest algorithm a framed transfer can use. */
export type DigestName = "sha256" | "xxh128";

/** The digest algorithms, default first. */
export const DIGEST_NAMES: readonly DigestName[] = ["sha256", "xxh128"];

/** Size of a digest field on the wire; shorter digests are zero-padded to it. */
export const DIGEST_FIELD_SIZE = 32;

/** How people write the algorithm's name: `SHA-256`, `XXH3-128`. */
export function digestLabel(name: DigestName): string {
  return name === "sha256" ? "SHA-256" : "XXH3-128";
}

/** A running digest over bytes given in order. */
export interface ContentHash {
  /** Which algorithm this is. */
  readonly algorithm: DigestName;
  /** How many bytes were added so far. */
  readonly bytes: number;
  /** Adds `data`. */
  update(data: Uint8Array): void;
  /** The digest of the bytes added so far; hashing can go on. */
  peek(): Uint8Array;
  /** The digest of all the bytes; the hash is spent. */
  digest(): Uint8Array;
}

/** A SHA-256 {@linkcode ContentHash} (node:crypto, native on both runtimes). */
export function sha256Hash(): ContentHash {
  return new Sha256Hash(createHash("sha256"));
}

class Sha256Hash implements ContentHash {
  readonly algorithm = "sha256";
  bytes = 0;
  #hash: Hash;

  constructor(hash: Hash) {
    this.#hash = hash;
  }

  update(data: Uint8Array): void {
    this.#hash.update(data);
    this.bytes += data.length;
  }

  peek(): Uint8Array {
    return new Uint8Array(this.#hash.copy().digest());
  }

  digest(): Uint8Array {
    return new Uint8Array(this.#hash.digest());
  }
}

/** The part of hash-wasm's hasher this module uses. */
interface WasmHasher {
  update(data: Uint8Array): unknown;
  digest(outputType: "binary"): Uint8Array;
  save(): Uint8Array;
  load(state: Uint8Array): unknown;
}

class Xxh128Hash implements ContentHash {
  readonly algorithm = "xxh128";
  bytes = 0;
  #hasher: WasmHasher;
  #spent = false;

  constructor(hasher: WasmHasher) {
    this.#hasher = hasher;
  }

  update(data: Uint8Array): void {
    if (this.#spent) throw new Error("hash already finished");
    this.#hasher.update(data);
    this.bytes += data.length;
  }

  peek(): Uint8Array {
    if (this.#spent) throw new Error("hash already finished");
    const state = this.#hasher.save();
    const digest = this.#hasher.digest("binary");
    this.#hasher.load(state);
    return digest;
  }

  digest(): Uint8Array {
    if (this.#spent) throw new Error("hash already finished");
    this.#spent = true;
    return this.#hasher.digest("binary");
  }
}

/**
 * A new {@linkcode ContentHash} of `name`. XXH3-128 loads its WebAssembly
 * module on first use (a few milliseconds), so SHA-256 transfers never pay
 * for it.
 */
export async function createContentHash(name: DigestName): Promise<ContentHash> {
  if (name === "sha256") return sha256Hash();
  const { createXXHash128 } = await import("hash-wasm");
  const hasher = await createXXHash128();
  hasher.init();
  return new Xxh128Hash(hasher);
}

/**
 * `digest` as a {@linkcode DIGEST_FIELD_SIZE}-byte wire field: a SHA-256 as
 * it is, an XXH3-128 followed by 16 zero bytes.
 */
export function digestField(digest: Uint8Array): Uint8Array {
  if (digest.length === DIGEST_FIELD_SIZE) return digest;
  if (digest.length > DIGEST_FIELD_SIZE) {
    throw new RangeError(`a digest of ${digest.length} bytes is too long`);
  }
  const out = new Uint8Array(DIGEST_FIELD_SIZE);
  out.set(digest);
  return out;
}
