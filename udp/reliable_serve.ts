/**
 * The reliable UDP server driver: accepts HELLOs, runs one
 * {@linkcode ReliableReceiver} per session, writes chunks at their offsets in
 * a temporary file, hashes the file in order (straight from the datagram when
 * a chunk arrives in order, read back from the file when a gap fills), and
 * names the file only after the SHA-256 matches the sender's.
 *
 * Sessions are keyed by session id and bound to the sender's address:
 * datagrams carrying a live session's id from another address are ignored.
 * The UDP server (`udp/serve.ts`) owns the socket and hands reliable
 * datagrams to {@linkcode ReliableSessions.handle}.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { describeError } from "../shared/errors.ts";
import { receivedName, ReceivingFile, safeBaseName } from "../shared/files.ts";
import { Stopwatch } from "../shared/metrics.ts";
import { CLASSIC_UDP_REPLY, ProtocolError, toHex } from "../shared/protocol.ts";
import {
  decodeReliable,
  encodeReliable,
  MAX_RELIABLE_CHUNK,
  MsgType,
  type ReliableMsg,
  ReliableStatus,
} from "../shared/protocol_reliable.ts";
import type { NetAddr } from "../shared/runtime.ts";
import { formatAddr, type ServerEvent } from "../shared/server_events.ts";
import { ReliableReceiver } from "./reliable_receiver.ts";

/** Limits and tuning for reliable sessions. */
export interface ReliableServeOptions {
  /** Folder for received files. */
  outDir: string;
  /** Largest file accepted, bytes. */
  maxBytes: number;
  /** Most concurrent sessions. */
  maxSessions: number;
  /** End a silent session after this long, ms. */
  idleTimeoutMs: number;
  /** Receive window, in bytes (turned into chunks per session). */
  windowBytes: number;
}

interface Session {
  key: string;
  from: NetAddr;
  receiver: ReliableReceiver;
  file: ReceivingFile;
  /** In-order chunks not yet written: one write per run instead of one per chunk. */
  run: WriteRun;
  name: string;
  hash: Hash;
  hashed: number;
  watch: Stopwatch;
  finished: boolean;
  lastProgress: number;
}

/**
 * Coalesces chunks that arrive at consecutive offsets into one buffer and
 * writes it with one system call when the run breaks or the buffer fills.
 */
class WriteRun {
  #buffer: Uint8Array;
  #start = 0;
  #length = 0;
  #file: ReceivingFile;

  constructor(file: ReceivingFile, bytes: number) {
    this.#file = file;
    this.#buffer = new Uint8Array(bytes);
  }

  write(payload: Uint8Array, offset: number): void {
    if (
      this.#length > 0 && offset === this.#start + this.#length &&
      this.#length + payload.length <= this.#buffer.length
    ) {
      this.#buffer.set(payload, this.#length);
      this.#length += payload.length;
      return;
    }
    this.flush();
    if (payload.length > this.#buffer.length) {
      this.#file.writeAt(payload, offset);
      return;
    }
    this.#buffer.set(payload, 0);
    this.#start = offset;
    this.#length = payload.length;
  }

  flush(): void {
    if (this.#length === 0) return;
    this.#file.writeAt(this.#buffer.subarray(0, this.#length), this.#start);
    this.#length = 0;
  }
}

/** Where a datagram should go. */
export type Outgoing = { to: NetAddr; bytes: Uint8Array };

const READ_BACK = 1 << 20;
const WRITE_RUN_BYTES = 256 * 1024;

/** All reliable sessions of one server socket. */
export class ReliableSessions {
  #options: ReliableServeOptions;
  #emit: (event: ServerEvent) => void;
  #sessions = new Map<number, Session>();
  #outgoing: Outgoing[] = [];
  #readBack = new Uint8Array(READ_BACK);
  #onFinished: () => void;
  /** When true (server shutting down), new HELLOs are refused as busy. */
  refuseNew = false;

  /** Creates the session table. `onFinished` is called whenever a session ends (for `--once`). */
  constructor(options: ReliableServeOptions, emit: (event: ServerEvent) => void, onFinished: () => void) {
    this.#options = options;
    this.#emit = emit;
    this.#onFinished = onFinished;
  }

  /** Number of live sessions (lingering ones included). */
  get size(): number {
    return this.#sessions.size;
  }

  /** Sessions still transferring (not finished, not lingering). */
  get activeCount(): number {
    let n = 0;
    for (const session of this.#sessions.values()) if (!session.finished) n++;
    return n;
  }

  /** Takes the datagrams to send now. */
  takeOutgoing(): Outgoing[] {
    return this.#outgoing.splice(0);
  }

  /** Handles one reliable datagram from `from` at `now`. */
  handle(now: number, datagram: Uint8Array, from: NetAddr): void {
    let msg: ReliableMsg;
    try {
      msg = decodeReliable(datagram);
    } catch (error) {
      if (error instanceof ProtocolError) {
        this.#emit({ event: "ignored", transport: "udp", from: formatAddr(from), reason: error.message });
        return;
      }
      throw error;
    }
    const session = this.#sessions.get(msg.session);
    if (session) {
      if (session.from.port !== from.port || session.from.hostname !== from.hostname) {
        this.#emit({
          event: "ignored",
          transport: "udp",
          from: formatAddr(from),
          reason: "session of another address",
        });
        return;
      }
      session.receiver.handle(now, msg);
      this.#pump(now, session);
      return;
    }
    if (msg.type === MsgType.HELLO) this.#open(now, msg, from);
    else if (msg.type === MsgType.FIN || msg.type === MsgType.DATA) {
      // A session we do not know (expired, or never accepted): say so, so the sender stops at once.
      this.#outgoing.push({
        to: from,
        bytes: encodeReliable({
          type: MsgType.ABORT,
          session: msg.session,
          status: ReliableStatus.REFUSED,
          message: "unknown session (it expired or was never accepted)",
        }),
      });
    }
  }

  #reject(from: NetAddr, session: number, status: number, message: string): void {
    this.#outgoing.push({
      to: from,
      bytes: encodeReliable({ type: MsgType.ACCEPT, session, status, window: 0, message }),
    });
    this.#emit({ event: "failed", transport: "udp", from: formatAddr(from), error: message, bytes: 0 });
  }

  #open(now: number, hello: ReliableMsg & { type: typeof MsgType.HELLO }, from: NetAddr): void {
    const { outDir, maxBytes, maxSessions, idleTimeoutMs, windowBytes } = this.#options;
    const name = safeBaseName(hello.name);
    if (!name) {
      return this.#reject(from, hello.session, ReliableStatus.REFUSED, `REFUSED: unusable file name`);
    }
    if (hello.chunkSize < 1 || hello.chunkSize > MAX_RELIABLE_CHUNK) {
      return this.#reject(
        from,
        hello.session,
        ReliableStatus.REFUSED,
        `REFUSED: chunk size ${hello.chunkSize}`,
      );
    }
    if (hello.size > maxBytes) {
      return this.#reject(
        from,
        hello.session,
        ReliableStatus.REFUSED,
        `REFUSED: ${hello.size} bytes is more than this server's limit of ${maxBytes}`,
      );
    }
    if (Math.ceil(hello.size / hello.chunkSize) > 0xfffffff0) {
      return this.#reject(from, hello.session, ReliableStatus.REFUSED, "REFUSED: too many chunks");
    }
    if (this.refuseNew) {
      return this.#reject(from, hello.session, ReliableStatus.BUSY, "BUSY: the server is shutting down");
    }
    if (this.activeCount >= maxSessions) {
      return this.#reject(
        from,
        hello.session,
        ReliableStatus.BUSY,
        "BUSY: too many transfers at once, retry later",
      );
    }
    const finalName = receivedName("udp", name);
    let file: ReceivingFile;
    try {
      file = new ReceivingFile(outDir, finalName);
    } catch (error) {
      return this.#reject(
        from,
        hello.session,
        ReliableStatus.SERVER_ERROR,
        `ERROR: ${describeError(error).message}`,
      );
    }
    const receiver = new ReliableReceiver(now, {
      session: hello.session,
      chunkSize: hello.chunkSize,
      size: hello.size,
      window: Math.max(16, Math.floor(windowBytes / hello.chunkSize)),
      idleTimeoutMs,
    });
    const session: Session = {
      key: formatAddr(from),
      from,
      receiver,
      file,
      run: new WriteRun(file, WRITE_RUN_BYTES),
      name: finalName,
      hash: createHash("sha256"),
      hashed: 0,
      watch: new Stopwatch(),
      finished: false,
      lastProgress: now,
    };
    this.#sessions.set(hello.session, session);
    this.#emit({ event: "connection", transport: "udp", from: session.key });
    this.#pump(now, session);
  }

  /** Runs a session's events and collects what it wants to send. */
  #pump(now: number, session: Session): void {
    const { receiver } = session;
    try {
      for (let e = receiver.pollEvent(); e; e = receiver.pollEvent()) {
        switch (e.type) {
          case "data":
            session.run.write(e.payload, e.offset);
            if (e.offset === session.hashed) {
              session.hash.update(e.payload);
              session.hashed += e.payload.length;
            }
            break;
          case "fin":
            this.#verify(now, session, e.digest);
            break;
          case "expired":
            this.#fail(session, `no datagram for ${this.#options.idleTimeoutMs / 1000} s`);
            break;
          case "aborted":
            this.#fail(session, `the sender aborted: ${e.message}`);
            break;
          case "closed":
            break;
        }
      }
      this.#catchUpHash(session);
      if (!session.finished && now - session.lastProgress >= 100) {
        session.lastProgress = now;
        const bytes = Math.min(receiver.size, receiver.stats.chunks * receiver.chunkSize);
        this.#emit({ event: "progress", transport: "udp", from: session.key, bytes, total: receiver.size });
      }
    } catch (error) {
      // Disk full, file vanished…: tell the sender, keep nothing.
      const message = `ERROR: server cannot store the file: ${describeError(error).message}`;
      receiver.fail(ReliableStatus.SERVER_ERROR, message);
      this.#fail(session, message);
    }
    for (let bytes = receiver.pollTransmit(now); bytes; bytes = receiver.pollTransmit(now)) {
      this.#outgoing.push({ to: session.from, bytes });
    }
    if (receiver.closed) {
      this.#sessions.delete(receiver.session);
      if (!session.finished) this.#fail(session, "session closed");
    }
  }

  /** Hashes the in-order prefix that arrived out of order, reading it back from the file. */
  #catchUpHash(session: Session): void {
    const target = session.receiver.contiguousBytes;
    if (session.hashed < target) session.run.flush();
    while (session.hashed < target) {
      const view = this.#readBack.subarray(0, Math.min(READ_BACK, target - session.hashed));
      const n = session.file.readAt(view, session.hashed);
      if (n === 0) throw new Error("short read while verifying");
      session.hash.update(view.subarray(0, n));
      session.hashed += n;
    }
  }

  #verify(now: number, session: Session, expected: Uint8Array): void {
    session.run.flush();
    this.#catchUpHash(session);
    const digest = new Uint8Array(session.hash.digest());
    const { receiver } = session;
    if (toHex(digest) !== toHex(expected)) {
      const message = `MISMATCH: SHA-256 of the received bytes is ${toHex(digest)}, the sender's is ${
        toHex(expected)
      }`;
      receiver.complete(now, ReliableStatus.DIGEST_MISMATCH, digest, message);
      this.#fail(session, message);
      return;
    }
    const path = session.file.commit(session.name);
    receiver.complete(now, ReliableStatus.OK, digest, CLASSIC_UDP_REPLY);
    session.finished = true;
    this.#emit({
      event: "received",
      transport: "udp",
      mode: "reliable",
      path,
      bytes: receiver.size,
      sha256: toHex(digest),
      complete: true,
      verified: true,
      from: session.key,
      packets: { received: receiver.chunks, expected: receiver.chunks, missing: "" },
      duplicates: receiver.stats.duplicates,
      seconds: session.watch.elapsed(),
    });
    this.#emit({ event: "reply", transport: "udp", to: session.key, text: CLASSIC_UDP_REPLY });
    this.#onFinished();
  }

  #fail(session: Session, error: string): void {
    if (session.finished) return;
    session.finished = true;
    session.file.discard();
    this.#emit({
      event: "failed",
      transport: "udp",
      from: session.key,
      error: `${error}; nothing saved`,
      bytes: 0,
    });
    this.#onFinished();
  }

  /** The earliest time any session needs {@linkcode onTimer}. */
  nextTimeout(): number {
    let t = Infinity;
    for (const session of this.#sessions.values()) {
      const s = session.receiver.pollTimeout();
      if (s !== undefined && s < t) t = s;
    }
    return t;
  }

  /** Runs due timers of every session. */
  onTimer(now: number): void {
    for (const session of [...this.#sessions.values()]) {
      session.receiver.handleTimeout(now);
      this.#pump(now, session);
    }
  }

  /** Ends every session (server shutdown): temporary files are removed. */
  closeAll(): void {
    for (const session of this.#sessions.values()) {
      if (!session.finished) {
        session.finished = true;
        session.file.discard();
      }
    }
    this.#sessions.clear();
  }
}
