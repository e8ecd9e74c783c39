/**
 * A deterministic simulated network for the reliable UDP cores: virtual
 * time, a seeded random source, and an {@linkcode Impairment} each way. A
 * whole transfer of a few hundred KB runs in milliseconds of real time.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { seededRandom } from "../shared/rng.ts";
import { TimedQueue } from "../shared/timed_queue.ts";
import {
  DATA_HEADER_SIZE,
  decodeReliable,
  MsgType,
  ReliableStatus,
  writeDataHeader,
} from "../shared/protocol_reliable.ts";
import { Impairment, type ImpairmentConfig, type ImpairmentCounters } from "../udp/impairment.ts";
import { type ReceiverOptions, ReliableReceiver } from "../udp/reliable_receiver.ts";
import {
  ReliableSender,
  type SenderEvent,
  type SenderOptions,
  type SenderStats,
} from "../udp/reliable_sender.ts";
import type { ReceiverStats } from "../udp/reliable_receiver.ts";

/** A simulated transfer. */
export interface SimOptions {
  /** File size. */
  size: number;
  /** Chunk size. */
  chunkSize: number;
  /** Seed for the file contents and every random choice. */
  seed: number;
  /** Impairment from sender to receiver. */
  forward?: Partial<ImpairmentConfig>;
  /** Impairment from receiver to sender. */
  backward?: Partial<ImpairmentConfig>;
  /** Sender tuning. */
  sender?: Partial<SenderOptions>;
  /** Receiver tuning. */
  receiver?: Partial<ReceiverOptions>;
  /** Give the sender the digest only after the last chunk was first sent (as the real driver does). */
  lateDigest?: boolean;
  /** Stop after this much virtual time, ms. */
  maxTimeMs?: number;
  /** Corrupt the receiver's copy of one chunk before verification (to test digest mismatch). */
  corruptStoredChunk?: number;
  /** Called after every step, for tracing. */
  onStep?: (now: number, sender: ReliableSender) => void;
}

/** What happened. */
export interface SimResult {
  /** The sender's final event (undefined if it never finished). */
  sender: SenderEvent | undefined;
  /** The receiver's end: `done-ok`, `done-mismatch`, `expired`, `aborted`, or `none`. */
  receiver: string;
  /** Whether the receiver's bytes equal the input. */
  identical: boolean;
  /** Virtual time at the end, ms. */
  timeMs: number;
  /** Sender counters. */
  senderStats: SenderStats;
  /** Receiver counters (zeros if no session was created). */
  receiverStats: ReceiverStats;
  /** What the network did each way. */
  forward: ImpairmentCounters;
  backward: ImpairmentCounters;
  /** Simulation steps taken. */
  steps: number;
}

interface Pending {
  at: number;
  seq: number;
  toReceiver: boolean;
  bytes: Uint8Array;
}

function randomBytes(size: number, random: () => number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(random() * 256);
  return out;
}

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());

/** Runs one transfer through the simulated network. */
export function simulateTransfer(options: SimOptions): SimResult {
  const random = seededRandom(options.seed);
  const input = randomBytes(options.size, random);
  const digest = sha256(input);
  const forward = new Impairment(options.forward ?? {}, seededRandom(options.seed ^ 0x5eed1));
  const backward = new Impairment(options.backward ?? {}, seededRandom(options.seed ^ 0x5eed2));
  const maxTime = options.maxTimeMs ?? 600_000;
  const session = (options.seed * 2654435761) >>> 0;
  const sender = new ReliableSender(0, {
    session,
    name: "sim.bin",
    size: options.size,
    chunkSize: options.chunkSize,
    ...options.sender,
  });
  if (!options.lateDigest) sender.setDigest(0, digest);
  let receiver: ReliableReceiver | undefined;
  let receiverEnd = "none";
  const output = new Uint8Array(options.size);
  const heap = new TimedQueue<Pending>();
  let order = 0;
  let now = 0;
  let senderEnd: SenderEvent | undefined;
  let steps = 0;

  const toWire = (toReceiver: boolean, bytes: Uint8Array) => {
    const impairment = toReceiver ? forward : backward;
    for (const d of impairment.process(now, bytes)) {
      heap.push({ at: d.at, seq: order++, toReceiver, bytes: d.bytes });
    }
  };

  const deliverToReceiver = (bytes: Uint8Array) => {
    let msg;
    try {
      msg = decodeReliable(bytes);
    } catch {
      return; // corrupted or malformed: dropped, as the real server does
    }
    if (!receiver) {
      if (msg.type !== MsgType.HELLO || msg.session !== session) return;
      receiver = new ReliableReceiver(now, {
        session: msg.session,
        chunkSize: msg.chunkSize,
        size: msg.size,
        ...options.receiver,
      });
      return;
    }
    receiver.handle(now, msg);
  };

  while (now <= maxTime && steps < 5_000_000) {
    steps++;
    // Transmit everything allowed now.
    for (let k = 0; k < 10_000; k++) {
      const t = sender.pollTransmit(now);
      if (!t) break;
      if (t.kind === "control") {
        toWire(true, t.bytes);
      } else {
        const datagram = new Uint8Array(DATA_HEADER_SIZE + t.length);
        datagram.set(input.subarray(t.offset, t.offset + t.length), DATA_HEADER_SIZE);
        writeDataHeader(datagram, session, t.seq);
        toWire(true, datagram);
        if (options.lateDigest && t.seq === sender.chunks - 1 && !t.retransmit) sender.setDigest(now, digest);
      }
    }
    if (options.lateDigest && sender.chunks === 0) sender.setDigest(now, digest);
    if (receiver) {
      for (let k = 0; k < 10_000; k++) {
        const bytes = receiver.pollTransmit(now);
        if (!bytes) break;
        toWire(false, bytes);
      }
      for (let e = receiver.pollEvent(); e; e = receiver.pollEvent()) {
        if (e.type === "data") {
          output.set(e.payload, e.offset);
        } else if (e.type === "fin") {
          if (options.corruptStoredChunk !== undefined) {
            output[options.corruptStoredChunk * options.chunkSize] ^= 0xff;
          }
          const got = sha256(output);
          const ok = got.every((b, i) => b === e.digest[i]);
          receiver.complete(
            now,
            ok ? ReliableStatus.OK : ReliableStatus.DIGEST_MISMATCH,
            got,
            ok ? "SUCCESS" : "MISMATCH",
          );
          receiverEnd = ok ? "done-ok" : "done-mismatch";
        } else if (e.type === "expired" || e.type === "aborted") {
          receiverEnd = e.type;
        }
      }
      // Flush what complete() queued.
      for (let bytes = receiver.pollTransmit(now); bytes; bytes = receiver.pollTransmit(now)) {
        toWire(false, bytes);
      }
    }
    for (let e = sender.pollEvent(); e; e = sender.pollEvent()) {
      if (e.type === "done" || e.type === "failed") senderEnd = e;
    }
    const receiverSettled = receiverEnd !== "none" || !receiver;
    if (senderEnd && receiverSettled && heap.size === 0) break;
    if (senderEnd && senderEnd.type === "failed" && heap.size === 0) break;
    // Advance virtual time to the next thing that happens.
    let next = heap.peek()?.at ?? Infinity;
    const st = sender.pollTimeout(now);
    if (st !== undefined) next = Math.min(next, st);
    const rt = receiver?.pollTimeout();
    if (rt !== undefined) next = Math.min(next, rt);
    if (next === Infinity) break;
    now = Math.max(now, next);
    while ((heap.peek()?.at ?? Infinity) <= now) {
      const p = heap.pop() as Pending;
      if (p.toReceiver) deliverToReceiver(p.bytes);
      else sender.handle(now, p.bytes);
    }
    sender.handleTimeout(now);
    receiver?.handleTimeout(now);
    options.onStep?.(now, sender);
    if (receiver?.closed && receiverEnd === "none") receiverEnd = "closed";
  }
  return {
    sender: senderEnd,
    receiver: receiverEnd,
    identical: output.length === input.length && output.every((b, i) => b === input[i]),
    timeMs: now,
    senderStats: sender.stats,
    receiverStats: receiver?.stats ?? { chunks: 0, duplicates: 0, acksSent: 0, ignored: 0 },
    forward: forward.counters,
    backward: backward.counters,
    steps,
  };
}
