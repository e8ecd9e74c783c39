/**
 * The receiving side of the classic UDP format, without I/O.
 *
 * The driver appends every new payload to a spool file in arrival order, at
 * the offset this assembler assigns, and asks it at the end for a plan that
 * lays the payloads out in sequence order (holes zero-filled, so an
 * incomplete image keeps its geometry). When everything arrived in order the
 * spool already is the file and no copy is needed.
 *
 * Memory: 16 bytes per packet for the spool index plus one range per gap.
 *
 * @module
 */

import {
  type ClassicDatagram,
  type ClassicUdpOutcome,
  type EndTrailer,
  isCompleteOutcome,
} from "../shared/protocol.ts";
import { RangeSet } from "../shared/range_set.ts";

/** What the driver should do with a datagram. */
export type AssemblerAction =
  | { action: "store"; seq: number; payload: Uint8Array; spoolOffset: number }
  | { action: "duplicate"; seq: number }
  | { action: "ignore"; reason: string }
  | { action: "end" }
  | { action: "reject"; reason: string };

/** One step of the final layout, in sequence order. */
export type LayoutStep =
  | { kind: "copy"; seq: number; spoolOffset: number; length: number }
  | { kind: "hole"; seq: number; length: number };

/**
 * Most zero-filled bytes a session may owe beyond what it received: a
 * sequence number (or end trailer) implying more missing bytes than
 * max(32 MiB, twice the bytes received) is not believed. Without this one
 * 5-byte datagram numbered 100,000,000 made the server write 100 MB of zeros.
 */
export const MAX_HOLE_BYTES: number = 32 << 20;

/** Whether `missing` bytes of holes are plausible after `received` bytes arrived. */
function plausibleHoles(missing: number, received: number): boolean {
  return missing <= Math.max(MAX_HOLE_BYTES, 2 * received);
}

/** Limits for one classic session. */
export interface AssemblerLimits {
  /** Largest total payload accepted, in bytes. */
  maxBytes: number;
}

/** Collects classic datagrams of one sender and reports what is missing. */
export class ClassicAssembler {
  #seen = new RangeSet();
  #seqs = new Int32Array(1024);
  #offsets = new Float64Array(1024);
  #count = 0;
  #spoolBytes = 0;
  #stride = 0;
  #inOrder = true;
  #shortSeen = false;
  #ended = false;
  #trailer: EndTrailer | undefined;
  #duplicates = 0;
  #maxSeqLength = 0;
  #limits: AssemblerLimits;

  /** Creates an assembler that accepts at most `limits.maxBytes` of payload. */
  constructor(limits: AssemblerLimits) {
    this.#limits = limits;
  }

  /** Whether the end marker has arrived. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes stored so far (the spool's length). */
  get receivedBytes(): number {
    return this.#spoolBytes;
  }

  /** Distinct packets stored so far. */
  get receivedPackets(): number {
    return this.#count;
  }

  /** Duplicate datagrams ignored so far. */
  get duplicates(): number {
    return this.#duplicates;
  }

  /** Whether the spool holds packets 0…n−1 in order, each full-size but the last: the spool is the file. */
  get spoolIsFile(): boolean {
    return this.#inOrder;
  }

  /** Takes one decoded datagram and says what to do with it. */
  accept(datagram: ClassicDatagram): AssemblerAction {
    if (datagram.kind === "end") {
      this.#ended = true;
      // A trailer that claims more than the limit is not believed (it would make us zero-fill that much).
      if (
        datagram.trailer && datagram.trailer.bytes <= this.#limits.maxBytes &&
        plausibleHoles(datagram.trailer.bytes - this.#spoolBytes, this.#spoolBytes)
      ) {
        this.#trailer = datagram.trailer;
      }
      return { action: "end" };
    }
    const { seq, payload } = datagram;
    // Classic senders never send empty chunks; an empty one would only inflate the layout.
    if (payload.length === 0) return { action: "ignore", reason: "empty data datagram" };
    if (this.#seen.has(seq)) {
      this.#duplicates++;
      return { action: "duplicate", seq };
    }
    if (
      this.#spoolBytes + payload.length > this.#limits.maxBytes ||
      seq * payload.length > this.#limits.maxBytes
    ) {
      return { action: "reject", reason: `more than ${this.#limits.maxBytes} bytes` };
    }
    const lead = seq - this.#count;
    if (lead > 0 && !plausibleHoles(lead * Math.max(this.#stride, payload.length), this.#spoolBytes)) {
      return {
        action: "ignore",
        reason: `sequence number ${seq} is implausibly far ahead of the ${this.#count} packets received`,
      };
    }
    if (seq > this.#seen.max) this.#maxSeqLength = payload.length;
    this.#seen.add(seq);
    if (seq !== this.#count || (this.#count > 0 && (this.#shortSeen || payload.length > this.#stride))) {
      this.#inOrder = false;
    }
    if (this.#count > 0 && payload.length < this.#stride) this.#shortSeen = true;
    this.#stride = Math.max(this.#stride, payload.length);
    this.#grow();
    this.#seqs[this.#count] = seq;
    this.#offsets[this.#count] = this.#spoolBytes;
    this.#count++;
    const spoolOffset = this.#spoolBytes;
    this.#spoolBytes += payload.length;
    return { action: "store", seq, payload, spoolOffset };
  }

  #grow(): void {
    if (this.#count < this.#seqs.length) return;
    const seqs = new Int32Array(this.#seqs.length * 2);
    seqs.set(this.#seqs);
    this.#seqs = seqs;
    const offsets = new Float64Array(this.#offsets.length * 2);
    offsets.set(this.#offsets);
    this.#offsets = offsets;
  }

  /** Packets expected: the trailer's count, or the highest sequence seen + 1. */
  get expectedPackets(): number {
    return Math.max(this.#trailer?.packets ?? 0, this.#seen.max + 1);
  }

  /** The session's outcome; `reason` explains an end without marker. */
  outcome(reason?: string): ClassicUdpOutcome {
    const expected = this.expectedPackets;
    const outcome: ClassicUdpOutcome = {
      received: this.#count,
      expected,
      missing: this.#seen.gaps(expected),
      receivedBytes: this.#spoolBytes,
    };
    if (this.#trailer) outcome.expectedBytes = this.#trailer.bytes;
    if (reason) outcome.reason = reason;
    else if (!this.#ended) outcome.reason = "end marker not received";
    else if (!this.#trailer && this.#count > 0 && this.#maxSeqLength === this.#stride) {
      // The original's bare marker does not say how many packets were sent. A
      // short last packet ends a file; a full-size one may have had followers
      // that were lost, so we cannot call the file complete.
      outcome.reason = "end not confirmed: the last packet received is full-size and the bare end marker " +
        "does not say how many were sent";
    }
    return outcome;
  }

  /** Whether {@linkcode outcome} would report a complete file. */
  isComplete(): boolean {
    return isCompleteOutcome(this.outcome());
  }

  /** Payload bytes per packet: the trailer's chunk size, else the largest payload seen. */
  get stride(): number {
    return this.#trailer?.chunk ?? this.#stride;
  }

  /**
   * The layout of the output file in sequence order: payloads copied from the
   * spool, missing packets as zero-filled holes of the chunk size (the last
   * packet's hole as long as the trailer implies). Stops before the output
   * would exceed the byte limit.
   */
  *layout(): Generator<LayoutStep> {
    const order = new Uint32Array(this.#count);
    for (let i = 0; i < this.#count; i++) order[i] = i;
    order.sort((a, b) => this.#seqs[a] - this.#seqs[b]);
    // Entries are in arrival order, so an entry's length is the distance to the next offset.
    const lengthOf = (i: number) =>
      (i + 1 < this.#count ? this.#offsets[i + 1] : this.#spoolBytes) - this.#offsets[i];
    const stride = this.stride;
    const expected = this.expectedPackets;
    const holeLength = (seq: number) =>
      this.#trailer && seq === expected - 1 ? this.#trailer.bytes - stride * (expected - 1) : stride;
    let budget = this.#limits.maxBytes;
    let next = 0;
    for (const i of order) {
      const seq = this.#seqs[i];
      for (; next < seq; next++) {
        const length = holeLength(next);
        if ((budget -= Math.max(1, length)) < 0) return;
        yield { kind: "hole", seq: next, length };
      }
      const length = lengthOf(i);
      if ((budget -= Math.max(1, length)) < 0) return;
      yield { kind: "copy", seq, spoolOffset: this.#offsets[i], length };
      next = seq + 1;
    }
    for (; next < expected; next++) {
      const length = holeLength(next);
      if ((budget -= Math.max(1, length)) < 0) return;
      yield { kind: "hole", seq: next, length };
    }
  }
}
