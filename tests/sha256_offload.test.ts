/**
 * Tests for shared/sha256_offload.ts: the worker-thread SHA-256 must equal
 * node:crypto's for every chunking, across many wrap-arounds of a small ring,
 * and the automatic choice must fall back to inline hashing for small streams.
 * Runs under `deno test` and `bun test`.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { InlineHash, OFFLOAD_THRESHOLD, OffloadedSha256, streamSha256 } from "../shared/sha256_offload.ts";
import { seededRandom } from "../shared/rng.ts";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultHashWorkers, Sha256Offloader } from "../shared/sha256_offload.ts";
import { createContentHash, sha256Hash } from "../shared/digest.ts";
import { sendFileTcp } from "../tcp/send.ts";
import { serveTcp } from "../tcp/serve.ts";

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
    assert.ok(h instanceof InlineHash);
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

describe("Sha256Offloader", () => {
  test("never more workers than allowed; resumed state and small streams stay inline", async () => {
    const pool = new Sha256Offloader(1);
    const a = await pool.start(OFFLOAD_THRESHOLD);
    const b = await pool.start(OFFLOAD_THRESHOLD);
    assert.equal(a.offloaded, true);
    assert.equal(b.offloaded, false, "the only worker is busy");
    assert.equal(pool.busy, 1);
    await a.digest();
    assert.equal(pool.busy, 0, "released by digest()");
    const prefix = sha256Hash();
    prefix.update(new TextEncoder().encode("prefix"));
    const c = await pool.start(OFFLOAD_THRESHOLD, prefix);
    assert.equal(c.offloaded, false, "a resumed hash state cannot move to a worker");
    c.update(new TextEncoder().encode("rest"));
    assert.equal(hex(await c.digest()), createHash("sha256").update("prefixrest").digest("hex"));
    const d = await pool.start(OFFLOAD_THRESHOLD);
    d.close();
    assert.equal(pool.busy, 0, "released by close()");
    const fresh = await pool.start(OFFLOAD_THRESHOLD, sha256Hash());
    assert.equal(fresh.offloaded, true, "a fresh SHA-256 state may move to a worker");
    fresh.close();
    b.close();
    assert.equal((await new Sha256Offloader(0).start(1 << 30)).offloaded, false);
    const xxh = await pool.start(OFFLOAD_THRESHOLD, await createContentHash("xxh128"));
    assert.equal(xxh.offloaded, false, "another algorithm than SHA-256 stays inline");
    xxh.update(new TextEncoder().encode("abc"));
    assert.equal(hex(await xxh.digest()), "06b05ab6733a618578af5f94892f3950");
  });
  test("default: no workers below 4 cores", () => {
    assert.equal(defaultHashWorkers(1), 0);
    assert.equal(defaultHashWorkers(2), 0);
    assert.equal(defaultHashWorkers(4), 1);
    assert.equal(defaultHashWorkers(16), 7);
  });
  for (const psk of [undefined, new TextEncoder().encode("offload-test-key")]) {
    test(`framed TCP with hashing on workers at both ends${psk ? ", under a key (records tag the running digest, so it stays inline)" : ""}: intact`, async () => {
      const dir = fs.mkdtempSync(join(tmpdir(), "imgxfer-offload-"));
      try {
        const src = join(dir, "big.bin");
        const block = new Uint8Array(1 << 20);
        const fd = fs.openSync(src, "w");
        const random = seededRandom(3);
        for (let i = 0; i < 40; i++) {
          for (let j = 0; j < block.length; j += 4096) block[j] = Math.floor(random() * 256);
          fs.writeSync(fd, block);
        }
        fs.closeSync(fd);
        const out = join(dir, "out");
        fs.mkdirSync(out);
        const server = serveTcp({
          host: "127.0.0.1",
          port: 0,
          buffer: 65536,
          outDir: out,
          hashWorkers: 1,
          psk,
        });
        try {
          const summary = await sendFileTcp({
            host: "127.0.0.1",
            port: server.addr.port,
            file: src,
            buffer: 131072,
            hashWorkers: 1,
            psk,
          });
          assert.equal(summary.status, "success", summary.response);
          assert.equal(summary.verified, true);
          const expected = createHash("sha256").update(fs.readFileSync(src)).digest("hex");
          assert.equal(summary.sha256, expected);
          const saved = createHash("sha256").update(fs.readFileSync(join(out, "received_big.bin"))).digest(
            "hex",
          );
          assert.equal(saved, expected);
        } finally {
          await server.close();
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
