/**
 * The reliable UDP client driver: a thin loop around {@linkcode ReliableSender}
 * that owns the socket, the clock, the random session id and the file.
 * First transmissions read the file in order (and hash it on the way, so the
 * SHA-256 is ready when the last chunk leaves); retransmissions read chunks
 * back by position. Memory stays at one datagram buffer plus the core's
 * per-window state.
 *
 * Under a key the driver gives the core a fresh client nonce and sends what
 * it seals. With `resume`, when the server offers chunks it already holds,
 * the driver reads the file once, hashing it whole (for FIN) and the offered
 * ranges (to compare with the server's digest), and tells the core.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { randomNonce } from "../shared/auth.ts";
import { CliError, ExitCode, usageError, withContext } from "../shared/errors.ts";
import { InputFile, ReadAheadReader, sentName } from "../shared/files.ts";
import { mbps, type ReliableSummary, Stopwatch } from "../shared/metrics.ts";
import { bytesEqual, toHex } from "../shared/protocol.ts";
import {
  DATA_HEADER_SIZE,
  MAX_RELIABLE_CHUNK,
  MAX_TAGGED_RELIABLE_CHUNK,
  ReliableStatus,
} from "../shared/protocol_reliable.ts";
import { type DatagramConn, type NetAddr, runtime } from "../shared/runtime.ts";
import { ReliableSender, type SenderEvent } from "./reliable_sender.ts";
import { isFrom, openClientSocket } from "./send.ts";

/** Options for {@linkcode sendFileReliable}. */
export interface ReliableSendOptions {
  /** Server address. */
  host: string;
  /** Server port. */
  port: number;
  /** Path of the file to send. */
  file: string;
  /** Payload bytes per datagram. */
  buffer: number;
  /** Milliseconds to wait for the handshake and for the final confirmation. Default 5000. */
  timeoutMs?: number;
  /** Fixed pacing rate in bytes per second instead of adaptive rate control. */
  fixedRate?: number;
  /** Pre-shared key: authenticate the server and every datagram. */
  psk?: Uint8Array;
  /** Ask the server to resume an earlier, unfinished transfer of this file. */
  resume?: boolean;
  /** Progress callback. */
  onEvent?: (event: ReliableClientEvent) => void;
}

/** The reliable client's summary (`resumedBytes` set with `resume`, `authenticated` with a key). */
export type ReliableSendSummary = ReliableSummary;

/** What the reliable client reports while it works. */
export type ReliableClientEvent =
  | { type: "preparing"; file: string; bytes: number; host: string; port: number; buffer: number }
  | { type: "connected"; host: string; port: number }
  | { type: "progress"; bytes: number; total: number; seconds: number }
  | { type: "sent"; file: string; packets: number }
  | { type: "response"; text: string }
  | { type: "resumed"; bytes: number };

/** Datagrams per send batch. */
const BATCH = 32;
/** No progress for this long ends a transfer, whatever else happens. */
const STALL_MS = 30_000;

/** Resolves on the next event-loop turn, letting socket callbacks run. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Sends `options.file` with the reliable protocol and returns the summary.
 * Throws {@linkcode CliError} for local problems; a refusal, a timeout or a
 * digest mismatch is a summary with a non-success status.
 */
export async function sendFileReliable(options: ReliableSendOptions): Promise<ReliableSendSummary> {
  const { port, buffer } = options;
  const maxChunk = options.psk ? MAX_TAGGED_RELIABLE_CHUNK : MAX_RELIABLE_CHUNK;
  if (!Number.isInteger(buffer) || buffer < 1 || buffer > maxChunk) {
    throw usageError(`--buffer must be 1-${maxChunk} for reliable UDP${options.psk ? " with a key" : ""}`);
  }
  const emit = options.onEvent ?? (() => {});
  const timeoutMs = options.timeoutMs ?? 5000;
  const input = InputFile.open(options.file);
  let socket: DatagramConn | undefined;
  try {
    const opened = await openClientSocket(options.host, port);
    socket = opened.socket;
    const server = opened.server;
    emit({ type: "preparing", file: options.file, bytes: input.size, host: options.host, port, buffer });
    const watch = new Stopwatch();
    const clock = () => performance.now();
    const session = crypto.getRandomValues(new Uint32Array(1))[0];
    const sender = new ReliableSender(clock(), {
      session,
      name: sentName(options.file),
      size: input.size,
      chunkSize: buffer,
      handshakeTimeoutMs: timeoutMs,
      // Silence in mid-transfer is survivable for a while: with the RTO capped
      // at 1 s, 20 s allow 20 retransmissions, enough at 30% loss each way.
      finTimeoutMs: Math.max(timeoutMs, 20_000),
      idleTimeoutMs: Math.max(timeoutMs, 20_000),
      rate: options.fixedRate ? { fixedRate: options.fixedRate } : undefined,
      ...(options.psk ? { psk: options.psk, clientNonce: randomNonce() } : {}),
      resume: options.resume,
    });
    const result = await drive(sender, socket, server, input, watch, emit);
    const seconds = watch.elapsed();
    const stats = sender.stats;
    const confirmed = result.type === "done" && result.ok ? input.size : 0;
    // Throughput counts what this run delivered, not what the server already held.
    const delivered = confirmed === 0 ? 0 : confirmed - stats.resumedBytes;
    const status = result.type === "done"
      ? (result.ok ? "success" : "mismatch")
      : result.status === ReliableStatus.REFUSED || result.status === ReliableStatus.BUSY
      ? "refused"
      : /no answer|silent|no confirmation/.test(result.reason)
      ? "no-reply"
      : "error";
    const response = result.type === "done" ? result.message : result.reason;
    if (result.type === "done" || result.status !== undefined) emit({ type: "response", text: response });
    return {
      transport: "udp",
      mode: "reliable",
      file: options.file,
      bytes: input.size,
      buffer,
      packets: sender.chunks - stats.resumedChunks,
      seconds,
      mbps: mbps(delivered, seconds),
      confirmedBytes: confirmed,
      status,
      response,
      sha256: result.type === "done" ? toHex(result.digest) : undefined,
      verified: result.type === "done" ? result.ok : false,
      datagrams: stats.datagramsSent,
      retransmitted: stats.retransmitted,
      duplicates: result.type === "done" ? result.duplicates : 0,
      acks: stats.acksReceived,
      lossPercent: stats.dataSent === 0 ? 0 : (100 * stats.lost) / stats.dataSent,
      srttMs: sender.hasRttSample ? sender.srtt : 0,
      goodputMbps: mbps(delivered, seconds),
      wireMbps: mbps(stats.wireBytes, seconds),
      overheadPercent: delivered === 0 ? 0 : (100 * (stats.wireBytes - delivered)) / delivered,
      resumedBytes: options.resume ? stats.resumedBytes : undefined,
      authenticated: options.psk ? result.type === "done" && result.ok : undefined,
    };
  } finally {
    try {
      socket?.close();
    } catch { /* already closed */ }
    input.close();
  }
}

/** Runs the sender to its end: `done` or `failed`. */
async function drive(
  sender: ReliableSender,
  socket: DatagramConn,
  server: NetAddr,
  input: InputFile,
  watch: Stopwatch,
  emit: (event: ReliableClientEvent) => void,
): Promise<SenderEvent & { type: "done" | "failed" }> {
  const clock = () => performance.now();
  let wake: (() => void) | undefined;
  let socketError: unknown;
  // One receive loop for the socket's lifetime (never race receive() against a timer).
  const receiving = (async () => {
    for (;;) {
      let batch: Array<[Uint8Array, NetAddr]>;
      try {
        batch = await socket.receiveBatch();
      } catch (error) {
        socketError = error;
        break;
      }
      const now = clock();
      for (const [datagram, from] of batch) {
        if (isFrom(server, from)) sender.handle(now, datagram);
      }
      const w = wake;
      wake = undefined;
      w?.();
    }
  })();
  const hash = createHash("sha256");
  const reader = new ReadAheadReader(input);
  // Datagrams go out in batches (one sendMany: one system call on Bun); each
  // slot of the batch has its own buffer, reused once the batch is sent.
  const pool = Array.from({ length: BATCH }, () => new Uint8Array(sender.dataOverhead + sender.chunkSize));
  const batch: Uint8Array[] = [];
  // A send the kernel refused (a firewall dropping some packets, a full
  // queue) loses those datagrams, not the transfer: the core retransmits.
  let unsent = 0;
  const sendBatch = async () => {
    let sent: number;
    try {
      sent = await socket.sendMany(batch, server);
    } catch (error) {
      throw withContext("sending", error);
    }
    unsent += batch.length - sent;
    batch.length = 0;
  };
  let hashedChunks = 0;
  /** Set once the whole file was hashed up front (for a resume offer): no hashing on the way. */
  let digestKnown = false;
  /** The outcome of hashing the file for a resume offer, once known. */
  let resumeCheck:
    | { file: Uint8Array; held: Uint8Array; offered: Uint8Array }
    | { error: unknown }
    | undefined;
  if (sender.chunks === 0) sender.setDigest(clock(), new Uint8Array(hash.digest()));
  let connected = false;
  let lastProgress = 0;
  // A last line of defence against a stuck loop or an await that never
  // settles: no acknowledged byte and no phase change for STALL_MS ends the
  // transfer with an error (the core's own timeouts normally end it sooner).
  let stalled = false;
  let spins = 0;
  let checkedBytes = 0; // hashed for a resume offer: progress too
  const mark = () => `${sender.phase}:${sender.stats.bytesAcked}:${checkedBytes}`;
  let progressMark = mark();
  let progressAt = clock();
  const watchdog = setInterval(() => {
    const now = mark();
    if (now !== progressMark) {
      progressMark = now;
      progressAt = clock();
    } else if (clock() - progressAt > STALL_MS) {
      stalled = true;
      const w = wake;
      wake = undefined;
      w?.();
      try {
        socket.close();
      } catch { /* already closed */ }
    }
  }, 1000);
  try {
    for (;;) {
      if (stalled) {
        throw new CliError(`the transfer stalled: no progress for ${STALL_MS / 1000} s`, ExitCode.NETWORK);
      }
      if (resumeCheck) {
        if ("error" in resumeCheck) throw resumeCheck.error;
        digestKnown = true;
        sender.setDigest(clock(), resumeCheck.file);
        const keep = bytesEqual(resumeCheck.held, resumeCheck.offered);
        sender.resolveResume(clock(), keep);
        if (keep) emit({ type: "resumed", bytes: sender.stats.resumedBytes });
        resumeCheck = undefined;
      }
      let now = clock();
      sender.handleTimeout(now);
      let sent = 0;
      for (let t = sender.pollTransmit(now); t; t = sender.pollTransmit(now)) {
        if (t.kind === "control") {
          batch.push(t.bytes);
        } else {
          const wire = pool[batch.length].subarray(0, sender.dataOverhead + t.length);
          const payload = wire.subarray(DATA_HEADER_SIZE, DATA_HEADER_SIZE + t.length);
          if (reader.readAt(payload, t.offset) !== t.length) {
            throw new CliError(`'${input.path}' shrank while it was being sent`, ExitCode.FILE);
          }
          if (!digestKnown && !t.retransmit && t.seq === hashedChunks) {
            hash.update(payload);
            hashedChunks++;
            if (hashedChunks === sender.chunks) sender.setDigest(now, new Uint8Array(hash.digest()));
          }
          sender.sealData(wire, t.seq);
          batch.push(wire);
        }
        if (batch.length === BATCH) {
          await sendBatch();
          now = clock();
          // Let ACKs in now and then: Bun's sends are synchronous and Deno's resolve quickly.
          if (++sent % 4 === 0) await nextTurn();
        }
      }
      if (batch.length > 0) await sendBatch();
      for (let e = sender.pollEvent(); e; e = sender.pollEvent()) {
        if (e.type === "accepted" && !connected) {
          connected = true;
          emit({ type: "connected", host: server.hostname, port: server.port });
        } else if (e.type === "resume-offer") {
          // Hash in the background: the loop keeps running (the core sends keep-alives meanwhile).
          const offered = e.digest;
          hashForResume(input, sender.chunkSize, e.ranges, (bytes) => checkedBytes = bytes).then((hashes) => {
            resumeCheck = { ...hashes, offered };
          }, (error) => {
            resumeCheck = { error };
          }).finally(() => {
            const w = wake;
            wake = undefined;
            w?.();
          });
        } else if (e.type === "done" || e.type === "failed") {
          if (e.type === "done") {
            emit({ type: "sent", file: input.path, packets: sender.chunks - sender.stats.resumedChunks });
          }
          if (e.type === "failed" && unsent > 0) {
            // Say why the server may never have heard from us.
            const why = "refused by this host: a firewall rule or a full send queue";
            return { ...e, reason: `${e.reason} (${unsent} datagrams could not be sent, ${why})` };
          }
          return e;
        }
      }
      if (socketError) throw withContext("receiving", socketError);
      if (clock() - lastProgress > 250) {
        lastProgress = clock();
        emit({
          type: "progress",
          bytes: sender.stats.bytesAcked + sender.stats.resumedBytes,
          total: sender.size,
          seconds: watch.elapsed(),
        });
      }
      const deadline = sender.pollTimeout(clock());
      const delay = deadline === undefined ? 50 : deadline - clock();
      if (delay <= 0) {
        // Due now: go round again, but let timers and I/O run now and then.
        if (++spins % 64 === 0) await nextTurn();
        continue;
      }
      if (delay < 1) {
        // The pacer's sub-millisecond gaps: sleep (not spin, which would steal
        // the CPU the receiver and the kernel's network path need) and let
        // pending I/O run; how precisely depends on the runtime.
        await runtime.pause(delay);
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    clearInterval(watchdog);
    try {
      socket.close();
    } catch { /* already closed */ }
    await receiving;
  }
}

/**
 * Reads the file once (yielding to the event loop every 16 MiB) and returns
 * its SHA-256 and the SHA-256 of the bytes of the chunk `ranges`, range
 * after range: what a resume offer's digest is compared with.
 */
async function hashForResume(
  input: InputFile,
  chunkSize: number,
  ranges: Array<[number, number]>,
  onProgress: (bytes: number) => void,
): Promise<{ file: Uint8Array; held: Uint8Array }> {
  const file = createHash("sha256");
  const held = createHash("sha256");
  const block = new Uint8Array(1 << 20);
  let r = 0;
  for (let position = 0, blocks = 1; position < input.size; blocks++) {
    const n = input.readAt(block.subarray(0, Math.min(block.length, input.size - position)), position);
    if (n === 0) throw new CliError(`'${input.path}' shrank while it was being read`, ExitCode.FILE);
    const bytes = block.subarray(0, n);
    file.update(bytes);
    const end = position + n;
    // The parts of the held ranges inside this block, in order.
    while (r < ranges.length) {
      const from = ranges[r][0] * chunkSize;
      const to = Math.min(input.size, ranges[r][1] * chunkSize);
      const a = Math.max(from, position);
      const b = Math.min(to, end);
      if (a < b) held.update(bytes.subarray(a - position, b - position));
      if (to > end) break;
      r++;
    }
    position = end;
    if (blocks % 16 === 0) {
      onProgress(position);
      await nextTurn();
    }
  }
  return { file: new Uint8Array(file.digest()), held: new Uint8Array(held.digest()) };
}
