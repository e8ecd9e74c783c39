/**
 * Property-style tests of reliable UDP through the deterministic simulated
 * network of tests/sim.ts: for many seeds, chunk sizes and impairment mixes
 * (random and burst loss up to 30% each way, duplication, reordering, delay
 * and jitter, a rate limit with a small queue, corruption) the file arrives
 * intact and both sides agree it did. Plus edge sizes, a corrupted stored
 * chunk, determinism, and goodput under loss; the keyed handshake (right,
 * wrong and missing keys, replays), forged DATA, ACK and DONE with a live
 * session id, and resume (held ranges kept, skipped, or restarted when stale).
 * Virtual time only: the assertions do not depend on the machine's speed.
 * Runs under `deno test` and `bun test`.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { Authenticator, handshakeProof } from "../shared/auth.ts";
import {
  DATA_HEADER_SIZE,
  decodeReliable,
  encodeReliable,
  MsgType,
  ReliableFlag,
  type ReliableMsg,
  ReliableStatus,
} from "../shared/protocol_reliable.ts";
import type { ImpairmentConfig } from "../udp/impairment.ts";
import { KEY_REQUIRED, SERVER_KEYLESS, WRONG_KEY } from "../shared/auth.ts";
import { SERVER_HAS_NO_KEY, SERVER_PROOF_FAILED } from "../udp/reliable_sender.ts";
import { type SimDatagram, type SimOptions, type SimResult, simulateTransfer } from "./sim.ts";

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

// ------------------------------------------------ keyed handshake ----

const KEY = new TextEncoder().encode("sim pre-shared key, 32 bytes ok!");
const OTHER_KEY = new TextEncoder().encode("a different pre-shared key......");
/** An attacker's authenticator: right format, wrong key. */
const ATTACKER = new Authenticator(new Uint8Array(32).fill(7));

function msgOf(bytes: Uint8Array): ReliableMsg | undefined {
  try {
    return decodeReliable(bytes);
  } catch {
    return undefined;
  }
}

describe("keyed handshake through the simulated network", () => {
  const links: Array<[string, Impair, Impair]> = [
    ["clean link", {}, {}],
    ["10% loss, reordering, duplication, corruption", {
      loss: 0.1,
      reorder: 0.1,
      reorderMs: 4,
      dup: 0.05,
      corrupt: 0.05,
      delayMs: 2,
    }, { loss: 0.1, corrupt: 0.05, delayMs: 2 }],
  ];
  for (const [name, forward, backward] of links) {
    for (const seed of [1, 2, 3]) {
      test(`the right key: delivered, one session, nothing forged (${name}, seed ${seed})`, () => {
        const options: SimOptions = {
          size: 150_000 + seed * 1000,
          chunkSize: 1400,
          seed: 500 + seed,
          forward,
          backward,
          psk: { sender: KEY, receiver: KEY },
          lateDigest: seed % 2 === 0,
        };
        const r = simulateTransfer(options);
        assertDelivered(r, options);
        assert.equal(r.opened, 1);
        assert.equal(r.receiverStats.forged, 0, "corruption is caught by the CRC, not counted as forgery");
        assert.equal(r.senderStats.forged, 0);
        assert.deepEqual(r.refusals, []);
      });
    }
  }

  test("a wrong key: the sender refuses the server's proof, no session, nothing written", () => {
    const r = simulateTransfer({
      size: 50_000,
      chunkSize: 1000,
      seed: 11,
      psk: { sender: OTHER_KEY, receiver: KEY },
    });
    assert.ok(r.sender?.type === "failed", describeEnd(r));
    assert.equal(r.sender.status, ReliableStatus.REFUSED);
    assert.equal(r.sender.reason, SERVER_PROOF_FAILED);
    assert.equal(r.opened, 0);
    assert.equal(r.senderStats.dataSent, 0);
    assert.ok(r.pendingHandshakes <= 1, "one remembered handshake at most");
  });

  test("a wrong key on the sender's AUTH (the server proof skipped): the gate refuses it", () => {
    // The sender believes any server proof here (a broken client); the server still refuses its AUTH.
    let seenChallenge = false;
    const r = simulateTransfer({
      size: 50_000,
      chunkSize: 1000,
      seed: 12,
      psk: { sender: OTHER_KEY, receiver: KEY },
      // Replace the server's CHALLENGE by one proven under the sender's (wrong) key.
      drop: (seen) => seen.toReceiver === false && msgOf(seen.bytes)?.type === MsgType.CHALLENGE,
      adversary: (seen) => {
        const msg = msgOf(seen.bytes);
        if (seen.toReceiver && msg?.type === MsgType.HELLO && msg.nonce && !seenChallenge) {
          seenChallenge = true;
          const nonce = new Uint8Array(32).fill(3);
          const proof = handshakeProof(OTHER_KEY, "server", msg.nonce, nonce, seen.bytes);
          return [{
            toReceiver: false,
            bytes: encodeReliable({ type: MsgType.CHALLENGE, session: msg.session, nonce, proof }),
          }];
        }
        return [];
      },
    });
    assert.equal(r.opened, 0, describeEnd(r));
    assert.ok(r.refusals.includes(WRONG_KEY), JSON.stringify(r.refusals));
    assert.ok(r.sender?.type === "failed", describeEnd(r));
    assert.match(r.sender.reason, /wrong key/);
    assert.equal(r.receiver, "none");
  });

  test("no key on the sender: refused with a clear message, no session", () => {
    const r = simulateTransfer({ size: 50_000, chunkSize: 1000, seed: 13, psk: { receiver: KEY } });
    assert.ok(r.sender?.type === "failed", describeEnd(r));
    assert.equal(r.sender.status, ReliableStatus.REFUSED);
    assert.match(r.sender.reason, /requires a key \(--psk, --psk-file or IMGXFER_PSK\)/);
    assert.deepEqual(r.refusals, [KEY_REQUIRED]);
    assert.equal(r.opened, 0);
    assert.equal(r.pendingHandshakes, 0, "a keyless HELLO leaves no state");
  });

  test("a key on the sender only: refused, and the sender never sends unauthenticated", () => {
    const r = simulateTransfer({ size: 50_000, chunkSize: 1000, seed: 14, psk: { sender: KEY } });
    assert.ok(r.sender?.type === "failed", describeEnd(r));
    assert.equal(r.sender.status, ReliableStatus.REFUSED);
    assert.deepEqual(r.refusals, [SERVER_KEYLESS]);
    assert.equal(r.opened, 0);
    assert.equal(r.senderStats.dataSent, 0);
  });

  test("a key on the sender, and a server that accepts without one: the sender stops", () => {
    // A server from before keys ignores the nonce and accepts: forge exactly that.
    const r = simulateTransfer({
      size: 50_000,
      chunkSize: 1000,
      seed: 15,
      psk: { sender: KEY },
      drop: (seen) => !seen.toReceiver,
      adversary: (seen) => {
        const msg = msgOf(seen.bytes);
        if (!seen.toReceiver || msg?.type !== MsgType.HELLO) return [];
        const bytes = encodeReliable({
          type: MsgType.ACCEPT,
          session: msg.session,
          status: 0,
          window: 64,
          message: "",
        });
        return [{ toReceiver: false, bytes }];
      },
    });
    assert.ok(r.sender?.type === "failed", describeEnd(r));
    assert.equal(r.sender.reason, SERVER_HAS_NO_KEY);
    assert.equal(r.senderStats.dataSent, 0);
  });

  /** Captures the sender's HELLO and AUTH, and replays both 60 s after they were first sent (the session is long gone). */
  function replayer() {
    let hello: Uint8Array | undefined;
    let done = false;
    return (seen: SimDatagram, now: number): SimDatagram[] => {
      const type = msgOf(seen.bytes)?.type;
      if (!seen.toReceiver || done) return [];
      if (type === MsgType.HELLO && !hello) hello = seen.bytes;
      if (type !== MsgType.AUTH || !hello) return [];
      done = true;
      return [hello, seen.bytes].map((bytes, i) => ({ toReceiver: true, bytes, at: now + 60_000 + i }));
    };
  }

  test("a replayed HELLO and AUTH after the session ended open nothing (the server nonce is fresh)", () => {
    const options: SimOptions = {
      size: 40_000,
      chunkSize: 1000,
      seed: 16,
      psk: { sender: KEY, receiver: KEY },
      adversary: replayer(),
    };
    const r = simulateTransfer(options);
    assertDelivered(r, options);
    assert.ok(r.timeMs >= 60_000, "the replay happened");
    assert.equal(r.opened, 1, "the replay opened a session");
    assert.ok(
      r.refusals.includes(WRONG_KEY),
      "the replayed proof does not verify against the new server nonce",
    );
  });

  test("a replayed HELLO and AUTH open nothing even when server nonces repeat (the client nonce was seen)", () => {
    // A server with a broken random source: every server nonce is the same,
    // so the replayed AUTH's proof verifies; only the replay guard stops it.
    const options: SimOptions = {
      size: 40_000,
      chunkSize: 1000,
      seed: 17,
      psk: { sender: KEY, receiver: KEY },
      serverNonce: () => new Uint8Array(32).fill(9),
      adversary: replayer(),
    };
    const r = simulateTransfer(options);
    assertDelivered(r, options);
    assert.ok(r.timeMs >= 60_000, "the replay happened");
    assert.equal(r.opened, 1, "the replay opened a session");
    assert.ok(!r.refusals.includes(WRONG_KEY), "the proof verified: the guard, not the proof, refused");
  });
});

// ------------------------------------------------------ forgeries ----

/**
 * An attacker who copies every DATA on its way to the receiver and sends,
 * ahead of it, the same header (live session id, same chunk) with other
 * bytes and a tag that cannot verify: the original's tag, or one under the
 * attacker's key; the CRC is recomputed so only the tag can catch it.
 */
function dataForger() {
  let n = 0;
  return (seen: SimDatagram): SimDatagram[] => {
    const msg = msgOf(seen.bytes);
    if (!seen.toReceiver || msg?.type !== MsgType.DATA || n++ % 3 !== 0) return [];
    const payload = msg.payload.map((b) => b ^ 0x5a);
    const tagged = (seen.bytes[3] & ReliableFlag.TAGGED) !== 0;
    if (n % 2 === 0 || !tagged) {
      return [{
        toReceiver: true,
        bytes: encodeReliable({ ...msg, payload }, tagged ? ATTACKER : undefined),
      }];
    }
    const forged = seen.bytes.slice();
    forged.set(payload, DATA_HEADER_SIZE); // the original tag stays: it no longer matches
    return [{ toReceiver: true, bytes: recrc(forged) }];
  };
}

/** Recomputes a datagram's CRC-32 (bytes 0-7 then 12 to the end) so it passes the checksum. */
function recrc(datagram: Uint8Array): Uint8Array {
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  view.setUint32(8, crc32(datagram.subarray(12), crc32(datagram.subarray(0, 8))) >>> 0, false);
  return datagram;
}

describe("forged datagrams with the live session id", () => {
  for (const seed of [21, 22, 23]) {
    test(`forged DATA (bad tags) ahead of the real ones: dropped and counted, the file intact (seed ${seed})`, () => {
      const options: SimOptions = {
        size: 120_000,
        chunkSize: 1000,
        seed,
        forward: { delayMs: 2, loss: seed === 23 ? 0.1 : 0 },
        backward: { delayMs: 2 },
        psk: { sender: KEY, receiver: KEY },
        adversary: dataForger(),
      };
      const r = simulateTransfer(options);
      assertDelivered(r, options);
      assert.ok(r.receiverStats.forged > 10, `forged count ${r.receiverStats.forged}`);
    });
  }

  test("(the same forgery against a keyless session poisons the file: what the tags prevent)", () => {
    const r = simulateTransfer({
      size: 120_000,
      chunkSize: 1000,
      seed: 21,
      forward: { delayMs: 2 },
      backward: { delayMs: 2 },
      adversary: dataForger(),
    });
    assert.equal(r.identical, false);
    assert.ok(r.sender?.type === "done" && !r.sender.ok, describeEnd(r));
  });

  /**
   * An attacker posing as the receiver: it acknowledges every DATA it sees
   * and answers FIN with a DONE carrying the FIN's digest, tagged under its
   * own key (or untagged for a keyless session).
   */
  function fakeReceiver(keyed: boolean) {
    return (seen: SimDatagram): SimDatagram[] => {
      const msg = msgOf(seen.bytes);
      if (!seen.toReceiver || !msg) return [];
      const auth = keyed ? ATTACKER : undefined;
      if (msg.type === MsgType.DATA) {
        const ack = encodeReliable({
          type: MsgType.ACK,
          session: msg.session,
          cumulative: msg.seq + 1,
          window: 4096,
          latest: msg.seq,
          ranges: [],
        }, auth);
        return [{ toReceiver: false, bytes: ack }];
      }
      if (msg.type === MsgType.FIN) {
        const done = encodeReliable({
          type: MsgType.DONE,
          session: msg.session,
          status: ReliableStatus.OK,
          bytes: msg.size,
          digest: msg.digest,
          duplicates: 0,
          acks: 1,
          message: "SUCCESS: File received via UDP",
        }, auth);
        return [{ toReceiver: false, bytes: done }];
      }
      return [];
    };
  }
  const cutData = (seen: SimDatagram) =>
    seen.toReceiver && msgOf(seen.bytes)?.type !== MsgType.HELLO &&
    msgOf(seen.bytes)?.type !== MsgType.AUTH;

  test("forged ACKs and DONE while the real receiver gets nothing: the sender does not report success", () => {
    const r = simulateTransfer({
      size: 60_000,
      chunkSize: 1000,
      seed: 24,
      psk: { sender: KEY, receiver: KEY },
      sender: { idleTimeoutMs: 3000 },
      drop: cutData,
      adversary: fakeReceiver(true),
    });
    assert.ok(r.sender?.type === "failed", describeEnd(r));
    assert.ok(r.senderStats.forged > 0, "the forged ACKs were counted");
    assert.equal(r.senderStats.bytesAcked, 0, "no forged ACK was believed");
  });

  test("(the same fake receiver fools a keyless sender: what the tags prevent)", () => {
    const r = simulateTransfer({
      size: 60_000,
      chunkSize: 1000,
      seed: 24,
      sender: { idleTimeoutMs: 3000 },
      drop: cutData,
      adversary: fakeReceiver(false),
    });
    assert.ok(r.sender?.type === "done" && r.sender.ok, describeEnd(r));
    assert.equal(r.identical, false);
  });

  test("forged ACKs and DONE alongside a real keyed transfer change nothing", () => {
    const options: SimOptions = {
      size: 60_000,
      chunkSize: 1000,
      seed: 25,
      forward: { delayMs: 3 },
      backward: { delayMs: 3 },
      psk: { sender: KEY, receiver: KEY },
      adversary: fakeReceiver(true),
    };
    const r = simulateTransfer(options);
    assertDelivered(r, options);
    assert.ok(r.senderStats.forged >= r.senderStats.dataSent, `forged ${r.senderStats.forged}`);
  });
});

// --------------------------------------------------------- resume ----

/** What a resumed transfer that succeeded shows: every chunk delivered once, held or sent. */
function assertResumed(r: SimResult, options: SimOptions): void {
  const context = `${JSON.stringify(options)}: ${describeEnd(r)}`;
  assert.equal(r.identical, true, `output differs from input: ${context}`);
  assert.ok(r.sender?.type === "done" && r.sender.ok, context);
  assert.equal(r.receiver, "done-ok", context);
  assert.equal(r.senderStats.bytesAcked + r.senderStats.resumedBytes, options.size, context);
  assert.equal(
    r.receiverStats.chunks + r.receiverStats.resumedChunks,
    Math.ceil(options.size / options.chunkSize),
    `chunks stored once: ${context}`,
  );
}

describe("resume in the sans-I/O cores", () => {
  const chunks = (size: number, chunkSize: number) => Math.ceil(size / chunkSize);
  const heldChunks = (ranges: Array<[number, number]>, total: number) =>
    ranges.reduce((n, [a, b]) => n + Math.min(b, total) - a, 0);
  const heldBytes = (ranges: Array<[number, number]>, size: number, chunkSize: number) =>
    ranges.reduce((n, [a, b]) => n + Math.min(size, b * chunkSize) - a * chunkSize, 0);

  const cases: Array<[string, number, number, Array<[number, number]>]> = [
    ["a held prefix", 200_000, 1400, [[0, 60]]],
    ["a prefix and islands", 200_000, 1400, [[0, 50], [60, 80], [100, 101], [140, 143]]],
    ["islands only, the last chunk among them", 100_001, 1000, [[5, 9], [30, 60], [99, 101]]],
    ["the whole file", 64_000, 1000, [[0, 64]]],
  ];
  for (const [name, size, chunkSize, ranges] of cases) {
    for (const keyed of [false, true]) {
      test(`${name}${keyed ? ", keyed" : ""}: only the rest is sent, the file is whole`, () => {
        const options: SimOptions = {
          size,
          chunkSize,
          seed: size % 97,
          held: { ranges },
          resume: true,
          ...(keyed ? { psk: { sender: KEY, receiver: KEY } } : {}),
        };
        const r = simulateTransfer(options);
        assertResumed(r, options);
        const total = chunks(size, chunkSize);
        assert.equal(r.keptHeld, true);
        assert.equal(r.senderStats.resumedBytes, heldBytes(ranges, size, chunkSize));
        assert.equal(r.receiverStats.resumedChunks, heldChunks(ranges, total));
        assert.equal(r.senderStats.dataSent, total - heldChunks(ranges, total), "held chunks are never sent");
      });
    }
  }

  test("resume over a lossy, reordering link (the RESUME and its ACK get lost too)", () => {
    for (const seed of [31, 32, 33, 34]) {
      const ranges: Array<[number, number]> = [[0, 40], [45, 90], [120, 200]];
      const options: SimOptions = {
        size: 300_000,
        chunkSize: 1400,
        seed,
        forward: { loss: 0.2, reorder: 0.1, reorderMs: 5, delayMs: 3, dup: 0.05 },
        backward: { loss: 0.2, delayMs: 3 },
        held: { ranges },
        resume: true,
        psk: seed % 2 ? { sender: KEY, receiver: KEY } : undefined,
        lateDigest: true,
      };
      const r = simulateTransfer(options);
      assertResumed(r, options);
      assert.equal(r.senderStats.resumedBytes, heldBytes(ranges, 300_000, 1400));
    }
  });

  test("held islands beyond a hole wider than the sender's window", () => {
    // Window 16: the sender's rings hold 16 chunks, the island is 190 long.
    const ranges: Array<[number, number]> = [[0, 10], [12, 202], [250, 251]];
    const options: SimOptions = {
      size: 300_000,
      chunkSize: 1000,
      seed: 35,
      forward: { loss: 0.05, delayMs: 2 },
      backward: { delayMs: 2 },
      held: { ranges },
      resume: true,
      sender: { maxWindow: 16 },
      receiver: { window: 16 },
    };
    const r = simulateTransfer(options);
    assertResumed(r, options);
    assert.equal(r.senderStats.resumedBytes, heldBytes(ranges, 300_000, 1000));
  });

  test("held bytes that no longer match the file: the receiver restarts from empty", () => {
    const ranges: Array<[number, number]> = [[0, 50], [70, 90]];
    const options: SimOptions = {
      size: 150_000,
      chunkSize: 1000,
      seed: 36,
      held: { ranges, stale: true },
      resume: true,
    };
    const r = simulateTransfer(options);
    assertDelivered(r, options);
    assert.equal(r.keptHeld, false);
    assert.equal(r.senderStats.resumedBytes, 0);
    assert.equal(r.receiverStats.resumedChunks, 0);
    assert.equal(r.senderStats.dataSent, 150, "every chunk sent");
  });

  test("without resume, a partial from an earlier attempt is not offered, and the transfer starts from empty", () => {
    const options: SimOptions = { size: 150_000, chunkSize: 1000, seed: 37, held: { ranges: [[0, 100]] } };
    const r = simulateTransfer(options);
    assertDelivered(r, options);
    assert.equal(r.keptHeld, undefined);
    assert.equal(r.senderStats.resumedBytes, 0);
    assert.equal(r.senderStats.dataSent, 150);
  });

  test("resume asked, nothing held: an empty offer, a plain transfer", () => {
    const options: SimOptions = { size: 50_000, chunkSize: 1000, seed: 38, resume: true };
    const r = simulateTransfer(options);
    assertDelivered(r, options);
    assert.equal(r.keptHeld, undefined);
    assert.equal(r.senderStats.dataSent, 50);
  });
});

describe("resume while the sender's driver takes long to hash its file", () => {
  test("45 s of hashing (longer than both idle timeouts): keep-alives hold the session, the rest is sent", () => {
    const ranges: Array<[number, number]> = [[0, 30], [40, 60]];
    for (const keyed of [false, true]) {
      const options: SimOptions = {
        size: 100_000,
        chunkSize: 1000,
        seed: 41,
        forward: { delayMs: 2, loss: 0.1 },
        backward: { delayMs: 2 },
        held: { ranges },
        resume: true,
        resumeCheckMs: 45_000,
        psk: keyed ? { sender: KEY, receiver: KEY } : undefined,
      };
      const r = simulateTransfer(options);
      assertResumed(r, options);
      assert.ok(r.timeMs > 45_000, `t=${r.timeMs}`);
      assert.equal(r.senderStats.resumedBytes, 50_000);
      assert.equal(r.receiverStats.forged, 0);
    }
  });
});
