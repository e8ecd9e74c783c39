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
 * - **framed TCP sessions** (version 2, only with a pre-shared key or
 *   `--resume`): a request with flags and a client nonce, a key handshake
 *   (challenge, proof), the server's offer of what it already holds
 *   (accept), where the client starts, then the bytes (raw, or under a key
 *   in authenticated records) and the same reply.
 *
 * Byte tables are in the README.
 *
 * @module
 */

import type { DigestName } from "./digest.ts";

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

// ------------------------------------------------- framed TCP sessions ----
//
// Version 2 of the framed format, spoken only when the client has a key or
// asks to resume (without either, a client sends version 1 byte for byte).
// Every message opens with the magic, the version and a message type; the
// byte tables are in the README.

/** The framed version of a session (a key, `--resume`, or both). */
export const FRAMED_SESSION_VERSION = 2;
/** Server → client under a key: the server nonce and the server's proof. */
export const FRAME_TYPE_CHALLENGE = 0x03;
/** Client → server under a key: the client's proof. */
export const FRAME_TYPE_PROOF = 0x04;
/** Server → client: the transfer is accepted, with what the server already holds. */
export const FRAME_TYPE_ACCEPT = 0x05;
/** Client → server: the byte the data starts at. */
export const FRAME_TYPE_START = 0x06;

/** Flags of a session request. */
export const SessionFlags = {
  /** The client holds a pre-shared key: run the handshake, send authenticated records. */
  KEY: 0x01,
  /** The client asks what the server already holds of this file. */
  RESUME: 0x02,
  /**
   * The digest fields (offer, trailer, reply) carry an XXH3-128, zero-padded
   * to 32 bytes, instead of a SHA-256. Never with {@linkcode SessionFlags.KEY}:
   * a key's tags need a cryptographic hash.
   */
  XXH128: 0x04,
} as const;
const KNOWN_SESSION_FLAGS = SessionFlags.KEY | SessionFlags.RESUME | SessionFlags.XXH128;

/** The digest algorithm a session's `flags` ask for. */
export function sessionDigest(flags: number): DigestName {
  return flags & SessionFlags.XXH128 ? "xxh128" : "sha256";
}

function checkFlags(flags: number): string | undefined {
  if ((flags & ~KNOWN_SESSION_FLAGS) !== 0) return `unknown flags ${flags}`;
  if ((flags & SessionFlags.KEY) && (flags & SessionFlags.XXH128)) {
    return "a keyed session must use SHA-256, not XXH3-128";
  }
  return undefined;
}

/** Size of a client or server nonce (as `NONCE_SIZE` in shared/auth.ts). */
export const SESSION_NONCE_SIZE = 32;
/** Size of a handshake proof (a full HMAC-SHA-256). */
export const SESSION_PROOF_SIZE = 32;
/** Size of a message or record authenticator (as `TAG_SIZE` in shared/auth.ts). */
export const SESSION_TAG_SIZE = 16;
/** Size of a session request before the name. */
export const SESSION_REQUEST_FIXED_SIZE = 56;
/** Size of the prefix every session message but the request opens with. */
const MESSAGE_PREFIX_SIZE = 12;
/** Size of a challenge. */
export const CHALLENGE_SIZE: number = MESSAGE_PREFIX_SIZE + SESSION_NONCE_SIZE + SESSION_PROOF_SIZE;
/** Size of a proof message. */
export const PROOF_MESSAGE_SIZE: number = MESSAGE_PREFIX_SIZE + SESSION_PROOF_SIZE;
/** Size of an accept message. */
export const ACCEPT_SIZE: number = MESSAGE_PREFIX_SIZE + 8 + DIGEST_SIZE + SESSION_TAG_SIZE;
/** Size of a start message. */
export const START_SIZE: number = MESSAGE_PREFIX_SIZE + 8 + SESSION_TAG_SIZE;
/** Largest payload of one authenticated record. */
export const MAX_RECORD_PAYLOAD: number = 1 << 20;
/** Size of a record's length field. */
export const RECORD_HEADER_SIZE = 4;
/** Bytes a record adds to its payload: the length and the tag. */
export const RECORD_OVERHEAD: number = RECORD_HEADER_SIZE + SESSION_TAG_SIZE;
/** Size of the authenticated end of a keyed session: the SHA-256 and its tag. */
export const SEALED_TRAILER_SIZE: number = DIGEST_SIZE + SESSION_TAG_SIZE;

/** Computes the tag of a message's bytes (an `Authenticator` under a session key). */
export type Seal = (bytes: Uint8Array) => Uint8Array;

/** A framed request of any version: version 1 has no flags and no nonce. */
export interface FramedRequest extends FramedHeader {
  /** {@linkcode SessionFlags} (0 for version 1). */
  flags: number;
  /** The client nonce (version 2). */
  clientNonce?: Uint8Array;
}

/** A server's answer to a session request or proof. */
export type ServerSessionMessage =
  | { type: "challenge"; serverNonce: Uint8Array; proof: Uint8Array }
  | { type: "accept"; offer: SessionOffer; tag: Uint8Array; signed: Uint8Array }
  | { type: "reply"; reply: FramedReply };

/** What the server already holds of the file: its first `bytes` bytes, whose SHA-256 is `digest`. */
export interface SessionOffer {
  /** Bytes held (0: nothing, start from the beginning). */
  bytes: number;
  /** SHA-256 of those bytes (zeros when there are none). */
  digest: Uint8Array;
}

/** A start message: where the client's data begins. */
export interface SessionStart {
  /** The first byte the client sends: 0, or the offer's byte count when the prefixes match. */
  offset: number;
  /** The tag (zeros without a key). */
  tag: Uint8Array;
  /** The bytes the tag covers. */
  signed: Uint8Array;
}

function writeMessagePrefix(out: Uint8Array, type: number): void {
  out.set(FRAMED_MAGIC, 0);
  out[8] = FRAMED_SESSION_VERSION;
  out[9] = type;
}

/** Fills the last {@linkcode SESSION_TAG_SIZE} bytes of `out` with the seal of the rest. */
function sealInPlace(out: Uint8Array, seal?: Seal): Uint8Array {
  if (!seal) return out;
  const tag = seal(out.subarray(0, out.length - SESSION_TAG_SIZE));
  if (tag.length !== SESSION_TAG_SIZE) throw new RangeError("a tag must be 16 bytes");
  out.set(tag, out.length - SESSION_TAG_SIZE);
  return out;
}

function checkBytes(value: Uint8Array, size: number, what: string): void {
  if (value.length !== size) throw new RangeError(`${what} must be ${size} bytes`);
}

/** Encodes a session request (version 2): the header fields, flags and the client nonce. */
export function encodeSessionRequest(request: {
  name: string;
  size: number;
  flags: number;
  clientNonce: Uint8Array;
}): Uint8Array {
  checkSize(request.size);
  checkBytes(request.clientNonce, SESSION_NONCE_SIZE, "the client nonce");
  const bad = checkFlags(request.flags);
  if (bad) throw new RangeError(bad);
  const name = encoder.encode(request.name);
  if (name.length === 0 || name.length > MAX_NAME_BYTES) {
    throw new RangeError(`file name must be 1-${MAX_NAME_BYTES} UTF-8 bytes`);
  }
  const out = new Uint8Array(SESSION_REQUEST_FIXED_SIZE + name.length);
  const view = new DataView(out.buffer);
  writeMessagePrefix(out, FRAME_TYPE_REQUEST);
  view.setUint16(10, name.length, false);
  view.setBigUint64(12, BigInt(request.size), false);
  out[20] = request.flags;
  out.set(request.clientNonce, 24);
  out.set(name, SESSION_REQUEST_FIXED_SIZE);
  return out;
}

/**
 * Parses a framed request of version 1 or 2 from the start of `bytes`, like
 * {@linkcode parseFramedHeader} (which it uses for every version but 2):
 * an unknown version is returned, a malformed request throws
 * {@linkcode ProtocolError}.
 */
export function parseFramedRequest(bytes: Uint8Array): ParseResult<FramedRequest> {
  if (bytes.length < FRAMED_HEADER_FIXED_SIZE) return { need: FRAMED_HEADER_FIXED_SIZE };
  if (bytes[8] !== FRAMED_SESSION_VERSION) {
    const v1 = parseFramedHeader(bytes);
    return "need" in v1 ? v1 : { value: { ...v1.value, flags: 0 }, consumed: v1.consumed };
  }
  if (!hasMagic(bytes)) throw new ProtocolError("not a framed imgxfer stream (bad magic)");
  if (bytes[9] !== FRAME_TYPE_REQUEST) {
    throw new ProtocolError(`expected a request header, got message type ${bytes[9]}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nameLength = view.getUint16(10, false);
  const size = view.getBigUint64(12, false);
  if (nameLength === 0 || nameLength > MAX_NAME_BYTES) {
    throw new ProtocolError(`file name length ${nameLength} is outside 1-${MAX_NAME_BYTES}`);
  }
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`declared size ${size} is too large`);
  if (bytes.length < SESSION_REQUEST_FIXED_SIZE) return { need: SESSION_REQUEST_FIXED_SIZE };
  const flags = bytes[20];
  const bad = checkFlags(flags);
  if (bad) throw new ProtocolError(`request: ${bad}`);
  const total = SESSION_REQUEST_FIXED_SIZE + nameLength;
  if (bytes.length < total) return { need: total };
  let name: string;
  try {
    name = decoder.decode(bytes.subarray(SESSION_REQUEST_FIXED_SIZE, total));
  } catch {
    throw new ProtocolError("file name is not valid UTF-8");
  }
  return {
    value: {
      version: FRAMED_SESSION_VERSION,
      name,
      size: Number(size),
      flags,
      clientNonce: bytes.slice(24, SESSION_REQUEST_FIXED_SIZE),
    },
    consumed: total,
  };
}

/** Encodes a challenge: the server nonce and the server's handshake proof. */
export function encodeChallenge(challenge: { serverNonce: Uint8Array; proof: Uint8Array }): Uint8Array {
  checkBytes(challenge.serverNonce, SESSION_NONCE_SIZE, "the server nonce");
  checkBytes(challenge.proof, SESSION_PROOF_SIZE, "the proof");
  const out = new Uint8Array(CHALLENGE_SIZE);
  writeMessagePrefix(out, FRAME_TYPE_CHALLENGE);
  out.set(challenge.serverNonce, MESSAGE_PREFIX_SIZE);
  out.set(challenge.proof, MESSAGE_PREFIX_SIZE + SESSION_NONCE_SIZE);
  return out;
}

/** Encodes the client's handshake proof. */
export function encodeProof(proof: Uint8Array): Uint8Array {
  checkBytes(proof, SESSION_PROOF_SIZE, "the proof");
  const out = new Uint8Array(PROOF_MESSAGE_SIZE);
  writeMessagePrefix(out, FRAME_TYPE_PROOF);
  out.set(proof, MESSAGE_PREFIX_SIZE);
  return out;
}

/** Encodes an accept message with the server's offer, sealed under a key when `seal` is given. */
export function encodeAccept(offer: SessionOffer, seal?: Seal): Uint8Array {
  checkSize(offer.bytes);
  checkBytes(offer.digest, DIGEST_SIZE, "the prefix digest");
  const out = new Uint8Array(ACCEPT_SIZE);
  writeMessagePrefix(out, FRAME_TYPE_ACCEPT);
  new DataView(out.buffer).setBigUint64(MESSAGE_PREFIX_SIZE, BigInt(offer.bytes), false);
  out.set(offer.digest, MESSAGE_PREFIX_SIZE + 8);
  return sealInPlace(out, seal);
}

/** Encodes a start message, sealed under a key when `seal` is given. */
export function encodeStart(offset: number, seal?: Seal): Uint8Array {
  checkSize(offset);
  const out = new Uint8Array(START_SIZE);
  writeMessagePrefix(out, FRAME_TYPE_START);
  new DataView(out.buffer).setBigUint64(MESSAGE_PREFIX_SIZE, BigInt(offset), false);
  return sealInPlace(out, seal);
}

/**
 * Checks the prefix of a fixed-size session message of `type` and returns
 * its bytes, or how many are needed.
 */
function parseFixedMessage(bytes: Uint8Array, type: number, size: number): ParseResult<Uint8Array> {
  if (bytes.length >= 8 && !hasMagic(bytes)) {
    throw new ProtocolError("not a framed imgxfer message (bad magic)");
  }
  if (bytes.length < MESSAGE_PREFIX_SIZE) return { need: size };
  if (bytes[8] !== FRAMED_SESSION_VERSION) throw new ProtocolError(`unexpected version ${bytes[8]}`);
  if (bytes[9] !== type) throw new ProtocolError(`expected message type ${type}, got ${bytes[9]}`);
  if (bytes.length < size) return { need: size };
  return { value: bytes.subarray(0, size), consumed: size };
}

function readOffset(message: Uint8Array, what: string): number {
  const value = new DataView(message.buffer, message.byteOffset, message.byteLength)
    .getBigUint64(MESSAGE_PREFIX_SIZE, false);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`${what} ${value} is too large`);
  return Number(value);
}

function parseChallenge(bytes: Uint8Array): ParseResult<ServerSessionMessage> {
  const r = parseFixedMessage(bytes, FRAME_TYPE_CHALLENGE, CHALLENGE_SIZE);
  if ("need" in r) return r;
  const m = r.value;
  const serverNonce = m.slice(MESSAGE_PREFIX_SIZE, MESSAGE_PREFIX_SIZE + SESSION_NONCE_SIZE);
  const proof = m.slice(MESSAGE_PREFIX_SIZE + SESSION_NONCE_SIZE, CHALLENGE_SIZE);
  return { value: { type: "challenge", serverNonce, proof }, consumed: r.consumed };
}

function parseAccept(bytes: Uint8Array): ParseResult<ServerSessionMessage> {
  const r = parseFixedMessage(bytes, FRAME_TYPE_ACCEPT, ACCEPT_SIZE);
  if ("need" in r) return r;
  const m = r.value;
  const offer = {
    bytes: readOffset(m, "offered byte count"),
    digest: m.slice(MESSAGE_PREFIX_SIZE + 8, MESSAGE_PREFIX_SIZE + 8 + DIGEST_SIZE),
  };
  const signed = m.slice(0, ACCEPT_SIZE - SESSION_TAG_SIZE);
  return { value: { type: "accept", offer, tag: m.slice(signed.length), signed }, consumed: r.consumed };
}

/**
 * Parses what a server sends after a session request or proof: a
 * challenge, an accept, or a reply (a refusal, in any version). Throws
 * {@linkcode ProtocolError} for anything else.
 */
export function parseServerMessage(bytes: Uint8Array): ParseResult<ServerSessionMessage> {
  if (bytes.length < 10) return { need: 10 };
  if (!hasMagic(bytes)) throw new ProtocolError("the server's answer is not a framed imgxfer message");
  switch (bytes[9]) {
    case FRAME_TYPE_REPLY: {
      const r = parseFramedReply(bytes);
      return "need" in r ? r : { value: { type: "reply", reply: r.value }, consumed: r.consumed };
    }
    case FRAME_TYPE_CHALLENGE:
      return parseChallenge(bytes);
    case FRAME_TYPE_ACCEPT:
      return parseAccept(bytes);
    default:
      throw new ProtocolError(`unexpected message type ${bytes[9]} from the server`);
  }
}

/** Parses the client's proof message; returns the proof. */
export function parseProof(bytes: Uint8Array): ParseResult<Uint8Array> {
  const r = parseFixedMessage(bytes, FRAME_TYPE_PROOF, PROOF_MESSAGE_SIZE);
  return "need" in r ? r : { value: r.value.slice(MESSAGE_PREFIX_SIZE), consumed: r.consumed };
}

/** Parses a start message. */
export function parseStart(bytes: Uint8Array): ParseResult<SessionStart> {
  const r = parseFixedMessage(bytes, FRAME_TYPE_START, START_SIZE);
  if ("need" in r) return r;
  const m = r.value;
  const signed = m.slice(0, START_SIZE - SESSION_TAG_SIZE);
  return {
    value: { offset: readOffset(m, "start offset"), tag: m.slice(signed.length), signed },
    consumed: r.consumed,
  };
}

/** Writes a record's length field into the first 4 bytes of `out`. */
export function writeRecordHeader(out: Uint8Array, length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > MAX_RECORD_PAYLOAD) {
    throw new RangeError(`record length must be 1-${MAX_RECORD_PAYLOAD}, got ${length}`);
  }
  new DataView(out.buffer, out.byteOffset, RECORD_HEADER_SIZE).setUint32(0, length, false);
}

/**
 * Reads a record's length from the start of `bytes`, or how many bytes are
 * needed. Throws {@linkcode ProtocolError} for a length of 0, above
 * {@linkcode MAX_RECORD_PAYLOAD}, or beyond the `remaining` bytes of the file.
 */
export function parseRecordHeader(bytes: Uint8Array, remaining: number): ParseResult<number> {
  if (bytes.length < RECORD_HEADER_SIZE) return { need: RECORD_HEADER_SIZE };
  const length = new DataView(bytes.buffer, bytes.byteOffset, RECORD_HEADER_SIZE).getUint32(0, false);
  if (length === 0 || length > MAX_RECORD_PAYLOAD) {
    throw new ProtocolError(`record length ${length} is outside 1-${MAX_RECORD_PAYLOAD}`);
  }
  if (length > remaining) {
    throw new ProtocolError(`a record of ${length} bytes goes past the file's end (${remaining} bytes left)`);
  }
  return { value: length, consumed: RECORD_HEADER_SIZE };
}

/**
 * What a record's tag covers before the running digest: kind `01`, the
 * record's index (u64, from 0 in each session) and its length (u32). The
 * tag is over `01 ‖ index ‖ length ‖ SHA-256 of the file from byte 0 to the
 * record's end`, which authenticates the payload (and all before it) without
 * a second pass over the bytes.
 */
export function recordTagPrefix(index: number, length: number): Uint8Array {
  const out = new Uint8Array(13);
  const view = new DataView(out.buffer);
  out[0] = 0x01;
  view.setBigUint64(1, BigInt(index), false);
  view.setUint32(9, length, false);
  return out;
}

/**
 * What the trailer's tag covers before the SHA-256: kind `02`, the number of
 * records sent (u64) and the file size (u64).
 */
export function trailerTagPrefix(records: number, size: number): Uint8Array {
  checkSize(size);
  const out = new Uint8Array(17);
  const view = new DataView(out.buffer);
  out[0] = 0x02;
  view.setBigUint64(1, BigInt(records), false);
  view.setBigUint64(9, BigInt(size), false);
  return out;
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
