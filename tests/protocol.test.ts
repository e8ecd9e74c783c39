/**
 * Pure unit tests for shared/protocol.ts: the classic UDP datagram format
 * (byte-compatible with Python's `struct.pack("!i", seq)`), the framed TCP
 * header and reply, reply text helpers, and a seeded fuzz loop over the
 * decoders. No sockets, no files. Runs under `deno test` and `bun test`.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  bytesEqual,
  CLASSIC_END_WITH_TRAILER_SIZE,
  CLASSIC_HEADER_SIZE,
  CLASSIC_UDP_REPLY,
  type ClassicUdpOutcome,
  decodeClassicDatagram,
  DIGEST_SIZE,
  encodeClassicData,
  encodeClassicEnd,
  encodeFramedHeader,
  encodeFramedReply,
  formatClassicUdpReply,
  formatRanges,
  FRAMED_HEADER_FIXED_SIZE,
  FRAMED_MAGIC,
  FRAMED_REPLY_FIXED_SIZE,
  FramedStatus,
  isCompleteOutcome,
  looksFramed,
  MAX_CLASSIC_BUFFER,
  MAX_MESSAGE_BYTES,
  MAX_NAME_BYTES,
  parseFramedHeader,
  parseFramedReply,
  parseUdpReply,
  ProtocolError,
  toHex,
  writeClassicHeader,
} from "../shared/protocol.ts";

// ------------------------------------------------------------------ helpers ----

/** Bytes from a hex string such as `"00 00 01 02"` (spaces ignored). */
function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  assert.equal(clean.length % 2, 0, `odd hex string ${text}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Space-separated hex, independent of the module's own `toHex`. */
function spaced(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** Concatenates byte arrays. */
function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A deterministic payload of `n` bytes. */
function pattern(n: number, salt = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + salt) & 0xff;
  return out;
}

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

/** Asserts that `fn` throws a ProtocolError (and not some other error type). */
function assertProtocolError(fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ProtocolError, `expected ProtocolError, got ${String(error)}`);
    assert.equal(error.name, "ProtocolError");
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

/** Narrows a parse result to its value, failing when it asks for more bytes. */
function valueOf<T>(
  result: { value: T; consumed: number } | { need: number },
): { value: T; consumed: number } {
  assert.ok("value" in result, `expected a value, got ${JSON.stringify(result)}`);
  return result;
}

/** Narrows a parse result to its `need`, failing when it returned a value. */
function needOf(result: { value: unknown; consumed: number } | { need: number }): number {
  assert.ok("need" in result, `expected need, got a value consuming ${JSON.stringify(result)}`);
  return result.need;
}

const ZERO_DIGEST = new Uint8Array(DIGEST_SIZE);
const SOME_DIGEST = pattern(DIGEST_SIZE, 7);

// -------------------------------------------------------------- classic UDP ----

describe("classic UDP datagrams", () => {
  test("data round trip for seq 0, 1, 2^31-1 and payload sizes 0, 1, 65503", () => {
    assert.equal(MAX_CLASSIC_BUFFER, 65503);
    for (const seq of [0, 1, 2 ** 31 - 1]) {
      for (const size of [0, 1, 65503]) {
        const payload = pattern(size, seq & 0xff);
        const datagram = encodeClassicData(seq, payload);
        assert.equal(datagram.length, CLASSIC_HEADER_SIZE + size);
        const decoded = decodeClassicDatagram(datagram);
        assert.equal(decoded.kind, "data");
        if (decoded.kind !== "data") return;
        assert.equal(decoded.seq, seq);
        assert.equal(decoded.payload.length, size);
        assert.ok(bytesEqual(decoded.payload, payload), `payload differs for seq ${seq} size ${size}`);
      }
    }
  });

  test("header bytes match Python struct.pack('!i', seq)", () => {
    const cases: Array<[number, string]> = [
      [0, "00 00 00 00"],
      [1, "00 00 00 01"],
      [2, "00 00 00 02"],
      [255, "00 00 00 ff"],
      [256, "00 00 01 00"],
      [258, "00 00 01 02"],
      [65536, "00 01 00 00"],
      [16909060, "01 02 03 04"],
      [2 ** 31 - 1, "7f ff ff ff"],
    ];
    for (const [seq, bytes] of cases) {
      const datagram = encodeClassicData(seq, new Uint8Array([0xab]));
      assert.equal(spaced(datagram), `${bytes} ab`, `seq ${seq}`);
      const decoded = decodeClassicDatagram(concat(hex(bytes), new Uint8Array([0xab])));
      assert.deepEqual(decoded.kind === "data" ? decoded.seq : undefined, seq);
    }
  });

  test("writeClassicHeader writes big-endian into the first four bytes only", () => {
    const buf = new Uint8Array([9, 9, 9, 9, 9, 9]);
    writeClassicHeader(buf, 258);
    assert.equal(spaced(buf), "00 00 01 02 09 09");
    writeClassicHeader(buf, -1);
    assert.equal(spaced(buf), "ff ff ff ff 09 09");
    // A view with an offset into a larger buffer.
    const big = new Uint8Array(10);
    writeClassicHeader(big.subarray(3), 1);
    assert.equal(spaced(big), "00 00 00 00 00 00 01 00 00 00");
  });

  test("encoders reject sequence numbers outside the format", () => {
    for (const seq of [-1, -2, 2 ** 31, 1.5, Number.NaN]) {
      assert.throws(() => encodeClassicData(seq, new Uint8Array(1)), RangeError, `seq ${seq}`);
    }
    for (const seq of [-2, 2 ** 31, 0.5]) {
      assert.throws(() => writeClassicHeader(new Uint8Array(4), seq), RangeError, `seq ${seq}`);
    }
  });

  test("the end marker is exactly ff ff ff ff", () => {
    const marker = encodeClassicEnd();
    assert.equal(spaced(marker), "ff ff ff ff");
    assert.deepEqual(decodeClassicDatagram(marker), { kind: "end" });
    // The original Python server reads struct.unpack('!i', data[:4]) == -1 and ignores the rest.
    assert.deepEqual(decodeClassicDatagram(hex("ff ff ff ff 00 11 22")), { kind: "end" });
  });

  test("the end marker with trailer has its exact 24 bytes", () => {
    const trailer = { packets: 15, chunk: 4096, bytes: 61306 };
    const marker = encodeClassicEnd(trailer);
    assert.equal(marker.length, CLASSIC_END_WITH_TRAILER_SIZE);
    assert.equal(CLASSIC_END_WITH_TRAILER_SIZE, 24);
    assert.equal(marker.length, 24);
    assert.equal(
      spaced(marker),
      // -1          "IXF1"      packets     chunk       bytes (u64)
      "ff ff ff ff 49 58 46 31 00 00 00 0f 00 00 10 00 00 00 00 00 00 00 ef 7a",
    );
    assert.deepEqual(decodeClassicDatagram(marker), { kind: "end", trailer });
    // The same bytes written by hand decode to the same trailer.
    assert.deepEqual(
      decodeClassicDatagram(hex("ff ff ff ff 49 58 46 31 00 00 00 0f 00 00 10 00 00 00 00 00 00 00 ef 7a")),
      { kind: "end", trailer },
    );
    // Original servers only look at the first four bytes: still the end marker.
    assert.equal(spaced(marker.subarray(0, 4)), "ff ff ff ff");
  });

  test("trailer round trips at its limits", () => {
    for (
      const t of [
        { packets: 0, chunk: 1, bytes: 0 },
        { packets: 0, chunk: MAX_CLASSIC_BUFFER, bytes: 0 },
        { packets: 1, chunk: 1, bytes: 1 },
        { packets: 1, chunk: MAX_CLASSIC_BUFFER, bytes: 1 },
        { packets: 1, chunk: MAX_CLASSIC_BUFFER, bytes: MAX_CLASSIC_BUFFER },
        { packets: 15, chunk: 4096, bytes: 14 * 4096 + 1 }, // smallest size for 15 packets
        { packets: 15, chunk: 4096, bytes: 15 * 4096 }, // largest size for 15 packets
        { packets: 0xffffffff, chunk: 1, bytes: 0xffffffff },
        // The largest consistent trailer: every packet full at the largest chunk.
        { packets: 0xffffffff, chunk: MAX_CLASSIC_BUFFER, bytes: 0xffffffff * MAX_CLASSIC_BUFFER },
      ]
    ) {
      assert.deepEqual(decodeClassicDatagram(encodeClassicEnd(t)), { kind: "end", trailer: t });
    }
    assert.equal(
      spaced(
        encodeClassicEnd({
          packets: 0xffffffff,
          chunk: MAX_CLASSIC_BUFFER,
          bytes: 0xffffffff * MAX_CLASSIC_BUFFER,
        }),
      ),
      "ff ff ff ff 49 58 46 31 ff ff ff ff 00 00 ff df 00 00 ff de ff ff 00 21",
    );
    // 2^53-1 still encodes byte for byte, but no packet count and chunk can hold it: a plain end.
    const huge = { packets: 0xffffffff, chunk: MAX_CLASSIC_BUFFER, bytes: Number.MAX_SAFE_INTEGER };
    assert.equal(
      spaced(encodeClassicEnd(huge)),
      "ff ff ff ff 49 58 46 31 ff ff ff ff 00 00 ff df 00 1f ff ff ff ff ff ff",
    );
    assert.deepEqual(decodeClassicDatagram(encodeClassicEnd(huge)), { kind: "end" });
  });

  test("end markers with a wrong tag, short trailer or oversize byte count decode as plain end", () => {
    // Wrong tag.
    assert.deepEqual(
      decodeClassicDatagram(hex("ff ff ff ff 49 58 46 32 00 00 00 0f 00 00 10 00 00 00 00 00 00 00 ef 7a")),
      { kind: "end" },
    );
    // Trailer cut short.
    assert.deepEqual(decodeClassicDatagram(hex("ff ff ff ff 49 58 46 31 00 00 00 0f 00 00")), {
      kind: "end",
    });
    // Trailer one byte short of 24.
    assert.deepEqual(
      decodeClassicDatagram(hex("ff ff ff ff 49 58 46 31 00 00 00 0f 00 00 10 00 00 00 00 00 00 00 ef")),
      { kind: "end" },
    );
    // The old 20-byte trailer (no chunk field) is too short for the new format.
    assert.deepEqual(
      decodeClassicDatagram(hex("ff ff ff ff 49 58 46 31 00 00 00 0f 00 00 00 00 00 00 ef 7a")),
      { kind: "end" },
    );
    // Byte count above 2^53-1.
    assert.deepEqual(
      decodeClassicDatagram(hex("ff ff ff ff 49 58 46 31 00 00 00 0f 00 00 10 00 00 20 00 00 00 00 00 00")),
      { kind: "end" },
    );
  });

  test("inconsistent trailers decode as a plain end marker", () => {
    const plain = { kind: "end" };
    const end = (packets: number, chunk: number, bytes: number) =>
      decodeClassicDatagram(encodeClassicEnd({ packets, chunk, bytes }));
    // Chunk 0, and a chunk larger than any classic datagram can carry.
    assert.deepEqual(end(15, 0, 61306), plain);
    assert.deepEqual(end(0, 0, 0), plain);
    assert.deepEqual(end(15, MAX_CLASSIC_BUFFER + 1, 61306), plain);
    assert.deepEqual(end(1, 0xffffffff, 1), plain);
    // More bytes than the packets can hold.
    assert.deepEqual(end(15, 4096, 15 * 4096 + 1), plain);
    assert.deepEqual(end(1, 1, 2), plain);
    assert.deepEqual(end(0, 4096, 1), plain);
    // Too few bytes for the packet count: the last packet would be empty or fewer packets would do.
    assert.deepEqual(end(15, 4096, 14 * 4096), plain);
    assert.deepEqual(end(15, 4096, 4096), plain);
    assert.deepEqual(end(1, 4096, 0), plain);
    assert.deepEqual(end(2, 1, 1), plain);
    // Hand-written bytes: chunk 0, then bytes = 15 × 4096 + 1, then bytes = 14 × 4096.
    assert.deepEqual(
      decodeClassicDatagram(hex("ff ff ff ff 49 58 46 31 00 00 00 0f 00 00 00 00 00 00 00 00 00 00 ef 7a")),
      plain,
    );
    assert.deepEqual(
      decodeClassicDatagram(hex("ff ff ff ff 49 58 46 31 00 00 00 0f 00 00 10 00 00 00 00 00 00 00 f0 01")),
      plain,
    );
    assert.deepEqual(
      decodeClassicDatagram(hex("ff ff ff ff 49 58 46 31 00 00 00 0f 00 00 10 00 00 00 00 00 00 00 e0 00")),
      plain,
    );
    // The neighbours of those limits are consistent.
    for (const bytes of [14 * 4096 + 1, 15 * 4096]) {
      assert.deepEqual(end(15, 4096, bytes), { kind: "end", trailer: { packets: 15, chunk: 4096, bytes } });
    }
  });

  test("decoding reads from a view's own offset, and the payload is a view", () => {
    const big = concat(hex("de ad"), hex("00 00 01 02"), hex("01 02 03"), hex("be ef"));
    const view = big.subarray(2, 9);
    const decoded = decodeClassicDatagram(view);
    assert.equal(decoded.kind, "data");
    if (decoded.kind !== "data") return;
    assert.equal(decoded.seq, 258);
    assert.equal(spaced(decoded.payload), "01 02 03");
    assert.equal(decoded.payload.buffer, big.buffer);
  });

  test("datagrams shorter than 4 bytes throw ProtocolError", () => {
    for (let n = 0; n < 4; n++) {
      assertProtocolError(
        () => decodeClassicDatagram(new Uint8Array(n).fill(0xff)),
        /shorter than the 4-byte header/,
      );
      assertProtocolError(() => decodeClassicDatagram(new Uint8Array(n)));
    }
  });

  test("negative sequence numbers other than -1 throw ProtocolError", () => {
    for (const bytes of ["ff ff ff fe", "80 00 00 00", "80 00 00 01", "ff 00 00 00", "ff ff ff 00"]) {
      assertProtocolError(() => decodeClassicDatagram(hex(bytes)), /invalid sequence number/);
      assertProtocolError(() => decodeClassicDatagram(hex(`${bytes} 01 02 03`)));
    }
  });
});

// ------------------------------------------------------------ framed header ----

describe("framed request header", () => {
  test("exact bytes of a small header", () => {
    const bytes = encodeFramedHeader({ name: "a.jpg", size: 258 });
    assert.equal(
      spaced(bytes),
      "89 49 58 46 0d 0a 1a 0a 01 01 00 05 00 00 00 00 00 00 01 02 61 2e 6a 70 67",
    );
    assert.equal(spaced(bytes.subarray(0, 8)), spaced(FRAMED_MAGIC));
  });

  test("round trips names and sizes, including unicode, size 0 and 2^53-1", () => {
    const names = [
      "input.jpeg",
      "x",
      "photo été 日本語 🎉.jpg",
      "Ω",
      "a".repeat(MAX_NAME_BYTES),
      "日".repeat(Math.floor(MAX_NAME_BYTES / 3)),
      "../../etc/passwd", // the codec carries names as sent; the server sanitizes them
      "名前 with spaces.png",
    ];
    for (const name of names) {
      for (const size of [0, 1, 61306, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
        const bytes = encodeFramedHeader({ name, size });
        const nameBytes = new TextEncoder().encode(name).length;
        assert.equal(bytes.length, FRAMED_HEADER_FIXED_SIZE + nameBytes);
        const { value, consumed } = valueOf(parseFramedHeader(bytes));
        assert.equal(consumed, bytes.length);
        assert.deepEqual(value, { version: 1, name, size });
      }
    }
  });

  test("size 2^53-1 is encoded as 00 1f ff ff ff ff ff ff", () => {
    const bytes = encodeFramedHeader({ name: "x", size: Number.MAX_SAFE_INTEGER });
    assert.equal(spaced(bytes.subarray(12, 20)), "00 1f ff ff ff ff ff ff");
  });

  test("a name starting with U+FEFF (BOM) survives the round trip", () => {
    // The name is length-prefixed UTF-8: decoding must not drop a leading BOM.
    const name = "\uFEFFx.jpg";
    const bytes = encodeFramedHeader({ name, size: 3 });
    const { value, consumed } = valueOf(parseFramedHeader(bytes));
    assert.equal(consumed, bytes.length);
    assert.equal(value.name, name);
  });

  test("encoder rejects empty and over-long names and invalid sizes", () => {
    assert.throws(() => encodeFramedHeader({ name: "", size: 1 }), RangeError);
    assert.throws(() => encodeFramedHeader({ name: "a".repeat(MAX_NAME_BYTES + 1), size: 1 }), RangeError);
    // 342 × 3 bytes = 1026 > 1024 although only 342 characters.
    assert.throws(() => encodeFramedHeader({ name: "日".repeat(342), size: 1 }), RangeError);
    for (const size of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1, Infinity]) {
      assert.throws(() => encodeFramedHeader({ name: "a", size }), RangeError, `size ${size}`);
    }
  });

  test("every prefix of a valid header returns need until complete, then consumed is exact", () => {
    for (const name of ["a", "input.jpeg", "日本語.png", "b".repeat(300)]) {
      const header = encodeFramedHeader({ name, size: 12345 });
      for (let n = 0; n < header.length; n++) {
        const need = needOf(parseFramedHeader(header.subarray(0, n)));
        assert.ok(need > n, `need ${need} must exceed prefix ${n}`);
        assert.ok(need <= header.length, `need ${need} must not exceed header ${header.length}`);
        assert.equal(need, n < FRAMED_HEADER_FIXED_SIZE ? FRAMED_HEADER_FIXED_SIZE : header.length);
      }
      // Complete header, then with trailing content bytes: consumed stays exact.
      const withBody = concat(header, pattern(50), SOME_DIGEST);
      for (const bytes of [header, withBody]) {
        const { value, consumed } = valueOf(parseFramedHeader(bytes));
        assert.equal(consumed, header.length);
        assert.equal(value.name, name);
        assert.equal(value.size, 12345);
      }
    }
  });

  test("parses from a view with a byte offset", () => {
    const header = encodeFramedHeader({ name: "off.jpg", size: 7 });
    const big = concat(pattern(13), header, pattern(5));
    const view = big.subarray(13);
    const { value, consumed } = valueOf(parseFramedHeader(view));
    assert.deepEqual(value, { version: 1, name: "off.jpg", size: 7 });
    assert.equal(consumed, header.length);
  });

  test("bad magic throws ProtocolError", () => {
    const good = encodeFramedHeader({ name: "a.jpg", size: 1 });
    for (let i = 0; i < FRAMED_MAGIC.length; i++) {
      const bad = good.slice();
      bad[i] ^= 0x20;
      assertProtocolError(() => parseFramedHeader(bad), /bad magic/);
    }
    // A JPEG stream (classic TCP) is not a framed header.
    const jpeg = concat(hex("ff d8 ff e0 00 10 4a 46 49 46 00 01"), new Uint8Array(20));
    assertProtocolError(() => parseFramedHeader(jpeg));
  });

  test("zero and oversize name lengths throw ProtocolError", () => {
    const good = encodeFramedHeader({ name: "a", size: 1 });
    for (const length of [0, MAX_NAME_BYTES + 1, 0xffff]) {
      const bad = good.slice();
      new DataView(bad.buffer).setUint16(10, length, false);
      assertProtocolError(() => parseFramedHeader(bad), /name length/);
    }
    // 1024 is allowed: with only the fixed part present, the parser asks for the name.
    const max = good.slice(0, FRAMED_HEADER_FIXED_SIZE);
    new DataView(max.buffer).setUint16(10, MAX_NAME_BYTES, false);
    assert.equal(needOf(parseFramedHeader(max)), FRAMED_HEADER_FIXED_SIZE + MAX_NAME_BYTES);
  });

  test("invalid UTF-8 names throw ProtocolError", () => {
    for (const nameHex of ["ff", "c3", "c3 28", "ed a0 80", "f8 88 80 80 80", "c0 af", "61 80 62"]) {
      const name = hex(nameHex);
      const fixed = encodeFramedHeader({ name: "x", size: 1 }).slice(0, FRAMED_HEADER_FIXED_SIZE);
      new DataView(fixed.buffer).setUint16(10, name.length, false);
      assertProtocolError(() => parseFramedHeader(concat(fixed, name)), /UTF-8/);
    }
  });

  test("sizes above 2^53-1 throw ProtocolError", () => {
    for (const sizeHex of ["00 20 00 00 00 00 00 00", "ff ff ff ff ff ff ff ff", "80 00 00 00 00 00 00 00"]) {
      const bad = encodeFramedHeader({ name: "a", size: 1 });
      bad.set(hex(sizeHex), 12);
      assertProtocolError(() => parseFramedHeader(bad), /too large/);
    }
  });

  test("a reply (or other message type) where a request is expected throws ProtocolError", () => {
    for (const type of [0, 2, 3, 0xff]) {
      const bad = encodeFramedHeader({ name: "a", size: 1 });
      bad[9] = type;
      assertProtocolError(() => parseFramedHeader(bad), /message type/);
    }
    const reply = encodeFramedReply({ status: 0, bytes: 1, digest: ZERO_DIGEST, message: "hi" });
    assertProtocolError(() => parseFramedHeader(reply));
  });

  test("an unknown version is returned, not thrown, after the fixed part", () => {
    for (const version of [0, 2, 0xff]) {
      const bytes = encodeFramedHeader({ name: "future.jpg", size: 99 });
      bytes[8] = version;
      bytes[9] = 0x7f; // future versions may use other message types
      bytes[10] = 0xff; // and other name lengths
      bytes[11] = 0xff;
      const { value, consumed } = valueOf(parseFramedHeader(bytes));
      assert.equal(value.version, version);
      assert.equal(consumed, FRAMED_HEADER_FIXED_SIZE);
    }
  });
});

// ------------------------------------------------------------- framed reply ----

describe("framed reply", () => {
  test("exact bytes of a small reply", () => {
    const bytes = encodeFramedReply({
      status: FramedStatus.OK,
      bytes: 258,
      digest: SOME_DIGEST,
      message: "OK",
    });
    assert.equal(bytes.length, FRAMED_REPLY_FIXED_SIZE + 2);
    assert.equal(
      spaced(bytes.subarray(0, 22)),
      "89 49 58 46 0d 0a 1a 0a 01 02 00 00 00 02 00 00 00 00 00 00 01 02",
    );
    assert.equal(spaced(bytes.subarray(22, 54)), spaced(SOME_DIGEST));
    assert.equal(spaced(bytes.subarray(54)), "4f 4b");
  });

  test("round trips every status, unicode messages, sizes 0 and 2^53-1", () => {
    const messages = [
      "",
      "SUCCESS: File received",
      "REFUSED: nom « invalide » 🚫",
      "m".repeat(MAX_MESSAGE_BYTES),
    ];
    for (const status of Object.values(FramedStatus)) {
      for (const message of messages) {
        for (const size of [0, 61306, Number.MAX_SAFE_INTEGER]) {
          for (const digest of [ZERO_DIGEST, SOME_DIGEST]) {
            const bytes = encodeFramedReply({ status, bytes: size, digest, message });
            const { value, consumed } = valueOf(parseFramedReply(bytes));
            assert.equal(consumed, bytes.length);
            assert.equal(value.version, 1);
            assert.equal(value.status, status);
            assert.equal(value.bytes, size);
            assert.equal(value.message, message);
            assert.ok(bytesEqual(value.digest, digest));
          }
        }
      }
    }
  });

  test("a message starting with U+FEFF (BOM) survives the round trip", () => {
    const message = "\uFEFFSUCCESS: File received";
    const bytes = encodeFramedReply({ status: 0, bytes: 1, digest: ZERO_DIGEST, message });
    const { value, consumed } = valueOf(parseFramedReply(bytes));
    assert.equal(consumed, bytes.length);
    assert.equal(value.message, message);
  });

  test("the parsed digest is a copy, not a view of the input", () => {
    const bytes = encodeFramedReply({ status: 0, bytes: 1, digest: SOME_DIGEST, message: "x" });
    const { value } = valueOf(parseFramedReply(bytes));
    bytes.fill(0);
    assert.ok(bytesEqual(value.digest, SOME_DIGEST));
  });

  test("over-long messages are cut to 4096 bytes", () => {
    const bytes = encodeFramedReply({ status: 0, bytes: 1, digest: ZERO_DIGEST, message: "z".repeat(5000) });
    assert.equal(bytes.length, FRAMED_REPLY_FIXED_SIZE + MAX_MESSAGE_BYTES);
    assert.equal(valueOf(parseFramedReply(bytes)).value.message.length, MAX_MESSAGE_BYTES);
  });

  test("encoder rejects bad digests and byte counts", () => {
    assert.throws(
      () => encodeFramedReply({ status: 0, bytes: 1, digest: new Uint8Array(31), message: "" }),
      RangeError,
    );
    assert.throws(
      () => encodeFramedReply({ status: 0, bytes: -1, digest: ZERO_DIGEST, message: "" }),
      RangeError,
    );
    assert.throws(
      () =>
        encodeFramedReply({
          status: 0,
          bytes: Number.MAX_SAFE_INTEGER + 1,
          digest: ZERO_DIGEST,
          message: "",
        }),
      RangeError,
    );
  });

  test("every prefix returns need until complete, then consumed is exact", () => {
    const reply = encodeFramedReply({ status: 1, bytes: 77, digest: SOME_DIGEST, message: "MISMATCH: é" });
    for (let n = 0; n < reply.length; n++) {
      const need = needOf(parseFramedReply(reply.subarray(0, n)));
      assert.ok(need > n && need <= reply.length, `prefix ${n}: need ${need}`);
      assert.equal(need, n < FRAMED_REPLY_FIXED_SIZE ? FRAMED_REPLY_FIXED_SIZE : reply.length);
    }
    const { consumed } = valueOf(parseFramedReply(concat(reply, pattern(9))));
    assert.equal(consumed, reply.length);
  });

  test("malformed replies throw ProtocolError", () => {
    const good = encodeFramedReply({ status: 0, bytes: 5, digest: SOME_DIGEST, message: "ok" });
    const badMagic = good.slice();
    badMagic[0] = 0x88;
    assertProtocolError(() => parseFramedReply(badMagic), /not a framed imgxfer reply/);

    const request = concat(encodeFramedHeader({ name: "a".repeat(40), size: 5 }), pattern(20));
    assertProtocolError(() => parseFramedReply(request), /expected a reply/);

    const longMessage = good.slice();
    new DataView(longMessage.buffer).setUint16(12, MAX_MESSAGE_BYTES + 1, false);
    assertProtocolError(() => parseFramedReply(longMessage), /too long/);

    const hugeCount = good.slice();
    hugeCount.set(hex("00 20 00 00 00 00 00 00"), 14);
    assertProtocolError(() => parseFramedReply(hugeCount), /too large/);

    const badUtf8 = good.slice();
    badUtf8.set(hex("c3 28"), FRAMED_REPLY_FIXED_SIZE);
    assertProtocolError(() => parseFramedReply(badUtf8), /UTF-8/);
  });
});

// --------------------------------------------------------------- detection ----

describe("looksFramed", () => {
  test("short prefixes are classic", () => {
    for (let n = 0; n < FRAMED_MAGIC.length; n++) {
      assert.equal(looksFramed(FRAMED_MAGIC.subarray(0, n)), false);
    }
    assert.equal(looksFramed(FRAMED_MAGIC), true);
    assert.equal(looksFramed(encodeFramedHeader({ name: "a", size: 1 })), true);
  });

  test("JPEG, PNG and other prefixes are classic", () => {
    const prefixes = [
      "ff d8 ff e0 00 10 4a 46 49 46 00 01", // JPEG/JFIF
      "ff d8 ff e1 00 18 45 78 69 66 00 00", // JPEG/Exif
      "89 50 4e 47 0d 0a 1a 0a", // PNG: same design, different letters
      "89 49 58 46 0d 0a 1a", // magic missing its last byte
      "89 49 58 46 0d 0a 1a 0b",
      "00 00 00 00 00 00 00 00",
    ];
    for (const p of prefixes) assert.equal(looksFramed(hex(p)), false, p);
  });
});

// ------------------------------------------------------------- reply texts ----

describe("classic UDP outcome and reply text", () => {
  const complete: ClassicUdpOutcome = { received: 15, expected: 15, missing: [], receivedBytes: 61306 };

  test("complete outcomes produce the original's success line", () => {
    assert.equal(isCompleteOutcome(complete), true);
    assert.equal(formatClassicUdpReply(complete), CLASSIC_UDP_REPLY);
    assert.equal(formatClassicUdpReply(complete), "SUCCESS: File received via UDP");
    const withBytes = { ...complete, expectedBytes: 61306 };
    assert.equal(isCompleteOutcome(withBytes), true);
    const empty: ClassicUdpOutcome = { received: 0, expected: 0, missing: [], receivedBytes: 0 };
    assert.equal(isCompleteOutcome(empty), true);
  });

  test("incomplete outcomes", () => {
    assert.equal(isCompleteOutcome({ ...complete, reason: "timed out" }), false);
    assert.equal(isCompleteOutcome({ ...complete, received: 14, missing: [[7, 7]] }), false);
    assert.equal(isCompleteOutcome({ ...complete, received: 14 }), false);
    assert.equal(isCompleteOutcome({ ...complete, expectedBytes: 61307 }), false);
  });

  test("incomplete reply text", () => {
    assert.equal(
      formatClassicUdpReply({
        received: 15,
        expected: 16,
        missing: [[7, 7]],
        receivedBytes: 57344,
        expectedBytes: 61306,
      }),
      "INCOMPLETE: 15/16 packets, missing 7 (57344 of 61306 bytes)",
    );
    assert.equal(
      formatClassicUdpReply({
        received: 10,
        expected: 15,
        missing: [[3, 4], [9, 11]],
        receivedBytes: 40960,
        reason: "end marker not received",
      }),
      "INCOMPLETE: 10/15 packets, missing 3-4, 9-11, end marker not received (40960 bytes)",
    );
    assert.equal(
      formatClassicUdpReply({ ...complete, expectedBytes: 70000 }),
      "INCOMPLETE: 15/15 packets (61306 of 70000 bytes)",
    );
  });

  test("formatRanges", () => {
    assert.equal(formatRanges([]), "");
    assert.equal(formatRanges([[7, 7]]), "7");
    assert.equal(formatRanges([[7, 7], [9, 9], [12, 14]]), "7, 9, 12-14");
    const many: Array<[number, number]> = Array.from({ length: 11 }, (_, i) => [i * 10, i * 10 + 1]);
    assert.equal(
      formatRanges(many),
      "0-1, 10-11, 20-21, 30-31, 40-41, 50-51, 60-61, 70-71, … (3 more ranges)",
    );
    assert.equal(formatRanges(many, 2), "0-1, 10-11, … (9 more ranges)");
    assert.equal(formatRanges(many.slice(0, 8)), "0-1, 10-11, 20-21, 30-31, 40-41, 50-51, 60-61, 70-71");
  });

  test("parseUdpReply reads ours and the original's", () => {
    assert.deepEqual(parseUdpReply("SUCCESS: File received via UDP"), { status: "success" });
    assert.deepEqual(parseUdpReply("  SUCCESS: File received via UDP\n"), { status: "success" });
    assert.deepEqual(parseUdpReply("INCOMPLETE: 15/16 packets, missing 7 (57344 of 61306 bytes)"), {
      status: "incomplete",
      receivedBytes: 57344,
    });
    assert.deepEqual(parseUdpReply("INCOMPLETE: 10/15 packets, end marker not received (40960 bytes)\n"), {
      status: "incomplete",
      receivedBytes: 40960,
    });
    assert.deepEqual(parseUdpReply("INCOMPLETE: something else"), { status: "incomplete" });
    assert.deepEqual(parseUdpReply(""), { status: "other" });
    assert.deepEqual(parseUdpReply("ERROR: disk full"), { status: "other" });
  });

  test("parseUdpReply inverts formatClassicUdpReply", () => {
    const outcomes: ClassicUdpOutcome[] = [
      complete,
      { received: 15, expected: 16, missing: [[7, 7]], receivedBytes: 57344, expectedBytes: 61306 },
      { received: 0, expected: 3, missing: [[0, 2]], receivedBytes: 0, reason: "timed out" },
    ];
    for (const o of outcomes) {
      const parsed = parseUdpReply(formatClassicUdpReply(o));
      if (isCompleteOutcome(o)) assert.deepEqual(parsed, { status: "success" });
      else assert.deepEqual(parsed, { status: "incomplete", receivedBytes: o.receivedBytes });
    }
  });
});

describe("toHex and bytesEqual", () => {
  test("toHex is lower-case, zero-padded, no separators", () => {
    assert.equal(toHex(new Uint8Array()), "");
    assert.equal(toHex(hex("00 01 0a ff 7f 80")), "00010aff7f80");
    assert.equal(toHex(FRAMED_MAGIC), "894958460d0a1a0a");
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const text = toHex(all);
    assert.equal(text.length, 512);
    assert.equal(text, text.toLowerCase());
    assert.equal(spaced(hex(text)), spaced(all));
  });

  test("bytesEqual", () => {
    assert.equal(bytesEqual(new Uint8Array(), new Uint8Array()), true);
    assert.equal(bytesEqual(hex("01 02"), hex("01 02")), true);
    assert.equal(bytesEqual(hex("01 02"), hex("01 03")), false);
    assert.equal(bytesEqual(hex("01 02"), hex("01 02 00")), false);
    assert.equal(bytesEqual(hex("80"), hex("00")), false);
    const a = pattern(1000);
    const b = a.slice();
    assert.equal(bytesEqual(a, b), true);
    b[999] ^= 1;
    assert.equal(bytesEqual(a, b), false);
    // Views compare by content.
    const big = concat(hex("aa"), a);
    assert.equal(bytesEqual(big.subarray(1), a), true);
  });
});

// --------------------------------------------------------------------- fuzz ----

describe("seeded fuzz", () => {
  test("decoders return a value or throw ProtocolError; consumed never exceeds the input", () => {
    const rand = mulberry32(0x1f2e3d4c);
    const int = (n: number) => Math.floor(rand() * n);
    const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));

    const seeds: Uint8Array[] = [
      encodeClassicData(0, pattern(16)),
      encodeClassicData(258, pattern(3)),
      encodeClassicEnd(),
      encodeClassicEnd({ packets: 15, chunk: 4096, bytes: 61306 }),
      encodeFramedHeader({ name: "input.jpeg", size: 61306 }),
      encodeFramedHeader({ name: "日本語 🎉.jpg", size: 0 }),
      encodeFramedHeader({ name: "z", size: Number.MAX_SAFE_INTEGER }),
      encodeFramedReply({ status: 0, bytes: 61306, digest: SOME_DIGEST, message: "SUCCESS: File received" }),
      encodeFramedReply({ status: 3, bytes: 0, digest: ZERO_DIGEST, message: "" }),
      encodeFramedReply({ status: 1, bytes: 5, digest: SOME_DIGEST, message: "MISMATCH: é ✓" }),
    ];

    function mutate(input: Uint8Array): Uint8Array<ArrayBuffer> {
      let out = input.slice();
      const rounds = 1 + int(4);
      for (let r = 0; r < rounds; r++) {
        switch (int(7)) {
          case 0: // flip a bit
            if (out.length > 0) out[int(out.length)] ^= 1 << int(8);
            break;
          case 1: // set a byte to an interesting value
            if (out.length > 0) out[int(out.length)] = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x20][int(7)];
            break;
          case 2: // truncate
            out = out.slice(0, int(out.length + 1));
            break;
          case 3: // extend with random bytes
            out = concat(out, randomBytes(int(40)));
            break;
          case 4: // overwrite a length field area (header name length, reply message length)
            if (out.length >= 14) {
              const at = [10, 11, 12, 13][int(4)];
              out[at] = int(256);
            }
            break;
          case 5: // overwrite the size field with large values
            if (out.length >= 22) out.set(randomBytes(8), [12, 14][int(2)]);
            break;
          default: // insert a random byte
            {
              const at = int(out.length + 1);
              out = concat(out.subarray(0, at), randomBytes(1), out.subarray(at));
            }
            break;
        }
      }
      return out;
    }

    function makeInput(): Uint8Array {
      switch (int(5)) {
        case 0:
          return randomBytes(int(int(2) === 0 ? 8 : 120));
        case 1:
          return concat(FRAMED_MAGIC, randomBytes(int(100)));
        case 2: {
          // A magic with a plausible request/reply prefix and random rest.
          const prefix = concat(FRAMED_MAGIC, new Uint8Array([int(3), int(4)]));
          return concat(prefix, randomBytes(int(90)));
        }
        default:
          return mutate(seeds[int(seeds.length)]);
      }
    }

    function expectOnlyProtocolError(what: string, input: Uint8Array, fn: () => void): void {
      try {
        fn();
      } catch (error) {
        assert.ok(
          error instanceof ProtocolError,
          `${what} threw ${(error as Error)?.name}: ${(error as Error)?.message} for ${spaced(input)}`,
        );
      }
    }

    const encoder = new TextEncoder();
    const tally = { data: 0, end: 0, header: 0, reply: 0, need: 0, errors: 0 };
    let trailers = 0; // end markers that decoded with a (consistent) trailer
    const ITERATIONS = 20000;
    for (let i = 0; i < ITERATIONS; i++) {
      const input = makeInput();
      const n = input.length;
      let threw = 0;

      expectOnlyProtocolError("decodeClassicDatagram", input, () => {
        try {
          const d = decodeClassicDatagram(input);
          if (d.kind === "data") {
            tally.data++;
            assert.ok(Number.isInteger(d.seq) && d.seq >= 0 && d.seq <= 0x7fffffff);
            assert.equal(d.payload.length, n - CLASSIC_HEADER_SIZE);
            assert.equal(spaced(encodeClassicData(d.seq, d.payload)), spaced(input));
          } else {
            tally.end++;
            assert.equal(spaced(input.subarray(0, 4)), "ff ff ff ff");
            if (d.trailer !== undefined) {
              trailers++;
              const { packets, chunk, bytes } = d.trailer;
              assert.ok(n >= CLASSIC_END_WITH_TRAILER_SIZE);
              assert.ok(Number.isSafeInteger(bytes));
              // Only consistent trailers come out of the decoder.
              assert.ok(chunk >= 1 && chunk <= MAX_CLASSIC_BUFFER, `chunk ${chunk}`);
              assert.ok(bytes <= packets * chunk, `${bytes} bytes in ${packets} × ${chunk}`);
              assert.ok(packets === 0 ? bytes === 0 : bytes > (packets - 1) * chunk);
              assert.equal(
                spaced(encodeClassicEnd(d.trailer)),
                spaced(input.subarray(0, CLASSIC_END_WITH_TRAILER_SIZE)),
              );
            }
          }
        } catch (error) {
          threw++;
          throw error;
        }
      });

      expectOnlyProtocolError("parseFramedHeader", input, () => {
        try {
          const r = parseFramedHeader(input);
          if ("need" in r) {
            tally.need++;
            assert.ok(r.need > n, `header need ${r.need} <= length ${n}`);
          } else {
            tally.header++;
            assert.ok(r.consumed <= n, `header consumed ${r.consumed} > length ${n}`);
            assert.ok(r.consumed >= FRAMED_HEADER_FIXED_SIZE);
            assert.ok(Number.isSafeInteger(r.value.size) && r.value.size >= 0);
            if (r.value.version === 1) {
              // A version-1 header is canonical: re-encoding gives back the consumed bytes.
              assert.equal(encoder.encode(r.value.name).length, r.consumed - FRAMED_HEADER_FIXED_SIZE);
              assert.equal(spaced(encodeFramedHeader(r.value)), spaced(input.subarray(0, r.consumed)));
            }
          }
        } catch (error) {
          threw++;
          throw error;
        }
      });

      expectOnlyProtocolError("parseFramedReply", input, () => {
        try {
          const r = parseFramedReply(input);
          if ("need" in r) {
            tally.need++;
            assert.ok(r.need > n, `reply need ${r.need} <= length ${n}`);
          } else {
            tally.reply++;
            assert.ok(r.consumed <= n, `reply consumed ${r.consumed} > length ${n}`);
            assert.ok(r.consumed >= FRAMED_REPLY_FIXED_SIZE);
            assert.equal(r.value.digest.length, DIGEST_SIZE);
            assert.ok(Number.isSafeInteger(r.value.bytes) && r.value.bytes >= 0);
            assert.ok(encoder.encode(r.value.message).length <= MAX_MESSAGE_BYTES);
          }
        } catch (error) {
          threw++;
          throw error;
        }
      });

      // Never throw at all.
      const framed = looksFramed(input);
      assert.equal(framed, n >= 8 && spaced(input.subarray(0, 8)) === spaced(FRAMED_MAGIC));
      const text = String.fromCharCode(...input);
      const parsed = parseUdpReply(text);
      assert.ok(["success", "incomplete", "other"].includes(parsed.status));
      if (parsed.receivedBytes !== undefined) assert.ok(Number.isFinite(parsed.receivedBytes));
      assert.equal(toHex(input).length, 2 * n);
      if (threw > 0) tally.errors++;
    }
    // The generator must reach every outcome, or the loop proves little.
    for (const [key, count] of Object.entries(tally)) assert.ok(count > 100, `only ${count} ${key} cases`);
    // Most mutations break a trailer's consistency; enough must survive to exercise its checks.
    assert.ok(trailers > 20, `only ${trailers} end markers with a trailer`);
  });
});
