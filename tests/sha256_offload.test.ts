/**
 * Tests for shared/sha256_offload.ts: the worker-thread SHA-256 must equal
 * node:crypto's for every chunking, across many wrap-arounds of a small ring,
 * and the automatic choice must fall back to inline hashing for small streams.
 * Runs under `deno test` and `bun test`.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { InlineSha256, OFFLOAD_THRESHOLD, OffloadedSha256, streamSha256 } from "../shared/sha256_offload.ts";
import { seededRandom } from "../shared/rng.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

describe("OffloadedSha256", () => {
  test("equals createHash over random chunk sizes, wrapping a 64 KiB ring many times", async () => {
    const random = seededRandom(7);
    const hasher = await OffloadedSha256.start(64 * 1024);
    assert.equal(hasher.offloaded, true);
    const reference = createHash("sha256");
    const scratch = new Uint8Array(300_000);
    let total = 0;
    for (let i = 0; i < 400; i++) {
      const n = i % 50 === 0 ? 0 : Math.floor(random() * scratch.length);
      for (let j = 0; j < n; j += 997) scratch[j] = (i * 31 + j) & 0xff;
      const chunk = scratch.subarray(0, n);
      hasher.update(chunk);
      reference.update(chunk);
      total += n;
      scratch.fill(i & 0xff, 0, Math.min(n, 64)); // the caller may reuse its buffer at once
    }
    assert.ok(total > 40 * 64 * 1024, "the ring wrapped many times");
    assert.equal(hex(await hasher.digest()), reference.digest("hex"));
  });
  test("empty stream", async () => {
    const hasher = await OffloadedSha256.start(4096);
    assert.equal(hex(await hasher.digest()), createHash("sha256").digest("hex"));
  });
  test("cannot be used after digest or close", async () => {
    const hasher = await OffloadedSha256.start(4096);
    await hasher.digest();
    assert.throws(() => hasher.update(new Uint8Array(1)));
    hasher.close();
  });
});

describe("streamSha256", () => {
  test("small streams hash inline", async () => {
    const h = await streamSha256(OFFLOAD_THRESHOLD - 1);
    assert.equal(h.offloaded, false);
    assert.ok(h instanceof InlineSha256);
    h.update(new TextEncoder().encode("abc"));
    assert.equal(hex(await h.digest()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
  test("large streams hash on a worker", async () => {
    const h = await streamSha256(OFFLOAD_THRESHOLD);
    assert.equal(h.offloaded, true);
    h.update(new TextEncoder().encode("abc"));
    assert.equal(hex(await h.digest()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});
