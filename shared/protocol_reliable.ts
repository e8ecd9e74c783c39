/**
 * The reliable UDP wire format ("imgxfer reliable v1"): encode and decode
 * functions, no I/O.
 *
 * Every datagram starts with a 12-byte header: the byte `0xB7`, a message
 * type, the version (1), flags (0), a 32-bit session id chosen by the
 * sender, and a CRC-32 of the datagram's other bytes (bytes 0-7, then 12 to
 * the end: the checksum field itself is skipped), so a corrupted datagram is dropped and retransmitted instead of
 * poisoning the file. Read as a classic datagram, `0xB7…` is a negative
 * sequence number other than −1, which classic receivers reject, so one
 * server port tells the two formats apart by the first byte.
 *
 * Byte tables are in the README.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { DIGEST_SIZE, MAX_UDP_DATAGRAM, ProtocolError } from "./protocol.ts";

/** First byte of every reliable datagram. */
export const RELIABLE_MAGIC = 0xb7;
/** The reliable protocol version this code speaks. */
export const RELIABLE_VERSION = 1;
/** Size of the common header. */
export const RELIABLE_HEADER_SIZE = 12;
const CRC_OFFSET = 8;
/** Size of a DATA datagram before its payload. */
export const DATA_HEADER_SIZE: number = RELIABLE_HEADER_SIZE + 4;
/** Largest chunk (payload) a DATA datagram can carry. */
export const MAX_RELIABLE_CHUNK: number = MAX_UDP_DATAGRAM - DATA_HEADER_SIZE;
/** Most SACK ranges in one ACK. */
export const MAX_SACK_RANGES = 64;
/** Longest name in a HELLO, in UTF-8 bytes. */
export const MAX_RELIABLE_NAME = 1024;
/** Longest text in ACCEPT, DONE or ABORT, in UTF-8 bytes. */
export const MAX_RELIABLE_TEXT = 1024;

/** Message types. */
export const MsgType = {
  /** Sender → receiver: open a session (name, size, chunk size). */
  HELLO: 1,
  /** Receiver → sender: accept (with a window) or reject (with a reason). */
  ACCEPT: 2,
  /** Sender → receiver: one chunk. */
  DATA: 3,
  /** Receiver → sender: cumulative ack, SACK ranges, window. */
  ACK: 4,
  /** Sender → receiver: all chunks sent; size and SHA-256. */
  FIN: 5,
  /** Receiver → sender: final status and the digest it computed. */
  DONE: 6,
  /** Either way: the session is over, with a reason. */
  ABORT: 7,
} as const;

/** Status codes of ACCEPT and DONE. */
export const ReliableStatus = {
  /** Accepted / stored and verified. */
  OK: 0,
  /** The digest of the received bytes differs from the sender's. */
  DIGEST_MISMATCH: 1,
  /** Refused: bad name, too large, unsupported chunk size, … */
  REFUSED: 2,
  /** The receiver failed (disk full, …). */
  SERVER_ERROR: 3,
  /** The receiver is at its session limit. */
  BUSY: 4,
  /** Unsupported protocol version. */
  UNSUPPORTED_VERSION: 5,
} as const;

/** Opens a session. */
export interface HelloMsg {
  /** Message type. */
  type: typeof MsgType.HELLO;
  /** Session id. */
  session: number;
  /** Payload bytes per DATA datagram (the last may be shorter). */
  chunkSize: number;
  /** File size in bytes. */
  size: number;
  /** File name as the sender gives it. */
  name: string;
}

/** Accepts or rejects a session. */
export interface AcceptMsg {
  /** Message type. */
  type: typeof MsgType.ACCEPT;
  /** Session id. */
  session: number;
  /** {@linkcode ReliableStatus}: OK accepts, anything else rejects. */
  status: number;
  /** Chunks the receiver will buffer beyond its cumulative ack. */
  window: number;
  /** Human-readable reason (for rejections). */
  message: string;
}

/** One chunk of the file. */
export interface DataMsg {
  /** Message type. */
  type: typeof MsgType.DATA;
  /** Session id. */
  session: number;
  /** Chunk index: the payload belongs at `seq × chunkSize`. */
  seq: number;
  /** The chunk's bytes (a view into the datagram when decoded). */
  payload: Uint8Array;
}

/** Acknowledges chunks. */
export interface AckMsg {
  /** Message type. */
  type: typeof MsgType.ACK;
  /** Session id. */
  session: number;
  /** Every chunk below this index has arrived. */
  cumulative: number;
  /** Chunks beyond `cumulative` the receiver can still take. */
  window: number;
  /**
   * The chunk whose arrival triggered this ACK (new or duplicate), or
   * 0xFFFFFFFF for none: the receiver holds it even if no range shows it.
   */
  latest: number;
  /** Microseconds between the arrival of `latest` and this ACK (so the sender's RTT excludes it); 0 if omitted. */
  delayMicros?: number;
  /** Chunks received above `cumulative`, as `[start, end)` ranges, ascending. */
  ranges: Array<[number, number]>;
}

/** `latest` value of an ACK triggered by no particular chunk. */
export const NO_CHUNK = 0xffffffff;

/** Says the sender is done; carries what the receiver must verify. */
export interface FinMsg {
  /** Message type. */
  type: typeof MsgType.FIN;
  /** Session id. */
  session: number;
  /** Number of chunks. */
  chunks: number;
  /** File size in bytes. */
  size: number;
  /** SHA-256 of the file. */
  digest: Uint8Array;
}

/** The receiver's final word. */
export interface DoneMsg {
  /** Message type. */
  type: typeof MsgType.DONE;
  /** Session id. */
  session: number;
  /** {@linkcode ReliableStatus}. */
  status: number;
  /** Bytes the receiver holds. */
  bytes: number;
  /** SHA-256 the receiver computed. */
  digest: Uint8Array;
  /** Duplicate chunks the receiver got (retransmissions it did not need). */
  duplicates: number;
  /** ACKs the receiver sent. */
  acks: number;
  /** Human-readable message, e.g. `SUCCESS: File received via UDP`. */
  message: string;
}

/** Ends a session early. */
export interface AbortMsg {
  /** Message type. */
  type: typeof MsgType.ABORT;
  /** Session id. */
  session: number;
  /** {@linkcode ReliableStatus} explaining why. */
  status: number;
  /** Human-readable reason. */
  message: string;
}

/** Any reliable message. */
export type ReliableMsg = HelloMsg | AcceptMsg | DataMsg | AckMsg | FinMsg | DoneMsg | AbortMsg;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Whether a datagram is in the reliable format (by its first byte). */
export function isReliableDatagram(datagram: Uint8Array): boolean {
  return datagram.length >= 1 && datagram[0] === RELIABLE_MAGIC;
}

function header(out: Uint8Array, type: number, session: number): DataView {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[0] = RELIABLE_MAGIC;
  out[1] = type;
  out[2] = RELIABLE_VERSION;
  out[3] = 0;
  view.setUint32(4, session >>> 0, false);
  view.setUint32(CRC_OFFSET, 0, false);
  return view;
}

/** CRC-32 of a datagram, skipping its checksum field. */
function checksum(datagram: Uint8Array): number {
  return crc32(datagram.subarray(CRC_OFFSET + 4), crc32(datagram.subarray(0, CRC_OFFSET))) >>> 0;
}

/** Computes and stores the datagram's checksum; returns the datagram. */
function seal(datagram: Uint8Array): Uint8Array {
  new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength).setUint32(
    CRC_OFFSET,
    checksum(datagram),
    false,
  );
  return datagram;
}

/** UTF-8 of `value`, cut to at most `max` bytes without splitting a character. */
function text(value: string, max: number): Uint8Array {
  const bytes = encoder.encode(value);
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--; // back up to a character boundary
  return bytes.subarray(0, end);
}

function u64(view: DataView, offset: number, value: number): void {
  view.setBigUint64(offset, BigInt(value), false);
}

/**
 * Writes a DATA header for `seq` into the first bytes of `datagram`, whose
 * payload the caller has already placed at offset
 * {@linkcode DATA_HEADER_SIZE}, and seals it with its checksum.
 */
export function writeDataHeader(datagram: Uint8Array, session: number, seq: number): void {
  const view = header(datagram, MsgType.DATA, session);
  view.setUint32(12, seq >>> 0, false);
  seal(datagram);
}

/** Encodes any reliable message. */
export function encodeReliable(msg: ReliableMsg): Uint8Array {
  switch (msg.type) {
    case MsgType.HELLO: {
      const name = text(msg.name, MAX_RELIABLE_NAME);
      const out = new Uint8Array(RELIABLE_HEADER_SIZE + 14 + name.length);
      const view = header(out, msg.type, msg.session);
      view.setUint32(12, msg.chunkSize, false);
      u64(view, 16, msg.size);
      view.setUint16(24, name.length, false);
      out.set(name, 26);
      return seal(out);
    }
    case MsgType.ACCEPT: {
      const message = text(msg.message, MAX_RELIABLE_TEXT);
      const out = new Uint8Array(RELIABLE_HEADER_SIZE + 8 + message.length);
      const view = header(out, msg.type, msg.session);
      view.setUint8(12, msg.status);
      view.setUint8(13, 0);
      view.setUint32(14, msg.window, false);
      view.setUint16(18, message.length, false);
      out.set(message, 20);
      return seal(out);
    }
    case MsgType.DATA: {
      const out = new Uint8Array(DATA_HEADER_SIZE + msg.payload.length);
      out.set(msg.payload, DATA_HEADER_SIZE);
      writeDataHeader(out, msg.session, msg.seq);
      return out;
    }
    case MsgType.ACK: {
      const ranges = msg.ranges.slice(0, MAX_SACK_RANGES);
      const out = new Uint8Array(RELIABLE_HEADER_SIZE + 17 + ranges.length * 8);
      const view = header(out, msg.type, msg.session);
      view.setUint32(12, msg.cumulative, false);
      view.setUint32(16, msg.window, false);
      view.setUint32(20, msg.latest >>> 0, false);
      view.setUint32(24, Math.min(0xffffffff, Math.max(0, Math.round(msg.delayMicros ?? 0))), false);
      view.setUint8(28, ranges.length);
      ranges.forEach(([start, end], i) => {
        view.setUint32(29 + i * 8, start, false);
        view.setUint32(33 + i * 8, end, false);
      });
      return seal(out);
    }
    case MsgType.FIN: {
      const out = new Uint8Array(RELIABLE_HEADER_SIZE + 12 + DIGEST_SIZE);
      const view = header(out, msg.type, msg.session);
      view.setUint32(12, msg.chunks, false);
      u64(view, 16, msg.size);
      out.set(msg.digest.subarray(0, DIGEST_SIZE), 24);
      return seal(out);
    }
    case MsgType.DONE: {
      const message = text(msg.message, MAX_RELIABLE_TEXT);
      const out = new Uint8Array(RELIABLE_HEADER_SIZE + 1 + 8 + DIGEST_SIZE + 8 + 2 + message.length);
      const view = header(out, msg.type, msg.session);
      view.setUint8(12, msg.status);
      u64(view, 13, msg.bytes);
      out.set(msg.digest.subarray(0, DIGEST_SIZE), 21);
      view.setUint32(53, Math.min(msg.duplicates, 0xffffffff) >>> 0, false);
      view.setUint32(57, Math.min(msg.acks, 0xffffffff) >>> 0, false);
      view.setUint16(61, message.length, false);
      out.set(message, 63);
      return seal(out);
    }
    case MsgType.ABORT: {
      const message = text(msg.message, MAX_RELIABLE_TEXT);
      const out = new Uint8Array(RELIABLE_HEADER_SIZE + 3 + message.length);
      const view = header(out, msg.type, msg.session);
      view.setUint8(12, msg.status);
      view.setUint16(13, message.length, false);
      out.set(message, 15);
      return seal(out);
    }
  }
}

function need(datagram: Uint8Array, length: number, what: string): void {
  if (datagram.length < length) {
    throw new ProtocolError(`${what} of ${datagram.length} bytes is shorter than its ${length}-byte minimum`);
  }
}

function readU64(view: DataView, offset: number, what: string): number {
  const value = view.getBigUint64(offset, false);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`${what} ${value} is too large`);
  return Number(value);
}

function readText(datagram: Uint8Array, offset: number, length: number, max: number, what: string): string {
  if (length > max) throw new ProtocolError(`${what} of ${length} bytes is too long`);
  if (datagram.length < offset + length) throw new ProtocolError(`${what} runs past the end of the datagram`);
  try {
    return decoder.decode(datagram.subarray(offset, offset + length));
  } catch {
    throw new ProtocolError(`${what} is not valid UTF-8`);
  }
}

/**
 * Decodes a reliable datagram. Payloads are views into `datagram`. Throws
 * {@linkcode ProtocolError} for anything malformed, including a version this
 * code does not speak.
 */
export function decodeReliable(datagram: Uint8Array): ReliableMsg {
  need(datagram, RELIABLE_HEADER_SIZE, "datagram");
  if (datagram[0] !== RELIABLE_MAGIC) throw new ProtocolError("not a reliable datagram");
  const type = datagram[1];
  if (datagram[2] !== RELIABLE_VERSION) {
    throw new ProtocolError(`unsupported reliable version ${datagram[2]}`);
  }
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const session = view.getUint32(4, false);
  if (view.getUint32(CRC_OFFSET, false) !== checksum(datagram)) throw new ProtocolError("checksum mismatch");
  switch (type) {
    case MsgType.HELLO: {
      need(datagram, 26, "HELLO");
      const length = view.getUint16(24, false);
      if (length === 0) throw new ProtocolError("HELLO has an empty name");
      return {
        type,
        session,
        chunkSize: view.getUint32(12, false),
        size: readU64(view, 16, "HELLO size"),
        name: readText(datagram, 26, length, MAX_RELIABLE_NAME, "HELLO name"),
      };
    }
    case MsgType.ACCEPT: {
      need(datagram, 20, "ACCEPT");
      return {
        type,
        session,
        status: view.getUint8(12),
        window: view.getUint32(14, false),
        message: readText(datagram, 20, view.getUint16(18, false), MAX_RELIABLE_TEXT, "ACCEPT message"),
      };
    }
    case MsgType.DATA: {
      need(datagram, DATA_HEADER_SIZE, "DATA");
      return { type, session, seq: view.getUint32(12, false), payload: datagram.subarray(DATA_HEADER_SIZE) };
    }
    case MsgType.ACK: {
      need(datagram, 29, "ACK");
      const count = view.getUint8(28);
      if (count > MAX_SACK_RANGES) throw new ProtocolError(`ACK with ${count} ranges`);
      need(datagram, 29 + count * 8, "ACK");
      const cumulative = view.getUint32(12, false);
      const ranges: Array<[number, number]> = [];
      let previous = cumulative;
      for (let i = 0; i < count; i++) {
        const start = view.getUint32(29 + i * 8, false);
        const end = view.getUint32(33 + i * 8, false);
        if (start < previous || end <= start) throw new ProtocolError("ACK ranges out of order");
        ranges.push([start, end]);
        previous = end;
      }
      return {
        type,
        session,
        cumulative,
        window: view.getUint32(16, false),
        latest: view.getUint32(20, false),
        delayMicros: view.getUint32(24, false),
        ranges,
      };
    }
    case MsgType.FIN: {
      need(datagram, 24 + DIGEST_SIZE, "FIN");
      return {
        type,
        session,
        chunks: view.getUint32(12, false),
        size: readU64(view, 16, "FIN size"),
        digest: datagram.slice(24, 24 + DIGEST_SIZE),
      };
    }
    case MsgType.DONE: {
      need(datagram, 63, "DONE");
      return {
        type,
        session,
        status: view.getUint8(12),
        bytes: readU64(view, 13, "DONE size"),
        digest: datagram.slice(21, 21 + DIGEST_SIZE),
        duplicates: view.getUint32(53, false),
        acks: view.getUint32(57, false),
        message: readText(datagram, 63, view.getUint16(61, false), MAX_RELIABLE_TEXT, "DONE message"),
      };
    }
    case MsgType.ABORT: {
      need(datagram, 15, "ABORT");
      return {
        type,
        session,
        status: view.getUint8(12),
        message: readText(datagram, 15, view.getUint16(13, false), MAX_RELIABLE_TEXT, "ABORT message"),
      };
    }
    default:
      throw new ProtocolError(`unknown reliable message type ${type}`);
  }
}
