/**
 * Direct unit tests of the sans-I/O reliable UDP state machines
 * (udp/reliable_sender.ts, udp/reliable_receiver.ts) and of their helpers
 * (udp/rtt.ts, udp/rate_control.ts), and of the server's HandshakeGate (the
 * keyed handshake's bounded state), with time driven by hand: every clock
 * value is chosen by the test, every datagram is delivered, dropped or
 * forged by the test. No sockets, no files, no real timers. Runs under
 * `deno test` and `bun test`.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { handshakeProof, verifyHandshakeProof } from "../shared/auth.ts";
import {
  type AcceptMsg,
  type AckMsg,
  type AuthMsg,
  type ChallengeMsg,
  DATA_HEADER_SIZE,
  decodeReliable,
  encodeReliable,
  type FinMsg,
  type HelloMsg,
  MsgType,
  NO_CHUNK,
  type ReliableMsg,
  ReliableStatus,
  writeDataHeader,
} from "../shared/protocol_reliable.ts";
import { encodeClassicData, encodeClassicEnd } from "../shared/protocol.ts";
import { seededRandom } from "../shared/rng.ts";
import { HandshakeGate, KEY_REQUIRED, SERVER_KEYLESS, WRONG_KEY } from "../udp/handshake_gate.ts";
import { type ReceiverEvent, type ReceiverOptions, ReliableReceiver } from "../udp/reliable_receiver.ts";
import {
  ReliableSender,
  type SenderEvent,
  type SenderOptions,
  type SenderTransmit,
} from "../udp/reliable_sender.ts";
import { RttEstimator } from "../udp/rtt.ts";
import { RateController } from "../udp/rate_control.ts";

// ------------------------------------------------------------- helpers ----

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());

function fileOf(size: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(random() * 256);
  return out;
}

function drainEvents<E>(source: { pollEvent(): E | undefined }): E[] {
  const out: E[] = [];
  for (let e = source.pollEvent(); e !== undefined; e = source.pollEvent()) out.push(e);
  return out;
}

function controlMsg(t: SenderTransmit | undefined): ReliableMsg {
  assert.ok(t, "expected a datagram");
  assert.equal(t.kind, "control");
  return decodeReliable(t.bytes);
}

function ack(session: number, cumulative: number, extra: Partial<AckMsg> = {}): Uint8Array {
  return encodeReliable({
    type: MsgType.ACK,
    session,
    cumulative,
    window: 4096,
    latest: NO_CHUNK,
    ranges: [],
    ...extra,
  });
}

function accept(
  session: number,
  window = 4096,
  status: number = ReliableStatus.OK,
  message = "",
): Uint8Array {
  return encodeReliable({ type: MsgType.ACCEPT, session, status, window, message });
}

interface Sent {
  at: number;
  msg: ReliableMsg;
}

/**
 * A sender and a receiver joined by a hand-made network: a fixed one-way
 * delay, and hooks that may drop any datagram. Time only moves to the next
 * delivery or to the next deadline a state machine names, like a driver.
 */
class Link {
  now: number;
  readonly sender: ReliableSender;
  receiver: ReliableReceiver | undefined;
  readonly input: Uint8Array;
  readonly output: Uint8Array;
  readonly digest: Uint8Array;
  delayMs: number;
  /** Return true to drop a datagram on its way to the receiver / the sender. */
  dropToReceiver: (msg: ReliableMsg, at: number) => boolean = () => false;
  dropToSender: (msg: ReliableMsg, at: number) => boolean = () => false;
  /** Called for every DATA the sender emits, right after pollTransmit. */
  onData: (t: Extract<SenderTransmit, { kind: "data" }>) => void = () => {};
  /** Called for every datagram handed to the receiver, before it handles it. */
  onReceiverInput: (msg: ReliableMsg) => void = () => {};
  readonly senderEvents: Array<{ at: number; event: SenderEvent }> = [];
  readonly receiverEvents: Array<{ at: number; event: ReceiverEvent }> = [];
  readonly fromSender: Sent[] = [];
  readonly fromReceiver: Array<Sent & { bytes: Uint8Array }> = [];
  /** Time of the last datagram the sender was given. */
  lastDeliveredToSender = -Infinity;
  /** While true, nothing is delivered either way (datagrams already on the wire are lost too). */
  partitioned = false;
  steps = 0;
  #queue: Array<{ at: number; order: number; toReceiver: boolean; bytes: Uint8Array }> = [];
  #order = 0;
  #receiverOptions: Partial<ReceiverOptions>;

  constructor(
    options: {
      size: number;
      chunkSize: number;
      start?: number;
      delayMs?: number;
      seed?: number;
      sender?: Partial<SenderOptions>;
      receiver?: Partial<ReceiverOptions>;
    },
  ) {
    this.now = options.start ?? 0;
    this.delayMs = options.delayMs ?? 5;
    this.input = fileOf(options.size, options.seed ?? 1);
    this.output = new Uint8Array(options.size);
    this.digest = sha256(this.input);
    this.#receiverOptions = options.receiver ?? {};
    this.sender = new ReliableSender(this.now, {
      session: 0x5e55_1011,
      name: "photo.jpeg",
      size: options.size,
      chunkSize: options.chunkSize,
      ...options.sender,
    });
    this.sender.setDigest(this.now, this.digest);
  }

  #put(toReceiver: boolean, bytes: Uint8Array): void {
    const msg = decodeReliable(bytes);
    if (toReceiver) this.fromSender.push({ at: this.now, msg });
    else this.fromReceiver.push({ at: this.now, msg, bytes });
    const drop = toReceiver ? this.dropToReceiver(msg, this.now) : this.dropToSender(msg, this.now);
    if (drop) return;
    this.#queue.push({ at: this.now + this.delayMs, order: this.#order++, toReceiver, bytes });
  }

  /** Lets both sides transmit everything they may at the current time, and collects events. */
  flush(): void {
    for (let t = this.sender.pollTransmit(this.now); t; t = this.sender.pollTransmit(this.now)) {
      if (t.kind === "control") {
        this.#put(true, t.bytes);
      } else {
        this.onData(t);
        const datagram = new Uint8Array(DATA_HEADER_SIZE + t.length);
        datagram.set(this.input.subarray(t.offset, t.offset + t.length), DATA_HEADER_SIZE);
        writeDataHeader(datagram, this.sender.session, t.seq);
        this.#put(true, datagram);
      }
    }
    for (const event of drainEvents(this.sender)) this.senderEvents.push({ at: this.now, event });
    const receiver = this.receiver;
    if (!receiver) return;
    for (let pass = 0; pass < 2; pass++) {
      for (let b = receiver.pollTransmit(this.now); b; b = receiver.pollTransmit(this.now)) {
        this.#put(false, b);
      }
      for (const event of drainEvents(receiver)) {
        this.receiverEvents.push({ at: this.now, event });
        if (event.type === "data") this.output.set(event.payload, event.offset);
        if (event.type === "fin") {
          const got = sha256(this.output);
          const ok = got.every((b, i) => b === event.digest[i]);
          receiver.complete(
            this.now,
            ok ? ReliableStatus.OK : ReliableStatus.DIGEST_MISMATCH,
            got,
            ok ? "OK" : "BAD",
          );
        }
      }
    }
  }

  #deliver(toReceiver: boolean, bytes: Uint8Array): void {
    if (!toReceiver) {
      this.lastDeliveredToSender = this.now;
      this.sender.handle(this.now, bytes);
      return;
    }
    const msg = decodeReliable(bytes);
    if (!this.receiver) {
      if (msg.type !== MsgType.HELLO) return;
      this.receiver = new ReliableReceiver(this.now, {
        session: msg.session,
        chunkSize: msg.chunkSize,
        size: msg.size,
        ...this.#receiverOptions,
      });
      return;
    }
    this.onReceiverInput(msg);
    this.receiver.handle(this.now, msg);
  }

  /** One driver iteration; false when nothing is left to happen. */
  step(): boolean {
    this.steps++;
    this.flush();
    let next = Infinity;
    for (const p of this.#queue) next = Math.min(next, p.at);
    const st = this.sender.pollTimeout(this.now);
    if (st !== undefined) next = Math.min(next, st);
    const rt = this.receiver?.pollTimeout();
    if (rt !== undefined) next = Math.min(next, rt);
    if (next === Infinity) return false;
    this.now = Math.max(this.now, next);
    this.#queue.sort((a, b) => a.at - b.at || a.order - b.order);
    while (this.#queue.length > 0 && this.#queue[0].at <= this.now) {
      const p = this.#queue.shift()!;
      if (!this.partitioned) this.#deliver(p.toReceiver, p.bytes);
    }
    this.sender.handleTimeout(this.now);
    this.receiver?.handleTimeout(this.now);
    this.flush();
    return true;
  }

  /** Steps until `done()` holds or nothing is left; fails after `maxSteps` (a hang). */
  runUntil(done: () => boolean, maxSteps = 50_000): void {
    const first = this.steps;
    while (!done()) {
      if (!this.step()) return;
      if (this.steps - first > maxSteps) {
        assert.fail(
          `no progress after ${maxSteps} steps; stuck at t=${this.now} in phase ${this.sender.phase}`,
        );
      }
    }
  }

  senderEnd(): { at: number; event: SenderEvent } | undefined {
    return this.senderEvents.find((e) => e.event.type === "done" || e.event.type === "failed");
  }
}

/** Drives a lone sender through the handshake and the data, up to its first FIN. */
function senderAtFin(size: number, chunkSize: number, digest: Uint8Array) {
  const sender = new ReliableSender(0, { session: 42, name: "f.bin", size, chunkSize });
  sender.setDigest(0, digest);
  const hello = controlMsg(sender.pollTransmit(0)) as HelloMsg;
  assert.equal(hello.type, MsgType.HELLO);
  sender.handle(10, accept(42));
  assert.deepEqual(drainEvents(sender), [{ type: "accepted", window: 4096 }]);
  let seqs = 0;
  for (let t = sender.pollTransmit(10); t; t = sender.pollTransmit(10)) {
    assert.equal(t.kind, "data");
    seqs++;
  }
  assert.equal(seqs, sender.chunks);
  sender.handle(20, ack(42, sender.chunks));
  assert.equal(sender.phase, "closing");
  const fin = controlMsg(sender.pollTransmit(20)) as FinMsg;
  assert.equal(fin.type, MsgType.FIN);
  return { sender, fin };
}

function done(session: number, bytes: number, digest: Uint8Array, status: number = ReliableStatus.OK) {
  return encodeReliable({
    type: MsgType.DONE,
    session,
    status,
    bytes,
    digest,
    duplicates: 0,
    acks: 1,
    message: "x",
  });
}

// ----------------------------------------------------------- handshake ----

describe("sender handshake", () => {
  test("HELLO is retried with exponential backoff capped at 500 ms, then the sender fails at the handshake timeout", () => {
    const start = 1000;
    const sender = new ReliableSender(start, {
      session: 7,
      name: "ünï.png",
      size: 5000,
      chunkSize: 1000,
      handshakeTimeoutMs: 3000,
      rtt: { initialRto: 100, minRto: 10, maxRto: 800 },
    });
    const helloTimes: number[] = [];
    let now = start;
    for (let i = 0; i < 100 && !sender.finished; i++) {
      for (let t = sender.pollTransmit(now); t; t = sender.pollTransmit(now)) {
        const hello = controlMsg(t) as HelloMsg;
        assert.deepEqual(hello, {
          type: MsgType.HELLO,
          session: 7,
          chunkSize: 1000,
          size: 5000,
          name: "ünï.png",
        });
        helloTimes.push(now - start);
      }
      const next = sender.pollTimeout(now);
      assert.ok(next !== undefined && Number.isFinite(next) && next > now, `deadline ${next} after ${now}`);
      now = next;
      sender.handleTimeout(now);
    }
    // Intervals 100, 200, 400 (RTO backoff), then 500 (the cap for HELLO/FIN repeats, below the 800 ms max RTO).
    assert.deepEqual(helloTimes, [0, 100, 300, 700, 1200, 1700, 2200, 2700]);
    assert.equal(now, start + 3000, "fails exactly at the handshake timeout");
    const events = drainEvents(sender);
    assert.equal(events.length, 1);
    assert.equal(events[0].type, "failed");
    assert.match((events[0] as { reason: string }).reason, /no answer from the receiver within 3 s/);
    assert.equal(sender.phase, "failed");
    assert.equal(sender.pollTimeout(now), undefined);
    assert.equal(sender.pollTransmit(now + 10_000), undefined);
    assert.equal(sender.stats.datagramsSent, 8);
  });

  test("the handshake failure names the right timeout when the clock starts at 0", () => {
    const sender = new ReliableSender(0, {
      session: 7,
      name: "a",
      size: 1,
      chunkSize: 1,
      handshakeTimeoutMs: 3000,
    });
    let now = 0;
    for (let i = 0; i < 100 && !sender.finished; i++) {
      while (sender.pollTransmit(now));
      now = sender.pollTimeout(now)!;
      sender.handleTimeout(now);
    }
    const [event] = drainEvents(sender);
    assert.equal(event?.type, "failed");
    assert.equal(now, 3000);
    assert.match((event as { reason: string }).reason, /within 3 s/);
  });

  test("a rejecting ACCEPT becomes a `failed` event with the reason and status", () => {
    for (
      const [status, message, expected] of [
        [ReliableStatus.REFUSED, "file too large: 9 GB > 1 GB", /file too large: 9 GB > 1 GB/],
        [ReliableStatus.BUSY, "", /status 4/],
        [ReliableStatus.UNSUPPORTED_VERSION, "version 1 only — désolé", /version 1 only — désolé/],
      ] as const
    ) {
      const sender = new ReliableSender(0, { session: 99, name: "a.png", size: 10_000, chunkSize: 1000 });
      controlMsg(sender.pollTransmit(0));
      sender.handle(3, accept(99, 0, status, message));
      const events = drainEvents(sender);
      assert.equal(events.length, 1);
      const [event] = events;
      assert.equal(event.type, "failed");
      assert.match((event as { reason: string }).reason, expected);
      assert.equal((event as { status?: number }).status, status);
      assert.equal(sender.phase, "failed");
      assert.equal(sender.pollTransmit(5), undefined, "no DATA after a rejection");
      assert.equal(sender.pollTimeout(5), undefined);
      // A later accepting ACCEPT does not revive it.
      sender.handle(6, accept(99));
      assert.deepEqual(drainEvents(sender), []);
      assert.equal(sender.pollTransmit(6), undefined);
    }
  });
});

// -------------------------------------------------- foreign and garbage ----

describe("datagrams that are not for this session", () => {
  test("the sender ignores garbage and foreign sessions (stats.ignored) and nothing changes", () => {
    const sender = new ReliableSender(0, {
      session: 1234,
      name: "a.bin",
      size: 20_000,
      chunkSize: 1000,
      idleTimeoutMs: 1000,
    });
    sender.setDigest(0, new Uint8Array(32));
    controlMsg(sender.pollTransmit(0));
    const handshakeDeadline = sender.pollTimeout(0);
    const random = seededRandom(5);
    const garbage: Uint8Array[] = [
      new Uint8Array(0),
      new Uint8Array([0xb7]),
      encodeClassicData(0, new Uint8Array(100)),
      encodeClassicEnd(),
      Uint8Array.from({ length: 64 }, () => Math.floor(random() * 256)),
      (() => {
        const d = accept(1234).slice();
        d[d.length - 1] ^= 4; // corrupted: checksum mismatch
        return d;
      })(),
      accept(1234).subarray(0, 15), // truncated
      accept(1235), // another session
      accept(0),
      encodeReliable({ type: MsgType.ABORT, session: 4321, status: 3, message: "not you" }),
    ];
    for (const d of garbage) sender.handle(50, d);
    assert.equal(sender.stats.ignored, garbage.length);
    assert.equal(sender.phase, "handshake");
    assert.deepEqual(drainEvents(sender), []);
    assert.equal(sender.pollTimeout(50), handshakeDeadline);

    // Now in transfer: foreign ACKs acknowledge nothing and do not count as hearing from the receiver.
    sender.handle(100, accept(1234));
    drainEvents(sender);
    let sent = 0;
    while (sender.pollTransmit(100)) sent++;
    assert.equal(sent, 20);
    const before = sender.stats.ignored;
    sender.handle(200, ack(999, 20, { ranges: [[0, 20]] }));
    sender.handle(200, done(999, 20_000, new Uint8Array(32)));
    sender.handle(200, encodeReliable({ type: MsgType.ABORT, session: 999, status: 3, message: "not you" }));
    assert.equal(sender.stats.ignored, before + 3);
    assert.equal(sender.cumulative, 0);
    assert.equal(sender.inFlight, 20);
    assert.equal(sender.stats.bytesAcked, 0);
    assert.deepEqual(drainEvents(sender), []);
    // The idle deadline is still counted from the last real datagram (t=100).
    let now = 200;
    for (let i = 0; i < 1000 && !sender.finished; i++) {
      while (sender.pollTransmit(now));
      now = sender.pollTimeout(now)!;
      sender.handle(now, ack(999, 1)); // foreign traffic keeps coming
      sender.handleTimeout(now);
    }
    assert.equal(sender.phase, "failed");
    assert.equal(now, 1100);
  });

  test("the sender ignores an ACK for chunks it never sent", () => {
    const sender = new ReliableSender(0, { session: 8, name: "a", size: 10_000, chunkSize: 1000 });
    controlMsg(sender.pollTransmit(0));
    sender.handle(10, accept(8));
    let sent = 0;
    while (sender.pollTransmit(10)) sent++;
    assert.equal(sent, 10);
    sender.handle(20, ack(8, 11));
    assert.equal(sender.stats.ignored, 1);
    assert.equal(sender.cumulative, 0);
    assert.equal(sender.inFlight, 10);
    assert.equal(sender.phase, "transfer");
  });

  test("the receiver ignores messages of another session and nothing changes", () => {
    const receiver = new ReliableReceiver(0, { session: 77, chunkSize: 100, size: 1000, idleTimeoutMs: 500 });
    const acceptMsg = decodeReliable(receiver.pollTransmit(0)!);
    assert.equal(acceptMsg.type, MsgType.ACCEPT);
    assert.equal(receiver.pollTransmit(0), undefined);
    const foreign: ReliableMsg[] = [
      { type: MsgType.DATA, session: 78, seq: 0, payload: new Uint8Array(100) },
      { type: MsgType.HELLO, session: 78, chunkSize: 100, size: 1000, name: "x" },
      { type: MsgType.FIN, session: 78, chunks: 10, size: 1000, digest: new Uint8Array(32) },
      { type: MsgType.ABORT, session: 78, status: 3, message: "no" },
    ];
    for (const msg of foreign) receiver.handle(100, msg);
    assert.deepEqual(drainEvents(receiver), []);
    assert.equal(receiver.pollTransmit(100), undefined);
    assert.equal(receiver.cumulative, 0);
    assert.equal(receiver.phase, "receiving");
    assert.deepEqual(receiver.stats, {
      chunks: 0,
      duplicates: 0,
      acksSent: 0,
      ignored: 0,
      forged: 0,
      resumedChunks: 0,
    });
    assert.equal(receiver.pollTimeout(), 500, "foreign traffic does not keep the session alive");

    // Our session, but not acceptable: wrong length, beyond the file, unexpected types.
    receiver.handle(200, { type: MsgType.DATA, session: 77, seq: 0, payload: new Uint8Array(99) });
    receiver.handle(200, { type: MsgType.DATA, session: 77, seq: 10, payload: new Uint8Array(100) });
    receiver.handle(200, { type: MsgType.ACK, session: 77, cumulative: 0, window: 1, latest: 0, ranges: [] });
    assert.equal(receiver.stats.ignored, 3);
    assert.deepEqual(drainEvents(receiver).filter((e) => e.type === "data"), []);
    assert.equal(receiver.cumulative, 0);
  });
});

// ---------------------------------------------------------- transfers ----

describe("transfers over a hand-driven link", () => {
  test("an empty file completes with HELLO, ACCEPT, FIN, DONE and no DATA", () => {
    const link = new Link({ size: 0, chunkSize: 1024 });
    assert.equal(link.sender.chunks, 0);
    link.runUntil(() => link.senderEnd() !== undefined);
    const end = link.senderEnd()!.event;
    assert.equal(end.type, "done");
    assert.equal((end as { ok: boolean }).ok, true);
    assert.equal((end as { bytes: number }).bytes, 0);
    assert.deepEqual((end as { digest: Uint8Array }).digest, sha256(new Uint8Array(0)));
    assert.deepEqual(link.fromSender.map((s) => s.msg.type), [MsgType.HELLO, MsgType.FIN]);
    assert.deepEqual(link.fromReceiver.map((s) => s.msg.type).filter((t) => t !== MsgType.ACK), [
      MsgType.ACCEPT,
      MsgType.DONE,
    ]);
    const fin = link.fromSender[1].msg as FinMsg;
    assert.equal(fin.chunks, 0);
    assert.equal(fin.size, 0);
    assert.equal(link.sender.stats.dataSent, 0);
    assert.equal(link.receiver!.stats.chunks, 0);
    assert.equal(link.receiver!.phase, "done");
  });

  test("the sender never has more than the receiver's window (8) beyond the cumulative point", () => {
    const window = 8;
    const link = new Link({ size: 150 * 200 + 77, chunkSize: 200, receiver: { window }, seed: 3 });
    let dataCount = 0;
    let acks = 0;
    let widest = 0;
    const violations: string[] = [];
    link.dropToReceiver = (msg) => msg.type === MsgType.DATA && ++dataCount % 6 === 0;
    link.dropToSender = (msg) => msg.type === MsgType.ACK && ++acks % 5 === 0;
    link.onData = (t) => {
      widest = Math.max(widest, t.seq - link.sender.cumulative);
      if (t.seq >= link.sender.cumulative + window) {
        violations.push(`sent ${t.seq} with cumulative ${link.sender.cumulative} at ${link.now}`);
      }
      if (link.sender.inFlight > window) violations.push(`${link.sender.inFlight} in flight at ${link.now}`);
    };
    link.onReceiverInput = (msg) => {
      if (msg.type === MsgType.DATA && msg.seq >= link.receiver!.cumulative + window) {
        violations.push(`received ${msg.seq} with cumulative ${link.receiver!.cumulative}`);
      }
    };
    link.runUntil(() => link.senderEnd() !== undefined);
    assert.deepEqual(violations, []);
    assert.equal(widest, window - 1, "the window was used in full");
    assert.equal(link.receiver!.stats.ignored, 0, "nothing arrived beyond the window");
    const end = link.senderEnd()!.event;
    assert.equal(end.type, "done");
    assert.equal((end as { ok: boolean }).ok, true);
    assert.deepEqual(link.output, link.input);
    assert.ok(link.sender.stats.retransmitted >= 25, "losses were repaired");
  });

  test("the sender's maxWindow bounds the chunks in flight, whatever the receiver's window", () => {
    const maxWindow = 8;
    const link = new Link({ size: 100 * 500, chunkSize: 500, sender: { maxWindow }, delayMs: 20 });
    let most = 0;
    link.onData = () => (most = Math.max(most, link.sender.inFlight));
    link.runUntil(() => link.senderEnd() !== undefined);
    assert.equal((link.senderEnd()!.event as { ok: boolean }).ok, true);
    assert.ok(most <= maxWindow, `${most} chunks in flight with maxWindow ${maxWindow}`);
  });

  test("FIN is retransmitted while DONE is lost, and a repeated FIN gets the same DONE", () => {
    const link = new Link({ size: 5 * 1000, chunkSize: 1000 });
    let dones = 0;
    link.dropToSender = (msg) => msg.type === MsgType.DONE && ++dones <= 2; // the first two DONEs are lost
    link.runUntil(() => link.senderEnd() !== undefined);
    const end = link.senderEnd()!.event;
    assert.equal(end.type, "done");
    assert.equal((end as { ok: boolean }).ok, true);
    const fins = link.fromSender.filter((s) => s.msg.type === MsgType.FIN);
    const doneDatagrams = link.fromReceiver.filter((s) => s.msg.type === MsgType.DONE);
    assert.equal(fins.length, 3);
    assert.equal(doneDatagrams.length, 3, "one DONE per FIN");
    for (const d of doneDatagrams) {
      assert.deepEqual(d.bytes, doneDatagrams[0].bytes, "the same DONE every time");
    }
    for (const f of fins) assert.deepEqual(f.msg, fins[0].msg);
    // Backoff: the second wait is twice the first.
    const first = fins[1].at - fins[0].at;
    const second = fins[2].at - fins[1].at;
    assert.ok(first > 2 * link.delayMs, `FIN retried after ${first} ms`);
    assert.ok(Math.abs(second - 2 * first) < 1e-9, `FIN waits ${first} then ${second} ms`);
    // A FIN arriving even later is still answered with the same DONE.
    link.receiver!.handle(link.now + 1, fins[0].msg);
    assert.deepEqual(link.receiver!.pollTransmit(link.now + 1), doneDatagrams[0].bytes);
  });

  test("the sender fails, without hanging, when the receiver vanishes mid-transfer", () => {
    const link = new Link({ size: 400 * 1000, chunkSize: 1000, sender: { idleTimeoutMs: 2000 } });
    link.onData = () => {
      if (link.sender.cumulative >= 30) link.partitioned = true; // the receiver's host goes away
    };
    link.runUntil(() => link.senderEnd() !== undefined, 5000);
    assert.ok(link.partitioned);
    const end = link.senderEnd()!;
    assert.equal(end.event.type, "failed");
    assert.match((end.event as { reason: string }).reason, /silent for 2 s/);
    assert.equal(end.at, link.lastDeliveredToSender + 2000, "fails at the idle timeout");
    assert.ok(link.sender.stats.timeouts >= 3, "kept retransmitting until then");
    assert.equal(link.sender.pollTimeout(link.now), undefined);
    assert.ok(
      link.sender.cumulative >= 30 && link.sender.cumulative < 400,
      `cumulative ${link.sender.cumulative}`,
    );
  });

  test("the sender fails, without hanging, when no DONE ever comes", () => {
    const link = new Link({ size: 4 * 1000, chunkSize: 1000, sender: { finTimeoutMs: 3000 } });
    link.dropToSender = (msg) => msg.type === MsgType.DONE;
    link.runUntil(() => link.senderEnd() !== undefined, 5000);
    const end = link.senderEnd()!;
    assert.equal(end.event.type, "failed");
    assert.match((end.event as { reason: string }).reason, /no confirmation from the receiver within 3 s/);
    const fins = link.fromSender.filter((s) => s.msg.type === MsgType.FIN);
    assert.ok(fins.length >= 3, `${fins.length} FINs`);
    assert.equal(end.at, fins[0].at + 3000, "fails at the FIN timeout");
    for (let i = 2; i < fins.length; i++) {
      assert.ok(fins[i].at - fins[i - 1].at >= fins[i - 1].at - fins[i - 2].at, "FIN intervals never shrink");
    }
    // The receiver did its part every time.
    assert.equal(link.fromReceiver.filter((s) => s.msg.type === MsgType.DONE).length, fins.length);
    assert.deepEqual(link.output, link.input);
  });
});

// -------------------------------------------------------------- timers ----

describe("timers", () => {
  test("the receiver expires after its idle timeout, counted from the last datagram", () => {
    const receiver = new ReliableReceiver(100, { session: 1, chunkSize: 10, size: 100, idleTimeoutMs: 1000 });
    receiver.pollTransmit(100);
    assert.equal(receiver.pollTimeout(), 1100);
    receiver.handle(600, { type: MsgType.DATA, session: 1, seq: 0, payload: new Uint8Array(10) });
    receiver.handleTimeout(1100);
    assert.equal(receiver.phase, "receiving");
    drainEvents(receiver);
    while (receiver.pollTransmit(602));
    assert.equal(receiver.pollTimeout(), 1600);
    receiver.handleTimeout(1599);
    assert.equal(receiver.phase, "receiving");
    receiver.handleTimeout(1600);
    assert.equal(receiver.phase, "closed");
    assert.equal(receiver.closed, true);
    assert.deepEqual(drainEvents(receiver), [{ type: "expired" }]);
    assert.equal(receiver.pollTimeout(), undefined);
    receiver.handle(1700, { type: MsgType.DATA, session: 1, seq: 1, payload: new Uint8Array(10) });
    assert.equal(receiver.pollTransmit(1700), undefined);
    assert.deepEqual(drainEvents(receiver), []);
  });

  test("a finished receiver lingers to answer FINs, then closes", () => {
    const receiver = new ReliableReceiver(0, { session: 1, chunkSize: 10, size: 10, lingerMs: 500 });
    receiver.pollTransmit(0);
    const digest = sha256(new Uint8Array(10));
    receiver.handle(1, { type: MsgType.DATA, session: 1, seq: 0, payload: new Uint8Array(10) });
    receiver.handle(2, { type: MsgType.FIN, session: 1, chunks: 1, size: 10, digest });
    const events = drainEvents(receiver);
    assert.deepEqual(events.map((e) => e.type), ["data", "fin"]);
    receiver.complete(3, ReliableStatus.OK, digest, "SUCCESS");
    const datagrams: Uint8Array[] = [];
    for (let d = receiver.pollTransmit(3); d; d = receiver.pollTransmit(3)) datagrams.push(d);
    const doneBytes = datagrams.find((d) => decodeReliable(d).type === MsgType.DONE)!;
    assert.ok(doneBytes);
    assert.equal(receiver.pollTimeout(), 503);
    receiver.handle(400, { type: MsgType.FIN, session: 1, chunks: 1, size: 10, digest });
    assert.deepEqual(receiver.pollTransmit(400), doneBytes);
    receiver.handleTimeout(503);
    assert.deepEqual(drainEvents(receiver), [{ type: "closed" }]);
    assert.equal(receiver.closed, true);
  });

  test("idle timeouts fire at the time pollTimeout names, also on a fractional clock", () => {
    // A driver sleeps until pollTimeout() and then calls handleTimeout() with
    // that very time; the idle check must then fire, or a virtual-time driver
    // spins forever at the same instant.
    const receiver = new ReliableReceiver(24.1, {
      session: 1,
      chunkSize: 10,
      size: 100,
      idleTimeoutMs: 1000,
    });
    receiver.pollTransmit(24.1);
    const at = receiver.pollTimeout()!;
    receiver.handleTimeout(at);
    assert.equal(receiver.phase, "closed", `receiver still ${receiver.phase} at its deadline ${at}`);

    const sender = new ReliableSender(0, {
      session: 2,
      name: "a",
      size: 3000,
      chunkSize: 1000,
      idleTimeoutMs: 1000,
    });
    sender.setDigest(0, new Uint8Array(32));
    controlMsg(sender.pollTransmit(0));
    sender.handle(24.1, accept(2));
    let now = 24.1;
    let spins = 0;
    for (let i = 0; i < 1000 && !sender.finished; i++) {
      while (sender.pollTransmit(now));
      const next = sender.pollTimeout(now)!;
      if (next <= now) spins++;
      now = Math.max(now, next);
      sender.handleTimeout(now);
    }
    assert.equal(
      sender.phase,
      "failed",
      `sender still ${sender.phase} at t=${now} after ${spins} idle wake-ups`,
    );
    assert.equal(spins, 0);
  });
});

// ---------------------------------------------------------------- DONE ----

describe("the sender's verdict", () => {
  test("DONE is ok only with status OK, the right size and the right digest", () => {
    const digest = sha256(fileOf(10_000, 9));
    const wrong = digest.slice();
    wrong[31] ^= 1;
    const cases: Array<[string, (size: number) => Uint8Array, boolean, number]> = [
      ["matching", (size) => done(42, size, digest), true, ReliableStatus.OK],
      ["wrong digest", (size) => done(42, size, wrong), false, ReliableStatus.OK],
      ["zero digest", (size) => done(42, size, new Uint8Array(32)), false, ReliableStatus.OK],
      ["wrong size", (size) => done(42, size - 1, digest), false, ReliableStatus.OK],
      ["mismatch status", (size) => done(42, size, digest, ReliableStatus.DIGEST_MISMATCH), false, 1],
      ["server error", (size) => done(42, size, digest, ReliableStatus.SERVER_ERROR), false, 3],
    ];
    for (const [name, make, ok, status] of cases) {
      const { sender, fin } = senderAtFin(10_000, 1000, digest);
      assert.deepEqual(fin.digest, digest);
      assert.equal(fin.chunks, 10);
      sender.handle(30, make(10_000));
      const events = drainEvents(sender);
      assert.equal(events.length, 1, name);
      const [event] = events;
      assert.equal(event.type, "done", name);
      assert.equal((event as { ok: boolean }).ok, ok, name);
      assert.equal((event as { status: number }).status, status, name);
      assert.equal(sender.phase, "done");
      assert.equal(sender.pollTransmit(10_000), undefined, `${name}: no more FINs`);
      assert.equal(sender.pollTimeout(10_000), undefined);
    }
  });

  test("a DONE before the sender has finished sending is not taken as the verdict", () => {
    const sender = new ReliableSender(0, { session: 42, name: "f", size: 5000, chunkSize: 1000 });
    sender.setDigest(0, sha256(new Uint8Array(5000)));
    controlMsg(sender.pollTransmit(0));
    sender.handle(5, accept(42));
    drainEvents(sender);
    while (sender.pollTransmit(5));
    sender.handle(6, done(42, 5000, sha256(new Uint8Array(5000))));
    assert.deepEqual(drainEvents(sender), []);
    assert.equal(sender.phase, "transfer");
  });
});

// ---------------------------------------------------------------- RTT ----

describe("RttEstimator (RFC 6298)", () => {
  test("SRTT, RTTVAR and RTO follow the RFC's arithmetic", () => {
    const rtt = new RttEstimator({ initialRto: 1000, minRto: 200, maxRto: 60_000 });
    assert.equal(rtt.samples, 0);
    assert.equal(rtt.rto, 1000, "initial RTO before any sample");
    assert.equal(rtt.srtt, 1000);
    let srtt = 0;
    let rttvar = 0;
    const samples = [100, 200, 50, 50, 400, 120];
    samples.forEach((r, i) => {
      if (i === 0) {
        srtt = r; // SRTT <- R
        rttvar = r / 2; // RTTVAR <- R/2
      } else {
        rttvar = (1 - 1 / 4) * rttvar + (1 / 4) * Math.abs(srtt - r); // with the old SRTT
        srtt = (1 - 1 / 8) * srtt + (1 / 8) * r;
      }
      rtt.sample(r);
      assert.ok(Math.abs(rtt.srtt - srtt) < 1e-9, `sample ${i}: srtt ${rtt.srtt} vs ${srtt}`);
      const rto = Math.min(60_000, Math.max(200, srtt + Math.max(1, 4 * rttvar)));
      assert.ok(Math.abs(rtt.rto - rto) < 1e-9, `sample ${i}: rto ${rtt.rto} vs ${rto}`);
      assert.equal(rtt.latest, r);
    });
    assert.equal(rtt.samples, samples.length);
    assert.equal(rtt.minRtt, 50);
    // Spot values: after 100 then 200, SRTT = 112.5, RTTVAR = 62.5, RTO = 362.5.
    const two = new RttEstimator({ initialRto: 1000, minRto: 1, maxRto: 60_000 });
    two.sample(100);
    assert.equal(two.rto, 300);
    two.sample(200);
    assert.equal(two.srtt, 112.5);
    assert.equal(two.rto, 362.5);
  });

  test("the RTO is clamped to its bounds, and invalid samples are ignored", () => {
    const rtt = new RttEstimator({ initialRto: 250, minRto: 25, maxRto: 2000 });
    rtt.sample(1);
    assert.equal(rtt.rto, 25);
    rtt.sample(-5);
    rtt.sample(NaN);
    rtt.sample(Infinity);
    assert.equal(rtt.samples, 1);
    const slow = new RttEstimator({ initialRto: 250, minRto: 25, maxRto: 2000 });
    slow.sample(5000);
    assert.equal(slow.rto, 2000);
  });

  test("backoff doubles the RTO up to the maximum and a new sample resets it", () => {
    const rtt = new RttEstimator({ initialRto: 1000, minRto: 100, maxRto: 5000 });
    rtt.sample(100); // RTO 300
    assert.equal(rtt.rto, 300);
    const seen = [rtt.rto];
    for (let i = 0; i < 8; i++) {
      rtt.backOff();
      seen.push(rtt.rto);
    }
    assert.deepEqual(seen, [300, 600, 1200, 2400, 4800, 5000, 5000, 5000, 5000]);
    rtt.sample(100); // SRTT 100, RTTVAR 37.5
    assert.equal(rtt.rto, 250);
    rtt.backOff();
    assert.equal(rtt.rto, 500, "backoff starts again from the new RTO");
    // Before any sample the initial RTO backs off too.
    const fresh = new RttEstimator({ initialRto: 250, minRto: 25, maxRto: 2000 });
    fresh.backOff();
    fresh.backOff();
    assert.equal(fresh.rto, 1000);
  });
});

// --------------------------------------------------------- rate control ----

/**
 * Feeds a RateController as a path with no bottleneck would: datagrams leave
 * at the current rate, one ACK per `perAck` datagrams, a fraction of them
 * lost. Returns the rate after each interval end (each change of rate).
 */
function feed(
  rc: RateController,
  options: {
    from: number;
    until: number;
    srtt: number;
    datagram: number;
    loss: (t: number) => number;
    perAck?: number;
    random?: () => number;
  },
): { now: number; changes: Array<{ at: number; from: number; to: number; cut: boolean }> } {
  const perAck = options.perAck ?? 16;
  const changes: Array<{ at: number; from: number; to: number; cut: boolean }> = [];
  let now = options.from;
  let owed = 0;
  while (now < options.until) {
    now += (perAck * options.datagram * 1000) / rc.rate;
    let lost = 0;
    if (options.random) {
      for (let k = 0; k < perAck; k++) if (options.random() < options.loss(now)) lost++;
    } else {
      owed += perAck * options.loss(now); // steady: exactly the fraction, spread evenly
      lost = Math.min(perAck, Math.floor(owed + 1e-9));
      owed -= lost;
    }
    const before = rc.rate;
    const events = rc.congestionEvents;
    rc.onFeedback(now, perAck - lost, (perAck - lost) * options.datagram, lost, options.srtt);
    if (rc.rate !== before) {
      changes.push({ at: now, from: before, to: rc.rate, cut: rc.congestionEvents > events });
    }
  }
  return { now, changes };
}

describe("RateController", () => {
  test("under a steady 10% random loss the rate never falls and keeps growing", () => {
    const rc = new RateController(0, { datagramBytes: 1412, initialRate: 200e3, maxRate: 100e6 });
    const { changes } = feed(rc, { from: 0, until: 2000, srtt: 10, datagram: 1412, loss: () => 0.1 });
    assert.ok(changes.length >= 8, `${changes.length} rate changes`);
    for (const c of changes) assert.ok(c.to > c.from, `rate fell from ${c.from} to ${c.to} at ${c.at} ms`);
    assert.equal(rc.congestionEvents, 0);
    assert.equal(rc.rate, 100e6, "grew to the maximum");
    assert.ok(Math.abs(rc.baselineLoss - 0.1) < 0.01, `baseline ${rc.baselineLoss}`);
  });

  test("after startup, steady 10% loss still lets the rate grow every interval", () => {
    const rc = new RateController(0, { datagramBytes: 1412, initialRate: 4e6, maxRate: 100e6 });
    rc.onTimeout(); // leaves startup
    assert.equal(rc.inStartup, false);
    const start = rc.rate;
    const { changes } = feed(rc, { from: 0, until: 2000, srtt: 10, datagram: 1412, loss: () => 0.1 });
    assert.ok(changes.length >= 8, `${changes.length} rate changes`);
    for (const c of changes) assert.ok(c.to > c.from, `rate fell from ${c.from} to ${c.to} at ${c.at} ms`);
    assert.equal(rc.inStartup, false);
    assert.equal(rc.congestionEvents, 1, "only the timeout");
    assert.equal(rc.rate, 100e6, `rate ${rc.rate} from ${start}`);
  });

  test("Bernoulli 10% loss is mostly not mistaken for congestion", () => {
    const maxRate = 100e6;
    const rc = new RateController(0, { datagramBytes: 1412, initialRate: 4e6, maxRate });
    rc.onTimeout();
    const random = seededRandom(11);
    // Time-weighted mean rate over the second half of 3 s of random loss.
    let weighted = 0;
    let last = 0;
    let rate = rc.rate;
    const { changes } = feed(rc, { from: 0, until: 3000, srtt: 10, datagram: 1412, loss: () => 0.1, random });
    for (const c of changes) {
      if (c.at > 1500) weighted += rate * (c.at - Math.max(last, 1500));
      last = Math.max(last, c.at);
      rate = c.to;
    }
    weighted += rate * (3000 - Math.max(last, 1500));
    const mean = weighted / 1500;
    const cuts = changes.filter((c) => c.cut).length;
    assert.ok(mean >= 0.85 * maxRate, `mean rate ${mean} with ${cuts} cuts`);
    assert.ok(cuts <= 10, `${cuts} cuts`);
  });

  test("loss that jumps from 0 to 40% cuts the rate", () => {
    const rc = new RateController(0, { datagramBytes: 1412, initialRate: 8e6, maxRate: 50e6 });
    let { now } = feed(rc, { from: 0, until: 2000, srtt: 10, datagram: 1412, loss: () => 0 });
    assert.equal(rc.congestionEvents, 0);
    assert.equal(rc.rate, 50e6);
    const before = rc.rate;
    const after = feed(rc, { from: now, until: now + 100, srtt: 10, datagram: 1412, loss: () => 0.4 });
    now = after.now;
    assert.ok(rc.congestionEvents >= 1, "congestion detected");
    const firstCut = after.changes.find((c) => c.cut)!;
    assert.ok(firstCut.to < before, `cut from ${before} to ${firstCut.to}`);
    assert.ok(firstCut.to >= 0.5 * firstCut.from, "a cut is at most a halving");
    assert.ok(rc.rate < 0.75 * before, `rate ${rc.rate} after the jump`);
  });

  test("a steady loss that persists stops counting as congestion, at low datagram rates too", () => {
    // 4 KB datagrams at ≤ 2 MB/s: monitor intervals of ~200 ms hold 50-100
    // datagrams. A clean period, then 10% random loss for 10 s: the loss may
    // be taken for congestion at first, but it persists whatever the rate, so
    // (rate_control.ts) it must become the baseline and stop cutting.
    for (const maxRate of [8e6, 2e6]) {
      const rc = new RateController(0, { datagramBytes: 4112, initialRate: maxRate, maxRate });
      const clean = feed(rc, { from: 0, until: 3000, srtt: 10, datagram: 4112, loss: () => 0, perAck: 1 });
      assert.equal(rc.rate, maxRate);
      const lossy = feed(rc, {
        from: clean.now,
        until: clean.now + 10_000,
        srtt: 10,
        datagram: 4112,
        loss: () => 0.1,
        perAck: 1,
      });
      const late = lossy.changes.filter((c) => c.at > clean.now + 5000);
      const lateCuts = late.filter((c) => c.cut).length;
      assert.equal(
        lateCuts,
        0,
        `max ${maxRate}: ${lateCuts} cuts in the last 5 s of steady loss, rate now ${rc.rate}`,
      );
      assert.ok(rc.rate >= 0.5 * maxRate, `max ${maxRate}: rate fell to ${rc.rate}`);
    }
  });

  test("pacing: a burst, then datagrams at the rate", () => {
    const rc = new RateController(0, { initialRate: 1e6, burstBytes: 10_000, datagramBytes: 1000 });
    let sent = 0;
    while (rc.canSend(0, 1000)) {
      rc.onSent(0, 1000);
      sent++;
    }
    assert.equal(sent, 10);
    const next = rc.nextSendTime(0, 1000);
    assert.ok(Math.abs(next - 1) < 0.01, `next send at ${next} ms`); // 1000 bytes at 1 MB/s
    assert.equal(rc.canSend(next - 0.1, 1000), false);
    assert.equal(rc.canSend(next, 1000), true);
  });
});

// -------------------------------------------------- handshake gate ----

describe("HandshakeGate: the keyed handshake with bounded state", () => {
  const psk = new TextEncoder().encode("gate test key, long enough");
  let counter = 0;
  const nonces = () => {
    const n = new Uint8Array(32);
    new DataView(n.buffer).setUint32(0, ++counter);
    return n;
  };
  const keyedHello = (session: number, nonce = nonces()) => {
    const bytes = encodeReliable({
      type: MsgType.HELLO,
      session,
      chunkSize: 1000,
      size: 5000,
      name: "a.bin",
      nonce,
    });
    return { bytes, msg: decodeReliable(bytes) as HelloMsg, nonce };
  };
  /** The client's side: checks the CHALLENGE and returns its AUTH. */
  const answer = (hello: { bytes: Uint8Array; nonce: Uint8Array }, challenge: Uint8Array, key = psk) => {
    const c = decodeReliable(challenge) as ChallengeMsg;
    assert.equal(c.type, MsgType.CHALLENGE);
    assert.ok(
      verifyHandshakeProof(psk, "server", hello.nonce, c.nonce, hello.bytes, c.proof),
      "server proof",
    );
    const proof = handshakeProof(key, "client", hello.nonce, c.nonce, hello.bytes);
    return decodeReliable(encodeReliable({ type: MsgType.AUTH, session: c.session, proof })) as AuthMsg;
  };

  test("a HELLO flood keeps at most maxPending handshakes, opens nothing, and a real client still gets in", () => {
    const gate = new HandshakeGate({ psk, nonce: nonces, maxPending: 1024, pendingTtlMs: 5000 });
    for (let i = 0; i < 100_000; i++) {
      const h = keyedHello(i);
      const verdict = gate.hello(i / 100, h.msg, h.bytes, `10.0.${i >> 8 & 255}.${i & 255}:4000`);
      assert.equal(verdict.kind, "reply");
      assert.ok(gate.pending <= 1024);
    }
    assert.equal(gate.pending, 1024);
    const real = keyedHello(0xabcdef);
    const challenge = gate.hello(1000, real.msg, real.bytes, "192.0.2.1:5000");
    assert.ok(challenge.kind === "reply");
    const verdict = gate.auth(1000.5, answer(real, challenge.bytes), "192.0.2.1:5000");
    assert.equal(verdict.kind, "open");
  });

  test("pending handshakes expire after their time to live", () => {
    const gate = new HandshakeGate({ psk, nonce: nonces, pendingTtlMs: 5000 });
    const h = keyedHello(1);
    const challenge = gate.hello(0, h.msg, h.bytes, "p");
    assert.ok(challenge.kind === "reply");
    assert.equal(gate.pending, 1);
    const late = gate.auth(5000, answer(h, challenge.bytes), "p");
    assert.equal(late.kind, "drop");
    assert.equal(gate.pending, 0);
  });

  test("unanswered CHALLENGEs are reported once, by peer, with a bounded list", () => {
    const gate = new HandshakeGate({ psk, nonce: nonces, pendingTtlMs: 5000 });
    assert.equal(gate.nextExpiry, Infinity);
    for (let i = 0; i < 20; i++) {
      const h = keyedHello(100 + i);
      gate.hello(i, h.msg, h.bytes, `10.0.0.${i % 10}:4000`);
    }
    const answered = keyedHello(500);
    const challenge = gate.hello(30, answered.msg, answered.bytes, "192.0.2.9:1");
    assert.ok(challenge.kind === "reply");
    assert.equal(gate.auth(31, answer(answered, challenge.bytes), "192.0.2.9:1").kind, "open");
    assert.equal(gate.nextExpiry, 5000, "the oldest waiting handshake");
    assert.deepEqual(gate.takeUnanswered(4999), { peers: [], total: 0 }, "nothing expired yet");
    const report = gate.takeUnanswered(6000);
    assert.equal(report.total, 20);
    assert.equal(report.peers.length, 8, "at most 8 peers named");
    assert.ok(report.peers.every((p) => /^10\.0\.0\.\d:4000$/.test(p)));
    assert.ok(!report.peers.includes("192.0.2.9:1"), "a completed handshake is not unanswered");
    assert.deepEqual(gate.takeUnanswered(7000), { peers: [], total: 0 }, "each reported once");
  });

  test("a repeated HELLO gets the same CHALLENGE; another address or session gets its own", () => {
    const gate = new HandshakeGate({ psk, nonce: nonces });
    const h = keyedHello(7);
    const a = gate.hello(0, h.msg, h.bytes, "p:1");
    const b = gate.hello(10, h.msg, h.bytes, "p:1");
    const c = gate.hello(20, h.msg, h.bytes, "p:2");
    assert.ok(a.kind === "reply" && b.kind === "reply" && c.kind === "reply");
    assert.deepEqual(b.bytes, a.bytes);
    assert.notDeepEqual(c.bytes, a.bytes);
    // The AUTH is bound to its address: the one for p:1 opens nothing at p:2.
    const auth = answer(h, a.bytes);
    assert.equal(gate.auth(30, auth, "p:2").kind, "reply"); // wrong proof there: refused
    const opened = gate.auth(31, auth, "p:1");
    assert.ok(opened.kind === "open" && opened.keys);
    assert.deepEqual(opened.keys.authProof, auth.proof);
    assert.deepEqual(opened.hello, h.msg);
  });

  test("a wrong proof is refused (and can be repeated); the right one then still opens", () => {
    const gate = new HandshakeGate({ psk, nonce: nonces });
    const h = keyedHello(9);
    const challenge = gate.hello(0, h.msg, h.bytes, "p");
    assert.ok(challenge.kind === "reply");
    const wrong = answer(h, challenge.bytes, new TextEncoder().encode("not the key at all"));
    for (let i = 0; i < 2; i++) {
      const verdict = gate.auth(1 + i, wrong, "p");
      assert.ok(verdict.kind === "reply" && verdict.refusal === WRONG_KEY);
      assert.equal((decodeReliable(verdict.bytes) as AcceptMsg).status, ReliableStatus.REFUSED);
    }
    assert.equal(gate.auth(3, answer(h, challenge.bytes), "p").kind, "open");
  });

  test("keyless HELLOs at a keyed gate, and keyed ones at a keyless gate, are refused without state", () => {
    const keyed = new HandshakeGate({ psk, nonce: nonces });
    const plain = encodeReliable({ type: MsgType.HELLO, session: 1, chunkSize: 1, size: 1, name: "x" });
    const refused = keyed.hello(0, decodeReliable(plain) as HelloMsg, plain, "p");
    assert.ok(refused.kind === "reply" && refused.refusal === KEY_REQUIRED);
    assert.equal(keyed.pending, 0);
    const keyless = new HandshakeGate({ nonce: nonces });
    const h = keyedHello(2);
    const verdict = keyless.hello(0, h.msg, h.bytes, "p");
    assert.ok(verdict.kind === "reply" && verdict.refusal === SERVER_KEYLESS);
    assert.equal(keyless.hello(0, decodeReliable(plain) as HelloMsg, plain, "p").kind, "open");
  });
});
