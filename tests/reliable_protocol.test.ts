/**
 * Unit tests for shared/protocol_reliable.ts, the reliable UDP wire format:
 * round trips of every message type, the CRC-32 that guards every datagram
 * (checked against an independent implementation), rejection of malformed
 * datagrams, the boundary with the classic format, the messages and
 * authenticators of keyed sessions and resume, and a seeded fuzz loop over
 * the decoder. No sockets, no files. Runs under `deno test` and `bun test`.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeClassicDatagram,
  DIGEST_SIZE,
  encodeClassicData,
  encodeClassicEnd,
  MAX_UDP_DATAGRAM,
  ProtocolError,
} from "../shared/protocol.ts";
import { Authenticator, TAG_SIZE } from "../shared/auth.ts";
import {
  type AbortMsg,
  type AcceptMsg,
  type AckMsg,
  type AuthMsg,
  type ChallengeMsg,
  DATA_HEADER_SIZE,
  type DataMsg,
  decodeReliable,
  type DoneMsg,
  encodeReliable,
  type FinMsg,
  type HelloMsg,
  isReliableDatagram,
  isReliableTagged,
  MAX_RELIABLE_CHUNK,
  MAX_RELIABLE_NAME,
  MAX_RELIABLE_TEXT,
  MAX_RESUME_RANGES,
  MAX_SACK_RANGES,
  MAX_TAGGED_RELIABLE_CHUNK,
  MsgType,
  NO_CHUNK,
  RELIABLE_HEADER_SIZE,
  RELIABLE_MAGIC,
  RELIABLE_VERSION,
  ReliableFlag,
  type ReliableMsg,
  reliableSessionKeys,
  ReliableStatus,
  ResumeDecision,
  type ResumeMsg,
  verifyReliableTag,
  writeDataHeader,
} from "../shared/protocol_reliable.ts";
import { seededRandom } from "../shared/rng.ts";

// ------------------------------------------------------------- helpers ----

/** An independent, table-driven CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320). */
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** CRC-32 of the datagram with its checksum field (bytes 8-11) set to zero: the module's documented definition. */
function crcZeroedField(datagram: Uint8Array): number {
  const copy = datagram.slice();
  view(copy).setUint32(8, 0, false);
  return crc32(copy);
}

/** CRC-32 of the datagram without its checksum field (bytes 0-7 then 12-end). */
function crcSkippedField(datagram: Uint8Array): number {
  const rest = new Uint8Array(datagram.length - 4);
  rest.set(datagram.subarray(0, 8));
  rest.set(datagram.subarray(12), 8);
  return crc32(rest);
}

/**
 * The checksum definition the implementation uses, found once from an
 * encoded datagram, so that the malformed datagrams below carry a checksum
 * the decoder accepts and reach the checks they are meant for. (Whether it is
 * the documented one is its own test.)
 */
const implementationCrc: (datagram: Uint8Array) => number = (() => {
  const probe = encodeReliable({ type: MsgType.ABORT, session: 0x01020304, status: 3, message: "probe" });
  const stored = view(probe).getUint32(8, false);
  if (stored === crcZeroedField(probe)) return crcZeroedField;
  if (stored === crcSkippedField(probe)) return crcSkippedField;
  throw new Error("the reliable checksum is not a CRC-32 of the datagram in any known layout");
})();

/** Stores a checksum the decoder accepts in a datagram of at least 12 bytes. */
function reseal(datagram: Uint8Array): Uint8Array {
  view(datagram).setUint32(8, implementationCrc(datagram), false);
  return datagram;
}

/** A copy of `datagram` changed by `edit`, with its checksum recomputed. */
function patched(datagram: Uint8Array, edit: (d: Uint8Array, v: DataView) => void): Uint8Array {
  const copy = datagram.slice();
  edit(copy, view(copy));
  return reseal(copy);
}

const utf8 = new TextEncoder();

function bytesOf(length: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(random() * 256);
  return out;
}

const digestA = bytesOf(DIGEST_SIZE, 1);
const authA = new Authenticator(bytesOf(32, 99));

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Asserts that decoding throws a ProtocolError (and nothing else), optionally matching `pattern`. */
function rejects(datagram: Uint8Array, pattern?: RegExp, context = ""): void {
  let result: ReliableMsg | undefined;
  try {
    result = decodeReliable(datagram);
  } catch (error) {
    assert.ok(
      error instanceof ProtocolError,
      `${context} expected ProtocolError, got ${
        error instanceof Error ? error.name : typeof error
      }: ${error} ` +
        `for ${hex(datagram.subarray(0, 64))}`,
    );
    if (pattern) assert.match(error.message, pattern, context);
    return;
  }
  assert.fail(
    `${context} decoded instead of being rejected: ${JSON.stringify(result)} from ${hex(datagram)}`,
  );
}

function roundTrip<T extends ReliableMsg>(
  msg: T,
  flags = 0,
  auth?: Authenticator,
): { bytes: Uint8Array; decoded: T } {
  const bytes = encodeReliable(msg, auth);
  const decoded = decodeReliable(bytes) as T;
  assert.deepEqual(decoded, msg);
  // The common header: magic, type, version, flags, session, CRC-32.
  assert.equal(bytes[0], RELIABLE_MAGIC);
  assert.equal(bytes[1], msg.type);
  assert.equal(bytes[2], RELIABLE_VERSION);
  assert.equal(bytes[3], flags | (auth ? ReliableFlag.TAGGED : 0));
  assert.equal(view(bytes).getUint32(4, false), msg.session);
  assert.equal(view(bytes).getUint32(8, false), implementationCrc(bytes), "checksum is a CRC-32");
  assert.ok(bytes.length <= MAX_UDP_DATAGRAM);
  return { bytes, decoded };
}

/** One valid datagram of every type, for the rejection tests and the fuzz corpus. */
function corpus(): Uint8Array[] {
  return [
    encodeReliable({
      type: MsgType.HELLO,
      session: 0xdeadbeef,
      chunkSize: 1400,
      size: 123456,
      name: "image.jpeg",
    }),
    encodeReliable({ type: MsgType.HELLO, session: 7, chunkSize: 1, size: 0, name: "日本語 📷.png" }),
    encodeReliable({ type: MsgType.ACCEPT, session: 0xdeadbeef, status: 0, window: 4096, message: "" }),
    encodeReliable({ type: MsgType.ACCEPT, session: 3, status: 2, window: 0, message: "too large: 9 GB" }),
    encodeReliable({ type: MsgType.DATA, session: 0xdeadbeef, seq: 42, payload: bytesOf(64, 2) }),
    encodeReliable({ type: MsgType.DATA, session: 1, seq: 0, payload: new Uint8Array(0) }),
    encodeReliable({
      type: MsgType.ACK,
      session: 0xdeadbeef,
      cumulative: 10,
      window: 4096,
      latest: 14,
      delayMicros: 1500,
      ranges: [[12, 13], [14, 20], [25, 26]],
    }),
    encodeReliable({
      type: MsgType.ACK,
      session: 9,
      cumulative: 0,
      window: 1,
      latest: NO_CHUNK,
      delayMicros: 0,
      ranges: [],
    }),
    encodeReliable({ type: MsgType.FIN, session: 0xdeadbeef, chunks: 89, size: 123456, digest: digestA }),
    encodeReliable({
      type: MsgType.DONE,
      session: 0xdeadbeef,
      status: 0,
      bytes: 123456,
      digest: digestA,
      duplicates: 3,
      acks: 41,
      message: "SUCCESS: File received via UDP",
    }),
    encodeReliable({ type: MsgType.ABORT, session: 0xdeadbeef, status: 3, message: "disk full" }),
    encodeReliable({ type: MsgType.ABORT, session: 5, status: 4, message: "" }),
    // Keyed sessions and resume.
    encodeReliable({
      type: MsgType.HELLO,
      session: 0xdeadbeef,
      chunkSize: 1400,
      size: 123456,
      name: "image.jpeg",
      resume: true,
      nonce: bytesOf(32, 11),
    }),
    encodeReliable({
      type: MsgType.ACCEPT,
      session: 0xdeadbeef,
      status: 0,
      window: 4096,
      message: "",
      offer: { ranges: [[0, 40], [42, 50], [60, 61]], digest: digestA },
    }, authA),
    encodeReliable({
      type: MsgType.ACCEPT,
      session: 4,
      status: 0,
      window: 16,
      message: "",
      offer: { ranges: [], digest: digestA },
    }),
    encodeReliable({
      type: MsgType.CHALLENGE,
      session: 0xdeadbeef,
      nonce: bytesOf(32, 12),
      proof: bytesOf(32, 13),
    }),
    encodeReliable({ type: MsgType.AUTH, session: 0xdeadbeef, proof: bytesOf(32, 14) }),
    encodeReliable({ type: MsgType.RESUME, session: 0xdeadbeef, decision: ResumeDecision.KEEP }, authA),
    encodeReliable({ type: MsgType.RESUME, session: 8, decision: ResumeDecision.RESTART }),
    encodeReliable({ type: MsgType.RESUME, session: 8, decision: ResumeDecision.CHECKING }, authA),
    encodeReliable({ type: MsgType.DATA, session: 0xdeadbeef, seq: 43, payload: bytesOf(64, 15) }, authA),
    encodeReliable({
      type: MsgType.ACK,
      session: 0xdeadbeef,
      cumulative: 40,
      window: 4096,
      latest: 45,
      delayMicros: 10,
      ranges: [[42, 46]],
    }, authA),
    encodeReliable(
      { type: MsgType.FIN, session: 0xdeadbeef, chunks: 89, size: 123456, digest: digestA },
      authA,
    ),
  ];
}

// ---------------------------------------------------------- round trips ----

describe("reliable wire format: round trips", () => {
  test("the CRC-32 used by these tests is the standard one", () => {
    assert.equal(crc32(utf8.encode("123456789")), 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)), 0);
  });

  test("the checksum is the CRC-32 of bytes 0-7 then 12 to the end, as documented", () => {
    // shared/protocol_reliable.ts: "a CRC-32 of the datagram's other bytes
    // (bytes 0-7, then 12 to the end: the checksum field itself is skipped)".
    // An independent implementation of the format follows that sentence; it
    // must agree with ours (and differ from the zeroed-field variant).
    for (const datagram of corpus()) {
      assert.equal(
        view(datagram).getUint32(8, false),
        crcSkippedField(datagram),
        `type ${datagram[1]}: stored ${view(datagram).getUint32(8, false)}, documented definition gives ` +
          `${crcSkippedField(datagram)} (zeroing the field instead gives ${crcZeroedField(datagram)})`,
      );
    }
  });

  test("HELLO with ASCII, unicode, BOM-led and maximum-length names", () => {
    const names = [
      "a",
      "photo.jpeg",
      "日本語の写真.jpg",
      "emoji 📷🖼️ (family 👨‍👩‍👧).png",
      "Ünïcödé ÄÖÜ ß ǅ",
      "\uFEFFbom-first.txt",
      "tab\tand\nnewline",
      "x".repeat(MAX_RELIABLE_NAME),
      "é".repeat(MAX_RELIABLE_NAME / 2),
      "😀".repeat(MAX_RELIABLE_NAME / 4),
    ];
    const sizes = [0, 1, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER];
    const chunkSizes = [1, 1400, MAX_RELIABLE_CHUNK, 0xffffffff];
    const sessions = [0, 1, 0x12345678, 0xffffffff];
    names.forEach((name, i) => {
      const msg: HelloMsg = {
        type: MsgType.HELLO,
        session: sessions[i % sessions.length],
        chunkSize: chunkSizes[i % chunkSizes.length],
        size: sizes[i % sizes.length],
        name,
      };
      const { bytes } = roundTrip(msg);
      assert.equal(bytes.length, RELIABLE_HEADER_SIZE + 14 + utf8.encode(name).length);
      assert.equal(view(bytes).getUint16(24, false), utf8.encode(name).length);
    });
  });

  test("ACCEPT accepting with a window and rejecting with a reason", () => {
    const accept: AcceptMsg = {
      type: MsgType.ACCEPT,
      session: 77,
      status: ReliableStatus.OK,
      window: 4096,
      message: "",
    };
    assert.equal(roundTrip(accept).bytes.length, RELIABLE_HEADER_SIZE + 8);
    for (
      const [status, message] of [
        [ReliableStatus.REFUSED, "refused: name “../etc/passwd” is not allowed"],
        [ReliableStatus.BUSY, "busy: 64 sessions"],
        [ReliableStatus.UNSUPPORTED_VERSION, ""],
        [ReliableStatus.SERVER_ERROR, "disk full — ディスクがいっぱい"],
        [255, "x".repeat(MAX_RELIABLE_TEXT)],
      ] as const
    ) {
      roundTrip<AcceptMsg>({ type: MsgType.ACCEPT, session: 0xffffffff, status, window: 0, message });
    }
    roundTrip<AcceptMsg>({ type: MsgType.ACCEPT, session: 1, status: 0, window: 0xffffffff, message: "ok" });
  });

  test("DATA with empty, ordinary and maximum payloads", () => {
    const empty = roundTrip<DataMsg>({ type: MsgType.DATA, session: 5, seq: 0, payload: new Uint8Array(0) });
    assert.equal(empty.bytes.length, DATA_HEADER_SIZE);
    assert.equal(empty.decoded.payload.length, 0);
    roundTrip<DataMsg>({ type: MsgType.DATA, session: 5, seq: 1, payload: bytesOf(1400, 3) });
    roundTrip<DataMsg>({ type: MsgType.DATA, session: 5, seq: 0xffffffff, payload: bytesOf(1, 4) });
    const max = roundTrip<DataMsg>({
      type: MsgType.DATA,
      session: 0xcafef00d,
      seq: 123456,
      payload: bytesOf(MAX_RELIABLE_CHUNK, 5),
    });
    assert.equal(max.bytes.length, MAX_UDP_DATAGRAM);
    assert.equal(MAX_RELIABLE_CHUNK, MAX_UDP_DATAGRAM - DATA_HEADER_SIZE);
    // The decoded payload is a view into the datagram, at the right place.
    assert.equal(max.decoded.payload.byteOffset, max.bytes.byteOffset + DATA_HEADER_SIZE);
  });

  test("ACK with no ranges, with 64 ranges, and with or without `latest`", () => {
    const none: AckMsg = {
      type: MsgType.ACK,
      session: 1,
      cumulative: 0,
      window: 4096,
      latest: NO_CHUNK,
      delayMicros: 0,
      ranges: [],
    };
    assert.equal(roundTrip(none).bytes.length, RELIABLE_HEADER_SIZE + 17);
    const ranges: Array<[number, number]> = [];
    for (let i = 0; i < MAX_SACK_RANGES; i++) ranges.push([1000 + i * 10, 1000 + i * 10 + 1 + (i % 7)]);
    const full: AckMsg = {
      type: MsgType.ACK,
      session: 2,
      cumulative: 999,
      window: 8,
      latest: 1635,
      delayMicros: 1500,
      ranges,
    };
    const { bytes, decoded } = roundTrip(full);
    assert.equal(bytes.length, RELIABLE_HEADER_SIZE + 17 + 64 * 8);
    assert.equal(decoded.ranges.length, 64);
    assert.equal(decoded.latest, 1635);
    assert.equal(decoded.delayMicros, 1500);
    // A range may start right at the cumulative point and ranges may touch.
    roundTrip<AckMsg>({
      type: MsgType.ACK,
      session: 3,
      cumulative: 5,
      window: 0,
      latest: 0,
      delayMicros: 0xffffffff,
      ranges: [[5, 6], [6, 9], [0xfffffffe, 0xffffffff]],
    });
  });

  test("ACK `delayMicros`: u32 at offset 24 after `latest`, range count at 28, ranges from 29", () => {
    for (const delayMicros of [0, 1, 1500, 250_000, 0x80000000, 0xffffffff]) {
      const msg: AckMsg = {
        type: MsgType.ACK,
        session: 0x0badf00d,
        cumulative: 100,
        window: 512,
        latest: 107,
        delayMicros,
        ranges: [[102, 104], [107, 108]],
      };
      const { bytes, decoded } = roundTrip(msg);
      assert.equal(decoded.delayMicros, delayMicros);
      assert.equal(bytes.length, 29 + 2 * 8);
      const v = view(bytes);
      assert.equal(v.getUint32(12, false), 100, "cumulative at 12");
      assert.equal(v.getUint32(16, false), 512, "window at 16");
      assert.equal(v.getUint32(20, false), 107, "latest at 20");
      assert.equal(v.getUint32(24, false), delayMicros, "delayMicros at 24, big-endian");
      assert.equal(bytes[28], 2, "range count at 28");
      assert.deepEqual(
        [v.getUint32(29, false), v.getUint32(33, false), v.getUint32(37, false), v.getUint32(41, false)],
        [102, 104, 107, 108],
        "ranges at 29 + i*8",
      );
    }
    // Omitted when encoding: written as 0, and always present when decoding.
    const omitted = encodeReliable({
      type: MsgType.ACK,
      session: 4,
      cumulative: 0,
      window: 1,
      latest: NO_CHUNK,
      ranges: [],
    });
    assert.equal(omitted.length, 29);
    assert.equal(view(omitted).getUint32(24, false), 0);
    const decoded = decodeReliable(omitted) as AckMsg;
    assert.ok("delayMicros" in decoded, "decoded ACKs always carry delayMicros");
    assert.equal(decoded.delayMicros, 0);
    assert.deepEqual(decoded, {
      type: MsgType.ACK,
      session: 4,
      cumulative: 0,
      window: 1,
      latest: NO_CHUNK,
      delayMicros: 0,
      ranges: [],
    });
  });

  test("FIN, DONE and ABORT", () => {
    roundTrip<FinMsg>({ type: MsgType.FIN, session: 9, chunks: 0, size: 0, digest: digestA });
    roundTrip<FinMsg>({
      type: MsgType.FIN,
      session: 0xffffffff,
      chunks: 0xffffffff,
      size: Number.MAX_SAFE_INTEGER,
      digest: bytesOf(32, 6),
    });
    for (const status of Object.values(ReliableStatus)) {
      roundTrip<DoneMsg>({
        type: MsgType.DONE,
        session: 10 + status,
        status,
        bytes: status * 1_000_003,
        digest: bytesOf(32, 7 + status),
        duplicates: status === 0 ? 0 : 0xffffffff - status,
        acks: status * 977,
        message: status === 0 ? "SUCCESS: File received via UDP" : `échec nº${status} ✗`,
      });
      roundTrip<AbortMsg>({
        type: MsgType.ABORT,
        session: 20 + status,
        status,
        message: `abort ${status} 中止`,
      });
    }
    const done = roundTrip<DoneMsg>({
      type: MsgType.DONE,
      session: 1,
      status: 0,
      bytes: Number.MAX_SAFE_INTEGER,
      digest: digestA,
      duplicates: 0,
      acks: 0,
      message: "",
    });
    assert.equal(done.bytes.length, RELIABLE_HEADER_SIZE + 1 + 8 + DIGEST_SIZE + 8 + 2);
    assert.equal(
      roundTrip<AbortMsg>({ type: MsgType.ABORT, session: 0, status: 0, message: "" }).bytes.length,
      15,
    );
  });

  test("writeDataHeader writes the same bytes as encodeReliable, in place and in reused buffers", () => {
    for (const [session, seq, length] of [[0, 0, 0], [0xdeadbeef, 7, 1400], [0xffffffff, 0xffffffff, 4096]]) {
      const payload = bytesOf(length, seq + length);
      const expected = encodeReliable({ type: MsgType.DATA, session, seq, payload });
      const datagram = new Uint8Array(DATA_HEADER_SIZE + length);
      datagram.set(payload, DATA_HEADER_SIZE);
      writeDataHeader(datagram, session, seq);
      assert.deepEqual(datagram, expected);
      // A view at an offset into a larger buffer whose header bytes hold stale data.
      const backing = new Uint8Array(DATA_HEADER_SIZE + length + 40).fill(0xa5);
      const inner = backing.subarray(17, 17 + DATA_HEADER_SIZE + length);
      inner.set(payload, DATA_HEADER_SIZE);
      writeDataHeader(inner, session, seq);
      assert.deepEqual(inner, expected);
      assert.ok(backing.subarray(0, 17).every((b) => b === 0xa5), "bytes before the view untouched");
      assert.ok(
        backing.subarray(17 + inner.length).every((b) => b === 0xa5),
        "bytes after the view untouched",
      );
      // Reusing the buffer for the next sequence number gives that datagram exactly.
      writeDataHeader(inner, session, (seq + 1) >>> 0);
      assert.deepEqual(inner, encodeReliable({ type: MsgType.DATA, session, seq: (seq + 1) >>> 0, payload }));
    }
  });
});

// ------------------------------------------------------------ rejection ----

describe("reliable wire format: rejection of damaged and malformed datagrams", () => {
  test("every single-bit flip is rejected (CRC-32 catches all one-bit errors)", () => {
    const samples = [
      encodeReliable({
        type: MsgType.HELLO,
        session: 0xdeadbeef,
        chunkSize: 1400,
        size: 99999,
        name: "ü.png",
      }),
      encodeReliable({ type: MsgType.DATA, session: 0xdeadbeef, seq: 3, payload: bytesOf(1400, 8) }),
      encodeReliable({
        type: MsgType.ACK,
        session: 0xdeadbeef,
        cumulative: 3,
        window: 64,
        latest: 9,
        delayMicros: 1500,
        ranges: [[5, 6], [9, 12]],
      }),
      encodeReliable({
        type: MsgType.DONE,
        session: 1,
        status: 0,
        bytes: 99999,
        digest: digestA,
        duplicates: 2,
        acks: 17,
        message: "ok",
      }),
      encodeReliable({ type: MsgType.FIN, session: 2, chunks: 72, size: 99999, digest: digestA }),
    ];
    let flips = 0;
    for (const original of samples) {
      decodeReliable(original); // valid before
      for (let bit = 0; bit < original.length * 8; bit++) {
        const damaged = original.slice();
        damaged[bit >> 3] ^= 1 << (bit & 7);
        rejects(damaged, undefined, `bit ${bit} of type ${original[1]}`);
        flips++;
      }
    }
    assert.ok(flips > 12_000);
  });

  test("a flipped bit outside the header is reported as a checksum mismatch", () => {
    const original = encodeReliable({ type: MsgType.DATA, session: 4, seq: 3, payload: bytesOf(100, 9) });
    for (const i of [4, 7, 8, 11, 12, 15, 16, 60, 115]) {
      const damaged = original.slice();
      damaged[i] ^= 0x10;
      rejects(damaged, /checksum/);
    }
  });

  test("truncated datagrams are rejected, with or without a recomputed checksum", () => {
    for (const original of corpus()) {
      const isData = original[1] === MsgType.DATA;
      for (let length = 0; length < original.length; length++) {
        rejects(original.slice(0, length), undefined, `type ${original[1]} cut to ${length}`);
        if (length >= RELIABLE_HEADER_SIZE && !(isData && length >= DATA_HEADER_SIZE)) {
          // Resealed: the checksum is right, so the length checks must catch it.
          rejects(
            reseal(original.slice(0, length)),
            undefined,
            `type ${original[1]} cut to ${length}, resealed`,
          );
        }
      }
    }
    rejects(new Uint8Array(0), /shorter/);
    rejects(new Uint8Array([RELIABLE_MAGIC]), /shorter/);
    rejects(new Uint8Array(11).fill(RELIABLE_MAGIC), /shorter/);
  });

  test("wrong magic, wrong version, unknown type", () => {
    const hello = corpus()[0];
    for (const magic of [0x00, 0x7f, 0xb6, 0xb8, 0xff]) {
      rejects(patched(hello, (d) => (d[0] = magic)), /not a reliable datagram/);
    }
    for (const version of [0, 2, 3, 0x81, 255]) {
      rejects(patched(hello, (d) => (d[2] = version)), /version/);
    }
    for (const type of [0, 11, 12, 0x41, 0x80, 255]) {
      rejects(patched(hello, (d) => (d[1] = type)), /unknown reliable message type/);
    }
  });

  test("ACK ranges out of order, empty, overlapping, below the cumulative point", () => {
    const bad: Array<[number, Array<[number, number]>]> = [
      [10, [[5, 7]]], // below the cumulative point
      [10, [[12, 12]]], // empty
      [10, [[13, 12]]], // reversed
      [10, [[12, 15], [14, 20]]], // overlapping
      [10, [[20, 25], [12, 15]]], // descending
      [10, [[12, 15], [16, 18], [17, 30]]],
    ];
    for (const [cumulative, ranges] of bad) {
      // The encoder writes what it is given; the decoder must refuse it.
      const datagram = encodeReliable({
        type: MsgType.ACK,
        session: 1,
        cumulative,
        window: 8,
        latest: 0,
        ranges,
      });
      rejects(datagram, /out of order/, JSON.stringify(ranges));
    }
  });

  test("ACK with more than 64 ranges, or fewer bytes than its count says", () => {
    const ranges: Array<[number, number]> = [];
    for (let i = 0; i < MAX_SACK_RANGES; i++) ranges.push([2 * i + 1, 2 * i + 2]);
    const ok = encodeReliable({
      type: MsgType.ACK,
      session: 1,
      cumulative: 0,
      window: 8,
      latest: 1,
      delayMicros: 1500,
      ranges,
    });
    decodeReliable(ok);
    for (const count of [65, 100, 255]) {
      const big = new Uint8Array(29 + count * 8);
      big.set(ok);
      for (let i = MAX_SACK_RANGES; i < count; i++) {
        view(big).setUint32(29 + i * 8, 2 * i + 1, false);
        view(big).setUint32(33 + i * 8, 2 * i + 2, false);
      }
      big[28] = count;
      rejects(reseal(big), /ranges/, `${count} ranges`);
    }
    // The count promises more ranges than the datagram holds.
    rejects(reseal(patched(ok, (d) => (d[28] = 3)).slice(0, 29 + 2 * 8)), /shorter/);
    const short = reseal(ok.slice(0, 29 + 10 * 8));
    rejects(short, /shorter/);
  });

  test("64-bit sizes above 2^53 − 1 are rejected in HELLO, FIN and DONE", () => {
    const [hello] = corpus();
    const fin = corpus()[8];
    const done = corpus()[9];
    for (const big of [2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]) {
      rejects(patched(hello, (_d, v) => v.setBigUint64(16, big, false)), /too large/);
      rejects(patched(fin, (_d, v) => v.setBigUint64(16, big, false)), /too large/);
      rejects(patched(done, (_d, v) => v.setBigUint64(13, big, false)), /too large/);
    }
    const max = BigInt(Number.MAX_SAFE_INTEGER);
    assert.equal(
      (decodeReliable(patched(hello, (_d, v) => v.setBigUint64(16, max, false))) as HelloMsg).size,
      2 ** 53 - 1,
    );
  });

  test("text fields: empty HELLO name, invalid UTF-8, lengths over the limit or past the end", () => {
    const [hello] = corpus();
    rejects(patched(hello, (_d, v) => v.setUint16(24, 0, false)), /empty name/);
    rejects(patched(hello, (_d, v) => v.setUint16(24, 11, false)), /past the end/);
    const base = (name: Uint8Array) => {
      const out = new Uint8Array(26 + name.length);
      out.set(hello.subarray(0, 26));
      view(out).setUint16(24, name.length, false);
      out.set(name, 26);
      return reseal(out);
    };
    for (
      const invalid of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [
        0x61,
        0xf8,
        0x88,
        0x80,
        0x80,
        0x80,
      ]]
    ) {
      rejects(base(new Uint8Array(invalid)), /UTF-8/, JSON.stringify(invalid));
    }
    rejects(base(new Uint8Array(MAX_RELIABLE_NAME + 1).fill(0x61)), /too long/);
    const abort = corpus()[10];
    rejects(patched(abort, (_d, v) => v.setUint16(13, 0xffff, false)), /too long/);
    rejects(patched(abort, (_d, v) => v.setUint16(13, 100, false)), /past the end/);
    const accept = corpus()[3];
    rejects(patched(accept, (d) => (d[20] = 0xfe)), /UTF-8/);
  });

  test("datagrams too short for their type, with a valid checksum", () => {
    const header = (type: number, length: number) => {
      const d = new Uint8Array(length);
      d[0] = RELIABLE_MAGIC;
      d[1] = type;
      d[2] = RELIABLE_VERSION;
      return reseal(d);
    };
    const minimum: Record<number, number> = {
      [MsgType.HELLO]: 26,
      [MsgType.ACCEPT]: 20,
      [MsgType.DATA]: 16,
      [MsgType.ACK]: 29,
      [MsgType.FIN]: 24 + DIGEST_SIZE,
      [MsgType.DONE]: 63,
      [MsgType.ABORT]: 15,
    };
    for (const [type, min] of Object.entries(minimum)) {
      for (let length = RELIABLE_HEADER_SIZE; length < min; length++) {
        rejects(header(Number(type), length), /shorter/, `type ${type} length ${length}`);
      }
    }
    // At the minimum, only HELLO (empty name) is still invalid.
    assert.throws(() => decodeReliable(header(MsgType.HELLO, 26)), ProtocolError);
    for (
      const type of [MsgType.ACCEPT, MsgType.DATA, MsgType.ACK, MsgType.FIN, MsgType.DONE, MsgType.ABORT]
    ) {
      assert.equal(decodeReliable(header(type, minimum[type])).type, type);
    }
  });
});

// ------------------------------------------- long text is cut, not broken ----

describe("reliable wire format: text longer than its limit", () => {
  test("ASCII text over 1024 bytes is cut to 1024 bytes and still decodes", () => {
    const long = "r".repeat(MAX_RELIABLE_TEXT + 500);
    const accept = decodeReliable(
      encodeReliable({ type: MsgType.ACCEPT, session: 1, status: 2, window: 0, message: long }),
    ) as AcceptMsg;
    assert.equal(accept.message, long.slice(0, MAX_RELIABLE_TEXT));
    const hello = decodeReliable(
      encodeReliable({ type: MsgType.HELLO, session: 1, chunkSize: 1, size: 1, name: long }),
    ) as HelloMsg;
    assert.equal(hello.name, long.slice(0, MAX_RELIABLE_NAME));
  });

  test("multi-byte text over 1024 bytes is cut on a character boundary, so the datagram still decodes", () => {
    // 1 ASCII byte then 2-byte characters: byte 1024 falls in the middle of a character.
    const long = "a" + "é".repeat(700);
    const messages: ReliableMsg[] = [
      { type: MsgType.HELLO, session: 1, chunkSize: 1400, size: 10, name: long },
      { type: MsgType.ACCEPT, session: 1, status: ReliableStatus.REFUSED, window: 0, message: long },
      {
        type: MsgType.DONE,
        session: 1,
        status: 0,
        bytes: 10,
        digest: digestA,
        duplicates: 0,
        acks: 1,
        message: long,
      },
      {
        type: MsgType.ABORT,
        session: 1,
        status: ReliableStatus.SERVER_ERROR,
        message: "a" + "😀".repeat(300),
      },
    ];
    const failures: string[] = [];
    for (const msg of messages) {
      let decoded: ReliableMsg;
      try {
        decoded = decodeReliable(encodeReliable(msg));
      } catch (error) {
        failures.push(`type ${msg.type}: ${error}`);
        continue;
      }
      const original = msg.type === MsgType.HELLO ? msg.name : (msg as AcceptMsg).message;
      const text = decoded.type === MsgType.HELLO ? decoded.name : (decoded as AcceptMsg).message;
      assert.ok(original.startsWith(text), "the decoded text is a prefix of the original");
      const length = utf8.encode(text).length;
      assert.ok(length <= MAX_RELIABLE_TEXT && length > MAX_RELIABLE_TEXT - 4, `kept ${length} bytes`);
    }
    assert.deepEqual(failures, [], "messages with long text must not encode into undecodable datagrams");
  });
});

// ------------------------------------------------- classic vs reliable ----

describe("reliable vs classic datagrams", () => {
  test("isReliableDatagram tells the formats apart by the first byte", () => {
    for (const d of corpus()) assert.equal(isReliableDatagram(d), true);
    for (const seq of [0, 1, 255, 0xb7, 0xb700, 0x7fffffff]) {
      assert.equal(isReliableDatagram(encodeClassicData(seq, bytesOf(20, seq))), false, `classic seq ${seq}`);
    }
    assert.equal(isReliableDatagram(encodeClassicEnd()), false);
    assert.equal(isReliableDatagram(encodeClassicEnd({ packets: 3, chunk: 1024, bytes: 3000 })), false);
    assert.equal(isReliableDatagram(new Uint8Array(0)), false);
    assert.equal(isReliableDatagram(new Uint8Array([RELIABLE_MAGIC])), true);
    assert.equal(isReliableDatagram(new Uint8Array([0xb6, 1, 1, 0])), false);
  });

  test("a classic server rejects every reliable datagram (negative sequence number other than −1)", () => {
    for (const d of corpus()) {
      assert.throws(() => decodeClassicDatagram(d), ProtocolError, `type ${d[1]}`);
    }
    // Whatever follows the magic byte.
    const random = seededRandom(99);
    for (let i = 0; i < 2000; i++) {
      const d = bytesOf(4 + Math.floor(random() * 40), 1000 + i);
      d[0] = RELIABLE_MAGIC;
      assert.throws(() => decodeClassicDatagram(d), ProtocolError);
    }
  });

  test("the reliable decoder rejects classic datagrams", () => {
    for (const seq of [0, 1, 0xb7, 0x7fffffff]) rejects(encodeClassicData(seq, bytesOf(100, seq)));
    rejects(encodeClassicEnd());
    rejects(encodeClassicEnd({ packets: 3, chunk: 1024, bytes: 3000 }));
  });
});

// ------------------------------------------- keyed sessions and resume ----

describe("reliable wire format: keyed sessions and resume", () => {
  const keyB = new Authenticator(bytesOf(32, 98));

  test("a keyed HELLO carries its flags and the 32-byte nonce after the name; a resuming one the RESUME flag", () => {
    const nonce = bytesOf(32, 21);
    const base: HelloMsg = { type: MsgType.HELLO, session: 3, chunkSize: 1400, size: 99, name: "a.bin" };
    const keyed = roundTrip<HelloMsg>({ ...base, nonce }, ReliableFlag.KEYED);
    assert.equal(keyed.bytes.length, RELIABLE_HEADER_SIZE + 14 + 5 + 32);
    assert.deepEqual(keyed.bytes.subarray(26 + 5), nonce);
    roundTrip<HelloMsg>({ ...base, resume: true }, ReliableFlag.RESUME);
    roundTrip<HelloMsg>({ ...base, resume: true, nonce }, ReliableFlag.RESUME | ReliableFlag.KEYED);
    // Without either, the bytes are those of a v1 HELLO from before keys existed.
    assert.equal(encodeReliable(base)[3], 0);
    // A keyed HELLO cut inside its nonce is rejected.
    rejects(patched(keyed.bytes.subarray(0, keyed.bytes.length - 1), () => {}), /keyed HELLO/);
  });

  test("ACCEPT with a resume offer: ranges after the message, then the digest; empty offers too", () => {
    const offer = { ranges: [[0, 10], [12, 13], [20, 4000]] as Array<[number, number]>, digest: digestA };
    const msg: AcceptMsg = { type: MsgType.ACCEPT, session: 9, status: 0, window: 64, message: "hi", offer };
    const { bytes } = roundTrip(msg, ReliableFlag.RESUME);
    assert.equal(bytes.length, RELIABLE_HEADER_SIZE + 8 + 2 + 2 + 3 * 8 + DIGEST_SIZE);
    assert.equal(view(bytes).getUint16(22, false), 3);
    roundTrip<AcceptMsg>({ ...msg, offer: { ranges: [], digest: digestA } }, ReliableFlag.RESUME);
    // The encoder keeps at most MAX_RESUME_RANGES ranges, so an ACCEPT stays near 1 KB.
    const many: Array<[number, number]> = Array.from({ length: 300 }, (_, k) => [3 * k, 3 * k + 1]);
    const capped = decodeReliable(
      encodeReliable({ ...msg, offer: { ranges: many, digest: digestA } }),
    ) as AcceptMsg;
    assert.deepEqual(capped.offer?.ranges, many.slice(0, MAX_RESUME_RANGES));
    assert.ok(encodeReliable({ ...msg, offer: { ranges: many, digest: digestA } }, authA).length < 1200);
  });

  test("CHALLENGE, AUTH and RESUME", () => {
    const challenge = roundTrip<ChallengeMsg>({
      type: MsgType.CHALLENGE,
      session: 0xffffffff,
      nonce: bytesOf(32, 22),
      proof: bytesOf(32, 23),
    });
    assert.equal(challenge.bytes.length, RELIABLE_HEADER_SIZE + 64);
    assert.equal(
      roundTrip<AuthMsg>({ type: MsgType.AUTH, session: 1, proof: bytesOf(32, 24) }).bytes.length,
      44,
    );
    const keep = roundTrip<ResumeMsg>({ type: MsgType.RESUME, session: 2, decision: ResumeDecision.KEEP });
    assert.equal(keep.bytes[12], 0);
    const restart = roundTrip<ResumeMsg>({
      type: MsgType.RESUME,
      session: 2,
      decision: ResumeDecision.RESTART,
    });
    assert.equal(restart.bytes[12], 1);
    const checking = roundTrip<ResumeMsg>({
      type: MsgType.RESUME,
      session: 2,
      decision: ResumeDecision.CHECKING,
    });
    assert.equal(checking.bytes[12], 2);
    assert.throws(
      () => encodeReliable({ type: MsgType.AUTH, session: 1, proof: bytesOf(31, 1) }),
      RangeError,
    );
  });

  test("every message type can be tagged; the tag verifies under its key only", () => {
    for (const datagram of corpus()) {
      const msg = decodeReliable(datagram);
      const flags = datagram[3] & ~ReliableFlag.TAGGED;
      const { bytes } = roundTrip(msg, flags, authA);
      assert.ok(isReliableTagged(bytes));
      assert.equal(bytes.length, encodeReliable(msg).length + TAG_SIZE);
      assert.ok(verifyReliableTag(bytes, authA), `type ${msg.type}`);
      assert.ok(!verifyReliableTag(bytes, keyB), `type ${msg.type} verified under another key`);
      assert.ok(!verifyReliableTag(encodeReliable(msg), authA), "an untagged datagram never verifies");
    }
  });

  test("the tag covers the header and the body: any change, even with a valid CRC, fails it", () => {
    const bytes = encodeReliable(
      { type: MsgType.DATA, session: 77, seq: 5, payload: bytesOf(200, 25) },
      authA,
    );
    for (const offset of [0, 1, 2, 4, 7, 12, 15, 16, 100, bytes.length - TAG_SIZE - 1, bytes.length - 1]) {
      const changed = patched(bytes, (d) => (d[offset] ^= 0x01));
      let decodes = true;
      try {
        decodeReliable(changed);
      } catch {
        decodes = false;
      }
      // Whether or not it still decodes, it never verifies.
      assert.ok(
        !verifyReliableTag(changed, authA),
        `byte ${offset} changed, tag still valid (decodes: ${decodes})`,
      );
    }
    // Dropping the TAGGED flag makes the tag part of the payload: nothing verifies.
    const untagged = patched(bytes, (d) => (d[3] = 0));
    assert.ok(!verifyReliableTag(untagged, authA));
  });

  test("writeDataHeader with a key writes the same bytes as encodeReliable with that key", () => {
    const payload = bytesOf(1400, 26);
    const expected = encodeReliable({ type: MsgType.DATA, session: 5, seq: 9, payload }, authA);
    const datagram = new Uint8Array(DATA_HEADER_SIZE + payload.length + TAG_SIZE).fill(0xee);
    datagram.set(payload, DATA_HEADER_SIZE);
    writeDataHeader(datagram, 5, 9, authA);
    assert.deepEqual(datagram, expected);
    assert.equal(MAX_TAGGED_RELIABLE_CHUNK + DATA_HEADER_SIZE + TAG_SIZE, MAX_UDP_DATAGRAM);
  });

  test("session keys: one per direction, bound to the nonces and to the HELLO's exact bytes", () => {
    const psk = utf8.encode("correct horse battery");
    const [cn, sn] = [bytesOf(32, 27), bytesOf(32, 28)];
    const hello = encodeReliable({
      type: MsgType.HELLO,
      session: 1,
      chunkSize: 1,
      size: 1,
      name: "a",
      nonce: cn,
    });
    const keys = reliableSessionKeys(psk, cn, sn, hello);
    assert.equal(keys.clientToServer.length, 32);
    assert.notDeepEqual(keys.clientToServer, keys.serverToClient);
    assert.deepEqual(reliableSessionKeys(psk, cn, sn, hello), keys);
    const otherHello = patched(hello, (d) => (d[25] ^= 1));
    assert.notDeepEqual(reliableSessionKeys(psk, cn, sn, otherHello).clientToServer, keys.clientToServer);
    assert.notDeepEqual(
      reliableSessionKeys(psk, cn, bytesOf(32, 29), hello).clientToServer,
      keys.clientToServer,
    );
    assert.notDeepEqual(
      reliableSessionKeys(utf8.encode("another key!"), cn, sn, hello).clientToServer,
      keys.clientToServer,
    );
  });

  test("malformed: unknown or misplaced flags, bad offers, bad RESUME, short CHALLENGE/AUTH/tagged datagrams", () => {
    const [hello, ack] = [corpus()[0], corpus()[6]];
    for (const flag of [0x08, 0x10, 0x40, 0x80]) {
      rejects(patched(hello, (d) => (d[3] = flag)), /unknown flags/);
    }
    rejects(patched(ack, (d) => (d[3] = ReliableFlag.RESUME)), /RESUME/);
    rejects(patched(ack, (d) => (d[3] = ReliableFlag.KEYED)), /KEYED/);
    const accept = encodeReliable({
      type: MsgType.ACCEPT,
      session: 1,
      status: 0,
      window: 1,
      message: "",
      offer: { ranges: [[0, 2], [5, 9]], digest: digestA },
    });
    rejects(patched(accept, (_, v) => v.setUint16(20, MAX_RESUME_RANGES + 1, false)), /resume offer with/);
    rejects(patched(accept, (_, v) => v.setUint32(30, 1, false)), /out of order/); // second start below first end
    rejects(patched(accept, (_, v) => v.setUint32(26, 0, false)), /out of order/); // empty first range
    rejects(reseal(accept.slice(0, accept.length - 1)), /ACCEPT offer/);
    const resume = encodeReliable({ type: MsgType.RESUME, session: 1, decision: ResumeDecision.KEEP });
    for (const decision of [3, 0x80, 255]) rejects(patched(resume, (d) => (d[12] = decision)), /decision/);
    rejects(reseal(resume.slice(0, 12)), /RESUME/);
    const challenge = corpus().find((d) => d[1] === MsgType.CHALLENGE) as Uint8Array;
    rejects(reseal(challenge.slice(0, challenge.length - 1)), /CHALLENGE/);
    const auth = corpus().find((d) => d[1] === MsgType.AUTH) as Uint8Array;
    rejects(reseal(auth.slice(0, auth.length - 1)), /AUTH/);
    // A TAGGED flag on a datagram too short to hold a tag.
    rejects(
      patched(encodeReliable({ type: MsgType.RESUME, session: 1, decision: 0 }), (d) => (d[3] = 1)),
      /tagged/,
    );
  });
});

// ----------------------------------------------------------------- fuzz ----

describe("reliable wire format: seeded fuzz", () => {
  test("≥100,000 random and mutated inputs: only ProtocolError escapes, decoded messages re-encode", () => {
    const random = seededRandom(0x1eaf);
    const int = (n: number) => Math.floor(random() * n);
    const randomBytes = (n: number) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = int(256);
      return out;
    };
    const seeds = corpus();
    const interesting = [0, 1, 0x7f, 0x80, 0xff, RELIABLE_MAGIC, 0x40, 64, 65];
    const decodedByType = new Map<number, number>();
    let total = 0;
    let rejected = 0;

    const check = (input: Uint8Array) => {
      total++;
      let msg: ReliableMsg;
      try {
        msg = decodeReliable(input);
      } catch (error) {
        if (!(error instanceof ProtocolError)) {
          assert.fail(`input ${hex(input.subarray(0, 80))} (${input.length} bytes) threw ${error}`);
        }
        rejected++;
        return;
      }
      decodedByType.set(msg.type, (decodedByType.get(msg.type) ?? 0) + 1);
      assert.equal(msg.session, view(input).getUint32(4, false));
      // A decoded message is a valid message: it encodes and decodes to itself.
      const again = decodeReliable(encodeReliable(msg));
      assert.deepEqual(again, msg);
    };

    // 1. Pure noise of every small length.
    for (let i = 0; i < 25_000; i++) check(randomBytes(int(i < 1000 ? 16 : 90)));
    // 2. A plausible header (magic, version, any type), random body, a valid checksum.
    for (let i = 0; i < 35_000; i++) {
      const d = randomBytes(RELIABLE_HEADER_SIZE + int(i % 4 === 0 ? 600 : 80));
      d[0] = RELIABLE_MAGIC;
      d[1] = i % 10 === 0 ? int(256) : 1 + int(10);
      d[2] = random() < 0.95 ? RELIABLE_VERSION : int(256);
      // Mostly no flags; else a known combination, now and then anything.
      d[3] = random() < 0.6 ? 0 : random() < 0.9 ? int(8) : int(256);
      // Keep length fields small often enough to reach the end of the parsers.
      if (d.length > 25 && random() < 0.5) d[24] = int(4);
      if (d.length > 25 && random() < 0.3) d[25] = int(8);
      if (d.length > 29 && random() < 0.5) d[28] = int(4); // ACK range count
      if (d.length > 20 && random() < 0.3) {
        d[18] = 0;
        d[19] = int(8);
      }
      if (d.length > 63 && random() < 0.3) {
        d[61] = 0;
        d[62] = int(8);
      }
      if (d.length > 15 && random() < 0.3) {
        d[13] = 0;
        d[14] = int(8);
      }
      if (d[1] === MsgType.RESUME && d.length > 12 && random() < 0.7) d[12] = int(3);
      if (d[1] === MsgType.ACCEPT && d.length > 22 && random() < 0.5) {
        // A short message, then a small resume-offer count.
        d[18] = 0;
        d[19] = int(3);
        d[20 + d[19]] = 0;
        d[21 + d[19]] = int(3);
      }
      check(reseal(d));
    }
    // 3. Mutations of valid datagrams, mostly resealed so the parsers see them.
    for (let i = 0; i < 45_000; i++) {
      let d = seeds[int(seeds.length)].slice();
      const edits = 1 + int(4);
      for (let e = 0; e < edits; e++) {
        switch (int(7)) {
          case 0:
            d[int(d.length)] ^= 1 << int(8);
            break;
          case 1:
            d[int(d.length)] = interesting[int(interesting.length)];
            break;
          case 2:
            d = d.slice(0, int(d.length + 1));
            break;
          case 6:
            if (d.length > 3) d[3] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0x80][int(10)];
            break;
          case 3: {
            const longer = new Uint8Array(d.length + 1 + int(40));
            longer.set(d);
            longer.set(randomBytes(longer.length - d.length), d.length);
            d = longer;
            break;
          }
          case 4: {
            const offset = 12 + 2 * int(9); // through the ACK range count at 28
            if (d.length >= offset + 2) view(d).setUint16(offset, int(0x10000), false);
            break;
          }
          default: {
            const offset = 12 + 4 * int(4); // through the ACK's delayMicros at 24
            if (d.length >= offset + 4) view(d).setUint32(offset, [0, 1, 64, 65, 0xffffffff][int(5)], false);
          }
        }
      }
      if (d.length >= RELIABLE_HEADER_SIZE && random() < 0.8) reseal(d);
      check(d);
    }
    assert.ok(total >= 100_000, `${total} inputs`);
    assert.ok(rejected > total / 2, `${rejected} of ${total} rejected`);
    // The fuzz reached every parser past its checks.
    for (const type of Object.values(MsgType)) {
      assert.ok(
        (decodedByType.get(type) ?? 0) > 50,
        `type ${type} decoded ${decodedByType.get(type) ?? 0} times`,
      );
    }
  });

  test("random valid messages round-trip exactly", () => {
    const random = seededRandom(0xbeef);
    const int = (n: number) => Math.floor(random() * n);
    const u32 = () => int(2 ** 32);
    const alphabet = ["a", "Z", "0", " ", ".", "é", "ß", "日", "本", "📷", "\u0000", "\uFEFF", "\u200d"];
    const text = (min: number, max: number) => {
      let s = "";
      const n = min + int(max - min + 1);
      for (let i = 0; i < n; i++) s += alphabet[int(alphabet.length)];
      return s;
    };
    const bytes32 = () => {
      const out = new Uint8Array(32);
      for (let k = 0; k < 32; k++) out[k] = int(256);
      return out;
    };
    for (let i = 0; i < 5000; i++) {
      let msg: ReliableMsg;
      switch (1 + (i % 10)) {
        case MsgType.HELLO:
          msg = {
            type: MsgType.HELLO,
            session: u32(),
            chunkSize: u32(),
            size: int(Number.MAX_SAFE_INTEGER),
            name: text(1, 60),
          };
          if (random() < 0.5) msg.resume = true;
          if (random() < 0.5) msg.nonce = bytes32();
          break;
        case MsgType.ACCEPT: {
          msg = {
            type: MsgType.ACCEPT,
            session: u32(),
            status: int(256),
            window: u32(),
            message: text(0, 60),
          };
          if (random() < 0.5) {
            const ranges: Array<[number, number]> = [];
            let next = int(5);
            for (let k = int(MAX_RESUME_RANGES + 1); k > 0; k--) {
              const end = next + 1 + int(20);
              ranges.push([next, end]);
              next = end + int(20);
            }
            msg.offer = { ranges, digest: bytes32() };
          }
          break;
        }
        case MsgType.CHALLENGE:
          msg = { type: MsgType.CHALLENGE, session: u32(), nonce: bytes32(), proof: bytes32() };
          break;
        case MsgType.AUTH:
          msg = { type: MsgType.AUTH, session: u32(), proof: bytes32() };
          break;
        case MsgType.RESUME:
          msg = { type: MsgType.RESUME, session: u32(), decision: int(3) };
          break;
        case MsgType.DATA: {
          const payload = new Uint8Array(int(300));
          for (let k = 0; k < payload.length; k++) payload[k] = int(256);
          msg = { type: MsgType.DATA, session: u32(), seq: u32(), payload };
          break;
        }
        case MsgType.ACK: {
          const cumulative = int(1_000_000);
          const ranges: Array<[number, number]> = [];
          let next = cumulative + 1 + int(5);
          for (let k = int(MAX_SACK_RANGES + 1); k > 0; k--) {
            const end = next + 1 + int(20);
            ranges.push([next, end]);
            next = end + 1 + int(20);
          }
          msg = {
            type: MsgType.ACK,
            session: u32(),
            cumulative,
            window: u32(),
            latest: u32(),
            delayMicros: [0, 1500, 0xffffffff, int(1_000_000), u32()][int(5)],
            ranges,
          };
          break;
        }
        case MsgType.FIN: {
          const digest = new Uint8Array(DIGEST_SIZE);
          for (let k = 0; k < DIGEST_SIZE; k++) digest[k] = int(256);
          msg = {
            type: MsgType.FIN,
            session: u32(),
            chunks: u32(),
            size: int(Number.MAX_SAFE_INTEGER),
            digest,
          };
          break;
        }
        case MsgType.DONE: {
          const digest = new Uint8Array(DIGEST_SIZE);
          for (let k = 0; k < DIGEST_SIZE; k++) digest[k] = int(256);
          msg = {
            type: MsgType.DONE,
            session: u32(),
            status: int(256),
            bytes: int(Number.MAX_SAFE_INTEGER),
            digest,
            duplicates: u32(),
            acks: u32(),
            message: text(0, 60),
          };
          break;
        }
        default:
          msg = { type: MsgType.ABORT, session: u32(), status: int(256), message: text(0, 60) };
      }
      const auth = i % 3 === 0 ? authA : undefined;
      const bytes = encodeReliable(msg, auth);
      assert.ok(isReliableDatagram(bytes));
      assert.deepEqual(decodeReliable(bytes), msg);
      if (auth) assert.ok(verifyReliableTag(bytes, auth));
    }
  });
});
