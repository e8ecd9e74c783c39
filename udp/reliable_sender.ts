/**
 * The sending side of reliable UDP, as a sans-I/O state machine in the style
 * of quinn-proto: no sockets, clocks, randomness or files. The driver feeds
 * it datagrams ({@linkcode ReliableSender.handle}) and time
 * ({@linkcode ReliableSender.handleTimeout}), asks what to send
 * ({@linkcode ReliableSender.pollTransmit}: control bytes, or "chunk N",
 * which the driver reads from the file) and when to wake up
 * ({@linkcode ReliableSender.pollTimeout}), and collects events
 * ({@linkcode ReliableSender.pollEvent}).
 *
 * Mechanisms: HELLO/ACCEPT handshake retried with backoff; selective
 * acknowledgement (cumulative + SACK ranges + the chunk that triggered the
 * ACK); loss detection in the style of RACK (RFC 8985): a transmission is
 * lost once 3 later transmissions were acknowledged *and* one sent at least a
 * reordering window later was, the window growing when a retransmission
 * proves spurious; then fast retransmit; RFC 6298 RTO with
 * Karn's rule and exponential backoff; pacing and congestion control by
 * {@linkcode RateController}; flow control by the receiver's window; FIN with
 * the file's SHA-256, retried until DONE.
 *
 * Under a pre-shared key (`psk` and a `clientNonce` from the driver) the
 * HELLO carries the nonce, the receiver's CHALLENGE must carry a valid server
 * proof (else the sender fails: the server does not hold the key), the sender
 * answers with AUTH, and from then on every datagram either way carries an
 * authenticator: the sender tags what it sends and drops (counts as
 * `forged`) whatever does not verify, so nobody without the key can fake an
 * ACK or a DONE.
 *
 * Resume (`resume`): when the receiver's ACCEPT offers chunks it already
 * holds, the sender emits a `resume-offer` event; the driver hashes the same
 * ranges of its file and calls {@linkcode ReliableSender.resolveResume}; the
 * sender tells the receiver (RESUME, repeated until an ACK answers) to keep
 * them, and never sends them, or to start from empty.
 *
 * All times are milliseconds.
 *
 * @module
 */

import { Authenticator, handshakeProof, TAG_SIZE, verifyHandshakeProof } from "../shared/auth.ts";
import { bytesEqual } from "../shared/protocol.ts";
import {
  type AcceptMsg,
  type ChallengeMsg,
  DATA_HEADER_SIZE,
  decodeReliable,
  encodeReliable,
  MsgType,
  NO_CHUNK,
  type ReliableMsg,
  reliableSessionKeys,
  ReliableStatus,
  ResumeDecision,
  verifyReliableTag,
  writeDataHeader,
} from "../shared/protocol_reliable.ts";
import { ProtocolError } from "../shared/protocol.ts";
import { RangeSet } from "../shared/range_set.ts";
import { type RateConfig, RateController } from "./rate_control.ts";
import { type RttConfig, RttEstimator } from "./rtt.ts";

/** Options for a {@linkcode ReliableSender}. */
export interface SenderOptions {
  /** Session id (the driver picks it at random). */
  session: number;
  /** File name for the HELLO. */
  name: string;
  /** File size in bytes. */
  size: number;
  /** Payload bytes per DATA datagram. */
  chunkSize: number;
  /** Give up when no ACCEPT arrives within this time. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Give up when nothing arrives from the receiver for this long. Default 15 s. */
  idleTimeoutMs?: number;
  /** Give up when no DONE arrives within this time after the first FIN. Default 15 s. */
  finTimeoutMs?: number;
  /** Most chunks in flight, whatever the receiver's window. Default 65536. */
  maxWindow?: number;
  /** RTT/RTO bounds. */
  rtt?: Partial<RttConfig>;
  /** Rate controller tuning. */
  rate?: Partial<RateConfig>;
  /** Pre-shared key: authenticate the session (needs `clientNonce`). */
  psk?: Uint8Array;
  /** A fresh random 32-byte nonce for the keyed handshake (the driver makes it). */
  clientNonce?: Uint8Array;
  /** Ask the receiver to resume an earlier attempt. */
  resume?: boolean;
}

/** Says why the sender stops when the receiver cannot prove it holds the key. */
export const SERVER_PROOF_FAILED =
  "the server does not hold our key: its proof did not verify (check --psk, --psk-file or IMGXFER_PSK on both ends)";
/** Says why the sender stops when a server accepts without a key. */
export const SERVER_HAS_NO_KEY =
  "the server accepted without a key, so it cannot be authenticated: not sending (give the server the key, or send without one)";

/** Something to send. */
export type SenderTransmit =
  | { kind: "control"; bytes: Uint8Array }
  | { kind: "data"; seq: number; offset: number; length: number; retransmit: boolean };

/** Something that happened. */
export type SenderEvent =
  | { type: "accepted"; window: number }
  | {
    /**
     * The receiver holds these chunks already; the driver hashes the same
     * ranges of its file and calls {@linkcode ReliableSender.resolveResume}.
     */
    type: "resume-offer";
    ranges: Array<[number, number]>;
    digest: Uint8Array;
  }
  | {
    type: "done";
    ok: boolean;
    status: number;
    message: string;
    digest: Uint8Array;
    bytes: number;
    /** The receiver's count of duplicate chunks. */
    duplicates: number;
    /** The receiver's count of ACKs sent. */
    acks: number;
  }
  | { type: "failed"; reason: string; status?: number };

/** Counters for the summary. */
export interface SenderStats {
  /** Datagrams of any kind sent. */
  datagramsSent: number;
  /** DATA datagrams sent, retransmissions included. */
  dataSent: number;
  /** DATA datagrams that were retransmissions. */
  retransmitted: number;
  /** ACK datagrams received. */
  acksReceived: number;
  /** Chunks declared lost (each loss of each transmission). */
  lost: number;
  /** Retransmission timeouts. */
  timeouts: number;
  /** Bytes of payload acknowledged. */
  bytesAcked: number;
  /** Bytes put on the wire (headers included). */
  wireBytes: number;
  /** Datagrams from the receiver that could not be decoded or were for another session. */
  ignored: number;
  /** Retransmissions found unnecessary (the original arrived). */
  spurious: number;
  /** Times sending stopped for the pacer (diagnostics). */
  paceLimited: number;
  /** Times sending stopped for the congestion window (diagnostics). */
  windowLimited: number;
  /** Times sending stopped for the receiver's window (diagnostics). */
  flowLimited: number;
  /** Datagrams of a keyed session dropped because their authenticator did not verify. */
  forged: number;
  /** Bytes the receiver already held from an earlier attempt, not sent again. */
  resumedBytes: number;
  /** Chunks the receiver already held from an earlier attempt. */
  resumedChunks: number;
}

/** While the driver hashes the file for a resume offer, a RESUME "still checking" goes out this often, ms. */
const RESUME_KEEPALIVE_MS = 2000;
const ACKED = 1;
const INFLIGHT = 2;
const PACKET_THRESHOLD = 3;

/** The sender's phases. */
export type SenderPhase = "handshake" | "resuming" | "transfer" | "closing" | "done" | "failed";

/** Sans-I/O reliable UDP sender. */
export class ReliableSender {
  /** Session id. */
  readonly session: number;
  /** File size in bytes. */
  readonly size: number;
  /** Payload bytes per chunk. */
  readonly chunkSize: number;
  /** Number of chunks (0 for an empty file). */
  readonly chunks: number;
  /** Bytes of a DATA datagram besides its payload: the header, and the tag under a key. */
  readonly dataOverhead: number;
  /** Counters for the summary. */
  readonly stats: SenderStats = {
    datagramsSent: 0,
    dataSent: 0,
    retransmitted: 0,
    acksReceived: 0,
    lost: 0,
    timeouts: 0,
    bytesAcked: 0,
    wireBytes: 0,
    ignored: 0,
    spurious: 0,
    paceLimited: 0,
    windowLimited: 0,
    flowLimited: 0,
    forged: 0,
    resumedBytes: 0,
    resumedChunks: 0,
  };

  #phase: SenderPhase = "handshake";
  #events: SenderEvent[] = [];
  #rtt: RttEstimator;
  #rate: RateController;
  #handshakeDeadline: number;
  #handshakeTimeout: number;
  #maxWindow: number;
  #idleTimeout: number;
  #finTimeout: number;
  #helloDue: number;
  #helloTries = 0;
  #helloFirstSent = 0;
  #finDue = 0;
  #finDeadline = 0;
  #lastHeard: number;
  #digest: Uint8Array | undefined;
  /** The HELLO, encoded once: a keyed handshake's proofs and keys cover its exact bytes. */
  #hello: Uint8Array;
  #psk: Uint8Array | undefined;
  #clientNonce: Uint8Array | undefined;
  /** The AUTH to repeat (instead of HELLO) once a valid CHALLENGE came. */
  #authBytes: Uint8Array | undefined;
  /** Tags what we send / checks what we receive, once the keyed handshake has keys. */
  #sendAuth: Authenticator | undefined;
  #receiveAuth: Authenticator | undefined;
  #resumeRequested: boolean;
  #offer: Array<[number, number]> = [];
  /** The answer to a resume offer once decided (true: keep the held chunks). */
  #keepHeld: boolean | undefined;
  #resumeDue = 0;
  #resumeTries = 0;
  /** Chunks the receiver holds from an earlier attempt: never sent. */
  #held = new RangeSet();

  // Chunk state for seq in [#cum, #nextNew), in rings of #cap slots.
  #cap: number;
  #mask: number;
  #state: Uint8Array;
  #sentAt: Float64Array;
  #txOrder: Float64Array;
  #txCount: Uint8Array;
  #cum = 0;
  #nextNew = 0;
  #rwnd = 0;
  #inflight = 0;
  #txCounter = 0;
  #largestAckedOrder = -1;
  /** Chunks at or above #cum known to be acknowledged, so repeated SACK ranges cost nothing. */
  #sacked = new RangeSet();
  #largestAckedSentAt = -Infinity;
  #reorderWindow = 0;
  #spurious = 0;
  #rtoBase = 0;
  // Transmission log (seq, order) in send order, for loss detection.
  #logSeq: Int32Array;
  #logOrder: Float64Array;
  #logHead = 0;
  #logTail = 0;
  // Retransmission queue (FIFO of seqs).
  #retx: Int32Array;
  #retxHead = 0;
  #retxTail = 0;

  /** Creates a sender at time `now`. */
  constructor(now: number, options: SenderOptions) {
    if (!(options.chunkSize >= 1)) throw new RangeError("chunkSize must be at least 1");
    this.session = options.session >>> 0;
    this.size = options.size;
    this.chunkSize = options.chunkSize;
    this.chunks = Math.ceil(options.size / options.chunkSize);
    if (options.psk && options.clientNonce?.length !== 32) {
      throw new RangeError("a keyed sender needs a clientNonce");
    }
    this.#psk = options.psk;
    this.#clientNonce = options.psk ? options.clientNonce : undefined;
    this.#resumeRequested = options.resume ?? false;
    this.#hello = encodeReliable({
      type: MsgType.HELLO,
      session: this.session,
      chunkSize: options.chunkSize,
      size: options.size,
      name: options.name,
      ...(this.#resumeRequested ? { resume: true } : {}),
      ...(this.#clientNonce ? { nonce: this.#clientNonce } : {}),
    });
    this.dataOverhead = DATA_HEADER_SIZE + (options.psk ? TAG_SIZE : 0);
    this.#rtt = new RttEstimator(options.rtt);
    this.#rate = new RateController(now, {
      datagramBytes: this.dataOverhead + options.chunkSize,
      ...options.rate,
    });
    this.#handshakeTimeout = options.handshakeTimeoutMs ?? 10_000;
    this.#handshakeDeadline = now + this.#handshakeTimeout;
    this.#idleTimeout = options.idleTimeoutMs ?? 15_000;
    this.#finTimeout = options.finTimeoutMs ?? 15_000;
    this.#helloDue = now;
    this.#lastHeard = now;
    this.#maxWindow = Math.max(1, Math.floor(options.maxWindow ?? 65536));
    let cap = 16;
    while (cap < this.#maxWindow) cap *= 2;
    this.#cap = cap;
    this.#mask = cap - 1;
    this.#state = new Uint8Array(cap);
    this.#sentAt = new Float64Array(cap);
    this.#txOrder = new Float64Array(cap);
    this.#txCount = new Uint8Array(cap);
    this.#logSeq = new Int32Array(1024);
    this.#logOrder = new Float64Array(1024);
    this.#retx = new Int32Array(1024);
  }

  /** `handshake`, `transfer`, `closing`, `done` or `failed`. */
  get phase(): SenderPhase {
    return this.#phase;
  }

  /** Whether the sender has finished (done or failed). */
  get finished(): boolean {
    return this.#phase === "done" || this.#phase === "failed";
  }

  /** Smoothed RTT in ms (the initial RTO before any sample). */
  get srtt(): number {
    return this.#rtt.srtt;
  }

  /** Whether any RTT sample was taken (else {@linkcode srtt} is the initial RTO). */
  get hasRttSample(): boolean {
    return this.#rtt.samples > 0;
  }

  /** Current retransmission timeout, ms. */
  get rto(): number {
    return this.#rtt.rto;
  }

  /** Current pacing rate, bytes per second. */
  get rate(): number {
    return this.#rate.rate;
  }

  /** Chunks acknowledged cumulatively. */
  get cumulative(): number {
    return this.#cum;
  }

  /** Chunks currently counted in flight. */
  get inFlight(): number {
    return this.#inflight;
  }

  /** Length of chunk `seq`. */
  chunkLength(seq: number): number {
    return seq === this.chunks - 1 ? this.size - seq * this.chunkSize : this.chunkSize;
  }

  /** Gives the file's SHA-256, known once the driver has read the whole file. */
  setDigest(now: number, digest: Uint8Array): void {
    this.#digest = digest;
    this.#maybeClose(now);
  }

  /** The next event, if any. */
  pollEvent(): SenderEvent | undefined {
    return this.#events.shift();
  }

  #fail(reason: string, status?: number): void {
    if (this.finished) return;
    this.#phase = "failed";
    this.#events.push(status === undefined ? { type: "failed", reason } : { type: "failed", reason, status });
  }

  /**
   * Writes DATA `seq`'s header (and, under a key, its tag) into `datagram`,
   * which holds the payload at {@linkcode DATA_HEADER_SIZE} and, under a
   * key, {@linkcode TAG_SIZE} bytes of room at the end
   * ({@linkcode dataOverhead} bytes in all besides the payload).
   */
  sealData(datagram: Uint8Array, seq: number): void {
    writeDataHeader(datagram, this.session, seq, this.#sendAuth);
  }

  /** Processes one datagram from the receiver. */
  handle(now: number, datagram: Uint8Array): void {
    let msg: ReliableMsg;
    try {
      msg = decodeReliable(datagram);
    } catch (error) {
      if (error instanceof ProtocolError) {
        this.stats.ignored++;
        return;
      }
      throw error;
    }
    if (msg.session !== this.session) {
      this.stats.ignored++;
      return;
    }
    if (!this.#authentic(msg, datagram)) return;
    this.#lastHeard = now;
    switch (msg.type) {
      case MsgType.CHALLENGE:
        this.#onChallenge(now, msg);
        return;
      case MsgType.ACCEPT:
        this.#onAccept(now, msg);
        return;
      case MsgType.ACK:
        if (this.#phase === "resuming" && this.#keepHeld !== undefined) this.#startTransfer(now);
        if (this.#phase === "transfer") {
          this.#onAck(now, msg.cumulative, msg.window, msg.latest, (msg.delayMicros ?? 0) / 1000, msg.ranges);
        } else this.stats.acksReceived++;
        return;
      case MsgType.DONE: {
        if (this.#phase !== "closing") return;
        const ok = msg.status === ReliableStatus.OK && msg.bytes === this.size &&
          this.#digest !== undefined &&
          bytesEqual(msg.digest, this.#digest);
        this.#phase = "done";
        this.#events.push({
          type: "done",
          ok,
          status: msg.status,
          message: msg.message,
          digest: msg.digest,
          bytes: msg.bytes,
          duplicates: msg.duplicates,
          acks: msg.acks,
        });
        return;
      }
      case MsgType.ABORT:
        this.#fail(`the receiver aborted: ${msg.message || `status ${msg.status}`}`, msg.status);
        return;
      default:
        this.stats.ignored++;
    }
  }

  /**
   * Whether a message may be believed. Without a key, all may. Under a key,
   * before the handshake's keys exist only a CHALLENGE, a refusal or an
   * ABORT can come (none can be authenticated yet: the worst a forger gains
   * is ending the attempt); after it, only datagrams whose tag verifies
   * (refusals excepted: a server that rejects our proof cannot tag its
   * answer). The rest are counted as forged and dropped.
   */
  #authentic(msg: ReliableMsg, datagram: Uint8Array): boolean {
    if (!this.#psk) return true;
    const refusal = (msg.type === MsgType.ACCEPT && msg.status !== ReliableStatus.OK) ||
      msg.type === MsgType.ABORT;
    if (refusal && this.#phase === "handshake") return true;
    if (!this.#receiveAuth) {
      if (msg.type === MsgType.CHALLENGE || msg.type === MsgType.ACCEPT) return true;
      this.stats.ignored++;
      return false;
    }
    if (msg.type === MsgType.CHALLENGE) return true; // a repeat: ignored below
    if (verifyReliableTag(datagram, this.#receiveAuth)) return true;
    this.stats.forged++;
    return false;
  }

  #onChallenge(now: number, msg: ChallengeMsg): void {
    const psk = this.#psk;
    const clientNonce = this.#clientNonce;
    if (this.#phase !== "handshake" || this.#authBytes || !psk || !clientNonce) {
      this.stats.ignored++;
      return;
    }
    if (!verifyHandshakeProof(psk, "server", clientNonce, msg.nonce, this.#hello, msg.proof)) {
      this.#fail(SERVER_PROOF_FAILED, ReliableStatus.REFUSED);
      return;
    }
    const keys = reliableSessionKeys(psk, clientNonce, msg.nonce, this.#hello);
    this.#sendAuth = new Authenticator(keys.clientToServer);
    this.#receiveAuth = new Authenticator(keys.serverToClient);
    this.#authBytes = encodeReliable({
      type: MsgType.AUTH,
      session: this.session,
      proof: handshakeProof(psk, "client", clientNonce, msg.nonce, this.#hello),
    });
    if (this.#helloTries === 1) this.#rtt.sample(now - this.#helloFirstSent);
    // AUTH goes out at once, then is repeated like HELLO until ACCEPT.
    this.#helloTries = 0;
    this.#helloDue = now;
  }

  #onAccept(now: number, msg: AcceptMsg): void {
    if (this.#phase !== "handshake") return;
    if (msg.status !== ReliableStatus.OK) {
      this.#fail(`the receiver refused: ${msg.message || `status ${msg.status}`}`, msg.status);
      return;
    }
    if (this.#psk && !this.#receiveAuth) {
      this.#fail(SERVER_HAS_NO_KEY, ReliableStatus.REFUSED);
      return;
    }
    if (this.#helloTries === 1) this.#rtt.sample(now - this.#helloFirstSent);
    this.#rwnd = Math.max(1, msg.window);
    this.#events.push({ type: "accepted", window: msg.window });
    const offered = (msg.offer?.ranges ?? [])
      .map(([start, end]): [number, number] => [start, Math.min(end, this.chunks)])
      .filter(([start, end]) => start < end);
    if (offered.length === 0) {
      this.#startTransfer(now);
      return;
    }
    // The receiver waits for our answer before it takes any DATA.
    this.#phase = "resuming";
    this.#resumeDue = now + RESUME_KEEPALIVE_MS;
    this.#offer = offered;
    if (this.#resumeRequested) {
      this.#events.push({
        type: "resume-offer",
        ranges: offered,
        digest: (msg.offer as { digest: Uint8Array }).digest,
      });
    } else {
      this.resolveResume(now, false);
    }
  }

  /**
   * Answers a `resume-offer`: `keep` when the offered ranges of the file hash
   * to the receiver's digest (those chunks then count as delivered and are
   * never sent), else the receiver starts from empty.
   */
  resolveResume(now: number, keep: boolean): void {
    if (this.#phase !== "resuming" || this.#keepHeld !== undefined) return;
    this.#keepHeld = keep;
    this.#resumeDue = now;
    this.#resumeTries = 0;
    this.#lastHeard = now; // the receiver's silence while we hashed was expected
    if (!keep) return;
    for (const [start, end] of this.#offer) {
      for (const [a, b] of this.#held.addRange(start, end)) {
        this.stats.resumedBytes += Math.min(this.size, b * this.chunkSize) - a * this.chunkSize;
        this.stats.resumedChunks += b - a;
      }
    }
  }

  #startTransfer(now: number): void {
    this.#phase = "transfer";
    this.#skipHeld();
    this.#maybeClose(now);
  }

  /**
   * Moves past chunks the receiver already holds: they are marked
   * acknowledged without being sent. A held run at the cumulative point is
   * skipped at once; one beyond a hole only as far as the rings reach.
   */
  #skipHeld(): void {
    if (this.#held.size === 0) return;
    for (;;) {
      if (this.#cum === this.#nextNew) {
        const run = this.#held.rangeOf(this.#cum);
        if (run) this.#cum = this.#nextNew = Math.min(run[1], this.chunks);
      }
      const limit = this.#cum + this.#cap - 1;
      const from = this.#nextNew;
      while (this.#nextNew < this.chunks && this.#nextNew < limit && this.#held.has(this.#nextNew)) {
        const slot = this.#slot(this.#nextNew);
        this.#state[slot] = ACKED;
        this.#txCount[slot] = 0;
        this.#txOrder[slot] = 0;
        this.#nextNew++;
      }
      while (this.#cum < this.#nextNew && (this.#state[this.#slot(this.#cum)] & ACKED)) this.#cum++;
      if (this.#nextNew === from) return;
    }
  }

  /** Whether every chunk of `[start, end)` is held by the receiver from an earlier attempt. */
  #heldThrough(start: number, end: number): boolean {
    const run = this.#held.rangeOf(start);
    return run !== undefined && run[1] >= end;
  }

  #slot(seq: number): number {
    return seq & this.#mask;
  }

  #ackOne(
    seq: number,
    acc: { now: number; count: number; bytes: number; sampleOrder: number; sampleSentAt: number },
  ): void {
    const slot = this.#slot(seq);
    const state = this.#state[slot];
    if (state & ACKED) return;
    this.#state[slot] = ACKED;
    if (state & INFLIGHT) this.#inflight--;
    const length = this.chunkLength(seq);
    acc.count++;
    acc.bytes += length;
    this.stats.bytesAcked += length;
    const order = this.#txOrder[slot];
    if (order > this.#largestAckedOrder) {
      this.#largestAckedOrder = order;
      this.#largestAckedSentAt = this.#sentAt[slot];
    }
    // An ACK sooner than any round trip after a retransmission acknowledges
    // the original: the retransmission was spurious, so allow more reordering.
    if (
      this.#txCount[slot] > 1 && this.#rtt.samples > 0 &&
      acc.now - this.#sentAt[slot] < 0.8 * this.#rtt.minRtt
    ) {
      this.stats.spurious++;
      this.#reorderWindow = Math.min(
        Math.max(this.#rtt.srtt, 1),
        2 * this.#reorderWindow + this.#rtt.minRtt / 4,
      );
    }
    // Karn's rule: only chunks sent once give RTT samples.
    if (this.#txCount[slot] === 1 && order > acc.sampleOrder) {
      acc.sampleOrder = order;
      acc.sampleSentAt = this.#sentAt[slot];
    }
  }

  #onAck(
    now: number,
    cumulative: number,
    window: number,
    latest: number,
    ackDelay: number,
    ranges: Array<[number, number]>,
  ): void {
    this.stats.acksReceived++;
    if (cumulative > this.#nextNew && !this.#heldThrough(this.#nextNew, cumulative)) {
      this.stats.ignored++; // acknowledges chunks never sent: not from our receiver
      return;
    }
    const acc = { now, count: 0, bytes: 0, sampleOrder: -1, sampleSentAt: 0 };
    for (let seq = this.#cum; seq < Math.min(cumulative, this.#nextNew); seq++) this.#ackOne(seq, acc);
    // Beyond what we sent, the receiver's cumulative point can only cover held chunks.
    if (cumulative > this.#nextNew) this.#cum = this.#nextNew = cumulative;
    const base = Math.max(this.#cum, cumulative);
    if (latest !== NO_CHUNK && latest >= base && latest < this.#nextNew && this.#sacked.add(latest)) {
      this.#ackOne(latest, acc);
    }
    for (const [start, end] of ranges) {
      for (const [a, b] of this.#sacked.addRange(Math.max(start, base), Math.min(end, this.#nextNew))) {
        for (let seq = a; seq < b; seq++) this.#ackOne(seq, acc);
      }
    }
    while (this.#cum < this.#nextNew && (this.#state[this.#slot(this.#cum)] & ACKED)) this.#cum++;
    this.#sacked.dropBelow(this.#cum);
    this.#rwnd = Math.max(1, window);
    // The RTT sample: from the chunk that triggered the ACK, minus the
    // receiver's ACK delay (as QUIC does), when that chunk was sent once;
    // else from the newest chunk sent once that this ACK acknowledged.
    let sample = acc.sampleOrder >= 0 ? now - acc.sampleSentAt : -1;
    if (latest !== NO_CHUNK && latest >= base && latest < this.#nextNew) {
      const slot = this.#slot(latest);
      if (this.#txCount[slot] === 1 && this.#txOrder[slot] === acc.sampleOrder) {
        sample = Math.max(now - this.#sentAt[slot] - ackDelay, 0.001);
      }
    }
    if (sample >= 0) {
      this.#rtt.sample(sample);
      this.#rate.onRttSample(sample);
    }
    const lost = this.#detectLosses(now);
    this.#rate.onFeedback(now, acc.count, acc.bytes, lost, this.#rtt.srtt);
    if (acc.count > 0) this.#rtoBase = now;
    this.#skipHeld();
    this.#maybeClose(now);
  }

  #detectLosses(_now: number): number {
    // RACK: lost when something sent at least a reordering window later has
    // been delivered (send times, so queueing delay causes no false losses),
    // and at least 3 later transmissions have been (packet threshold).
    const reorderWindow = Math.max(this.#reorderWindow, this.#rtt.samples > 0 ? this.#rtt.minRtt / 4 : 0);
    let lost = 0;
    while (this.#logHead < this.#logTail) {
      const i = this.#logHead % this.#logSeq.length;
      const seq = this.#logSeq[i];
      const order = this.#logOrder[i];
      const slot = this.#slot(seq);
      const live = seq >= this.#cum && seq < this.#nextNew && this.#txOrder[slot] === order &&
        (this.#state[slot] & INFLIGHT) !== 0;
      if (!live) {
        this.#logHead++;
        continue;
      }
      const byCount = order + PACKET_THRESHOLD <= this.#largestAckedOrder;
      const byTime = this.#sentAt[slot] + reorderWindow <= this.#largestAckedSentAt;
      if (!byCount || !byTime) break;
      this.#markLost(seq);
      lost++;
      this.#logHead++;
    }
    return lost;
  }

  #markLost(seq: number): void {
    const slot = this.#slot(seq);
    this.#state[slot] &= ~INFLIGHT;
    this.#inflight--;
    this.stats.lost++;
    this.#pushRetx(seq);
  }

  #pushRetx(seq: number): void {
    if (this.#retxTail - this.#retxHead === this.#retx.length) {
      const bigger = new Int32Array(this.#retx.length * 2);
      for (let i = this.#retxHead; i < this.#retxTail; i++) {
        bigger[i - this.#retxHead] = this.#retx[i % this.#retx.length];
      }
      this.#retxTail -= this.#retxHead;
      this.#retxHead = 0;
      this.#retx = bigger;
    }
    this.#retx[this.#retxTail % this.#retx.length] = seq;
    this.#retxTail++;
  }

  #pushLog(seq: number, order: number): void {
    if (this.#logTail - this.#logHead === this.#logSeq.length) {
      const n = this.#logSeq.length;
      const seqs = new Int32Array(n * 2);
      const orders = new Float64Array(n * 2);
      for (let i = this.#logHead; i < this.#logTail; i++) {
        seqs[i - this.#logHead] = this.#logSeq[i % n];
        orders[i - this.#logHead] = this.#logOrder[i % n];
      }
      this.#logTail -= this.#logHead;
      this.#logHead = 0;
      this.#logSeq = seqs;
      this.#logOrder = orders;
    }
    const i = this.#logTail % this.#logSeq.length;
    this.#logSeq[i] = seq;
    this.#logOrder[i] = order;
    this.#logTail++;
  }

  #maybeClose(now: number): void {
    if (this.#phase === "transfer" && this.#cum >= this.chunks && this.#digest !== undefined) {
      this.#phase = "closing";
      this.#finDue = now;
      this.#finDeadline = now + this.#finTimeout;
    }
  }

  /**
   * Chunks allowed in flight: twice the bandwidth-delay product at the pacing
   * rate, within the windows. The RTT used is at least 2 ms, because ACKs are
   * delayed (up to 2 ms, or 16 chunks) and event loops batch their I/O: a
   * window sized from loopback's 0.1 ms RTT would stall the sender between ACKs.
   */
  #cwnd(): number {
    const rttMs = Math.max(this.#rtt.samples > 0 ? this.#rtt.srtt : 2, 2);
    const bdp = (this.#rate.rate * rttMs) / 1000 / this.chunkSize;
    return Math.min(this.#maxWindow, this.#rwnd, Math.max(64, Math.ceil(2 * bdp) + 16));
  }

  /** The next retransmission candidate, dropping stale entries. */
  #peekRetx(): number {
    while (this.#retxHead < this.#retxTail) {
      const seq = this.#retx[this.#retxHead % this.#retx.length];
      if (seq >= this.#cum && !(this.#state[this.#slot(seq)] & (ACKED | INFLIGHT))) return seq;
      this.#retxHead++;
    }
    return -1;
  }

  /** What to send now, if anything. Call repeatedly until it returns `undefined`. */
  pollTransmit(now: number): SenderTransmit | undefined {
    switch (this.#phase) {
      case "handshake": {
        if (now < this.#helloDue) return undefined;
        if (this.#helloTries === 0) this.#helloFirstSent = now;
        else this.#rtt.backOff();
        this.#helloTries++;
        this.#helloDue = now + this.#controlRetry();
        return this.#controlBytes(this.#authBytes ?? this.#hello);
      }
      case "resuming": {
        if (now < this.#resumeDue) return undefined;
        if (this.#keepHeld === undefined) {
          // Still hashing: tell the receiver now and then, so it does not give up on us.
          this.#resumeDue = now + RESUME_KEEPALIVE_MS;
          return this.#control({
            type: MsgType.RESUME,
            session: this.session,
            decision: ResumeDecision.CHECKING,
          });
        }
        this.#resumeDue = now + this.#controlRetry();
        if (this.#resumeTries++ > 0) this.#rtt.backOff();
        const decision = this.#keepHeld ? ResumeDecision.KEEP : ResumeDecision.RESTART;
        return this.#control({ type: MsgType.RESUME, session: this.session, decision });
      }
      case "transfer":
        return this.#pollData(now);
      case "closing": {
        if (now < this.#finDue || !this.#digest) return undefined;
        this.#finDue = now + this.#controlRetry();
        this.#rtt.backOff();
        return this.#control({
          type: MsgType.FIN,
          session: this.session,
          chunks: this.chunks,
          size: this.size,
          digest: this.#digest,
        });
      }
      default:
        return undefined;
    }
  }

  /**
   * How long to wait before repeating a HELLO or FIN: the backed-off RTO, but
   * never more than 500 ms (or two smoothed RTTs on slow paths). They are
   * tiny, and on a lossy path the number of attempts within the timeout is
   * what matters: at 30% loss each way half the attempts fail, so the 7 that
   * a 2 s cap allows in 10 s still fail about 1% of the time; 20 do not.
   */
  #controlRetry(): number {
    return Math.min(this.#rtt.rto, Math.max(500, 2 * this.#rtt.srtt));
  }

  #control(msg: ReliableMsg): SenderTransmit {
    return this.#controlBytes(encodeReliable(msg, this.#sendAuth));
  }

  #controlBytes(bytes: Uint8Array): SenderTransmit {
    this.stats.datagramsSent++;
    this.stats.wireBytes += bytes.length;
    return { kind: "control", bytes };
  }

  #pollData(now: number): SenderTransmit | undefined {
    this.#skipHeld();
    let seq = this.#peekRetx();
    const retransmit = seq >= 0;
    if (!retransmit) {
      const limit = this.#cum + Math.min(this.#rwnd, this.#maxWindow);
      if (this.#nextNew >= this.chunks) return undefined;
      // A held chunk the rings could not skip yet waits, like the window, for the cumulative point.
      if (this.#nextNew >= limit || this.#held.has(this.#nextNew)) {
        this.stats.flowLimited++;
        return undefined;
      }
      seq = this.#nextNew;
    }
    if (this.#inflight >= this.#cwnd()) {
      this.stats.windowLimited++;
      return undefined;
    }
    const length = this.chunkLength(seq);
    const wire = this.dataOverhead + length;
    if (!this.#rate.canSend(now, wire)) {
      this.stats.paceLimited++;
      return undefined;
    }
    const slot = this.#slot(seq);
    if (retransmit) {
      this.#retxHead++;
      this.stats.retransmitted++;
    } else {
      this.#nextNew++;
      this.#state[slot] = 0;
      this.#txCount[slot] = 0;
    }
    if (this.#inflight === 0) this.#rtoBase = now;
    const order = ++this.#txCounter;
    this.#sentAt[slot] = now;
    this.#txOrder[slot] = order;
    if (this.#txCount[slot] < 255) this.#txCount[slot]++;
    this.#state[slot] |= INFLIGHT;
    this.#inflight++;
    this.#pushLog(seq, order);
    this.#rate.onSent(now, wire);
    this.stats.datagramsSent++;
    this.stats.dataSent++;
    this.stats.wireBytes += wire;
    return { kind: "data", seq, offset: seq * this.chunkSize, length, retransmit };
  }

  /** Whether data is waiting only for the pacer (not for ACKs or windows). */
  #pacedOnly(now: number): number | undefined {
    if (this.#phase !== "transfer") return undefined;
    const retx = this.#peekRetx();
    const hasNew = this.#nextNew < this.chunks && !this.#held.has(this.#nextNew) &&
      this.#nextNew < this.#cum + Math.min(this.#rwnd, this.#maxWindow);
    if (retx < 0 && !hasNew) return undefined;
    if (this.#inflight >= this.#cwnd()) return undefined;
    const seq = retx >= 0 ? retx : this.#nextNew;
    return this.#rate.nextSendTime(now, this.dataOverhead + this.chunkLength(seq));
  }

  /** When the driver should call {@linkcode handleTimeout} (or poll again), or `undefined`. */
  pollTimeout(now: number): number | undefined {
    let t = Infinity;
    switch (this.#phase) {
      case "handshake":
        t = Math.min(this.#helloDue, this.#handshakeDeadline);
        break;
      case "resuming":
        // While the driver hashes, the receiver is silent by design: no idle deadline then.
        t = this.#keepHeld === undefined
          ? this.#resumeDue
          : Math.min(this.#lastHeard + this.#idleTimeout, this.#resumeDue);
        break;
      case "transfer": {
        if (this.#inflight > 0) t = this.#rtoBase + this.#rtt.rto;
        const paced = this.#pacedOnly(now);
        if (paced !== undefined) t = Math.min(t, paced);
        t = Math.min(t, this.#lastHeard + this.#idleTimeout);
        break;
      }
      case "closing":
        t = Math.min(this.#finDue, this.#finDeadline);
        break;
      default:
        return undefined;
    }
    return t;
  }

  /** Processes timers that are due at `now`. */
  handleTimeout(now: number): void {
    switch (this.#phase) {
      case "handshake":
        if (now >= this.#handshakeDeadline) {
          this.#fail(
            `no answer from the receiver within ${this.#handshakeTimeout / 1000} s`,
          );
        }
        return;
      case "resuming":
      case "transfer":
        if (this.#keepHeld === undefined && this.#phase === "resuming") return;
        if (now >= this.#lastHeard + this.#idleTimeout) {
          this.#fail(`the receiver went silent for ${this.#idleTimeout / 1000} s`);
          return;
        }
        if (this.#inflight > 0 && now >= this.#rtoBase + this.#rtt.rto) this.#onRto(now);
        return;
      case "closing":
        if (now >= this.#finDeadline) {
          this.#fail(
            `no confirmation from the receiver within ${this.#finTimeout / 1000} s of the end of the data`,
          );
        }
        return;
    }
  }

  #onRto(now: number): void {
    this.stats.timeouts++;
    this.#rtt.backOff();
    this.#rate.onTimeout();
    // Everything still in flight is presumed lost, oldest first.
    for (let k = this.#logHead; k < this.#logTail; k++) {
      const i = k % this.#logSeq.length;
      const seq = this.#logSeq[i];
      const slot = this.#slot(seq);
      if (
        seq >= this.#cum && seq < this.#nextNew && this.#txOrder[slot] === this.#logOrder[i] &&
        (this.#state[slot] & INFLIGHT)
      ) {
        this.#markLost(seq);
      }
    }
    this.#logHead = this.#logTail;
    this.#rtoBase = now;
  }

  /** Asks the receiver to abort (e.g. the file could not be read). */
  abort(reason: string): Uint8Array {
    this.#fail(reason);
    return encodeReliable({
      type: MsgType.ABORT,
      session: this.session,
      status: ReliableStatus.SERVER_ERROR,
      message: reason,
    }, this.#sendAuth);
  }
}
