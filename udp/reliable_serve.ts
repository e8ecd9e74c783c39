/**
 * The reliable UDP server driver: lets HELLOs through its
 * {@linkcode HandshakeGate} (the keyed handshake, when the server has a
 * key), runs one {@linkcode ReliableReceiver} per session, writes chunks at
 * their offsets in a temporary file, hashes the file in order (straight from
 * the datagram when a chunk arrives in order, read back from the file when a
 * gap fills), and names the file only after the SHA-256 matches the sender's.
 *
 * Sessions are keyed by session id and bound to the sender's address:
 * datagrams carrying a live session's id from another address are ignored
 * (and under a key, ones whose authenticator fails are counted as forged and
 * dropped by the receiver). The UDP server (`udp/serve.ts`) owns the socket
 * and hands reliable datagrams to {@linkcode ReliableSessions.handle}.
 *
 * Resume: a transfer is received into a resumable partial named after its
 * name, size and chunk size (and the key), whose sidecar records the chunks
 * durably held (written after an fsync, at most once per `checkpointMs`, and
 * when a session ends unfinished). An unfinished session (sender gone,
 * sender abort, server shutdown) keeps the partial; a sender that asks to
 * resume is offered the held chunks. One live session per partial.
 *
 * @module
 */

import { createHash, createHmac, type Hash } from "node:crypto";
import { randomNonce } from "../shared/auth.ts";
import { describeError } from "../shared/errors.ts";
import { receivedName, ReceivingFile, resumeId, safeBaseName } from "../shared/files.ts";
import { groupDigits, Stopwatch } from "../shared/metrics.ts";
import { MIN_RESUME_BYTES } from "../shared/partials.ts";
import { CLASSIC_UDP_REPLY, ProtocolError, toHex } from "../shared/protocol.ts";
import {
  decodeReliable,
  encodeReliable,
  type HelloMsg,
  MAX_RELIABLE_CHUNK,
  MAX_RESUME_RANGES,
  MAX_TAGGED_RELIABLE_CHUNK,
  MsgType,
  type ReliableMsg,
  type ReliableResumeOffer,
  ReliableStatus,
} from "../shared/protocol_reliable.ts";
import { RangeSet } from "../shared/range_set.ts";
import type { NetAddr } from "../shared/runtime.ts";
import { formatAddr, type ReceivedEvent, type ServerEvent } from "../shared/server_events.ts";
import { type GateVerdict, HandshakeGate } from "./handshake_gate.ts";
import { type ReceiverKeys, ReliableReceiver } from "./reliable_receiver.ts";

/** Limits and tuning for reliable sessions. */
export interface ReliableServeOptions {
  /** Folder for received files. */
  outDir: string;
  /** Replace an existing file of the same name instead of saving as `_1`, `_2`, …. */
  overwrite?: boolean;
  /** Largest file accepted, bytes. */
  maxBytes: number;
  /** Most concurrent sessions (these and `otherActive` together). */
  maxSessions: number;
  /** Transfers of another kind (classic UDP) that count against `maxSessions` too. */
  otherActive?: () => number;
  /** End a silent session after this long, ms. */
  idleTimeoutMs: number;
  /** Receive window, in bytes (turned into chunks per session). */
  windowBytes: number;
  /** Pre-shared key: every session must prove it, and every datagram is authenticated. */
  psk?: Uint8Array;
  /** A session silent this long gives way to a new sender of the same file, ms. Default 3 s. */
  staleMs?: number;
  /** Least time between two records of the chunks held, ms. Default 1 s. */
  checkpointMs?: number;
  /** Server nonces for the keyed handshake. Default: random. */
  nonce?: () => Uint8Array;
}

/** A reliable `received` event: what every `received` says, plus resume and authentication counts. */
export type ReliableReceivedEvent = ReceivedEvent;

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
  /** The resumable partial's id, when this session owns it. */
  resumeId: string | undefined;
  /** Bytes offered for resume, until the sender answers (the partial is untouched until then). */
  offeredBytes: number;
  /** Whether the sender has answered the resume offer (or there was none). */
  decided: boolean;
  resumedBytes: number;
  checkpointAt: number;
  checkpointChunks: number;
  /** Whether an asynchronous checkpoint's flush is in progress. */
  syncing: boolean;
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

/** The sidecar of a resumable partial: the chunk ranges held. */
function sidecarText(receiver: ReliableReceiver): string {
  return JSON.stringify({
    version: SIDECAR_VERSION,
    size: receiver.size,
    chunkSize: receiver.chunkSize,
    ranges: receiver.heldRanges(),
  });
}

/** Where a datagram should go. */
export type Outgoing = { to: NetAddr; bytes: Uint8Array };

const READ_BACK = 1 << 20;
const WRITE_RUN_BYTES = 256 * 1024;
const SIDECAR_VERSION = 1;

/** All reliable sessions of one server socket. */
export class ReliableSessions {
  #options: ReliableServeOptions;
  #emit: (event: ServerEvent) => void;
  #sessions = new Map<number, Session>();
  /** Resumable partials in use, by resume id: one live session each. */
  #active = new Map<string, Session>();
  #gate: HandshakeGate;
  /** Part of every resume id under a key, so partials of other keys (or none) are never offered. */
  #keyTag: string[];
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
    this.#gate = new HandshakeGate({ psk: options.psk, nonce: options.nonce ?? randomNonce });
    this.#keyTag = options.psk
      ? [createHmac("sha256", options.psk).update("imgxfer-v1 udp resume id").digest("hex").slice(0, 32)]
      : [];
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

  /** Keyed handshakes waiting for their AUTH (bounded). */
  get pendingHandshakes(): number {
    return this.#gate.pending;
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
      session.receiver.handle(now, msg, datagram);
      this.#pump(now, session);
      return;
    }
    const peer = formatAddr(from);
    if (msg.type === MsgType.HELLO) this.#admit(now, this.#gate.hello(now, msg, datagram, peer), from);
    else if (msg.type === MsgType.AUTH) this.#admit(now, this.#gate.auth(now, msg, peer), from);
    else if (msg.type === MsgType.FIN || msg.type === MsgType.DATA || msg.type === MsgType.RESUME) {
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

  /** Carries out the gate's verdict on a HELLO or AUTH. */
  #admit(now: number, verdict: GateVerdict, from: NetAddr): void {
    if (verdict.kind === "open") return this.#open(now, verdict.hello, from, verdict.keys);
    if (verdict.kind === "drop") {
      this.#emit({ event: "ignored", transport: "udp", from: formatAddr(from), reason: verdict.reason });
      return;
    }
    this.#outgoing.push({ to: from, bytes: verdict.bytes });
    if (verdict.refusal) {
      this.#emit({
        event: "failed",
        transport: "udp",
        from: formatAddr(from),
        error: verdict.refusal,
        bytes: 0,
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

  /** Why `hello` cannot be served, or `undefined`. */
  #refusal(hello: HelloMsg, keyed: boolean): [number, string] | undefined {
    const { maxBytes, maxSessions } = this.#options;
    const maxChunk = keyed ? MAX_TAGGED_RELIABLE_CHUNK : MAX_RELIABLE_CHUNK;
    if (!safeBaseName(hello.name)) return [ReliableStatus.REFUSED, "REFUSED: unusable file name"];
    if (hello.chunkSize < 1 || hello.chunkSize > maxChunk) {
      return [ReliableStatus.REFUSED, `REFUSED: chunk size ${hello.chunkSize}`];
    }
    if (hello.size > maxBytes) {
      return [
        ReliableStatus.REFUSED,
        `REFUSED: ${hello.size} bytes is more than this server's limit of ${maxBytes}`,
      ];
    }
    if (Math.ceil(hello.size / hello.chunkSize) > 0xfffffff0) {
      return [ReliableStatus.REFUSED, "REFUSED: too many chunks"];
    }
    if (this.refuseNew) return [ReliableStatus.BUSY, "BUSY: the server is shutting down"];
    if (this.activeCount + (this.#options.otherActive?.() ?? 0) >= maxSessions) {
      return [ReliableStatus.BUSY, "BUSY: too many transfers at once, retry later"];
    }
    return undefined;
  }

  #open(now: number, hello: HelloMsg, from: NetAddr, keys: ReceiverKeys | undefined): void {
    const { idleTimeoutMs, windowBytes } = this.#options;
    const refusal = this.#refusal(hello, keys !== undefined);
    if (refusal) return this.#reject(from, hello.session, refusal[0], refusal[1]);
    const name = safeBaseName(hello.name) as string;
    const finalName = receivedName("udp", name);
    const id = resumeId(["udp", name, hello.size, hello.chunkSize, ...this.#keyTag]);
    const owner = this.#active.get(id);
    if (owner && now - owner.receiver.lastHeard >= (this.#options.staleMs ?? 3000)) {
      this.#terminate(now, owner, "superseded by a new transfer of the same file");
    } else if (owner && hello.resume) {
      return this.#reject(
        from,
        hello.session,
        ReliableStatus.BUSY,
        "BUSY: this file is being received from another sender; retry in a few seconds",
      );
    }
    const resumable = !this.#active.has(id);
    let file: ReceivingFile | undefined;
    let offer: ReliableResumeOffer | undefined;
    try {
      // Two senders of the same file at once: the second one gets a plain temporary file.
      file = resumable
        ? new ReceivingFile(this.#options.outDir, finalName, { resumeId: id })
        : new ReceivingFile(
          this.#options.outDir,
          finalName,
        );
      if (resumable) offer = this.#prepare(file, hello);
    } catch (error) {
      file?.keep();
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
      ...(keys ? { keys } : {}),
      ...(offer ? { offer } : {}),
    });
    const offeredBytes = offer ? bytesOfRanges(offer.ranges, hello.chunkSize, hello.size) : 0;
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
      resumeId: resumable ? id : undefined,
      offeredBytes,
      decided: offeredBytes === 0,
      resumedBytes: 0,
      checkpointAt: now,
      checkpointChunks: 0,
      syncing: false,
    };
    this.#sessions.set(hello.session, session);
    if (session.resumeId) this.#active.set(session.resumeId, session);
    this.#emit({ event: "connection", transport: "udp", from: session.key });
    this.#pump(now, session);
  }

  /**
   * Readies a resumable partial: for a sender that asks to resume, the held
   * chunks its sidecar records (at most {@linkcode MAX_RESUME_RANGES}
   * ranges) and their SHA-256, read back from the partial; otherwise (or
   * when nothing usable is held) the partial starts from empty.
   */
  #prepare(file: ReceivingFile, hello: HelloMsg): ReliableResumeOffer | undefined {
    const ranges = hello.resume ? this.#heldInSidecar(file, hello).slice(0, MAX_RESUME_RANGES) : [];
    if (ranges.length === 0) {
      resetPartial(file, hello);
      return hello.resume ? { ranges, digest: new Uint8Array(createHash("sha256").digest()) } : undefined;
    }
    const hash = createHash("sha256");
    for (const [start, end] of ranges) {
      let position = start * hello.chunkSize;
      const stop = Math.min(hello.size, end * hello.chunkSize);
      while (position < stop) {
        const view = this.#readBack.subarray(0, Math.min(READ_BACK, stop - position));
        const n = file.readAt(view, position);
        if (n === 0) throw new Error("the partial file is shorter than its record");
        hash.update(view.subarray(0, n));
        position += n;
      }
    }
    return { ranges, digest: new Uint8Array(hash.digest()) };
  }

  /** The chunk ranges a partial's sidecar says are held, if the record is sound and the file long enough. */
  #heldInSidecar(file: ReceivingFile, hello: HelloMsg): Array<[number, number]> {
    const text = file.readSidecar();
    if (text === undefined) return [];
    const held = new RangeSet();
    try {
      const record = JSON.parse(text);
      if (
        record?.version !== SIDECAR_VERSION || record.size !== hello.size ||
        record.chunkSize !== hello.chunkSize || !Array.isArray(record.ranges)
      ) return [];
      const chunks = Math.ceil(hello.size / hello.chunkSize);
      for (const range of record.ranges) {
        const [start, end] = Array.isArray(range) ? range : [];
        if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start) {
          return [];
        }
        if (end > chunks || Math.min(hello.size, end * hello.chunkSize) > file.existingBytes) return [];
        held.addRange(start, end);
      }
    } catch {
      return [];
    }
    return held.ranges().map(([a, b]): [number, number] => [a, b + 1]);
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
          case "resume":
            this.#onResume(session, e.keep);
            break;
          case "fin":
            this.#verify(now, session, e.digest);
            break;
          case "expired":
            this.#fail(session, `no datagram for ${this.#options.idleTimeoutMs / 1000} s`, true);
            break;
          case "aborted":
            this.#fail(session, `the sender aborted: ${e.message}`, true);
            break;
          case "closed":
            break;
        }
      }
      this.#catchUpHash(session);
      if (!session.finished) this.#maybeCheckpoint(now, session);
      if (!session.finished && now - session.lastProgress >= 100) {
        session.lastProgress = now;
        const chunks = receiver.stats.chunks + receiver.stats.resumedChunks;
        const bytes = Math.min(receiver.size, chunks * receiver.chunkSize);
        this.#emit({ event: "progress", transport: "udp", from: session.key, bytes, total: receiver.size });
      }
    } catch (error) {
      // Disk full, file vanished…: tell the sender, keep nothing.
      const message = `ERROR: server cannot store the file: ${describeError(error).message}`;
      receiver.fail(ReliableStatus.SERVER_ERROR, message);
      this.#fail(session, message);
    }
    this.#collect(now, session);
    if (receiver.closed) {
      this.#sessions.delete(receiver.session);
      if (!session.finished) this.#fail(session, "session closed", true);
    }
  }

  /** Queues what a session's receiver wants to send. */
  #collect(now: number, session: Session): void {
    const { receiver } = session;
    for (let bytes = receiver.pollTransmit(now); bytes; bytes = receiver.pollTransmit(now)) {
      this.#outgoing.push({ to: session.from, bytes });
    }
  }

  /** The sender answered the resume offer: keep the held chunks, or start the partial from empty. */
  #onResume(session: Session, keep: boolean): void {
    session.decided = true;
    if (keep) {
      session.resumedBytes = session.offeredBytes;
    } else {
      const { size, chunkSize } = session.receiver;
      resetPartial(session.file, { size, chunkSize });
    }
  }

  /**
   * Records the chunks held in the sidecar, after flushing them to the disk,
   * at most once per `checkpointMs` and only when new chunks arrived.
   */
  #maybeCheckpoint(now: number, session: Session): void {
    if (!session.resumeId || !session.decided) return;
    if (session.receiver.stats.chunks === session.checkpointChunks) return;
    if (now - session.checkpointAt < (this.#options.checkpointMs ?? 1000)) return;
    if (session.syncing) return;
    // The chunks held now are on the disk once the asynchronous flush ends;
    // only then may the sidecar claim them (a session that ended meanwhile
    // wrote its own, later sidecar, or none).
    const { receiver, file, run } = session;
    run.flush();
    const sidecar = sidecarText(receiver);
    session.checkpointAt = now;
    session.checkpointChunks = receiver.stats.chunks;
    session.syncing = true;
    file.syncAsync()
      .then(() => {
        if (!session.finished) file.writeSidecar(sidecar);
      })
      .catch(() => {/* the next checkpoint (or the final one) tries again */})
      .finally(() => session.syncing = false);
  }

  #checkpoint(now: number, session: Session): void {
    const { receiver, file, run } = session;
    run.flush();
    file.sync();
    file.writeSidecar(sidecarText(receiver));
    session.checkpointAt = now;
    session.checkpointChunks = receiver.stats.chunks;
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
    const path = session.file.commit(session.name, this.#options.overwrite);
    receiver.complete(now, ReliableStatus.OK, digest, CLASSIC_UDP_REPLY);
    session.finished = true;
    this.#release(session);
    const received: ReliableReceivedEvent = {
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
      resumedBytes: session.resumedBytes,
      authenticated: this.#options.psk ? true : undefined,
      forged: this.#options.psk ? receiver.stats.forged : undefined,
    };
    this.#emit(received);
    this.#emit({ event: "reply", transport: "udp", to: session.key, text: CLASSIC_UDP_REPLY });
    this.#onFinished();
  }

  /**
   * Ends an unfinished session. With `keep`, a resumable partial holding
   * bytes stays (recorded in its sidecar) for a later `--resume`; otherwise,
   * or when it holds nothing, it is removed. Returns the bytes kept.
   */
  #fail(session: Session, error: string, keep = false): number {
    if (session.finished) return 0;
    session.finished = true;
    let kept = 0;
    if (keep && session.resumeId) {
      try {
        if (session.decided) {
          this.#checkpoint(session.checkpointAt, session);
          kept = session.receiver.heldBytes;
        } else {
          kept = session.offeredBytes; // the sender never answered: the partial is as it was
        }
      } catch {
        kept = 0;
      }
    }
    const saved = kept >= MIN_RESUME_BYTES && session.file.keep();
    if (!saved) session.file.discard();
    this.#release(session);
    const forged = session.receiver.stats.forged;
    const what = saved
      ? `kept ${groupDigits(kept)} bytes in '${session.file.tempPath}' for --resume`
      : "nothing saved";
    this.#emit({
      event: "failed",
      transport: "udp",
      from: session.key,
      error: `${error}; ${what}${forged > 0 ? `; dropped ${forged} forged datagrams` : ""}`,
      bytes: saved ? kept : 0,
    });
    this.#onFinished();
    return saved ? kept : 0;
  }

  /** Gives up a session's claim on its partial. */
  #release(session: Session): void {
    if (session.resumeId && this.#active.get(session.resumeId) === session) {
      this.#active.delete(session.resumeId);
    }
  }

  /** Ends a live session from the server's side, keeping its partial, and tells its sender why. */
  #terminate(now: number, session: Session, reason: string): void {
    const kept = this.#fail(session, reason, true);
    const message = `ABORTED: ${reason}` +
      (kept > 0 ? `; the server keeps ${kept} bytes: send again with --resume` : "");
    session.receiver.fail(ReliableStatus.SERVER_ERROR, message);
    this.#collect(now, session);
    this.#sessions.delete(session.receiver.session);
  }

  /** The earliest time any session (or a waiting handshake) needs {@linkcode onTimer}. */
  nextTimeout(): number {
    let t = this.#gate.nextExpiry;
    for (const session of this.#sessions.values()) {
      const s = session.receiver.pollTimeout();
      if (s !== undefined && s < t) t = s;
    }
    return t;
  }

  /** Runs due timers of every session, and reports key handshakes that were never completed. */
  onTimer(now: number): void {
    for (const session of [...this.#sessions.values()]) {
      session.receiver.handleTimeout(now);
      this.#pump(now, session);
    }
    const { peers, total } = this.#gate.takeUnanswered(now);
    if (total > 0) {
      const more = total > peers.length ? ` and ${total - peers.length} more` : "";
      this.#emit({
        event: "failed",
        transport: "udp",
        from: peers.join(", ") + more,
        error:
          `${total} key handshake(s) not completed: no AUTH after our CHALLENGE (a client with another key ` +
          "stops there, or it went away); nothing saved",
        bytes: 0,
      });
    }
  }

  /**
   * Ends every session (server shutdown): unfinished ones keep their
   * partials for a resume and their senders are told (queued in
   * {@linkcode takeOutgoing}); lingering ones are forgotten.
   */
  closeAll(now = 0): void {
    for (const session of [...this.#sessions.values()]) {
      if (!session.finished) this.#terminate(now, session, "the server is shutting down");
    }
    this.#sessions.clear();
  }
}

/** Bytes of chunk ranges in a file of `size` bytes. */
function bytesOfRanges(ranges: Array<[number, number]>, chunkSize: number, size: number): number {
  let bytes = 0;
  for (const [a, b] of ranges) bytes += Math.min(size, b * chunkSize) - a * chunkSize;
  return bytes;
}

/** Empties a resumable partial: first its record (so a crash never claims bytes it lost), then the file. */
function resetPartial(file: ReceivingFile, shape: { size: number; chunkSize: number }): void {
  if (file.existingBytes === 0 && file.readSidecar() === undefined) return;
  file.writeSidecar(JSON.stringify({ version: SIDECAR_VERSION, ...shape, ranges: [] }));
  file.truncate(0);
}
