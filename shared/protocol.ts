/**
 * Wire formats: encode and decode functions, no I/O.
 *
 * - **classic UDP**: the course scripts' datagrams: a 4-byte big-endian signed
 *   sequence number (Python `struct` format `!i`) and up to `buffer` payload
 *   bytes; sequence `-1` marks the end. Our classic clients may append a
 *   20-byte *end trailer* to the marker (tag `IXF1`, packet count, file size)
 *   that original servers ignore and ours use to detect a lost tail.
 * - **classic TCP**: a raw byte stream, half-closed by the sender; the server
 *   replies with a text line.
 * - **framed TCP**: a header (magic, version, name, size), the bytes, and the
 *   SHA-256 of the bytes; the server replies with a status, the byte count and
 *   the digest it computed.
 *
 * Byte tables are in the README.
 *
 * @module
 */

/** Raised when bytes on the wire do not follow a format. */
export class ProtocolError extends Error {
  /** Creates a protocol error with a user-facing message. */
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

// ------------------------------------------------------------ classic UDP ----

/** Size of the classic UDP header (the sequence number). */
export const CLASSIC_HEADER_SIZE = 4;
/** The sequence number of the classic end marker. */
export const CLASSIC_END_SEQ: number = -1;
/** Largest UDP payload on IPv4 (65535 − 8 UDP − 20 IP). */
export const MAX_UDP_DATAGRAM = 65507;
/** Largest classic `--buffer`: a datagram must fit in {@linkcode MAX_UDP_DATAGRAM}. */
export const MAX_CLASSIC_BUFFER: number = MAX_UDP_DATAGRAM - CLASSIC_HEADER_SIZE;
/** Tag that starts the optional end trailer, `IXF1`. */
export const END_TRAILER_TAG = 0x49584631;
/** Size of the end marker with its trailer. */
export const CLASSIC_END_WITH_TRAILER_SIZE: number = CLASSIC_HEADER_SIZE + 4 + 4 + 4 + 8;
/** The reply of the original TCP server. */
export const CLASSIC_TCP_REPLY = "SUCCESS: File received";
/** The reply of the original UDP server when every packet arrived. */
export const CLASSIC_UDP_REPLY = "SUCCESS: File received via UDP";

/** A decoded classic datagram. */
export type ClassicDatagram =
  | { kind: "data"; seq: number; payload: Uint8Array }
  | { kind: "end"; trailer?: EndTrailer };

/** What our classic clients add to the end marker. */
export interface EndTrailer {
  /** Data datagrams sent. */
  packets: number;
  /** Payload bytes per datagram (all but the last are this size). */
  chunk: number;
  /** File size in bytes. */
  bytes: number;
}

/** Writes a classic header for `seq` into the first 4 bytes of `datagram`. */
export function writeClassicHeader(datagram: Uint8Array, seq: number): void {
  if (!Number.isInteger(seq) || seq < -1 || seq > 0x7fffffff) {
    throw new RangeError(`classic sequence number out of range: ${seq}`);
  }
  new DataView(datagram.buffer, datagram.byteOffset, 4).setInt32(0, seq, false);
}

/** Encodes a classic data datagram: 4-byte sequence number, then `payload`. */
export function encodeClassicData(seq: number, payload: Uint8Array): Uint8Array {
  if (seq < 0) throw new RangeError(`data sequence numbers start at 0, got ${seq}`);
  const datagram = new Uint8Array(CLASSIC_HEADER_SIZE + payload.length);
  writeClassicHeader(datagram, seq);
  datagram.set(payload, CLASSIC_HEADER_SIZE);
  return datagram;
}

/**
 * Encodes the classic end marker. Without `trailer` it is the original's
 * 4 bytes `ff ff ff ff`; with it, 20 bytes that original servers read as the
 * same marker.
 */
export function encodeClassicEnd(trailer?: EndTrailer): Uint8Array {
  if (!trailer) {
    const marker = new Uint8Array(CLASSIC_HEADER_SIZE);
    writeClassicHeader(marker, CLASSIC_END_SEQ);
    return marker;
  }
  const marker = new Uint8Array(CLASSIC_END_WITH_TRAILER_SIZE);
  const view = new DataView(marker.buffer);
  view.setInt32(0, CLASSIC_END_SEQ, false);
  view.setUint32(4, END_TRAILER_TAG, false);
  view.setUint32(8, trailer.packets, false);
  view.setUint32(12, trailer.chunk, false);
  view.setBigUint64(16, BigInt(trailer.bytes), false);
  return marker;
}

/**
 * Decodes a classic datagram. The payload is a view into `datagram`.
 * Throws {@linkcode ProtocolError} for fewer than 4 bytes or a negative
 * sequence number other than −1.
 */
export function decodeClassicDatagram(datagram: Uint8Array): ClassicDatagram {
  if (datagram.length < CLASSIC_HEADER_SIZE) {
    throw new ProtocolError(`datagram of ${datagram.length} bytes is shorter than the 4-byte header`);
  }
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const seq = view.getInt32(0, false);
  if (seq === CLASSIC_END_SEQ) {
    if (datagram.length >= CLASSIC_END_WITH_TRAILER_SIZE && view.getUint32(4, false) === END_TRAILER_TAG) {
      const bytes = view.getBigUint64(16, false);
      const trailer = {
        packets: view.getUint32(8, false),
        chunk: view.getUint32(12, false),
        bytes: Number(bytes),
      };
      // Only a consistent trailer is used: the packets of `chunk` bytes must hold exactly `bytes`.
      const consistent = bytes <= BigInt(Number.MAX_SAFE_INTEGER) && trailer.chunk > 0 &&
        trailer.chunk <= MAX_CLASSIC_BUFFER && trailer.bytes <= trailer.packets * trailer.chunk &&
        (trailer.packets === 0 ? trailer.bytes === 0 : trailer.bytes > (trailer.packets - 1) * trailer.chunk);
      if (consistent) return { kind: "end", trailer };
    }
    return { kind: "end" };
  }
  if (seq < 0) throw new ProtocolError(`invalid sequence number ${seq}`);
  return { kind: "data", seq, payload: datagram.subarray(CLASSIC_HEADER_SIZE) };
}

/** What a classic UDP receiver knows at the end of a session. */
export interface ClassicUdpOutcome {
  /** Packets that arrived (duplicates counted once). */
  received: number;
  /** Packets the sender sent, when known (end trailer) or inferred (highest sequence + 1). */
  expected: number;
  /** Missing sequence numbers, as sorted inclusive ranges. */
  missing: Array<[number, number]>;
  /** Payload bytes that arrived. */
  receivedBytes: number;
  /** File size from the end trailer, when the sender sent one. */
  expectedBytes?: number;
  /** Why the session ended without an end marker, if it did. */
  reason?: string;
}

/** Formats missing ranges as `7, 9, 12-14`, cut after `limit` ranges. */
export function formatRanges(ranges: Array<[number, number]>, limit = 8): string {
  const parts = ranges.slice(0, limit).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
  if (ranges.length > limit) parts.push(`… (${ranges.length - limit} more ranges)`);
  return parts.join(", ");
}

/** Whether the outcome is a complete file. */
export function isCompleteOutcome(o: ClassicUdpOutcome): boolean {
  return o.reason === undefined && o.missing.length === 0 && o.received === o.expected &&
    (o.expectedBytes === undefined || o.expectedBytes === o.receivedBytes);
}

/**
 * The server's reply for a classic UDP session: the original's success line,
 * or `INCOMPLETE: 15/16 packets, missing 7 (57344 of 61306 bytes)`.
 */
export function formatClassicUdpReply(o: ClassicUdpOutcome): string {
  if (isCompleteOutcome(o)) return CLASSIC_UDP_REPLY;
  const parts = [`INCOMPLETE: ${o.received}/${o.expected} packets`];
  if (o.missing.length > 0) parts.push(`missing ${formatRanges(o.missing)}`);
  if (o.reason) parts.push(o.reason);
  const of = o.expectedBytes === undefined ? "" : ` of ${o.expectedBytes}`;
  return `${parts.join(", ")} (${o.receivedBytes}${of} bytes)`;
}

/** A parsed UDP server reply. */
export interface ParsedUdpReply {
  /** `success` for the original's success line, `incomplete` for ours, `other` otherwise. */
  status: "success" | "incomplete" | "other";
  /** Bytes the server says it holds, when the reply says so. */
  receivedBytes?: number;
}

/** Parses a classic UDP server reply (ours or the original's). */
export function parseUdpReply(text: string): ParsedUdpReply {
  const trimmed = text.trim();
  if (trimmed.startsWith("SUCCESS")) return { status: "success" };
  if (trimmed.startsWith("INCOMPLETE")) {
    const match = /\((\d+)(?: of \d+)? bytes\)\s*$/.exec(trimmed);
    return match ? { status: "incomplete", receivedBytes: Number(match[1]) } : { status: "incomplete" };
  }
  return { status: "other" };
}

// ------------------------------------------------------------ framed TCP ----

/** The 8 bytes that open a framed stream: `\x89IXF\r\n\x1a\n`, after PNG's design. */
export const FRAMED_MAGIC: Uint8Array = new Uint8Array([0x89, 0x49, 0x58, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
/** The framed protocol version this code speaks. */
export const FRAMED_VERSION = 1;
/** Message type of a request header. */
export const FRAME_TYPE_REQUEST = 0x01;
/** Message type of a reply. */
export const FRAME_TYPE_REPLY = 0x02;
/** Size of the request header before the name. */
export const FRAMED_HEADER_FIXED_SIZE = 20;
/** Size of the reply before its message. */
export const FRAMED_REPLY_FIXED_SIZE = 54;
/** Size of a SHA-256 digest. */
export const DIGEST_SIZE = 32;
/** Longest file name accepted in a header, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 1024;
/** Longest reply message, in UTF-8 bytes. */
export const MAX_MESSAGE_BYTES = 4096;

/** Status codes of a framed reply. */
export const FramedStatus = {
  /** Stored and verified. */
  OK: 0,
  /** The bytes arrived but their SHA-256 differs from the sender's. */
  DIGEST_MISMATCH: 1,
  /** The stream ended before the declared size and digest arrived. */
  SHORT: 2,
  /** The server refused the transfer (bad name, too large, …). */
  REFUSED: 3,
  /** The server failed to store the file (disk full, …). */
  SERVER_ERROR: 4,
  /** The header's version is not one the server speaks. */
  UNSUPPORTED_VERSION: 5,
} as const;

/** One of the values of {@linkcode FramedStatus}. */
export type FramedStatusValue = typeof FramedStatus[keyof typeof FramedStatus];

/** A framed request header. */
export interface FramedHeader {
  /** Protocol version. */
  version: number;
  /** The file's name as the sender gave it (not yet sanitized). */
  name: string;
  /** Number of content bytes that follow. */
  size: number;
}

/** A framed reply. */
export interface FramedReply {
  /** Protocol version. */
  version: number;
  /** One of {@linkcode FramedStatus}. */
  status: number;
  /** Content bytes the server received. */
  bytes: number;
  /** SHA-256 the server computed over what it received (zeros when it computed none). */
  digest: Uint8Array;
  /** Human-readable message, e.g. `SUCCESS: File received`. */
  message: string;
}

/** The result of an incremental parse: a value and the bytes it used, or how many bytes are needed. */
export type ParseResult<T> = { value: T; consumed: number } | { need: number };

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function hasMagic(bytes: Uint8Array): boolean {
  if (bytes.length < FRAMED_MAGIC.length) return false;
  for (let i = 0; i < FRAMED_MAGIC.length; i++) if (bytes[i] !== FRAMED_MAGIC[i]) return false;
  return true;
}

/**
 * Tells a framed stream from a classic one by its first bytes. Needs 8 bytes
 * (fewer means classic: a framed header is longer).
 */
export function looksFramed(prefix: Uint8Array): boolean {
  return hasMagic(prefix);
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid file size ${size}`);
}

/** Encodes a framed request header. */
export function encodeFramedHeader(header: { name: string; size: number }): Uint8Array {
  checkSize(header.size);
  const name = encoder.encode(header.name);
  if (name.length === 0 || name.length > MAX_NAME_BYTES) {
    throw new RangeError(`file name must be 1-${MAX_NAME_BYTES} UTF-8 bytes`);
  }
  const out = new Uint8Array(FRAMED_HEADER_FIXED_SIZE + name.length);
  const view = new DataView(out.buffer);
  out.set(FRAMED_MAGIC, 0);
  view.setUint8(8, FRAMED_VERSION);
  view.setUint8(9, FRAME_TYPE_REQUEST);
  view.setUint16(10, name.length, false);
  view.setBigUint64(12, BigInt(header.size), false);
  out.set(name, FRAMED_HEADER_FIXED_SIZE);
  return out;
}

/**
 * Parses a framed request header from the start of `bytes`. Returns the
 * header and its length, or how many bytes are needed in all. Throws
 * {@linkcode ProtocolError} for a malformed header; an unknown version is
 * returned (the caller replies `UNSUPPORTED_VERSION`).
 */
export function parseFramedHeader(bytes: Uint8Array): ParseResult<FramedHeader> {
  if (bytes.length < FRAMED_HEADER_FIXED_SIZE) return { need: FRAMED_HEADER_FIXED_SIZE };
  if (!hasMagic(bytes)) throw new ProtocolError("not a framed imgxfer stream (bad magic)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(8);
  const type = view.getUint8(9);
  if (version === FRAMED_VERSION && type !== FRAME_TYPE_REQUEST) {
    throw new ProtocolError(`expected a request header, got message type ${type}`);
  }
  const nameLength = view.getUint16(10, false);
  const size = view.getBigUint64(12, false);
  if (version !== FRAMED_VERSION) {
    return { value: { version, name: "", size: 0 }, consumed: FRAMED_HEADER_FIXED_SIZE };
  }
  if (nameLength === 0 || nameLength > MAX_NAME_BYTES) {
    throw new ProtocolError(`file name length ${nameLength} is outside 1-${MAX_NAME_BYTES}`);
  }
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`declared size ${size} is too large`);
  const total = FRAMED_HEADER_FIXED_SIZE + nameLength;
  if (bytes.length < total) return { need: total };
  let name: string;
  try {
    name = decoder.decode(bytes.subarray(FRAMED_HEADER_FIXED_SIZE, total));
  } catch {
    throw new ProtocolError("file name is not valid UTF-8");
  }
  return { value: { version, name, size: Number(size) }, consumed: total };
}

/** Encodes a framed reply. */
export function encodeFramedReply(reply: Omit<FramedReply, "version">): Uint8Array {
  checkSize(reply.bytes);
  if (reply.digest.length !== DIGEST_SIZE) throw new RangeError("digest must be 32 bytes");
  let message = encoder.encode(reply.message);
  if (message.length > MAX_MESSAGE_BYTES) message = message.subarray(0, MAX_MESSAGE_BYTES);
  const out = new Uint8Array(FRAMED_REPLY_FIXED_SIZE + message.length);
  const view = new DataView(out.buffer);
  out.set(FRAMED_MAGIC, 0);
  view.setUint8(8, FRAMED_VERSION);
  view.setUint8(9, FRAME_TYPE_REPLY);
  view.setUint8(10, reply.status);
  view.setUint8(11, 0);
  view.setUint16(12, message.length, false);
  view.setBigUint64(14, BigInt(reply.bytes), false);
  out.set(reply.digest, 22);
  out.set(message, FRAMED_REPLY_FIXED_SIZE);
  return out;
}

/** Parses a framed reply from the start of `bytes`, like {@linkcode parseFramedHeader}. */
export function parseFramedReply(bytes: Uint8Array): ParseResult<FramedReply> {
  if (bytes.length < FRAMED_REPLY_FIXED_SIZE) return { need: FRAMED_REPLY_FIXED_SIZE };
  if (!hasMagic(bytes)) throw new ProtocolError("the server's reply is not a framed imgxfer reply");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(8);
  const type = view.getUint8(9);
  if (type !== FRAME_TYPE_REPLY) throw new ProtocolError(`expected a reply, got message type ${type}`);
  const length = view.getUint16(12, false);
  if (length > MAX_MESSAGE_BYTES) throw new ProtocolError(`reply message of ${length} bytes is too long`);
  const total = FRAMED_REPLY_FIXED_SIZE + length;
  if (bytes.length < total) return { need: total };
  const received = view.getBigUint64(14, false);
  if (received > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError("reply byte count is too large");
  let message: string;
  try {
    message = decoder.decode(bytes.subarray(FRAMED_REPLY_FIXED_SIZE, total));
  } catch {
    throw new ProtocolError("reply message is not valid UTF-8");
  }
  return {
    value: {
      version,
      status: view.getUint8(10),
      bytes: Number(received),
      digest: bytes.slice(22, 22 + DIGEST_SIZE),
      message,
    },
    consumed: total,
  };
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Compares two byte arrays in constant time for equal lengths. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
