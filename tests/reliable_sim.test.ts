/**
 * Property-style tests of reliable UDP through the deterministic simulated
 * network of tests/sim.ts: for many seeds, chunk sizes and impairment mixes
 * (random and burst loss up to 30% each way, duplication, reordering, delay
 * and jitter, a rate limit with a small queue, corruption) the file arrives
 * intact and both sides agree it did. Plus edge sizes, a corrupted stored
 * chunk, determinism, and goodput under loss. Virtual time only: the
 * assertions do not depend on the machine's speed. Runs under `deno test`
 * and `bun test`.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ReliableStatus } from "../shared/protocol_reliable.ts";
import type { ImpairmentConfig } from "../udp/impairment.ts";
import { type SimOptions, type SimResult, simulateTransfer } from "./sim.ts";

type Impair = Partial<ImpairmentConfig>;

interface Mix {
  name: string;
  forward: Impair;
  backward: Impair;
  /** Evidence that the impairment really happened in a run (the ACK direction carries few datagrams). */
  applied: (r: SimResult) => boolean;
}

const lossy = (r: SimResult) => r.forward.lost > 0;

const MIXES: Mix[] = [
  { name: "random loss 10% each way", forward: { loss: 0.1 }, backward: { loss: 0.1 }, applied: lossy },
  { name: "random loss 30% each way", forward: { loss: 0.3 }, backward: { loss: 0.3 }, applied: lossy },
  {
    name: "burst loss (Gilbert-Elliott) each way",
    forward: { loss: 0.03, burstEnter: 0.02, burstExit: 0.25, burstLoss: 0.8 },
    backward: { loss: 0.03, burstEnter: 0.02, burstExit: 0.25, burstLoss: 0.8 },
    applied: lossy,
  },
  {
    name: "duplication 25% with 5% loss",
    forward: { dup: 0.25, loss: 0.05 },
    backward: { dup: 0.25, loss: 0.05 },
    applied: (r) => r.forward.duplicated > 0,
  },
  {
    name: "reordering 25%",
    forward: { reorder: 0.25, reorderMs: 10, delayMs: 2 },
    backward: { reorder: 0.25, reorderMs: 10, delayMs: 2 },
    applied: (r) => r.forward.reordered > 0,
  },
  {
    name: "delay 20 ms, jitter 15 ms, 10% loss",
    forward: { delayMs: 20, jitterMs: 15, loss: 0.1 },
    backward: { delayMs: 20, jitterMs: 15, loss: 0.1 },
    applied: lossy,
  },
  {
    name: "20 Mbit/s with a 16 KB queue",
    forward: { rateMbit: 20, queueBytes: 16 * 1024, delayMs: 5 },
    backward: { delayMs: 5 },
    applied: (r) => r.forward.queueDrops > 0,
  },
  {
    name: "corruption 15% with 5% loss",
    forward: { corrupt: 0.15, loss: 0.05 },
    backward: { corrupt: 0.15, loss: 0.05 },
    applied: (r) => r.forward.corrupted > 0,
  },
  {
    name: "30% loss forward only",
    forward: { loss: 0.3, delayMs: 3 },
    backward: { delayMs: 3 },
    applied: (r) => r.forward.lost > 0 && r.backward.lost === 0,
  },
  {
    name: "30% loss backward only (ACKs)",
    forward: { delayMs: 3 },
    backward: { loss: 0.3, delayMs: 3 },
    applied: (r) => r.forward.lost === 0 && r.backward.lost > 0,
  },
  {
    name: "everything at once",
    forward: {
      loss: 0.1,
      burstEnter: 0.01,
      burstExit: 0.3,
      burstLoss: 0.7,
      dup: 0.1,
      reorder: 0.1,
      reorderMs: 6,
      delayMs: 4,
      jitterMs: 4,
      rateMbit: 50,
      queueBytes: 32 * 1024,
      corrupt: 0.05,
    },
    backward: { loss: 0.1, dup: 0.1, reorder: 0.1, reorderMs: 6, delayMs: 4, jitterMs: 4, corrupt: 0.05 },
    applied: (r) => lossy(r) && r.forward.duplicated + r.forward.reordered + r.forward.corrupted > 0,
  },
];

const CHUNK_SIZES = [512, 1400, 4096];
const SEEDS_PER_CASE = 4;

function describeEnd(r: SimResult): string {
  const s = r.sender;
  const what = s === undefined
    ? "no sender outcome"
    : s.type === "failed"
    ? `sender failed: ${s.reason}`
    : s.type === "done"
    ? `sender done ok=${s.ok} status=${s.status}`
    : s.type;
  return `${what}; receiver ${r.receiver}; identical ${r.identical}; t=${r.timeMs.toFixed(1)} ms; ` +
    `${r.steps} steps; sender ${JSON.stringify(r.senderStats)}`;
}

/** The properties every successful transfer has. */
function assertDelivered(r: SimResult, options: SimOptions): void {
  const context = `${JSON.stringify(options)}: ${describeEnd(r)}`;
  assert.equal(r.identical, true, `output differs from input: ${context}`);
  assert.ok(r.sender?.type === "done", `sender did not finish with done: ${context}`);
  assert.equal(r.sender.ok, true, `sender's verdict is not ok: ${context}`);
  assert.equal(r.sender.status, ReliableStatus.OK, context);
  assert.equal(r.sender.bytes, options.size, context);
  assert.equal(r.receiver, "done-ok", `receiver outcome: ${context}`);
  assert.equal(r.senderStats.bytesAcked, options.size, `every byte acknowledged once: ${context}`);
  assert.equal(
    r.receiverStats.chunks,
    Math.ceil(options.size / options.chunkSize),
    `chunks stored once: ${context}`,
  );
  assert.ok(r.senderStats.dataSent >= r.receiverStats.chunks, context);
}

// ------------------------------------------------------- the matrix ----

describe("reliable UDP through impaired links: output identical, both sides agree", () => {
  MIXES.forEach((mix, m) => {
    for (const chunkSize of CHUNK_SIZES) {
      for (let k = 0; k < SEEDS_PER_CASE; k++) {
        const seed = 1000 * (m + 1) + 10 * k + (chunkSize % 7);
        const size = 200_000 + ((seed * 7919) % 100_000); // 200-300 KB, rarely a whole number of chunks
        const lateDigest = k % 2 === 1;
        test(`${mix.name}, ${chunkSize}-byte chunks, seed ${seed}, ${size} bytes${lateDigest ? ", late digest" : ""}`, () => {
          const options: SimOptions = {
            size,
            chunkSize,
            seed,
            forward: mix.forward,
            backward: mix.backward,
            lateDigest,
          };
          const r = simulateTransfer(options);
          assertDelivered(r, options);
          assert.ok(
            mix.applied(r),
            `the impairment did not show: ${JSON.stringify([r.forward, r.backward])}`,
          );
        });
      }
    }
  });
});

// ------------------------------------------------------------ sizes ----

describe("edge sizes", () => {
  const lossyLink: Impair = { loss: 0.2, dup: 0.1, reorder: 0.1, reorderMs: 5, delayMs: 3, corrupt: 0.05 };
  for (const chunkSize of CHUNK_SIZES) {
    for (
      const [label, size] of [["empty", 0], ["1 byte", 1], ["one chunk", chunkSize], [
        "one chunk + 1",
        chunkSize + 1,
      ]] as const
    ) {
      for (const impaired of [false, true]) {
        test(`${label} (${size} bytes), ${chunkSize}-byte chunks, ${impaired ? "lossy" : "clean"} link`, () => {
          const options: SimOptions = {
            size,
            chunkSize,
            seed: 77 + size + (impaired ? 1 : 0),
            forward: impaired ? lossyLink : {},
            backward: impaired ? lossyLink : {},
            lateDigest: impaired,
          };
          const r = simulateTransfer(options);
          assertDelivered(r, options);
          if (!impaired) {
            // A clean link needs no repair at all.
            assert.equal(r.senderStats.retransmitted, 0);
            assert.equal(r.senderStats.dataSent, Math.ceil(size / chunkSize));
            assert.equal(r.receiverStats.duplicates, 0);
          }
          if (size === 0) assert.equal(r.senderStats.dataSent, 0, "an empty file sends no DATA");
        });
      }
    }
  }
});

// -------------------------------------------------- digest mismatch ----

describe("a corrupted stored chunk is detected", () => {
  const cases: Array<[string, SimOptions]> = [
    ["first chunk, clean link", { size: 100_000, chunkSize: 1400, seed: 5, corruptStoredChunk: 0 }],
    ["middle chunk, lossy link", {
      size: 250_000,
      chunkSize: 4096,
      seed: 6,
      corruptStoredChunk: 30,
      forward: { loss: 0.1 },
      backward: { loss: 0.1 },
    }],
    ["last chunk, late digest", {
      size: 30_001,
      chunkSize: 512,
      seed: 7,
      corruptStoredChunk: 58,
      lateDigest: true,
      forward: { dup: 0.1, reorder: 0.1 },
    }],
  ];
  for (const [name, options] of cases) {
    test(name, () => {
      const r = simulateTransfer(options);
      const context = describeEnd(r);
      assert.equal(r.receiver, "done-mismatch", context);
      assert.ok(r.sender?.type === "done", context);
      assert.equal(r.sender.ok, false, `the sender must not report success: ${context}`);
      assert.equal(r.sender.status, ReliableStatus.DIGEST_MISMATCH, context);
      assert.equal(r.identical, false);
      // The digest the receiver reports is not the file's.
      const clean = simulateTransfer({ ...options, corruptStoredChunk: undefined });
      assert.ok(clean.sender?.type === "done" && clean.sender.ok, describeEnd(clean));
      assert.notDeepEqual(r.sender.digest, clean.sender.digest);
    });
  }
});

// ------------------------------------------------------ determinism ----

describe("determinism", () => {
  test("the same seed gives identical runs; another seed gives another run", () => {
    const options: SimOptions = {
      size: 300_000,
      chunkSize: 1400,
      seed: 4242,
      forward: { loss: 0.15, dup: 0.05, reorder: 0.1, reorderMs: 5, delayMs: 3, jitterMs: 2, corrupt: 0.02 },
      backward: { loss: 0.15, delayMs: 3, jitterMs: 2 },
      lateDigest: true,
    };
    const a = simulateTransfer(options);
    const b = simulateTransfer(options);
    assertDelivered(a, options);
    assert.deepEqual(b.senderStats, a.senderStats);
    assert.deepEqual(b.receiverStats, a.receiverStats);
    assert.deepEqual(b.forward, a.forward);
    assert.deepEqual(b.backward, a.backward);
    assert.equal(b.timeMs, a.timeMs);
    assert.equal(b.steps, a.steps);
    assert.deepEqual(b.sender, a.sender);
    assert.equal(b.receiver, a.receiver);
    const c = simulateTransfer({ ...options, seed: 4243 });
    assertDelivered(c, { ...options, seed: 4243 });
    assert.notDeepEqual(
      [c.senderStats, c.forward, c.backward, c.timeMs],
      [a.senderStats, a.forward, a.backward, a.timeMs],
      "the seed must matter",
    );
  });
});

// ----------------------------------------------------------- goodput ----

describe("goodput under loss", () => {
  // A 20 Mbit/s bottleneck with a 32 KB queue, 5 ms each way; 2 MB files, so
  // that the steady state, not the handshake, sets the time. Goodput with 5%
  // random loss each way must be at least half of the loss-free goodput on
  // the same link (virtual time: this is a property of the protocol).
  const size = 2_000_000;
  const link: Impair = { rateMbit: 20, queueBytes: 32 * 1024, delayMs: 5 };
  for (const chunkSize of CHUNK_SIZES) {
    for (let seed = 1; seed <= 6; seed++) {
      test(`${chunkSize}-byte chunks, seed ${seed}`, () => {
        const clean: SimOptions = { size, chunkSize, seed, forward: link, backward: { delayMs: 5 } };
        const lossyRun: SimOptions = {
          size,
          chunkSize,
          seed,
          forward: { ...link, loss: 0.05 },
          backward: { delayMs: 5, loss: 0.05 },
        };
        const a = simulateTransfer(clean);
        const b = simulateTransfer(lossyRun);
        assertDelivered(a, clean);
        assertDelivered(b, lossyRun);
        assert.ok(b.forward.lost > 0);
        const cleanGoodput = size / a.timeMs; // bytes per virtual ms
        const lossyGoodput = size / b.timeMs;
        // Sanity: the clean run uses the link well (20 Mbit/s = 2500 bytes/ms).
        assert.ok(cleanGoodput > 0.5 * 2500, `clean goodput ${cleanGoodput.toFixed(0)} B/ms`);
        assert.ok(
          lossyGoodput >= 0.5 * cleanGoodput,
          `5% loss: ${lossyGoodput.toFixed(0)} B/ms (${b.timeMs.toFixed(0)} ms) vs ` +
            `${cleanGoodput.toFixed(0)} B/ms (${a.timeMs.toFixed(0)} ms) without loss; ratio ` +
            `${(lossyGoodput / cleanGoodput).toFixed(2)}; ${describeEnd(b)}`,
        );
      });
    }
  }
});

// ------------------------------------------------------- termination ----

describe("termination", () => {
  test("a transfer that loses every ACK for 15 s ends with an outcome instead of spinning at one instant", () => {
    // 30% random loss each way; this seed loses every ACK after t ≈ 2910 ms, so
    // the sender must give up at its 15 s idle timeout (t ≈ 17910 ms). The
    // simulator advances to the time pollTimeout() names and calls
    // handleTimeout() there; the timeout must fire at that time.
    const options: SimOptions = {
      size: 200_000,
      chunkSize: 1400,
      seed: 8,
      forward: { loss: 0.3 },
      backward: { loss: 0.3 },
      lateDigest: true,
    };
    const r = simulateTransfer(options);
    assert.ok(r.steps < 100_000, `${r.steps} simulation steps, stuck at t=${r.timeMs} ms: ${describeEnd(r)}`);
    assert.ok(r.sender !== undefined, describeEnd(r));
  });

  test("with no receiver at all, the sender gives up at the handshake timeout", () => {
    const r = simulateTransfer({
      size: 10_000,
      chunkSize: 1000,
      seed: 3,
      forward: { loss: 1 },
      sender: { handshakeTimeoutMs: 4000 },
    });
    assert.ok(r.sender?.type === "failed", describeEnd(r));
    assert.match(r.sender.reason, /no answer/);
    assert.equal(r.receiver, "none");
    assert.equal(r.timeMs, 4000);
    assert.ok(r.senderStats.datagramsSent >= 4, "HELLO was retried");
    assert.equal(r.senderStats.dataSent, 0);
  });
});
