/**
 * The reliable UDP wire format ("imgxfer reliable v1"): encode and decode
 * functions, no I/O.
 *
 * Every datagram starts with a 12-byte header: the byte `0xB7`, a message
 * type, the version (1), flags ({@linkcode ReliableFlag}, 0 without a key or
 * resume), a 32-bit session id chosen by the sender, and a CRC-32 of the
 * datagram's other bytes (bytes 0-7, then 12 to the end: the checksum field
 * itself is skipped), so a corrupted datagram is dropped and retransmitted
 * instead of poisoning the file. Read as a classic datagram, `0xB7…` is a
 * negative sequence number other than −1, which classic receivers reject, so
 * one server port tells the two formats apart by the first byte.
 *
 * Under a pre-shared key, every datagram after the handshake (HELLO,
 * CHALLENGE, AUTH) has the `TAGGED` flag and ends with a 16-byte
 * authenticator ({@linkcode Authenticator}) over bytes 0-7 and 12 up to the
 * tag, under the session key of its direction ({@linkcode reliableSessionKeys});
 * the CRC-32 then covers the tag too.
 *
 * Byte tables are in the README.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { type Authenticator, NONCE_SIZE, PROOF_SIZE, sessionKey, TAG_SIZE } from "./auth.ts";
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
/** Largest chunk a DATA datagram of an authenticated session can carry (room for the tag). */
export const MAX_TAGGED_RELIABLE_CHUNK: number = MAX_RELIABLE_CHUNK - TAG_SIZE;
/** Most held chunk ranges a resume offer carries (so an ACCEPT stays near 1 KB). */
export const MAX_RESUME_RANGES = 128;
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
  /** Receiver → sender (under a key): the server nonce and the server's proof. */
  CHALLENGE: 8,
  /** Sender → receiver (under a key): the client's proof. */
  AUTH: 9,
  /** Sender → receiver: keep the chunks the receiver offered, restart from empty, or still checking. */
  RESUME: 10,
} as const;

/** Decisions of a RESUME message. */
export const ResumeDecision = {
  /** The offered chunks match the file: keep them. */
  KEEP: 0,
  /** They do not: start from empty. */
  RESTART: 1,
  /** Still hashing the file (a keep-alive: a big file takes a while). */
  CHECKING: 2,
} as const;

/** Bits of the header's flags byte. */
export const ReliableFlag = {
  /** A {@linkcode TAG_SIZE}-byte authenticator ends the datagram. */
  TAGGED: 0x01,
  /** HELLO: the sender asks to resume. ACCEPT: a resume offer follows the message. */
  RESUME: 0x02,
  /** HELLO: the sender holds a key; a 32-byte client nonce follows the name. */
  KEYED: 0x04,
} as const;
const KNOWN_FLAGS = ReliableFlag.TAGGED | ReliableFlag.RESUME | ReliableFlag.KEYED;

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
  /** The sender asks to resume an earlier attempt (flag `RESUME`). */
  resume?: boolean;
  /** The sender's 32-byte nonce: present when it holds a key (flag `KEYED`). */
  nonce?: Uint8Array;
}

/** Chunks a receiver already holds from an earlier attempt, offered to a resuming sender. */
export interface ReliableResumeOffer {
  /** Held chunks as `[start, end)` ranges, ascending, disjoint, at most {@linkcode MAX_RESUME_RANGES}. */
  ranges: Array<[number, number]>;
  /** SHA-256 of the held bytes, range after range. */
  digest: Uint8Array;
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
  /** What the receiver holds already, when the sender asked to resume (flag `RESUME`). */
  offer?: ReliableResumeOffer;
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

/** The receiver's half of a keyed handshake. */
export interface ChallengeMsg {
  /** Message type. */
  type: typeof MsgType.CHALLENGE;
  /** Session id. */
  session: number;
  /** The receiver's fresh 32-byte nonce. */
  nonce: Uint8Array;
  /** The receiver's proof that it holds the key (see `handshakeProof`). */
  proof: Uint8Array;
}

/** The sender's proof that it holds the key. */
export interface AuthMsg {
  /** Message type. */
  type: typeof MsgType.AUTH;
  /** Session id. */
  session: number;
  /** The sender's proof (see `handshakeProof`). */
  proof: Uint8Array;
}

/** The sender's answer to a resume offer. */
export interface ResumeMsg {
  /** Message type. */
  type: typeof MsgType.RESUME;
  /** Session id. */
  session: number;
  /** A {@linkcode ResumeDecision}. */
  decision: number;
}

/** Any reliable message. */
export type ReliableMsg =
  | HelloMsg
  | AcceptMsg
  | DataMsg
  | AckMsg
  | FinMsg
  | DoneMsg
  | AbortMsg
  | ChallengeMsg
  | AuthMsg
  | ResumeMsg;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Whether a datagram is in the reliable format (by its first byte). */
export function isReliableDatagram(datagram: Uint8Array): boolean {
  return datagram.length >= 1 && datagram[0] === RELIABLE_MAGIC;
}

/** Whether a reliable datagram says it ends with an authenticator (flag `TAGGED`). */
export function isReliableTagged(datagram: Uint8Array): boolean {
  return datagram.length >= RELIABLE_HEADER_SIZE + TAG_SIZE && (datagram[3] & ReliableFlag.TAGGED) !== 0;
}

/**
 * Whether a reliable datagram carries a valid authenticator under `auth`
 * (bytes 0-7 and 12 up to the tag). Untagged datagrams fail.
 */
export function verifyReliableTag(datagram: Uint8Array, auth: Authenticator): boolean {
  if (!isReliableTagged(datagram)) return false;
  const end = datagram.length - TAG_SIZE;
  return auth.verify(datagram.subarray(end), datagram.subarray(0, CRC_OFFSET), datagram.subarray(12, end));
}

/** The two directions' session keys of a keyed session. */
export interface ReliableSessionKeys {
  /** Authenticates what the sender (client) sends. */
  clientToServer: Uint8Array;
  /** Authenticates what the receiver (server) sends. */
  serverToClient: Uint8Array;
}

/**
 * Derives a keyed session's keys with HKDF from the key, both nonces and the
 * HELLO datagram exactly as sent (so the name, size, chunk size, flags and
 * session id are bound to them).
 */
export function reliableSessionKeys(
  psk: Uint8Array,
  clientNonce: Uint8Array,
  serverNonce: Uint8Array,
  hello: Uint8Array,
): ReliableSessionKeys {
  return {
    clientToServer: sessionKey(psk, clientNonce, serverNonce, "udp client->server", hello),
    serverToClient: sessionKey(psk, clientNonce, serverNonce, "udp server->client", hello),
  };
}

/**
 * A datagram of `bodyLength` bytes after the header, with room for a tag when
 * `auth` is given, and its header written.
 */
function allocate(
  type: number,
  session: number,
  flags: number,
  bodyLength: number,
  auth: Authenticator | undefined,
): { out: Uint8Array; view: DataView } {
  const out = new Uint8Array(RELIABLE_HEADER_SIZE + bodyLength + (auth ? TAG_SIZE : 0));
  const view = header(out, type, session, auth ? flags | ReliableFlag.TAGGED : flags);
  return { out, view };
}

function header(out: Uint8Array, type: number, session: number, flags: number): DataView {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[0] = RELIABLE_MAGIC;
  out[1] = type;
  out[2] = RELIABLE_VERSION;
  out[3] = flags;
  view.setUint32(4, session >>> 0, false);
  view.setUint32(CRC_OFFSET, 0, false);
  return view;
}

/** CRC-32 of a datagram, skipping its checksum field. */
function checksum(datagram: Uint8Array): number {
  return crc32(datagram.subarray(CRC_OFFSET + 4), crc32(datagram.subarray(0, CRC_OFFSET))) >>> 0;
}

/**
 * Finishes a datagram: its tag (when `auth` is given: the last
 * {@linkcode TAG_SIZE} bytes), then its checksum. Returns the datagram.
 */
function seal(datagram: Uint8Array, auth?: Authenticator): Uint8Array {
  if (auth) {
    const end = datagram.length - TAG_SIZE;
    datagram.set(auth.tag(datagram.subarray(0, CRC_OFFSET), datagram.subarray(12, end)), end);
  }
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
 * {@linkcode DATA_HEADER_SIZE}, and seals it with its checksum. With `auth`,
 * the datagram's last {@linkcode TAG_SIZE} bytes are room for the tag, which
 * is written too.
 */
export function writeDataHeader(
  datagram: Uint8Array,
  session: number,
  seq: number,
  auth?: Authenticator,
): void {
  const view = header(datagram, MsgType.DATA, session, auth ? ReliableFlag.TAGGED : 0);
  view.setUint32(12, seq >>> 0, false);
  seal(datagram, auth);
}

/** Writes `ranges` as a u16 count and (start u32, end u32) pairs at `offset`; returns the offset after. */
function writeRanges(
  view: DataView,
  offset: number,
  ranges: Array<[number, number]>,
  countBytes: 1 | 2,
): number {
  if (countBytes === 1) view.setUint8(offset, ranges.length);
  else view.setUint16(offset, ranges.length, false);
  let at = offset + countBytes;
  for (const [start, end] of ranges) {
    view.setUint32(at, start, false);
    view.setUint32(at + 4, end, false);
    at += 8;
  }
  return at;
}

/**
 * Encodes any reliable message. With `auth` (a keyed session after its
 * handshake) the datagram gets the `TAGGED` flag and ends with its
 * authenticator.
 */
export function encodeReliable(msg: ReliableMsg, auth?: Authenticator): Uint8Array {
  switch (msg.type) {
    case MsgType.HELLO: {
      const name = text(msg.name, MAX_RELIABLE_NAME);
      const nonce = msg.nonce ? msg.nonce.subarray(0, NONCE_SIZE) : undefined;
      if (nonce && nonce.length !== NONCE_SIZE) throw new RangeError("a HELLO nonce is 32 bytes");
      const flags = (msg.resume ? ReliableFlag.RESUME : 0) | (nonce ? ReliableFlag.KEYED : 0);
      const { out, view } = allocate(
        msg.type,
        msg.session,
        flags,
        14 + name.length + (nonce?.length ?? 0),
        auth,
      );
      view.setUint32(12, msg.chunkSize, false);
      u64(view, 16, msg.size);
      view.setUint16(24, name.length, false);
      out.set(name, 26);
      if (nonce) out.set(nonce, 26 + name.length);
      return seal(out, auth);
    }
    case MsgType.ACCEPT: {
      const message = text(msg.message, MAX_RELIABLE_TEXT);
      const ranges = msg.offer?.ranges.slice(0, MAX_RESUME_RANGES) ?? [];
      const offerLength = msg.offer ? 2 + ranges.length * 8 + DIGEST_SIZE : 0;
      const flags = msg.offer ? ReliableFlag.RESUME : 0;
      const { out, view } = allocate(msg.type, msg.session, flags, 8 + message.length + offerLength, auth);
      view.setUint8(12, msg.status);
      view.setUint8(13, 0);
      view.setUint32(14, msg.window, false);
      view.setUint16(18, message.length, false);
      out.set(message, 20);
      if (msg.offer) {
        const at = writeRanges(view, 20 + message.length, ranges, 2);
        out.set(msg.offer.digest.subarray(0, DIGEST_SIZE), at);
      }
      return seal(out, auth);
    }
    case MsgType.DATA: {
      const out = new Uint8Array(DATA_HEADER_SIZE + msg.payload.length + (auth ? TAG_SIZE : 0));
      out.set(msg.payload, DATA_HEADER_SIZE);
      writeDataHeader(out, msg.session, msg.seq, auth);
      return out;
    }
    case MsgType.ACK: {
      const ranges = msg.ranges.slice(0, MAX_SACK_RANGES);
      const { out, view } = allocate(msg.type, msg.session, 0, 17 + ranges.length * 8, auth);
      view.setUint32(12, msg.cumulative, false);
      view.setUint32(16, msg.window, false);
      view.setUint32(20, msg.latest >>> 0, false);
      view.setUint32(24, Math.min(0xffffffff, Math.max(0, Math.round(msg.delayMicros ?? 0))), false);
      writeRanges(view, 28, ranges, 1);
      return seal(out, auth);
    }
    case MsgType.FIN: {
      const { out, view } = allocate(msg.type, msg.session, 0, 12 + DIGEST_SIZE, auth);
      view.setUint32(12, msg.chunks, false);
      u64(view, 16, msg.size);
      out.set(msg.digest.subarray(0, DIGEST_SIZE), 24);
      return seal(out, auth);
    }
    case MsgType.DONE: {
      const message = text(msg.message, MAX_RELIABLE_TEXT);
      const { out, view } = allocate(
        msg.type,
        msg.session,
        0,
        1 + 8 + DIGEST_SIZE + 8 + 2 + message.length,
        auth,
      );
      view.setUint8(12, msg.status);
      u64(view, 13, msg.bytes);
      out.set(msg.digest.subarray(0, DIGEST_SIZE), 21);
      view.setUint32(53, Math.min(msg.duplicates, 0xffffffff) >>> 0, false);
      view.setUint32(57, Math.min(msg.acks, 0xffffffff) >>> 0, false);
      view.setUint16(61, message.length, false);
      out.set(message, 63);
      return seal(out, auth);
    }
    case MsgType.ABORT: {
      const message = text(msg.message, MAX_RELIABLE_TEXT);
      const { out, view } = allocate(msg.type, msg.session, 0, 3 + message.length, auth);
      view.setUint8(12, msg.status);
      view.setUint16(13, message.length, false);
      out.set(message, 15);
      return seal(out, auth);
    }
    case MsgType.CHALLENGE: {
      const { out } = allocate(msg.type, msg.session, 0, NONCE_SIZE + PROOF_SIZE, auth);
      out.set(fixed(msg.nonce, NONCE_SIZE, "CHALLENGE nonce"), 12);
      out.set(fixed(msg.proof, PROOF_SIZE, "CHALLENGE proof"), 12 + NONCE_SIZE);
      return seal(out, auth);
    }
    case MsgType.AUTH: {
      const { out } = allocate(msg.type, msg.session, 0, PROOF_SIZE, auth);
      out.set(fixed(msg.proof, PROOF_SIZE, "AUTH proof"), 12);
      return seal(out, auth);
    }
    case MsgType.RESUME: {
      const { out } = allocate(msg.type, msg.session, 0, 1, auth);
      out[12] = msg.decision;
      return seal(out, auth);
    }
  }
}

/** `bytes`, which must be exactly `size` long. */
function fixed(bytes: Uint8Array, size: number, what: string): Uint8Array {
  if (bytes.length !== size) throw new RangeError(`${what} must be ${size} bytes, got ${bytes.length}`);
  return bytes;
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
 * Reads `count` half-open ranges at `offset`: each non-empty, ascending, not
 * below `floor` and not overlapping the one before.
 */
function readRanges(
  datagram: Uint8Array,
  view: DataView,
  offset: number,
  count: number,
  floor: number,
  what: string,
): Array<[number, number]> {
  need(datagram, offset + count * 8, what);
  const ranges: Array<[number, number]> = [];
  let previous = floor;
  for (let i = 0; i < count; i++) {
    const start = view.getUint32(offset + i * 8, false);
    const end = view.getUint32(offset + 4 + i * 8, false);
    if (start < previous || end <= start) throw new ProtocolError(`${what} ranges out of order`);
    ranges.push([start, end]);
    previous = end;
  }
  return ranges;
}

/**
 * Decodes a reliable datagram. Payloads are views into `datagram`. Throws
 * {@linkcode ProtocolError} for anything malformed, including a version or
 * flags this code does not know. A tagged datagram's authenticator is not
 * part of the message: check it with {@linkcode verifyReliableTag}.
 */
export function decodeReliable(datagram: Uint8Array): ReliableMsg {
  need(datagram, RELIABLE_HEADER_SIZE, "datagram");
  if (datagram[0] !== RELIABLE_MAGIC) throw new ProtocolError("not a reliable datagram");
  const type = datagram[1];
  if (datagram[2] !== RELIABLE_VERSION) {
    throw new ProtocolError(`unsupported reliable version ${datagram[2]}`);
  }
  const flags = datagram[3];
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new ProtocolError(`unknown flags 0x${flags.toString(16)}`);
  const full = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const session = full.getUint32(4, false);
  if (full.getUint32(CRC_OFFSET, false) !== checksum(datagram)) throw new ProtocolError("checksum mismatch");
  let d = datagram;
  if (flags & ReliableFlag.TAGGED) {
    need(datagram, RELIABLE_HEADER_SIZE + TAG_SIZE, "tagged datagram");
    d = datagram.subarray(0, datagram.length - TAG_SIZE);
  }
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  if ((flags & ReliableFlag.RESUME) && type !== MsgType.HELLO && type !== MsgType.ACCEPT) {
    throw new ProtocolError(`flag RESUME on message type ${type}`);
  }
  if ((flags & ReliableFlag.KEYED) && type !== MsgType.HELLO) {
    throw new ProtocolError(`flag KEYED on message type ${type}`);
  }
  switch (type) {
    case MsgType.HELLO:
      return decodeHello(d, view, session, flags);
    case MsgType.ACCEPT:
      return decodeAccept(d, view, session, flags);
    case MsgType.DATA: {
      need(d, DATA_HEADER_SIZE, "DATA");
      return { type, session, seq: view.getUint32(12, false), payload: d.subarray(DATA_HEADER_SIZE) };
    }
    case MsgType.ACK: {
      need(d, 29, "ACK");
      const count = view.getUint8(28);
      if (count > MAX_SACK_RANGES) throw new ProtocolError(`ACK with ${count} ranges`);
      const cumulative = view.getUint32(12, false);
      return {
        type,
        session,
        cumulative,
        window: view.getUint32(16, false),
        latest: view.getUint32(20, false),
        delayMicros: view.getUint32(24, false),
        ranges: readRanges(d, view, 29, count, cumulative, "ACK"),
      };
    }
    case MsgType.FIN: {
      need(d, 24 + DIGEST_SIZE, "FIN");
      return {
        type,
        session,
        chunks: view.getUint32(12, false),
        size: readU64(view, 16, "FIN size"),
        digest: d.slice(24, 24 + DIGEST_SIZE),
      };
    }
    case MsgType.DONE: {
      need(d, 63, "DONE");
      return {
        type,
        session,
        status: view.getUint8(12),
        bytes: readU64(view, 13, "DONE size"),
        digest: d.slice(21, 21 + DIGEST_SIZE),
        duplicates: view.getUint32(53, false),
        acks: view.getUint32(57, false),
        message: readText(d, 63, view.getUint16(61, false), MAX_RELIABLE_TEXT, "DONE message"),
      };
    }
    case MsgType.ABORT: {
      need(d, 15, "ABORT");
      return {
        type,
        session,
        status: view.getUint8(12),
        message: readText(d, 15, view.getUint16(13, false), MAX_RELIABLE_TEXT, "ABORT message"),
      };
    }
    case MsgType.CHALLENGE: {
      need(d, 12 + NONCE_SIZE + PROOF_SIZE, "CHALLENGE");
      return {
        type,
        session,
        nonce: d.slice(12, 12 + NONCE_SIZE),
        proof: d.slice(12 + NONCE_SIZE, 12 + NONCE_SIZE + PROOF_SIZE),
      };
    }
    case MsgType.AUTH: {
      need(d, 12 + PROOF_SIZE, "AUTH");
      return { type, session, proof: d.slice(12, 12 + PROOF_SIZE) };
    }
    case MsgType.RESUME: {
      need(d, 13, "RESUME");
      if (d[12] > ResumeDecision.CHECKING) throw new ProtocolError(`RESUME with decision ${d[12]}`);
      return { type, session, decision: d[12] };
    }
    default:
      throw new ProtocolError(`unknown reliable message type ${type}`);
  }
}

function decodeHello(d: Uint8Array, view: DataView, session: number, flags: number): HelloMsg {
  need(d, 26, "HELLO");
  const length = view.getUint16(24, false);
  if (length === 0) throw new ProtocolError("HELLO has an empty name");
  const msg: HelloMsg = {
    type: MsgType.HELLO,
    session,
    chunkSize: view.getUint32(12, false),
    size: readU64(view, 16, "HELLO size"),
    name: readText(d, 26, length, MAX_RELIABLE_NAME, "HELLO name"),
  };
  if (flags & ReliableFlag.RESUME) msg.resume = true;
  if (flags & ReliableFlag.KEYED) {
    need(d, 26 + length + NONCE_SIZE, "keyed HELLO");
    msg.nonce = d.slice(26 + length, 26 + length + NONCE_SIZE);
  }
  return msg;
}

function decodeAccept(d: Uint8Array, view: DataView, session: number, flags: number): AcceptMsg {
  need(d, 20, "ACCEPT");
  const length = view.getUint16(18, false);
  const msg: AcceptMsg = {
    type: MsgType.ACCEPT,
    session,
    status: view.getUint8(12),
    window: view.getUint32(14, false),
    message: readText(d, 20, length, MAX_RELIABLE_TEXT, "ACCEPT message"),
  };
  if (flags & ReliableFlag.RESUME) {
    const at = 20 + length;
    need(d, at + 2, "ACCEPT offer");
    const count = view.getUint16(at, false);
    if (count > MAX_RESUME_RANGES) throw new ProtocolError(`resume offer with ${count} ranges`);
    const ranges = readRanges(d, view, at + 2, count, 0, "resume offer");
    const digestAt = at + 2 + count * 8;
    need(d, digestAt + DIGEST_SIZE, "ACCEPT offer");
    msg.offer = { ranges, digest: d.slice(digestAt, digestAt + DIGEST_SIZE) };
  }
  return msg;
}
