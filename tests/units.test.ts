/**
 * Pure unit tests (no sockets) for shared/metrics.ts, shared/range_set.ts,
 * udp/classic_assembler.ts, shared/errors.ts, shared/files.ts and
 * shared/cli.ts. Files are only touched in a private temporary folder.
 * Runs under `deno test` and `bun test`.
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chunkCount, formatMbps, formatSeconds, formatSummary, mbps, Stopwatch } from "../shared/metrics.ts";
import { RangeSet } from "../shared/range_set.ts";
import { type AssemblerAction, ClassicAssembler, type LayoutStep } from "../udp/classic_assembler.ts";
import {
  type ClassicDatagram,
  decodeClassicDatagram,
  encodeClassicData,
  encodeClassicEnd,
  formatClassicUdpReply,
  isCompleteOutcome,
  MAX_NAME_BYTES,
} from "../shared/protocol.ts";
import {
  CliError,
  describeError,
  ExitCode,
  isFileError,
  networkReason,
  permissionFlag,
  usageError,
  withContext,
} from "../shared/errors.ts";
import { receivedName, ReceivingFile, safeBaseName } from "../shared/files.ts";
import { parseBuffer, parseFlags, parsePort, parseSeconds, pythonAddr, str } from "../shared/cli.ts";

// ------------------------------------------------------------------ helpers ----

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates shuffle with a given PRNG. */
function shuffle<T>(items: T[], rand: () => number): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** A deterministic file body of `n` bytes (never all zeros, so holes show). */
function pattern(n: number, salt = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = ((i * 131 + salt) % 251) + 1;
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Temporary folders, removed after the run.
const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(join(tmpdir(), "imgxfer-units-"));
  tempDirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ metrics ----

describe("metrics", () => {
  test("mbps is bytes × 8 / seconds / 10^6, and 0 without elapsed time", () => {
    assert.equal(mbps(1_000_000, 1), 8);
    assert.equal(mbps(125_000, 0.5), 2);
    assert.equal(mbps(0, 3), 0);
    assert.ok(Math.abs(mbps(61306, 0.003494) - 140.3686) < 1e-3);
    for (const seconds of [0, -1, Number.NaN]) assert.equal(mbps(61306, seconds), 0, `seconds ${seconds}`);
  });

  test("chunkCount is ceil(size / buffer), 0 for an empty file", () => {
    assert.equal(chunkCount(0, 4096), 0);
    assert.equal(chunkCount(1, 4096), 1);
    assert.equal(chunkCount(4096, 4096), 1);
    assert.equal(chunkCount(4097, 4096), 2);
    assert.equal(chunkCount(61306, 4096), 15);
    assert.equal(chunkCount(61306, 1), 61306);
    assert.equal(chunkCount(61306, 65503), 1);
    for (const buffer of [0, -1, Number.NaN]) {
      assert.throws(() => chunkCount(10, buffer), RangeError, `buffer ${buffer}`);
    }
  });

  test("formatSeconds and formatMbps match the original scripts", () => {
    assert.equal(formatSeconds(0.004), "0.004");
    assert.equal(formatSeconds(0.0042), "0.004");
    assert.equal(formatSeconds(0), "0.000");
    assert.equal(formatSeconds(1), "1.000");
    assert.equal(formatSeconds(12.3456), "12.346");
    assert.equal(formatMbps(140.3789), "140.38");
    assert.equal(formatMbps(mbps(17_547_500, 1)), "140.38");
    assert.equal(formatMbps(0), "0.00");
    assert.equal(formatMbps(8), "8.00");
  });

  test("formatSummary pads labels to the longest one", () => {
    assert.equal(
      formatSummary("TCP Transfer Summary", [
        ["File size", "61973 bytes"],
        ["Buffer size", "4096 bytes"],
        ["Time", "0.004 s"],
      ]),
      [
        "=== TCP Transfer Summary ===",
        "File size   : 61973 bytes",
        "Buffer size : 4096 bytes",
        "Time        : 0.004 s",
      ].join("\n"),
    );
    assert.equal(formatSummary("Empty", []), "=== Empty ===");
    const block = formatSummary("X", [["a", "1"], ["abcdef", "2"]]).split("\n").slice(1);
    assert.deepEqual(block.map((line) => line.indexOf(" : ")), [6, 6]);
  });

  test("Stopwatch is monotonic and starts near zero", () => {
    const watch = new Stopwatch();
    const a = watch.elapsed();
    const b = watch.elapsed();
    assert.ok(a >= 0 && a < 5);
    assert.ok(b >= a);
  });
});

// ---------------------------------------------------------------- range set ----

describe("RangeSet", () => {
  function check(set: RangeSet, reference: Set<number>, limit: number): void {
    assert.equal(set.size, reference.size);
    assert.equal(set.max, reference.size === 0 ? -1 : Math.max(...reference));
    for (let n = -1; n <= limit + 1; n++) assert.equal(set.has(n), reference.has(n), `has(${n})`);
    // ranges(): sorted, disjoint, non-adjacent, covering exactly the reference.
    const ranges = set.ranges();
    assert.equal(set.rangeCount, ranges.length);
    const covered: number[] = [];
    for (let i = 0; i < ranges.length; i++) {
      const [a, b] = ranges[i];
      assert.ok(a <= b, `range ${a}-${b}`);
      if (i > 0) assert.ok(a > ranges[i - 1][1] + 1, `ranges ${i - 1} and ${i} should have merged`);
      for (let n = a; n <= b; n++) covered.push(n);
    }
    assert.deepEqual(covered, [...reference].sort((x, y) => x - y));
    // gaps(limit): the complement within [0, limit).
    const missing: number[] = [];
    for (const [a, b] of set.gaps(limit)) {
      assert.ok(a <= b && a >= 0 && b < limit, `gap ${a}-${b} within [0, ${limit})`);
      for (let n = a; n <= b; n++) missing.push(n);
    }
    const expectedMissing: number[] = [];
    for (let n = 0; n < limit; n++) if (!reference.has(n)) expectedMissing.push(n);
    assert.deepEqual(missing, expectedMissing);
  }

  test("empty set", () => {
    const set = new RangeSet();
    assert.equal(set.size, 0);
    assert.equal(set.max, -1);
    assert.equal(set.rangeCount, 0);
    assert.deepEqual(set.ranges(), []);
    assert.deepEqual(set.gaps(0), []);
    assert.deepEqual(set.gaps(3), [[0, 2]]);
    assert.equal(set.has(0), false);
  });

  test("in-order adds make one range", () => {
    const set = new RangeSet();
    for (let n = 0; n < 1000; n++) assert.equal(set.add(n), true);
    assert.deepEqual(set.ranges(), [[0, 999]]);
    assert.equal(set.size, 1000);
    assert.equal(set.max, 999);
    assert.deepEqual(set.gaps(1000), []);
    assert.deepEqual(set.gaps(1002), [[1000, 1001]]);
    assert.deepEqual(set.gaps(10), []);
  });

  test("reverse-order adds merge into one range", () => {
    const set = new RangeSet();
    const reference = new Set<number>();
    for (let n = 499; n >= 0; n--) {
      assert.equal(set.add(n), true);
      reference.add(n);
    }
    assert.deepEqual(set.ranges(), [[0, 499]]);
    check(set, reference, 510);
  });

  test("duplicates return false and do not change the size", () => {
    const set = new RangeSet();
    assert.equal(set.add(5), true);
    assert.equal(set.add(5), false);
    assert.equal(set.add(6), true);
    assert.equal(set.add(6), false);
    assert.equal(set.add(5), false);
    assert.equal(set.size, 2);
  });

  test("gaps between ranges, joins left, right and both", () => {
    const set = new RangeSet();
    for (const n of [0, 2, 4, 10]) set.add(n);
    assert.deepEqual(set.ranges(), [[0, 0], [2, 2], [4, 4], [10, 10]]);
    assert.deepEqual(set.gaps(12), [[1, 1], [3, 3], [5, 9], [11, 11]]);
    assert.deepEqual(set.gaps(8), [[1, 1], [3, 3], [5, 7]]);
    assert.deepEqual(set.gaps(3), [[1, 1]]);
    set.add(1); // joins both
    assert.deepEqual(set.ranges(), [[0, 2], [4, 4], [10, 10]]);
    set.add(9); // joins right
    set.add(5); // joins left
    assert.deepEqual(set.ranges(), [[0, 2], [4, 5], [9, 10]]);
    assert.deepEqual(set.gaps(11), [[3, 3], [6, 8]]);
    assert.equal(set.max, 10);
    assert.equal(set.size, 7);
  });

  test("gaps when the first member is above zero", () => {
    const set = new RangeSet();
    set.add(5);
    set.add(6);
    assert.deepEqual(set.gaps(10), [[0, 4], [7, 9]]);
    assert.deepEqual(set.gaps(5), [[0, 4]]);
    assert.deepEqual(set.gaps(3), [[0, 2]]);
  });

  test("rejects negative and non-integer members", () => {
    const set = new RangeSet();
    for (const n of [-1, 1.5, Number.NaN, Infinity]) assert.throws(() => set.add(n), RangeError, `add(${n})`);
    assert.equal(set.size, 0);
  });

  test("random orders agree with a reference Set (seeded)", () => {
    const rand = mulberry32(20240611);
    for (let round = 0; round < 60; round++) {
      const limit = 1 + Math.floor(rand() * 200);
      const set = new RangeSet();
      const reference = new Set<number>();
      const adds = Math.floor(rand() * limit * 1.5);
      for (let i = 0; i < adds; i++) {
        const n = Math.floor(rand() * limit);
        assert.equal(set.add(n), !reference.has(n), `add(${n}) in round ${round}`);
        reference.add(n);
        if (i % 17 === 0) check(set, reference, limit);
      }
      check(set, reference, limit);
      // Shuffled full permutation ends as one range.
      const full = new RangeSet();
      for (const n of shuffle([...Array(limit).keys()], rand)) full.add(n);
      assert.deepEqual(full.ranges(), [[0, limit - 1]]);
    }
  });
});

// --------------------------------------------------------- classic assembler ----

/** Simulates the UDP server's driver: a spool written in arrival order. */
class Driver {
  readonly asm: ClassicAssembler;
  readonly actions: AssemblerAction[] = [];
  #spool: Uint8Array[] = [];
  #spoolLength = 0;

  constructor(maxBytes = 1 << 30) {
    this.asm = new ClassicAssembler({ maxBytes });
  }

  /** Encodes, decodes and feeds one datagram, as the server would. */
  send(datagram: Uint8Array): AssemblerAction {
    const action = this.asm.accept(decodeClassicDatagram(datagram));
    if (action.action === "store") {
      assert.equal(action.spoolOffset, this.#spoolLength, "the spool is appended in arrival order");
      this.#spool.push(action.payload.slice());
      this.#spoolLength += action.payload.length;
    }
    this.actions.push(action);
    return action;
  }

  feed(datagram: ClassicDatagram): AssemblerAction {
    return this.asm.accept(datagram);
  }

  get spool(): Uint8Array {
    return concat(this.#spool);
  }

  steps(): LayoutStep[] {
    return [...this.asm.layout()];
  }

  /** The output file the layout describes (holes zero-filled). */
  materialize(): Uint8Array {
    const spool = this.spool;
    return concat(
      this.steps().map((step) =>
        step.kind === "copy"
          ? spool.subarray(step.spoolOffset, step.spoolOffset + step.length)
          : new Uint8Array(step.length)
      ),
    );
  }
}

/** Splits `file` into classic datagrams of `buffer` payload bytes. */
function chunks(file: Uint8Array, buffer: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let seq = 0; seq * buffer < file.length; seq++) {
    out.push(encodeClassicData(seq, file.subarray(seq * buffer, (seq + 1) * buffer)));
  }
  return out;
}

/** `file` with the given packets zeroed, as the layout should reproduce it. */
function withHoles(file: Uint8Array, buffer: number, missing: number[]): Uint8Array {
  const out = file.slice();
  for (const seq of missing) out.fill(0, seq * buffer, Math.min(file.length, (seq + 1) * buffer));
  return out;
}

describe("ClassicAssembler", () => {
  const BUF = 4096;
  const FILE = pattern(61306); // the sample image's size: 15 packets, the last of 3962 bytes
  const PACKETS = chunks(FILE, BUF);

  test("a sequence number implying more than max(32 MiB, 2× received) of holes is ignored", () => {
    const d = new Driver();
    const bomb = d.send(encodeClassicData(100_000_000, new Uint8Array([0x41])));
    assert.equal(bomb.action, "ignore");
    assert.match((bomb as { reason: string }).reason, /implausibly far ahead/);
    assert.equal(d.asm.receivedPackets, 0);
    // A plausible gap (10 MB of holes at 1400-byte packets) is still taken.
    assert.equal(d.send(encodeClassicData(7000, new Uint8Array(1400))).action, "store");
    // After 40 MB arrived, up to 80 MB of holes are plausible.
    const big = new Driver();
    for (let seq = 0; seq < 40; seq++) big.send(encodeClassicData(seq, new Uint8Array(1 << 20)));
    assert.equal(big.send(encodeClassicData(40 + 75, new Uint8Array(1 << 20))).action, "store");
    assert.equal(big.send(encodeClassicData(40 + 200, new Uint8Array(1 << 20))).action, "ignore");
  });

  test("an end trailer implying implausible holes is not believed", () => {
    const d = new Driver();
    d.send(PACKETS[0]);
    d.send(encodeClassicEnd({ packets: 1_000_000, chunk: BUF, bytes: 1_000_000 * BUF }));
    const steps = d.steps();
    const total = steps.reduce((sum, step) => sum + step.length, 0);
    assert.ok(total <= BUF, `the layout owes ${total} bytes`);
  });

  test("in-order delivery: the spool is the file and the session is complete", () => {
    for (const trailer of [undefined, { packets: 15, chunk: BUF, bytes: 61306 }]) {
      const d = new Driver();
      for (const p of PACKETS) assert.equal(d.send(p).action, "store");
      assert.equal(d.asm.ended, false);
      assert.equal(d.asm.isComplete(), false, "not complete before the end marker");
      assert.deepEqual(d.send(encodeClassicEnd(trailer)), { action: "end" });
      assert.equal(d.asm.ended, true);
      assert.equal(d.asm.spoolIsFile, true);
      assert.equal(d.asm.isComplete(), true);
      assert.equal(d.asm.receivedPackets, 15);
      assert.equal(d.asm.receivedBytes, 61306);
      assert.equal(d.asm.expectedPackets, 15);
      assert.equal(d.asm.duplicates, 0);
      const expected = { received: 15, expected: 15, missing: [], receivedBytes: 61306 };
      assert.deepEqual(d.asm.outcome(), trailer ? { ...expected, expectedBytes: 61306 } : expected);
      assert.equal(formatClassicUdpReply(d.asm.outcome()), "SUCCESS: File received via UDP");
      assert.ok(sameBytes(d.spool, FILE));
      const steps = d.steps();
      assert.deepEqual(steps.map((s) => s.kind === "copy" && s.seq), [...Array(15).keys()]);
      assert.deepEqual(steps[14], { kind: "copy", seq: 14, spoolOffset: 14 * BUF, length: 3962 });
      assert.ok(sameBytes(d.materialize(), FILE));
    }
  });

  test("reordered delivery: spoolIsFile is false but layout() restores sequence order", () => {
    const order = [1, 0, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11, 12, 14, 13];
    const d = new Driver();
    for (const seq of order) d.send(PACKETS[seq]);
    d.send(encodeClassicEnd({ packets: 15, chunk: BUF, bytes: 61306 }));
    assert.equal(d.asm.spoolIsFile, false);
    assert.equal(d.asm.isComplete(), true);
    assert.equal(sameBytes(d.spool, FILE), false);
    const steps = d.steps();
    assert.deepEqual(steps.map((s) => s.seq), [...Array(15).keys()]);
    assert.ok(steps.every((s) => s.kind === "copy"));
    // Packet 1 arrived first, so it sits at spool offset 0.
    assert.deepEqual(steps[1], { kind: "copy", seq: 1, spoolOffset: 0, length: BUF });
    assert.deepEqual(steps[0], { kind: "copy", seq: 0, spoolOffset: BUF, length: BUF });
    assert.ok(sameBytes(d.materialize(), FILE));
  });

  test("random permutations (seeded), with more than 1024 packets", () => {
    const rand = mulberry32(7);
    for (const [size, buffer] of [[61306, 4096], [40000, 16], [1000, 1000], [999, 100]]) {
      const file = pattern(size, size);
      const packets = chunks(file, buffer);
      for (let round = 0; round < 4; round++) {
        const d = new Driver();
        for (const seq of shuffle([...packets.keys()], rand)) d.send(packets[seq]);
        d.send(encodeClassicEnd({ packets: packets.length, chunk: buffer, bytes: size }));
        assert.equal(d.asm.isComplete(), true);
        assert.equal(d.asm.receivedPackets, packets.length);
        assert.ok(sameBytes(d.materialize(), file), `size ${size} buffer ${buffer} round ${round}`);
      }
    }
  });

  test("duplicates are counted and ignored", () => {
    const d = new Driver();
    for (const seq of [0, 0, 1, 2, 1, 0]) d.send(PACKETS[seq]);
    assert.deepEqual(d.actions.map((a) => a.action), [
      "store",
      "duplicate",
      "store",
      "store",
      "duplicate",
      "duplicate",
    ]);
    assert.deepEqual(d.actions[1], { action: "duplicate", seq: 0 });
    for (let seq = 3; seq < 15; seq++) d.send(PACKETS[seq]);
    d.send(PACKETS[14]);
    d.send(encodeClassicEnd());
    assert.equal(d.asm.duplicates, 4);
    assert.equal(d.asm.receivedPackets, 15);
    assert.equal(d.asm.receivedBytes, 61306);
    assert.equal(d.asm.spoolIsFile, true);
    assert.equal(d.asm.isComplete(), true);
    assert.ok(sameBytes(d.spool, FILE));
  });

  test("holes: missing ranges, and hole steps of the stride length", () => {
    const missing = [3, 7, 8, 9];
    const d = new Driver();
    for (let seq = 0; seq < 15; seq++) if (!missing.includes(seq)) d.send(PACKETS[seq]);
    d.send(encodeClassicEnd()); // original client: no trailer
    const outcome = d.asm.outcome();
    assert.deepEqual(outcome, {
      received: 11,
      expected: 15,
      missing: [[3, 3], [7, 9]],
      receivedBytes: 61306 - 4 * BUF,
    });
    assert.equal(d.asm.isComplete(), false);
    assert.equal(d.asm.spoolIsFile, false);
    assert.equal(
      formatClassicUdpReply(outcome),
      `INCOMPLETE: 11/15 packets, missing 3, 7-9 (${61306 - 4 * BUF} bytes)`,
    );
    const holes = d.steps().filter((s) => s.kind === "hole");
    assert.deepEqual(holes, missing.map((seq) => ({ kind: "hole", seq, length: BUF })));
    const out = d.materialize();
    assert.equal(out.length, 61306);
    assert.ok(sameBytes(out, withHoles(FILE, BUF, missing)));
  });

  test("a lost tail is only known from the trailer; the last hole has the trailer's length", () => {
    const d = new Driver();
    for (let seq = 0; seq < 12; seq++) d.send(PACKETS[seq]);
    d.send(encodeClassicEnd({ packets: 15, chunk: BUF, bytes: 61306 }));
    assert.equal(d.asm.expectedPackets, 15);
    const outcome = d.asm.outcome();
    assert.deepEqual(outcome, {
      received: 12,
      expected: 15,
      missing: [[12, 14]],
      receivedBytes: 12 * BUF,
      expectedBytes: 61306,
    });
    assert.equal(d.asm.isComplete(), false);
    assert.equal(d.asm.spoolIsFile, true, "what arrived is in order");
    assert.equal(
      formatClassicUdpReply(outcome),
      `INCOMPLETE: 12/15 packets, missing 12-14 (${12 * BUF} of 61306 bytes)`,
    );
    const holes = d.steps().filter((s) => s.kind === "hole");
    assert.deepEqual(holes, [
      { kind: "hole", seq: 12, length: BUF },
      { kind: "hole", seq: 13, length: BUF },
      { kind: "hole", seq: 14, length: 61306 - 14 * BUF },
    ]);
    const out = d.materialize();
    assert.equal(out.length, 61306);
    assert.ok(sameBytes(out, withHoles(FILE, BUF, [12, 13, 14])));

    // Without the trailer the same loss is invisible in the counts, but the
    // full-size last packet means the end is not confirmed: never complete.
    const plain = new Driver();
    for (let seq = 0; seq < 12; seq++) plain.send(PACKETS[seq]);
    plain.send(encodeClassicEnd());
    assert.equal(plain.asm.expectedPackets, 12);
    assert.equal(plain.asm.isComplete(), false);
    assert.match(plain.asm.outcome().reason ?? "", /full-size/);
    // A short last packet does end a file sent with the bare marker.
    const whole = new Driver();
    for (let seq = 0; seq < 15; seq++) whole.send(PACKETS[seq]);
    whole.send(encodeClassicEnd());
    assert.equal(whole.asm.isComplete(), true);
  });

  test("a trailer byte count that disagrees with the payload makes the session incomplete", () => {
    const d = new Driver();
    for (const p of PACKETS) d.send(p);
    d.send(encodeClassicEnd({ packets: 15, chunk: BUF, bytes: 61307 }));
    assert.deepEqual(d.asm.outcome().missing, []);
    assert.equal(d.asm.isComplete(), false);
  });

  test("no end marker: the outcome says why", () => {
    const d = new Driver();
    for (const p of PACKETS) d.send(p);
    assert.equal(d.asm.outcome().reason, "end marker not received");
    assert.equal(d.asm.outcome("idle for 5 s").reason, "idle for 5 s");
    assert.equal(d.asm.isComplete(), false);
    assert.match(
      formatClassicUdpReply(d.asm.outcome()),
      /^INCOMPLETE: 15\/15 packets, end marker not received/,
    );
  });

  test("maxBytes: a datagram that would exceed it is rejected and not counted", () => {
    const file = pattern(10000);
    const packets = chunks(file, BUF); // 4096 + 4096 + 1808
    const exact = new Driver(10000);
    for (const p of packets) assert.equal(exact.send(p).action, "store");
    exact.send(encodeClassicEnd());
    assert.equal(exact.asm.isComplete(), true);

    const d = new Driver(9999);
    d.send(packets[0]);
    d.send(packets[1]);
    assert.deepEqual(d.send(packets[2]), { action: "reject", reason: "more than 9999 bytes" });
    assert.deepEqual(d.send(packets[2]), { action: "reject", reason: "more than 9999 bytes" });
    assert.equal(d.asm.receivedPackets, 2);
    assert.equal(d.asm.receivedBytes, 8192);
    assert.equal(d.asm.duplicates, 0);
    // The trailer's 10000 bytes exceed the 9999-byte limit, so it is not believed: the
    // assembler alone no longer sees packet 2 as missing. The server ends the session on the
    // reject with a reason, and that outcome is incomplete.
    d.send(encodeClassicEnd({ packets: 3, chunk: BUF, bytes: 10000 }));
    assert.equal(d.asm.expectedPackets, 2);
    assert.equal(d.asm.outcome().expectedBytes, undefined);
    assert.deepEqual(d.asm.outcome().missing, []);
    const refused = d.asm.outcome("refused: more than 9999 bytes");
    assert.equal(isCompleteOutcome(refused), false);
    assert.match(formatClassicUdpReply(refused), /^INCOMPLETE: 2\/2 packets, refused: more than 9999 bytes/);

    // Within the limit the same trailer is believed and reports the packet as missing.
    const lost = new Driver(10000);
    lost.send(packets[0]);
    lost.send(packets[1]);
    lost.send(encodeClassicEnd({ packets: 3, chunk: BUF, bytes: 10000 }));
    assert.deepEqual(lost.asm.outcome().missing, [[2, 2]]);
    assert.equal(lost.asm.isComplete(), false);
  });

  test("maxBytes: a datagram whose sequence number puts it past the limit is rejected", () => {
    const d = new Driver(10000);
    const payload = new Uint8Array(1000);
    // seq × payload length = 10000 is still within the limit, 11000 is not.
    assert.equal(d.feed({ kind: "data", seq: 10, payload }).action, "store");
    assert.deepEqual(d.feed({ kind: "data", seq: 11, payload }), {
      action: "reject",
      reason: "more than 10000 bytes",
    });
    assert.deepEqual(d.feed({ kind: "data", seq: 2 ** 31 - 1, payload: new Uint8Array(1) }), {
      action: "reject",
      reason: "more than 10000 bytes",
    });
    assert.equal(d.asm.receivedPackets, 1);
    assert.equal(d.asm.receivedBytes, 1000);
  });

  test("the hole stride comes from the trailer when only the short last packet arrived", () => {
    // 3 packets of 1000 bytes, the last of 500: only seq 2 arrives.
    const file = pattern(2500, 3);
    const packets = chunks(file, 1000);
    assert.deepEqual(packets.map((p) => p.length - 4), [1000, 1000, 500]);

    const d = new Driver();
    assert.equal(d.send(packets[2]).action, "store");
    assert.equal(d.asm.stride, 500, "before the trailer only the short packet is known");
    d.send(encodeClassicEnd({ packets: 3, chunk: 1000, bytes: 2500 }));
    assert.equal(d.asm.stride, 1000);
    assert.equal(d.asm.expectedPackets, 3);
    assert.deepEqual(d.steps(), [
      { kind: "hole", seq: 0, length: 1000 },
      { kind: "hole", seq: 1, length: 1000 },
      { kind: "copy", seq: 2, spoolOffset: 0, length: 500 },
    ]);
    const out = d.materialize();
    assert.equal(out.length, 2500);
    assert.ok(sameBytes(out, withHoles(file, 1000, [0, 1])));
    assert.deepEqual(d.asm.outcome(), {
      received: 1,
      expected: 3,
      missing: [[0, 1]],
      receivedBytes: 500,
      expectedBytes: 2500,
    });

    // Without the trailer the holes take the only payload size seen, and the geometry is lost.
    const plain = new Driver();
    plain.send(packets[2]);
    plain.send(encodeClassicEnd());
    assert.equal(plain.asm.stride, 500);
    assert.deepEqual(plain.steps().map((s) => s.length), [500, 500, 500]);
  });

  test("a trailer that claims more than maxBytes is ignored", () => {
    const payload = pattern(1000, 9);
    const d = new Driver(10000);
    d.feed({ kind: "data", seq: 0, payload });
    d.send(encodeClassicEnd({ packets: 20, chunk: 1000, bytes: 20000 }));
    assert.equal(d.asm.ended, true);
    assert.equal(d.asm.expectedPackets, 1);
    assert.equal(d.asm.stride, 1000);
    // Without a believable trailer, a full-size last packet leaves the end unconfirmed.
    const { reason, ...counts } = d.asm.outcome();
    assert.deepEqual(counts, { received: 1, expected: 1, missing: [], receivedBytes: 1000 });
    assert.match(reason ?? "", /end not confirmed/);
    assert.equal(d.asm.isComplete(), false);
    assert.deepEqual(d.steps(), [{ kind: "copy", seq: 0, spoolOffset: 0, length: 1000 }]);

    // Its chunk is ignored too: the stride stays the largest payload seen.
    const small = new Driver(10000);
    small.feed({ kind: "data", seq: 0, payload: new Uint8Array(100) });
    small.send(encodeClassicEnd({ packets: 2, chunk: 60000, bytes: 60100 }));
    assert.equal(small.asm.stride, 100);
    assert.equal(small.asm.expectedPackets, 1);

    // A trailer of exactly maxBytes is believed.
    const exact = new Driver(10000);
    exact.send(encodeClassicData(0, payload));
    exact.send(encodeClassicEnd({ packets: 10, chunk: 1000, bytes: 10000 }));
    assert.equal(exact.asm.expectedPackets, 10);
    assert.equal(exact.asm.outcome().expectedBytes, 10000);
    assert.deepEqual(exact.asm.outcome().missing, [[1, 9]]);
    const out = exact.materialize();
    assert.equal(out.length, 10000);
    assert.ok(sameBytes(out.subarray(0, 1000), payload));
    assert.ok(out.subarray(1000).every((b) => b === 0));
  });

  test("layout() never exceeds maxBytes", () => {
    const payload = new Uint8Array(1000).fill(7);
    const total = (d: Driver) => d.steps().reduce((n, s) => n + s.length, 0);

    // seq 0 and seq 9 of 1000 bytes under a 10000-byte limit: exactly 10000 bytes, nothing cut.
    const fits = new Driver(10000);
    assert.equal(fits.feed({ kind: "data", seq: 0, payload }).action, "store");
    assert.equal(fits.feed({ kind: "data", seq: 9, payload }).action, "store");
    fits.feed({ kind: "end" });
    const steps = fits.steps();
    assert.equal(steps.length, 10);
    assert.deepEqual(steps[0], { kind: "copy", seq: 0, spoolOffset: 0, length: 1000 });
    assert.deepEqual(
      steps.slice(1, 9),
      [1, 2, 3, 4, 5, 6, 7, 8].map((seq) => ({ kind: "hole", seq, length: 1000 })),
    );
    assert.deepEqual(steps[9], { kind: "copy", seq: 9, spoolOffset: 1000, length: 1000 });
    assert.equal(total(fits), 10000);

    // No trailer, seq 10 still accepted (10 × 1000 = 10000), but its copy would make 11000: stops.
    const over = new Driver(10000);
    over.feed({ kind: "data", seq: 0, payload });
    assert.equal(over.feed({ kind: "data", seq: 10, payload }).action, "store");
    over.feed({ kind: "end" });
    const cut = over.steps();
    assert.equal(total(over), 10000);
    assert.deepEqual(cut.at(-1), { kind: "hole", seq: 9, length: 1000 });
    assert.ok(cut.every((s) => s.seq < 10));

    // A short late packet (19 × 100 ≤ 10000) with holes of the 1000-byte stride: stops at the limit.
    const late = new Driver(10000);
    late.feed({ kind: "data", seq: 0, payload });
    assert.equal(late.feed({ kind: "data", seq: 19, payload: new Uint8Array(100) }).action, "store");
    late.feed({ kind: "end" });
    assert.equal(total(late), 10000);
    assert.deepEqual(late.steps().map((s) => s.seq), [...Array(10).keys()]);
  });

  test("layout() stays within maxBytes and in sequence order (seeded)", () => {
    const rand = mulberry32(0x5eed);
    const int = (n: number) => Math.floor(rand() * n);
    for (let round = 0; round < 300; round++) {
      const maxBytes = 1 + int(20000);
      const d = new Driver(maxBytes);
      const count = int(30);
      for (let i = 0; i < count; i++) {
        d.feed({ kind: "data", seq: int(int(2) === 0 ? 20 : 200), payload: new Uint8Array(1 + int(3000)) });
      }
      if (int(2) === 0) {
        const chunk = 1 + int(3000);
        const packets = int(40);
        const bytes = packets === 0 ? 0 : (packets - 1) * chunk + 1 + int(chunk);
        d.send(encodeClassicEnd({ packets, chunk, bytes }));
      } else {
        d.feed({ kind: "end" });
      }
      const steps = d.steps();
      const sum = steps.reduce((n, s) => n + s.length, 0);
      assert.ok(sum <= maxBytes, `round ${round}: layout of ${sum} bytes exceeds ${maxBytes}`);
      assert.ok(steps.every((s, i) => s.seq === i), `round ${round}: steps out of order`);
      assert.ok(steps.every((s) => s.length >= 0), `round ${round}: negative length`);
    }
  });

  test("an empty transfer (only an end marker) is complete with 0 packets", () => {
    for (const trailer of [undefined, { packets: 0, chunk: BUF, bytes: 0 }]) {
      const d = new Driver();
      d.send(encodeClassicEnd(trailer));
      assert.equal(d.asm.isComplete(), true);
      assert.equal(d.asm.receivedPackets, 0);
      assert.equal(d.asm.expectedPackets, 0);
      assert.equal(d.asm.spoolIsFile, true);
      assert.deepEqual(d.steps(), []);
      const outcome = d.asm.outcome();
      assert.equal(outcome.received, 0);
      assert.equal(outcome.expected, 0);
      assert.deepEqual(outcome.missing, []);
      assert.equal(outcome.receivedBytes, 0);
      assert.equal(formatClassicUdpReply(outcome), "SUCCESS: File received via UDP");
    }
  });

  test("a short packet before the last one means the spool is not the file", () => {
    const d = new Driver();
    d.feed({ kind: "data", seq: 0, payload: new Uint8Array(100) });
    d.feed({ kind: "data", seq: 1, payload: new Uint8Array(10) });
    assert.equal(d.asm.spoolIsFile, true, "a short last packet is fine");
    d.feed({ kind: "data", seq: 2, payload: new Uint8Array(100) });
    assert.equal(d.asm.spoolIsFile, false);

    const growing = new Driver();
    growing.feed({ kind: "data", seq: 0, payload: new Uint8Array(10) });
    growing.feed({ kind: "data", seq: 1, payload: new Uint8Array(100) });
    assert.equal(growing.asm.spoolIsFile, false);
  });

  test("a gap makes spoolIsFile false even when later packets arrive in order", () => {
    const d = new Driver();
    d.send(PACKETS[0]);
    d.send(PACKETS[2]);
    d.send(PACKETS[1]);
    assert.equal(d.asm.spoolIsFile, false);
  });
});

// ------------------------------------------------------------------- errors ----

describe("errors", () => {
  test("describeError keeps a CliError's message and code", () => {
    assert.deepEqual(describeError(new CliError("bad value", ExitCode.USAGE)), {
      message: "bad value",
      exitCode: 2,
    });
    assert.deepEqual(describeError(usageError("--port must be 1-65535")), {
      message: "--port must be 1-65535",
      exitCode: 2,
    });
    assert.equal(new CliError("x", ExitCode.FILE).name, "CliError");
  });

  test("NotCapable errors → exit 5 and the flag to add", () => {
    const message = 'Requires net access to "127.0.0.1:8082", run again with the --allow-net flag';
    const plain = { name: "NotCapable", message };
    const error = Object.assign(new Error(message), { name: "NotCapable" });
    for (const e of [plain, error]) {
      const report = describeError(e);
      assert.equal(report.exitCode, ExitCode.PERMISSION);
      assert.equal(report.exitCode, 5);
      assert.ok(report.message.includes("--allow-net=127.0.0.1:8082"), report.message);
      assert.equal(report.message, "permission denied by Deno: run again with --allow-net=127.0.0.1:8082");
    }
    assert.equal(permissionFlag(message), "--allow-net=127.0.0.1:8082");
    assert.equal(permissionFlag('Requires read access to "input.jpeg"'), "--allow-read=input.jpeg");
    assert.equal(permissionFlag("run again with the --allow-write flag"), "--allow-write");
    assert.equal(permissionFlag("nothing useful"), "the matching --allow-* flag");
  });

  test("file errors → exit 3 with the path", () => {
    assert.deepEqual(describeError({ code: "ENOENT", path: "x" }), {
      message: "x: no such file or directory",
      exitCode: 3,
    });
    assert.deepEqual(describeError({ code: "EACCES" }), { message: "permission denied", exitCode: 3 });
    assert.deepEqual(describeError({ name: "NotFound", message: "No such file" }), {
      message: "no such file or directory",
      exitCode: 3,
    });
    assert.equal(isFileError({ code: "ENOENT" }), true);
    assert.equal(isFileError({ name: "PermissionDenied" }), true);
    assert.equal(isFileError({ name: "ConnectionRefused" }), false);
    assert.equal(isFileError(undefined), false);
  });

  test("network errors → exit 4", () => {
    assert.deepEqual(
      describeError({ name: "ConnectionRefused", message: "Connection refused (os error 111)" }),
      {
        message: "connection refused",
        exitCode: 4,
      },
    );
    assert.deepEqual(
      describeError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })),
      {
        message: "connection refused",
        exitCode: 4,
      },
    );
    assert.equal(describeError({ name: "AddrInUse" }).exitCode, 4);
    assert.equal(describeError({ code: "EADDRINUSE" }).message, "address already in use");
    assert.equal(networkReason({ message: "Connection refused (os error 111)" }), "connection refused");
    assert.equal(
      networkReason({ message: "Address already in use (os error 98)" }),
      "address already in use",
    );
    assert.equal(networkReason({ name: "TimedOut" }), "timed out");
    assert.equal(networkReason(new Error("boom")), undefined);
  });

  test("anything else → exit 70 with the first line", () => {
    assert.deepEqual(describeError(new Error("boom\n    at somewhere")), {
      message: "internal error: boom",
      exitCode: 70,
    });
    assert.deepEqual(describeError(new TypeError("x is undefined")), {
      message: "internal error: x is undefined",
      exitCode: 70,
    });
    assert.deepEqual(describeError("a string"), { message: "internal error: a string", exitCode: 70 });
    assert.equal(describeError(undefined).exitCode, 70);
    assert.equal(describeError(null).exitCode, 70);
    assert.equal(describeError(42).exitCode, 70);
  });

  test("withContext adds context and keeps the code", () => {
    const refused = withContext("cannot connect to 127.0.0.1:8081", { name: "ConnectionRefused" });
    assert.ok(refused instanceof CliError);
    assert.equal(refused.message, "cannot connect to 127.0.0.1:8081: connection refused");
    assert.equal(refused.exitCode, ExitCode.NETWORK);
    assert.deepEqual(refused.cause, { name: "ConnectionRefused" });

    const missing = withContext("cannot read 'input.jpeg'", { code: "ENOENT" });
    assert.equal(missing.message, "cannot read 'input.jpeg': no such file or directory");
    assert.equal(missing.exitCode, ExitCode.FILE);

    const denied = withContext("cannot listen", {
      name: "NotCapable",
      message: 'Requires net access to "0.0.0.0:8081", run again with the --allow-net flag',
    });
    assert.equal(denied.exitCode, ExitCode.PERMISSION);
    assert.match(
      denied.message,
      /^cannot listen: permission denied by Deno: run again with --allow-net=0\.0\.0\.0:8081$/,
    );

    const internal = withContext("while sending", new Error("boom"));
    assert.equal(internal.message, "while sending: boom");
    assert.equal(internal.exitCode, ExitCode.INTERNAL);

    const original = new CliError("already fine", ExitCode.TRANSFER_FAILED);
    assert.equal(withContext("ignored", original), original);
  });
});

// -------------------------------------------------------------------- files ----

describe("safeBaseName", () => {
  const cases: Array<[string, string | undefined]> = [
    ["../../etc/passwd", "passwd"],
    ["/abs/path.jpg", "path.jpg"],
    ["C:\\win\\x.jpg", "x.jpg"],
    ["..\\..\\windows\\system32\\evil.dll", "evil.dll"],
    ["..", undefined],
    [".", undefined],
    ["", undefined],
    ["...", undefined],
    ["dir/", undefined],
    ["   ", undefined],
    ["\u0000\u0001\u001f", undefined],
    [".hidden", "hidden"],
    ["..hidden.jpg", "hidden.jpg"],
    ["a\u0000b", "ab"],
    ["in\u001b[31mred\u0007.jpg", "in[31mred.jpg"],
    ["tab\there\r\n.jpg", "tabhere.jpg"],
    ["con.txt", "_con.txt"],
    ["CON", "_CON"],
    ["nul", "_nul"],
    ["COM1.jpg", "_COM1.jpg"],
    ["lpt9", "_lpt9"],
    ["console.txt", "console.txt"],
    ['a<b>c:d"e|f?g*h.jpg', "a_b_c_d_e_f_g_h.jpg"],
    ["  spaced.jpg  ", "spaced.jpg"],
    ["photo été 日本語.jpg", "photo été 日本語.jpg"],
    ["input.jpeg", "input.jpeg"],
  ];
  for (const [input, expected] of cases) {
    test(`${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => {
      assert.equal(safeBaseName(input), expected);
    });
  }

  test("results never contain separators, control characters or a leading dot", () => {
    for (const [input] of cases) {
      const name = safeBaseName(input);
      if (name === undefined) continue;
      assert.ok(!/[/\\]/.test(name), name);
      // deno-lint-ignore no-control-regex
      assert.ok(!/[\u0000-\u001f\u007f]/.test(name), name);
      assert.ok(!name.startsWith("."), name);
      assert.notEqual(name, "");
    }
  });

  test("a 1000-character name keeps its extension and is at most 180 characters", () => {
    const name = safeBaseName(`${"a".repeat(996)}.jpg`);
    assert.ok(name !== undefined);
    assert.ok(name.length <= 180, `length ${name.length}`);
    assert.ok(name.endsWith(".jpg"), name.slice(-10));
    assert.ok(name.startsWith("aaaa"));
    const traversal = safeBaseName(`../../${"b".repeat(1000)}.jpeg`);
    assert.ok(traversal !== undefined && traversal.length <= 180 && traversal.endsWith(".jpeg"));
  });

  test("C1 control characters (U+0080–U+009F, e.g. CSI U+009B) are dropped too", () => {
    assert.equal(safeBaseName("x\u009b31m.jpg"), "x31m.jpg");
    assert.equal(safeBaseName("a\u0085b\u009fc.jpg"), "abc.jpg");
  });

  test("truncation never splits a surrogate pair", () => {
    const name = safeBaseName(`a${"😀".repeat(200)}.jpg`);
    assert.ok(name !== undefined);
    assert.ok(name.endsWith(".jpg"));
    const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
    assert.ok(!lone.test(name), "result contains a lone surrogate");
  });

  test("a long multi-byte name accepted by the protocol still makes a file", () => {
    // 300 × 3 + 4 = 904 UTF-8 bytes: within MAX_NAME_BYTES, so a framed header may carry it.
    const sent = `${"日".repeat(300)}.jpg`;
    assert.ok(new TextEncoder().encode(sent).length <= MAX_NAME_BYTES);
    const name = safeBaseName(sent);
    assert.ok(name !== undefined);
    const dir = tempDir();
    const finalName = receivedName("tcp", name);
    // Most file systems limit a name to 255 bytes; the temporary name is longer still.
    const file = new ReceivingFile(dir, finalName);
    file.append(new Uint8Array([1, 2, 3]));
    const path = file.commit(finalName);
    assert.ok(fs.existsSync(path));
  });
});

describe("receivedName", () => {
  test("tcp, udp and incomplete names", () => {
    assert.equal(receivedName("tcp", "input.jpeg"), "received_input.jpeg");
    assert.equal(receivedName("udp", "input.jpeg"), "received_input_udp.jpeg");
    assert.equal(receivedName("udp", "input.jpeg", true), "received_input_udp.incomplete.jpeg");
    assert.equal(receivedName("tcp", "input.jpeg", true), "received_input.incomplete.jpeg");
    assert.equal(receivedName("tcp", "README"), "received_README");
    assert.equal(receivedName("udp", "README", true), "received_README_udp.incomplete");
    assert.equal(receivedName("tcp", "archive.tar.gz"), "received_archive.tar.gz");
  });
});

describe("ReceivingFile", () => {
  const partFiles = (dir: string) => fs.readdirSync(dir).filter((n) => n.endsWith(".part"));

  test("append, writeAt and readAt; commit moves the file under its final name", () => {
    const dir = tempDir();
    const file = new ReceivingFile(dir, "received_a.jpg");
    assert.ok(file.tempPath.startsWith(dir));
    assert.ok(file.tempPath.endsWith(".part"));
    assert.ok(fs.existsSync(file.tempPath));
    assert.equal(file.written, 0);
    file.append(new Uint8Array([1, 2, 3, 4]));
    file.append(new Uint8Array([5, 6]));
    assert.equal(file.written, 6);
    file.writeAt(new Uint8Array([9, 9]), 1);
    assert.equal(file.written, 6, "writeAt does not move the append position");
    const buf = new Uint8Array(10);
    assert.equal(file.readAt(buf, 0), 6);
    assert.deepEqual([...buf.subarray(0, 6)], [1, 9, 9, 4, 5, 6]);
    assert.equal(file.readAt(buf.subarray(0, 2), 4), 2);
    assert.deepEqual([...buf.subarray(0, 2)], [5, 6]);
    assert.equal(file.readAt(buf, 100), 0);
    file.append(new Uint8Array([7]));
    assert.equal(file.committedPath, undefined);
    const path = file.commit("received_a.jpg");
    assert.equal(path, join(dir, "received_a.jpg"));
    assert.equal(file.committedPath, path);
    assert.deepEqual([...fs.readFileSync(path)], [1, 9, 9, 4, 5, 6, 7]);
    assert.equal(fs.existsSync(file.tempPath), false);
    assert.deepEqual(partFiles(dir), []);
    // After commit the file is closed.
    assert.throws(() => file.append(new Uint8Array([1])));
    file.discard(); // no effect after a commit
    assert.ok(fs.existsSync(path));
  });

  test("writeAt past the end zero-fills, truncate sets the length", () => {
    const dir = tempDir();
    const file = new ReceivingFile(dir, "spool");
    file.writeAt(new Uint8Array([7]), 4);
    file.truncate(8);
    const path = file.commit("spool.bin");
    assert.deepEqual([...fs.readFileSync(path)], [0, 0, 0, 0, 7, 0, 0, 0]);
  });

  test("commit never overwrites: the same name gets _1, _2 …", () => {
    const dir = tempDir();
    fs.writeFileSync(join(dir, "keep.txt"), "precious");
    const paths: string[] = [];
    for (let i = 0; i < 3; i++) {
      const file = new ReceivingFile(dir, "received_x.jpg");
      file.append(new TextEncoder().encode(`copy ${i}`));
      paths.push(file.commit("received_x.jpg"));
    }
    assert.deepEqual(paths, [
      join(dir, "received_x.jpg"),
      join(dir, "received_x_1.jpg"),
      join(dir, "received_x_2.jpg"),
    ]);
    paths.forEach((p, i) => assert.equal(fs.readFileSync(p, "utf8"), `copy ${i}`));
    const noExt = new ReceivingFile(dir, "keep");
    noExt.append(new TextEncoder().encode("new"));
    assert.equal(noExt.commit("keep.txt"), join(dir, "keep_1.txt"));
    assert.equal(fs.readFileSync(join(dir, "keep.txt"), "utf8"), "precious");
    const bare = new ReceivingFile(dir, "README");
    bare.commit("README");
    const bare2 = new ReceivingFile(dir, "README");
    assert.equal(bare2.commit("README"), join(dir, "README_1"));
    assert.deepEqual(partFiles(dir), []);
  });

  test("discard removes the temporary file and is safe to call twice", () => {
    const dir = tempDir();
    const file = new ReceivingFile(dir, "received_y.jpg");
    file.append(new Uint8Array(1000));
    assert.equal(partFiles(dir).length, 1);
    file.discard();
    file.discard();
    assert.equal(fs.existsSync(file.tempPath), false);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  test("two files in flight get distinct temporary names", () => {
    const dir = tempDir();
    const a = new ReceivingFile(dir, "same.jpg");
    const b = new ReceivingFile(dir, "same.jpg");
    assert.notEqual(a.tempPath, b.tempPath);
    a.discard();
    b.discard();
    assert.deepEqual(partFiles(dir), []);
  });

  test("a missing folder → CliError with exit 3", () => {
    const dir = join(tempDir(), "does-not-exist");
    assert.throws(() => new ReceivingFile(dir, "x.jpg"), (error: unknown) => {
      assert.ok(error instanceof CliError);
      assert.equal(error.exitCode, ExitCode.FILE);
      assert.match(error.message, /no such file or directory/);
      return true;
    });
  });
});

// ---------------------------------------------------------------------- cli ----

describe("cli", () => {
  const spec = {
    port: { type: "string" as const, short: "p", default: "8081" },
    json: { type: "boolean" as const },
  };

  function assertUsage(fn: () => unknown, pattern?: RegExp): void {
    assert.throws(fn, (error: unknown) => {
      assert.ok(error instanceof CliError, `expected CliError, got ${String(error)}`);
      assert.equal(error.exitCode, ExitCode.USAGE);
      if (pattern) assert.match(error.message, pattern);
      return true;
    });
  }

  test("parseFlags reads flags, aliases and defaults", () => {
    const values = parseFlags(["--port", "9000", "--json"], spec);
    assert.equal(values.port, "9000");
    assert.equal(values.json, true);
    assert.equal(parseFlags(["-p", "1"], spec).port, "1");
    assert.equal(parseFlags(["--port=2"], spec).port, "2");
    const defaults = parseFlags([], spec);
    assert.equal(defaults.port, "8081");
    assert.equal(defaults.json, undefined);
    assert.equal(str(defaults, "port"), "8081");
    assertUsage(() => str(defaults, "json"));
    assert.equal(parseFlags(["--help"], spec).help, true);
    assert.equal(parseFlags(["-V"], spec).version, true);
  });

  test("parseFlags: unknown flags, missing values and positionals → CliError exit 2", () => {
    assertUsage(() => parseFlags(["--nope"], spec), /unknown option --nope \(see --help\)/);
    assertUsage(() => parseFlags(["-x"], spec), /-x/);
    assertUsage(() => parseFlags(["--port"], spec), /--port.*needs a value/);
    assertUsage(() => parseFlags(["extra"], spec), /unexpected argument 'extra'/);
    assertUsage(() => parseFlags(["--json=yes"], spec), /--json/);
  });

  test("parsePort bounds", () => {
    assert.equal(parsePort("1", false), 1);
    assert.equal(parsePort("8081", false), 8081);
    assert.equal(parsePort("65535", false), 65535);
    assert.equal(parsePort("0", true), 0);
    assertUsage(() => parsePort("0", false), /--port must be 1-65535, got 0/);
    assertUsage(() => parsePort("70000", false), /--port must be 1-65535, got 70000/);
    assertUsage(() => parsePort("70000", true), /--port must be 0-65535/);
    assertUsage(() => parsePort("65536", true));
    for (const bad of ["abc", "", "-1", "1.5", "1e3", "0x50", "80a"]) {
      assertUsage(() => parsePort(bad, true), /whole number/);
    }
  });

  test("parseBuffer bounds", () => {
    assert.equal(parseBuffer("1", 65503), 1);
    assert.equal(parseBuffer("4096", 65503), 4096);
    assert.equal(parseBuffer("65503", 65503), 65503);
    assertUsage(() => parseBuffer("65504", 65503), /--buffer must be 1-65503, got 65504/);
    assertUsage(() => parseBuffer("0", 65503), /--buffer must be 1-65503/);
    assertUsage(() => parseBuffer("70000", 65503, " (UDP)"), /--buffer must be 1-65503 \(UDP\), got 70000/);
    assertUsage(() => parseBuffer("big", 65503), /whole number/);
  });

  test("parseSeconds returns milliseconds for positive numbers only", () => {
    assert.equal(parseSeconds("1", "timeout"), 1000);
    assert.equal(parseSeconds("1.5", "timeout"), 1500);
    assert.equal(parseSeconds("0.25", "idle"), 250);
    for (const bad of ["0", "-1", "abc", "", "  ", "Infinity", "NaN"]) {
      assertUsage(() => parseSeconds(bad, "timeout"), /--timeout must be a positive number of seconds/);
    }
  });

  test("pythonAddr formats like Python's tuple repr", () => {
    assert.equal(pythonAddr("127.0.0.1:42662"), "('127.0.0.1', 42662)");
    assert.equal(pythonAddr("0.0.0.0:8081"), "('0.0.0.0', 8081)");
    assert.equal(pythonAddr("[::1]:8080"), "('::1', 8080)");
    assert.equal(pythonAddr("[::ffff:127.0.0.1]:5000"), "('127.0.0.1', 5000)");
    assert.equal(pythonAddr("not an address"), "not an address");
  });
});
