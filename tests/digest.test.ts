/**
 * The content digests (shared/digest.ts) and the session flag that picks
 * XXH3-128: known vectors from `xxhsum -H2` (xxHash 0.8.1) and `sha256sum`,
 * streaming in uneven pieces equal to one pass, `peek()` leaving the hash
 * going, the 32-byte wire field, `--digest` parsing, and the flag rules
 * (never XXH3-128 under a key).
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { parseDigest } from "../shared/cli.ts";
import { CliError } from "../shared/errors.ts";
import {
  type ContentHash,
  createContentHash,
  DIGEST_FIELD_SIZE,
  DIGEST_NAMES,
  digestField,
  digestLabel,
  type DigestName,
} from "../shared/digest.ts";
import {
  encodeSessionRequest,
  parseFramedRequest,
  ProtocolError,
  SESSION_NONCE_SIZE,
  sessionDigest,
  SessionFlags,
  toHex,
} from "../shared/protocol.ts";
import { seededRandom } from "../shared/rng.ts";
import { SAMPLE, seededBytes } from "./helpers.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** Vectors computed outside this code: `xxhsum -H2 FILE` (xxHash 0.8.1) and `sha256sum FILE`. */
const VECTORS: Record<DigestName, { empty: string; abc: string; sample: string; seeded: string }> = {
  xxh128: {
    empty: "99aa06d3014798d86001c324468d497f",
    abc: "06b05ab6733a618578af5f94892f3950",
    sample: "805c80258b7db7f642b972d78568e98c",
    seeded: "3b79fc8baa13fa631536337a9bb021f2",
  },
  sha256: {
    empty: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    abc: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    sample: "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
    seeded: "788ea1ddd698abe2189d079e089e15ea52e637cd7e271a070e9e6e300a12967c",
  },
};
/** The seeded file the `seeded` vectors are of: `seededBytes(3 MiB + 5, 7)`. */
const SEEDED = seededBytes((3 << 20) + 5, 7);

async function hashOf(name: DigestName, ...pieces: Uint8Array[]): Promise<string> {
  const h = await createContentHash(name);
  for (const p of pieces) h.update(p);
  return toHex(h.digest());
}

/** Feeds `bytes` to `h` in random pieces of 0-70,000 bytes. */
function feedUnevenly(h: ContentHash, bytes: Uint8Array, seed: number): void {
  const rng = seededRandom(seed);
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(bytes.length - at, Math.floor(rng() * 70_000));
    h.update(bytes.subarray(at, at + n));
    at += n;
  }
}

describe("content digests", () => {
  for (const name of DIGEST_NAMES) {
    test(`${name}: known vectors, in one pass and in uneven pieces`, async () => {
      const v = VECTORS[name];
      assert.equal(await hashOf(name), v.empty);
      assert.equal(await hashOf(name, text("abc")), v.abc);
      assert.equal(await hashOf(name, text("a"), text(""), text("bc")), v.abc);
      assert.equal(await hashOf(name, SEEDED), v.seeded);
      for (const seed of [1, 2, 3]) {
        const h = await createContentHash(name);
        feedUnevenly(h, SEEDED, seed);
        assert.equal(toHex(h.digest()), v.seeded, `seed ${seed}`);
      }
      assert.equal(await hashOf(name, new Uint8Array(fs.readFileSync(SAMPLE))), v.sample);
    });

    test(`${name}: peek() gives the digest so far and the hash goes on; a spent hash says so`, async () => {
      const h = await createContentHash(name);
      assert.equal(h.algorithm, name);
      h.update(text("a"));
      assert.equal(toHex(h.peek()), await hashOf(name, text("a")));
      assert.equal(toHex(h.peek()), await hashOf(name, text("a")), "peek twice");
      h.update(text("bc"));
      assert.equal(toHex(h.digest()), VECTORS[name].abc);
      if (name === "xxh128") {
        assert.throws(() => h.update(text("x")), /already finished/);
        assert.throws(() => h.digest(), /already finished/);
      }
    });
  }

  test("two XXH3-128 hashes at once do not share state", async () => {
    const a = await createContentHash("xxh128");
    const b = await createContentHash("xxh128");
    a.update(text("a"));
    b.update(SEEDED);
    a.update(text("bc"));
    assert.equal(toHex(a.digest()), VECTORS.xxh128.abc);
    assert.equal(toHex(b.digest()), VECTORS.xxh128.seeded);
  });

  test("digestField: SHA-256 as it is, XXH3-128 zero-padded to 32 bytes", async () => {
    const sha = (await createContentHash("sha256")).digest();
    assert.equal(digestField(sha), sha);
    const xxh = (await createContentHash("xxh128")).digest();
    const field = digestField(xxh);
    assert.equal(field.length, DIGEST_FIELD_SIZE);
    assert.deepEqual(field.subarray(0, 16), xxh);
    assert.deepEqual(field.subarray(16), new Uint8Array(16));
    assert.throws(() => digestField(new Uint8Array(33)), RangeError);
    assert.equal(digestLabel("sha256"), "SHA-256");
    assert.equal(digestLabel("xxh128"), "XXH3-128");
  });

  test("--digest: sha256 or xxh128 (any case), anything else is a usage error (exit 2)", () => {
    assert.equal(parseDigest("sha256"), "sha256");
    assert.equal(parseDigest("XXH128"), "xxh128");
    for (const bad of ["md5", "", "xxh3", "sha-256"]) {
      assert.throws(() => parseDigest(bad), (e: unknown) => {
        assert.ok(e instanceof CliError);
        assert.equal(e.exitCode, 2);
        assert.match(e.message, /--digest must be sha256 or xxh128/);
        return true;
      });
    }
  });
});

describe("session flag XXH128", () => {
  const nonce = new Uint8Array(SESSION_NONCE_SIZE);
  const request = (flags: number) => ({ name: "a.bin", size: 10, flags, clientNonce: nonce });

  test("round-trips and names the digest; absent means SHA-256", () => {
    const encoded = encodeSessionRequest(request(SessionFlags.XXH128 | SessionFlags.RESUME));
    const parsed = parseFramedRequest(encoded);
    assert.ok("value" in parsed);
    assert.equal(parsed.value.flags, SessionFlags.XXH128 | SessionFlags.RESUME);
    assert.equal(sessionDigest(parsed.value.flags), "xxh128");
    assert.equal(sessionDigest(SessionFlags.RESUME), "sha256");
    assert.equal(sessionDigest(0), "sha256");
  });

  test("never together with KEY: refused when encoding and when parsing", () => {
    const both = SessionFlags.KEY | SessionFlags.XXH128;
    assert.throws(() => encodeSessionRequest(request(both)), /keyed session must use SHA-256/);
    const encoded = encodeSessionRequest(request(SessionFlags.KEY));
    encoded[20] = both;
    assert.throws(() => parseFramedRequest(encoded), (e: unknown) => {
      assert.ok(e instanceof ProtocolError);
      assert.match(e.message, /keyed session must use SHA-256/);
      return true;
    });
    encoded[20] = 0x08;
    assert.throws(() => parseFramedRequest(encoded), /unknown flags 8/);
  });
});
