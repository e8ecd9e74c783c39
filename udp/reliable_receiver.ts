/**
 * The receiving side of reliable UDP for one session, as a sans-I/O state
 * machine: no sockets, clocks or files. The driver creates it from an
 * accepted HELLO, feeds it decoded datagrams and time, writes the chunks it
 * hands out ({@linkcode ReceiverEvent} `data`) at their offsets, verifies
 * the digest when told the data is complete (`fin`), and reports the result
 * with {@linkcode ReliableReceiver.complete}.
 *
 * ACK policy: an ACK after every `ackEvery` new chunks; at once when a chunk
 * opens a new hole (the first sign of a loss); after every 4 datagrams while
 * chunks arrive out of order or twice (the sender's view is stale); and
 * otherwise within `ackDelayMs`. Every ACK carries the cumulative point, up to 64 SACK
 * ranges above it, and the window (chunks beyond the cumulative point the
 * sender may have outstanding), which bounds the receiver's work per session.
 *
 * Under a key ({@linkcode ReceiverOptions.keys}, from a
 * {@linkcode HandshakeGate}) every datagram must carry a valid authenticator:
 * the others are counted as `forged` and change nothing (not even the idle
 * timer), and everything the receiver sends is tagged.
 *
 * Resume ({@linkcode ReceiverOptions.offer}): the ACCEPT offers the chunks
 * held from an earlier attempt; the receiver takes no DATA until the sender's
 * RESUME says to keep them (they then count as received) or to restart from
 * empty (a `resume` event tells the driver which); a RESUME saying the
 * sender is still checking only keeps the session alive.
 *
 * The server's front door, which answers HELLOs and runs the keyed
 * handshake before a receiver exists, is `handshake_gate.ts`.
 *
 * All times are milliseconds.
 *
 * @module
 */

import { Authenticator, constantTimeEqual } from "../shared/auth.ts";
import {
  type AckMsg,
  encodeReliable,
  MAX_SACK_RANGES,
  MsgType,
  NO_CHUNK,
  type ReliableMsg,
  type ReliableResumeOffer,
  ReliableStatus,
  ResumeDecision,
  verifyReliableTag,
} from "../shared/protocol_reliable.ts";
import { RangeSet } from "../shared/range_set.ts";

/** A keyed session's secrets, from the server's handshake gate (`handshake_gate.ts`). */
export interface ReceiverKeys {
  /** Checks what the sender sends. */
  receive: Uint8Array;
  /** Tags what the receiver sends. */
  send: Uint8Array;
  /** The sender's AUTH proof: a repeated AUTH (our ACCEPT was lost) gets the ACCEPT again. */
  authProof: Uint8Array;
}

/** Options for a {@linkcode ReliableReceiver}. */
export interface ReceiverOptions {
  /** Session id from the HELLO. */
  session: number;
  /** Payload bytes per chunk from the HELLO. */
  chunkSize: number;
  /** File size from the HELLO. */
  size: number;
  /** Chunks the sender may have beyond the cumulative point. Default 4096. */
  window?: number;
  /** ACK after this many new chunks. Default 16. */
  ackEvery?: number;
  /** Longest delay before acknowledging a chunk, ms. Default 2. */
  ackDelayMs?: number;
  /** End the session after this long without a datagram, ms. Default 10 s. */
  idleTimeoutMs?: number;
  /** Keep answering FINs with the DONE this long after completion, ms. Default 30 s. */
  lingerMs?: number;
  /** The keyed handshake's secrets: authenticate every datagram either way. */
  keys?: ReceiverKeys;
  /** The sender asked to resume: the chunks held from an earlier attempt (maybe none) and their digest. */
  offer?: ReliableResumeOffer;
}

/** Something for the driver to do or know. */
export type ReceiverEvent =
  | { type: "data"; seq: number; offset: number; payload: Uint8Array }
  | { type: "fin"; digest: Uint8Array }
  | { type: "resume"; keep: boolean }
  | { type: "aborted"; message: string }
  | { type: "expired" }
  | { type: "closed" };

/** Counters for the summary. */
export interface ReceiverStats {
  /** New chunks received. */
  chunks: number;
  /** Duplicate chunks received (retransmissions of chunks we had). */
  duplicates: number;
  /** ACKs sent. */
  acksSent: number;
  /** Datagrams ignored: wrong size, outside the window or the file. */
  ignored: number;
  /** Datagrams of a keyed session dropped because their authenticator did not verify. */
  forged: number;
  /** Chunks kept from an earlier attempt (resume). */
  resumedChunks: number;
}

/** The receiver's phases (`deciding`: waiting for the sender's answer to a resume offer). */
export type ReceiverPhase = "deciding" | "receiving" | "verifying" | "done" | "closed";

/** While there are holes, ACK after this many datagrams (instead of every `ackEvery`). */
const URGENT_ACK_EVERY = 4;

/** Sans-I/O reliable UDP receiver for one session. */
export class ReliableReceiver {
  /** Session id. */
  readonly session: number;
  /** Payload bytes per chunk. */
  readonly chunkSize: number;
  /** File size in bytes. */
  readonly size: number;
  /** Number of chunks. */
  readonly chunks: number;
  /** Chunks the sender may have beyond the cumulative point. */
  readonly window: number;
  /** Counters for the summary. */
  readonly stats: ReceiverStats = {
    chunks: 0,
    duplicates: 0,
    acksSent: 0,
    ignored: 0,
    forged: 0,
    resumedChunks: 0,
  };

  #phase: ReceiverPhase = "receiving";
  #sendAuth: Authenticator | undefined;
  #receiveAuth: Authenticator | undefined;
  #authProof: Uint8Array | undefined;
  #offer: ReliableResumeOffer | undefined;
  #received = new RangeSet();
  #cum = 0;
  #events: ReceiverEvent[] = [];
  #control: Uint8Array[] = [];
  #ackEvery: number;
  #ackDelay: number;
  #idleTimeout: number;
  #linger: number;
  #unacked = 0;
  #ackNow = false;
  #ackDue = Infinity;
  #lastHeard: number;
  #lingerUntil = Infinity;
  #finDigest: Uint8Array | undefined;
  #done: Uint8Array | undefined;
  #latest = NO_CHUNK;
  #latestAt = 0;

  /** Creates the receiver at `now`, with an ACCEPT queued. */
  constructor(now: number, options: ReceiverOptions) {
    this.session = options.session >>> 0;
    this.chunkSize = options.chunkSize;
    this.size = options.size;
    this.chunks = Math.ceil(options.size / options.chunkSize);
    this.window = options.window ?? 4096;
    this.#ackEvery = options.ackEvery ?? 16;
    this.#ackDelay = options.ackDelayMs ?? 2;
    this.#idleTimeout = options.idleTimeoutMs ?? 10_000;
    this.#linger = options.lingerMs ?? 30_000;
    this.#lastHeard = now;
    if (options.keys) {
      this.#sendAuth = new Authenticator(options.keys.send);
      this.#receiveAuth = new Authenticator(options.keys.receive);
      this.#authProof = options.keys.authProof;
    }
    this.#offer = options.offer;
    if (this.#offer && this.#offer.ranges.length > 0) this.#phase = "deciding";
    this.#queueAccept();
  }

  /** When the last authentic datagram arrived. */
  get lastHeard(): number {
    return this.#lastHeard;
  }

  /** The chunks held (received, or kept from an earlier attempt), as `[start, end)` ranges, ascending. */
  heldRanges(): Array<[number, number]> {
    return this.#received.ranges().map(([a, b]): [number, number] => [a, b + 1]);
  }

  /** Bytes of the held chunks. */
  get heldBytes(): number {
    let bytes = 0;
    for (const [a, b] of this.heldRanges()) {
      bytes += Math.min(this.size, b * this.chunkSize) - a * this.chunkSize;
    }
    return bytes;
  }

  /** `receiving`, `verifying`, `done` or `closed`. */
  get phase(): ReceiverPhase {
    return this.#phase;
  }

  /** Every chunk below this index has arrived. */
  get cumulative(): number {
    return this.#cum;
  }

  /** Bytes covered by the cumulative point. */
  get contiguousBytes(): number {
    return Math.min(this.size, this.#cum * this.chunkSize);
  }

  /** Whether the session is over and can be forgotten. */
  get closed(): boolean {
    return this.#phase === "closed";
  }

  #queueAccept(): void {
    this.#control.push(this.#encode({
      type: MsgType.ACCEPT,
      session: this.session,
      status: ReliableStatus.OK,
      window: this.window,
      message: "",
      ...(this.#offer ? { offer: this.#offer } : {}),
    }));
  }

  #encode(msg: ReliableMsg): Uint8Array {
    return encodeReliable(msg, this.#sendAuth);
  }

  /** The next event, if any. */
  pollEvent(): ReceiverEvent | undefined {
    return this.#events.shift();
  }

  #expectedLength(seq: number): number {
    return seq === this.chunks - 1 ? this.size - seq * this.chunkSize : this.chunkSize;
  }

  /**
   * Processes one decoded message of this session. A keyed session needs the
   * raw `datagram` too, to check its authenticator.
   */
  handle(now: number, msg: ReliableMsg, datagram?: Uint8Array): void {
    if (msg.session !== this.session || this.#phase === "closed") return;
    if (this.#receiveAuth && !this.#authentic(msg, datagram)) return;
    this.#lastHeard = now;
    const open = this.#phase === "receiving" || this.#phase === "deciding";
    switch (msg.type) {
      case MsgType.HELLO:
        // Our ACCEPT was lost: repeat it.
        if (open && msg.size === this.size && msg.chunkSize === this.chunkSize) this.#queueAccept();
        return;
      case MsgType.RESUME:
        if (msg.decision !== ResumeDecision.CHECKING) this.#onResume(msg.decision === ResumeDecision.KEEP);
        return;
      case MsgType.DATA:
        this.#onData(now, msg.seq, msg.payload);
        return;
      case MsgType.FIN:
        if (msg.chunks !== this.chunks || msg.size !== this.size) {
          this.#abort(ReliableStatus.REFUSED, "FIN does not match the HELLO");
          return;
        }
        if (this.#phase === "done" && this.#done) {
          this.#control.push(this.#done); // our DONE was lost
        } else if (this.#phase === "receiving") {
          this.#finDigest = msg.digest;
          if (this.#cum >= this.chunks) this.#startVerify();
          else this.#ackNow = true;
        }
        return;
      case MsgType.ABORT:
        this.#phase = "closed";
        this.#events.push({ type: "aborted", message: msg.message });
        return;
      default:
        this.stats.ignored++;
    }
  }

  /**
   * Under a key: handshake repeats are answered (a repeated AUTH with the
   * right proof gets the ACCEPT again) but do not count as activity; any
   * other message must carry a valid tag, else it is counted as forged.
   */
  #authentic(msg: ReliableMsg, datagram: Uint8Array | undefined): boolean {
    if (msg.type === MsgType.AUTH) {
      const open = this.#phase === "receiving" || this.#phase === "deciding";
      if (open && this.#authProof && constantTimeEqual(msg.proof, this.#authProof)) this.#queueAccept();
      else this.stats.ignored++;
      return false;
    }
    if (msg.type === MsgType.HELLO) {
      this.stats.ignored++; // a late copy of the keyed HELLO
      return false;
    }
    if (datagram && verifyReliableTag(datagram, this.#receiveAuth as Authenticator)) return true;
    this.stats.forged++;
    return false;
  }

  #onResume(keep: boolean): void {
    if (this.#phase === "receiving" && this.#offer) {
      this.#ackNow = true; // a repeat: our ACK was lost
      return;
    }
    if (this.#phase !== "deciding" || !this.#offer) return;
    if (keep) {
      for (const [start, end] of this.#offer.ranges) {
        this.#received.addRange(start, Math.min(end, this.chunks));
      }
      this.#cum = this.#received.prefixEnd();
      this.stats.resumedChunks = this.#received.size;
    }
    this.#phase = "receiving";
    this.#ackNow = true;
    this.#events.push({ type: "resume", keep });
    if (this.#cum >= this.chunks && this.#finDigest) this.#startVerify();
  }

  #onData(now: number, seq: number, payload: Uint8Array): void {
    if (this.#phase === "deciding") {
      this.stats.ignored++; // the sender must answer the offer first
      return;
    }
    if (this.#phase !== "receiving") {
      this.stats.duplicates++;
      return;
    }
    if (seq >= this.chunks || payload.length !== this.#expectedLength(seq)) {
      this.stats.ignored++;
      return;
    }
    this.#latest = seq;
    this.#latestAt = now;
    if (seq >= this.#cum + this.window) {
      this.stats.ignored++; // beyond the window we granted
      this.#latest = NO_CHUNK;
      this.#ackNow = true;
      return;
    }
    this.#unacked++;
    if (seq < this.#cum || this.#received.has(seq)) {
      // The sender's view is stale: tell it soon, but not once per duplicate.
      this.stats.duplicates++;
      if (this.#unacked >= URGENT_ACK_EVERY) this.#ackNow = true;
      else if (this.#ackDue === Infinity) this.#ackDue = now + this.#ackDelay;
      return;
    }
    const inOrder = seq === this.#cum;
    // A chunk beyond the highest one so far, leaving a hole, is the first sign of a loss.
    const newGap = seq > this.#received.max + 1;
    this.#received.add(seq);
    this.stats.chunks++;
    if (inOrder) this.#cum = this.#received.prefixEnd();
    this.#events.push({ type: "data", seq, offset: seq * this.chunkSize, payload });
    if (
      newGap || this.#unacked >= this.#ackEvery || this.#cum >= this.chunks ||
      (!inOrder && this.#unacked >= URGENT_ACK_EVERY)
    ) {
      this.#ackNow = true;
    } else if (this.#ackDue === Infinity) {
      this.#ackDue = now + this.#ackDelay;
    }
    if (this.#cum >= this.chunks && this.#finDigest) this.#startVerify();
  }

  #startVerify(): void {
    this.#phase = "verifying";
    this.#ackNow = true;
    this.#events.push({ type: "fin", digest: this.#finDigest as Uint8Array });
  }

  #abort(status: number, message: string): void {
    this.#control.push(this.#encode({ type: MsgType.ABORT, session: this.session, status, message }));
    this.#phase = "closed";
    this.#events.push({ type: "aborted", message });
  }

  /**
   * Reports the verification result after a `fin` event: queues the DONE
   * (status OK only when the digest matched and the file was stored).
   */
  complete(now: number, status: number, digest: Uint8Array, message: string): void {
    if (this.#phase !== "verifying") return;
    this.#done = this.#encode({
      type: MsgType.DONE,
      session: this.session,
      status,
      bytes: this.size,
      digest,
      duplicates: this.stats.duplicates,
      acks: this.stats.acksSent,
      message,
    });
    this.#control.push(this.#done);
    this.#phase = "done";
    this.#lingerUntil = now + this.#linger;
  }

  /** Ends the session from the receiver's side (e.g. disk full), telling the sender why. */
  fail(status: number, message: string): void {
    if (this.#phase === "closed") return;
    this.#abort(status, message);
  }

  /** The next datagram to send, if any. */
  pollTransmit(now: number): Uint8Array | undefined {
    const control = this.#control.shift();
    if (control) return control;
    if (this.#phase !== "receiving" && this.#phase !== "verifying") return undefined;
    if (this.#ackNow || now >= this.#ackDue) return this.#ack(now);
    return undefined;
  }

  #ack(now: number): Uint8Array {
    this.#ackNow = false;
    this.#ackDue = Infinity;
    this.#unacked = 0;
    this.stats.acksSent++;
    const msg: AckMsg = {
      type: MsgType.ACK,
      session: this.session,
      cumulative: this.#cum,
      window: this.window,
      latest: this.#latest,
      delayMicros: this.#latest === NO_CHUNK ? 0 : (now - this.#latestAt) * 1000,
      ranges: this.#sackRanges(),
    };
    this.#latest = NO_CHUNK;
    return this.#encode(msg);
  }

  /**
   * SACK ranges above the cumulative point: the lowest ones (the holes the
   * sender must fill first) plus, like TCP's first SACK block, the one
   * holding the latest arrival, so the sender always learns about the most
   * recent data even when there are more holes than ranges fit.
   */
  #sackRanges(): Array<[number, number]> {
    const lowest = this.#received.rangesAbove(this.#cum, MAX_SACK_RANGES);
    if (lowest.length < MAX_SACK_RANGES || this.#latest === NO_CHUNK) return lowest;
    const recent = this.#received.rangeOf(this.#latest);
    if (!recent || recent[0] <= lowest[lowest.length - 1][0]) return lowest;
    lowest[lowest.length - 1] = recent;
    return lowest;
  }

  /** When to call {@linkcode handleTimeout}, or `undefined`. */
  pollTimeout(): number | undefined {
    switch (this.#phase) {
      case "deciding":
      case "receiving":
      case "verifying":
        return Math.min(this.#ackDue, this.#lastHeard + this.#idleTimeout);
      case "done":
        return this.#lingerUntil;
      default:
        return undefined;
    }
  }

  /** Processes timers due at `now`. */
  handleTimeout(now: number): void {
    if (
      (this.#phase === "deciding" || this.#phase === "receiving" || this.#phase === "verifying") &&
      now >= this.#lastHeard + this.#idleTimeout
    ) {
      this.#phase = "closed";
      this.#events.push({ type: "expired" });
    } else if (this.#phase === "done" && now >= this.#lingerUntil) {
      this.#phase = "closed";
      this.#events.push({ type: "closed" });
    }
  }
}
