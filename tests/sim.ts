/**
 * A deterministic simulated network for the reliable UDP cores: virtual
 * time, a seeded random source, and an {@linkcode Impairment} each way. A
 * whole transfer of a few hundred KB runs in milliseconds of real time.
 *
 * The receiving end is driven like the real server: a
 * {@linkcode HandshakeGate} answers HELLO and AUTH (with or without a key)
 * and opens the session; a resumable partial can be given (`held`), and an
 * adversary can watch every datagram and inject its own (forgeries, replays).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { seededRandom } from "../shared/rng.ts";
import { TimedQueue } from "../shared/timed_queue.ts";
import {
  DATA_HEADER_SIZE,
  decodeReliable,
  type HelloMsg,
  MAX_RESUME_RANGES,
  MsgType,
  type ReliableResumeOffer,
  ReliableStatus,
} from "../shared/protocol_reliable.ts";
import { RangeSet } from "../shared/range_set.ts";
import { Impairment, type ImpairmentConfig, type ImpairmentCounters } from "../udp/impairment.ts";
import { HandshakeGate } from "../udp/handshake_gate.ts";
import {
  type ReceiverKeys,
  type ReceiverOptions,
  type ReceiverStats,
  ReliableReceiver,
} from "../udp/reliable_receiver.ts";
import {
  ReliableSender,
  type SenderEvent,
  type SenderOptions,
  type SenderStats,
} from "../udp/reliable_sender.ts";

/** A datagram on the simulated wire. */
export interface SimDatagram {
  /** Direction: sender → receiver, or back. */
  toReceiver: boolean;
  /** The bytes. */
  bytes: Uint8Array;
  /** For an injected datagram: when it arrives (default: now). It bypasses the impairment. */
  at?: number;
}

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
  /** Pre-shared keys of each end (either may be missing, or differ). */
  psk?: { sender?: Uint8Array; receiver?: Uint8Array };
  /** The receiver's server nonces (default: seeded random bytes). */
  serverNonce?: () => Uint8Array;
  /**
   * A partial from an earlier attempt at the receiver: these chunk ranges
   * hold the file's bytes (or, with `stale`, other bytes, as if the file had
   * changed since).
   */
  held?: { ranges: Array<[number, number]>; stale?: boolean };
  /** The sender asks to resume. */
  resume?: boolean;
  /** How long the sender's driver takes to hash its file for a resume offer, ms of virtual time (default 0). */
  resumeCheckMs?: number;
  /**
   * An attacker on the path: sees every datagram either end sends (before
   * impairment) and returns datagrams to inject.
   */
  adversary?: (seen: SimDatagram, now: number) => SimDatagram[];
  /** An attacker (or a broken link) that drops datagrams either end sends: return true to drop. */
  drop?: (seen: SimDatagram, now: number) => boolean;
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
  /** Sessions the receiving end opened (the gate said `open`). */
  opened: number;
  /** Refusals the gate sent, by text. */
  refusals: string[];
  /** Handshakes the gate still remembers at the end. */
  pendingHandshakes: number;
  /** Whether the receiver was told to keep (true) or drop (false) its held chunks; undefined if not asked. */
  keptHeld: boolean | undefined;
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

/** The bytes a partial holds: the input's, or (stale) their complement. */
function partialOf(input: Uint8Array, held: SimOptions["held"], chunkSize: number): Uint8Array {
  const output = new Uint8Array(input.length);
  for (const [start, end] of held?.ranges ?? []) {
    const from = start * chunkSize;
    const to = Math.min(input.length, end * chunkSize);
    output.set(input.subarray(from, to), from);
    if (held?.stale) { for (let i = from; i < to; i++) output[i] ^= 0xff; }
  }
  return output;
}

/** SHA-256 of the bytes of chunk ranges, range after range (what a resume offer carries). */
export function rangesDigest(
  bytes: Uint8Array,
  ranges: Array<[number, number]>,
  chunkSize: number,
): Uint8Array {
  const hash = createHash("sha256");
  for (const [start, end] of ranges) {
    hash.update(bytes.subarray(start * chunkSize, Math.min(bytes.length, end * chunkSize)));
  }
  return new Uint8Array(hash.digest());
}

/** The resume offer for a partial: its held ranges (coalesced, within the file, at most 128) and their digest. */
function offerOf(output: Uint8Array, held: SimOptions["held"], chunkSize: number): ReliableResumeOffer {
  const set = new RangeSet();
  const chunks = Math.ceil(output.length / chunkSize);
  for (const [start, end] of held?.ranges ?? []) set.addRange(start, Math.min(end, chunks));
  const ranges = set.ranges().slice(0, MAX_RESUME_RANGES).map(([a, b]): [number, number] => [a, b + 1]);
  return { ranges, digest: rangesDigest(output, ranges, chunkSize) };
}

/** Runs one transfer through the simulated network. */
export function simulateTransfer(options: SimOptions): SimResult {
  const random = seededRandom(options.seed);
  const input = randomBytes(options.size, random);
  const digest = sha256(input);
  const forward = new Impairment(options.forward ?? {}, seededRandom(options.seed ^ 0x5eed1));
  const backward = new Impairment(options.backward ?? {}, seededRandom(options.seed ^ 0x5eed2));
  const nonceRandom = seededRandom(options.seed ^ 0x5eed3);
  const maxTime = options.maxTimeMs ?? 600_000;
  const session = (options.seed * 2654435761) >>> 0;
  const senderKey = options.psk?.sender;
  const sender = new ReliableSender(0, {
    session,
    name: "sim.bin",
    size: options.size,
    chunkSize: options.chunkSize,
    ...(senderKey ? { psk: senderKey, clientNonce: randomBytes(32, nonceRandom) } : {}),
    resume: options.resume,
    ...options.sender,
  });
  if (!options.lateDigest) sender.setDigest(0, digest);
  const gate = new HandshakeGate({
    psk: options.psk?.receiver,
    nonce: options.serverNonce ?? (() => randomBytes(32, nonceRandom)),
  });
  let receiver: ReliableReceiver | undefined;
  let receiverEnd = "none";
  let opened = 0;
  let keptHeld: boolean | undefined;
  const refusals: string[] = [];
  const output = partialOf(input, options.held, options.chunkSize);
  const heap = new TimedQueue<Pending>();
  let order = 0;
  let now = 0;
  let senderEnd: SenderEvent | undefined;
  let steps = 0;
  /** A resume offer being checked by the (simulated) driver: its answer and when it is ready. */
  let check: { at: number; keep: boolean } | undefined;

  const toWire = (toReceiver: boolean, bytes: Uint8Array) => {
    const impairment = toReceiver ? forward : backward;
    const dropped = options.drop?.({ toReceiver, bytes }, now) ?? false;
    for (const d of dropped ? [] : impairment.process(now, bytes)) {
      heap.push({ at: d.at, seq: order++, toReceiver, bytes: d.bytes });
    }
    for (const extra of options.adversary?.({ toReceiver, bytes }, now) ?? []) {
      heap.push({
        at: Math.max(now, extra.at ?? now),
        seq: order++,
        toReceiver: extra.toReceiver,
        bytes: extra.bytes,
      });
    }
  };

  /** Opens the session the gate allowed, like the server driver does. */
  const open = (hello: HelloMsg, keys: ReceiverKeys | undefined) => {
    opened++;
    if (receiver) return; // one session per simulation: a second one is only counted
    let offer: ReliableResumeOffer | undefined;
    if (hello.resume) offer = offerOf(output, options.held, options.chunkSize);
    else output.fill(0); // no resume: the partial starts from empty
    receiver = new ReliableReceiver(now, {
      session: hello.session,
      chunkSize: hello.chunkSize,
      size: hello.size,
      ...(keys ? { keys } : {}),
      ...(offer ? { offer } : {}),
      ...options.receiver,
    });
  };

  const deliverToReceiver = (bytes: Uint8Array) => {
    let msg;
    try {
      msg = decodeReliable(bytes);
    } catch {
      return; // corrupted or malformed: dropped, as the real server does
    }
    if (receiver && !receiver.closed && msg.session === receiver.session) {
      receiver.handle(now, msg, bytes);
      return;
    }
    const verdict = msg.type === MsgType.HELLO
      ? gate.hello(now, msg, bytes, "sender")
      : msg.type === MsgType.AUTH
      ? gate.auth(now, msg, "sender")
      : undefined;
    if (verdict?.kind === "reply") {
      if (verdict.refusal) refusals.push(verdict.refusal);
      toWire(false, verdict.bytes);
    } else if (verdict?.kind === "open") {
      open(verdict.hello, verdict.keys);
    }
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
        const datagram = new Uint8Array(sender.dataOverhead + t.length);
        datagram.set(input.subarray(t.offset, t.offset + t.length), DATA_HEADER_SIZE);
        sender.sealData(datagram, t.seq);
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
        } else if (e.type === "resume") {
          keptHeld = e.keep;
          if (!e.keep) output.fill(0);
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
      if (e.type === "resume-offer") {
        const keep = bytesEqual(rangesDigest(input, e.ranges, options.chunkSize), e.digest);
        check = { at: now + (options.resumeCheckMs ?? 0), keep };
      }
    }
    if (check && now >= check.at) {
      sender.resolveResume(now, check.keep);
      check = undefined;
      continue;
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
    if (check) next = Math.min(next, check.at);
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
    receiverStats: receiver?.stats ??
      { chunks: 0, duplicates: 0, acksSent: 0, ignored: 0, forged: 0, resumedChunks: 0 },
    forward: forward.counters,
    backward: backward.counters,
    steps,
    opened,
    refusals,
    pendingHandshakes: gate.pending,
    keptHeld,
  };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
