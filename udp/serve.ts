/**
 * The UDP receiver. One socket serves both formats, told apart by the first
 * byte: reliable datagrams (`0xB7…`) go to {@linkcode ReliableSessions};
 * everything else is classic.
 *
 * Classic sessions are keyed by the sender's address; each spools its
 * payloads to disk, and ends at the `-1` marker or after `idleTimeoutMs` of
 * silence (a lost marker). The reply and the saved name tell the truth: a
 * file with missing packets is saved under an `incomplete` name and the reply
 * says what is missing.
 *
 * With a pre-shared key, reliable sessions must authenticate (see
 * `reliable_serve.ts`), and classic datagrams, which cannot, create nothing:
 * each sender gets one short text reply saying a key is required.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { withContext } from "../shared/errors.ts";
import { checkOutputDir, receivedName, ReceivingFile } from "../shared/files.ts";
import { Stopwatch } from "../shared/metrics.ts";
import {
  decodeClassicDatagram,
  formatClassicUdpReply,
  formatRanges,
  isCompleteOutcome,
  ProtocolError,
  toHex,
} from "../shared/protocol.ts";
import { type DatagramConn, type NetAddr, runtime } from "../shared/runtime.ts";
import { DAY_MS, DEFAULT_KEEP_PARTIALS_MS, keepPartialsPruned } from "../shared/partials.ts";
import { formatAddr, type ServerEvent, type ServerHandle } from "../shared/server_events.ts";
import { isReliableDatagram } from "../shared/protocol_reliable.ts";
import { ClassicAssembler } from "./classic_assembler.ts";
import { ReliableSessions } from "./reliable_serve.ts";

/** Options for {@linkcode serveUdp}. */
export interface UdpServeOptions {
  /** Address to bind. */
  host: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /** Expected payload size (accepted for compatibility; whole datagrams are always read). */
  buffer: number;
  /** Folder where received files are saved. */
  outDir: string;
  /** Stop after the first session ends. */
  once?: boolean;
  /** End a session after this many milliseconds without a datagram. */
  idleTimeoutMs?: number;
  /** Largest file accepted per session, in bytes. */
  maxBytes?: number;
  /** Most concurrent transfers, reliable and classic. Default 256. */
  maxSessions?: number;
  /** Reliable receive window per session, bytes. Default 16 MiB. */
  windowBytes?: number;
  /** Pre-shared key: reliable senders must prove it; classic UDP is refused. */
  psk?: Uint8Array;
  /** Resumable partials older than this many milliseconds are deleted at start and hourly. Default 7 days. */
  keepPartialsMs?: number;
  /** Replace an existing file of the same name instead of saving as `_1`, `_2`, … (`--overwrite`). */
  overwrite?: boolean;
  /** Event callback for output. */
  onEvent?: (event: ServerEvent) => void;
}

/** The name classic UDP files are saved under, like the original server. */
export const CLASSIC_UDP_SENT_NAME = "input.jpeg";
/** How long a finished session's reply is kept to answer a repeated end marker. */
const LINGER_MS = 10_000;
const DEFAULT_MAX_BYTES = 64 * 2 ** 30;
/** The reply a classic sender gets from a server with a key (classic UDP cannot carry one). */
export const CLASSIC_KEY_REQUIRED =
  "REFUSED: this server requires a key (--psk, --psk-file or IMGXFER_PSK); classic UDP cannot carry one: send without --classic";
/** The reply a classic sender gets when `maxSessions` transfers are running. */
export const CLASSIC_BUSY = "BUSY: too many transfers at once, retry later";
/** How many turned-away classic senders are remembered (so each is told once), and for how long (ms). */
const TOLD_CAPACITY = 4096;
const TOLD_MS = 60_000;

interface Session {
  from: NetAddr;
  key: string;
  assembler: ClassicAssembler;
  spool: ReceivingFile;
  hash: Hash;
  watch: Stopwatch;
  lastSeen: number;
}

/** Starts a classic UDP server. */
export async function serveUdp(options: UdpServeOptions): Promise<ServerHandle> {
  checkOutputDir(options.outDir);
  const emit = options.onEvent ?? (() => {});
  const idleTimeoutMs = options.idleTimeoutMs ?? 3000;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxSessions = options.maxSessions ?? 256;
  let socket: DatagramConn;
  try {
    socket = await runtime.listenDatagram({ hostname: options.host, port: options.port });
  } catch (error) {
    throw withContext(
      `cannot listen on ${formatAddr({ hostname: options.host, port: options.port })} (UDP)`,
      error,
    );
  }
  const addr = socket.addr;
  emit({ event: "listening", transport: "udp", host: options.host, port: addr.port });
  const keepMs = options.keepPartialsMs ?? DEFAULT_KEEP_PARTIALS_MS;
  const stopPruning = keepPartialsPruned(
    options.outDir,
    keepMs,
    (names) => emit({ event: "pruned", transport: "udp", names, days: keepMs / DAY_MS }),
  );
  const sessions = new Map<string, Session>();
  const finished = new Map<string, { reply: Uint8Array; until: number }>();
  let stopping = false;
  let draining = false;
  let reliableTimer: ReturnType<typeof setTimeout> | undefined;
  let lingerTimer: ReturnType<typeof setTimeout> | undefined;

  const stop = () => {
    if (stopping) return;
    stopping = true;
    clearInterval(sweeper);
    clearTimeout(reliableTimer);
    clearTimeout(lingerTimer);
    try {
      socket.close();
    } catch { /* already closed */ }
  };

  // With --once, a finished reliable session keeps the server up for a second
  // more, so a FIN whose DONE was lost still gets its answer.
  const reliable = new ReliableSessions(
    {
      outDir: options.outDir,
      overwrite: options.overwrite,
      maxBytes,
      maxSessions,
      otherActive: () => sessions.size,
      // Longer than a reliable sender waits for us (20 s), so the sender gives up first.
      idleTimeoutMs: Math.max(idleTimeoutMs, 30_000),
      windowBytes: options.windowBytes ?? 16 << 20,
      psk: options.psk,
      // A resuming sender may take over a partial whose session has been silent this long.
      staleMs: idleTimeoutMs,
    },
    emit,
    () => {
      if (options.once && !lingerTimer) lingerTimer = setTimeout(stop, 1000);
    },
  );

  const flushReliable = async () => {
    for (const { to, bytes } of reliable.takeOutgoing()) await sendReply(to, bytes);
  };

  // One timer for all reliable sessions, moved only when a session needs it sooner.
  let reliableTimerAt = Infinity;
  const scheduleReliable = () => {
    const at = reliable.nextTimeout();
    if (stopping || at >= reliableTimerAt) return;
    clearTimeout(reliableTimer);
    reliableTimerAt = at;
    reliableTimer = setTimeout(async () => {
      reliableTimerAt = Infinity;
      reliable.onTimer(performance.now());
      await flushReliable();
      scheduleReliable();
    }, Math.max(0, at - performance.now()));
  };

  const sendReply = async (to: NetAddr, reply: Uint8Array) => {
    try {
      await socket.send(reply, to);
    } catch { /* UDP: nothing to do if the send fails */ }
  };

  const finalize = async (session: Session, reason?: string) => {
    sessions.delete(session.key);
    const from = formatAddr(session.from);
    let text: string;
    try {
      const saved = saveSession(session, options.outDir, options.overwrite ?? false, reason);
      text = saved.reply;
      emit(saved.event);
    } catch (error) {
      session.spool.discard();
      text = `ERROR: server cannot store the file: ${
        withContext("save", error).message.replace(/^save: /, "")
      }`;
      emit({ event: "failed", transport: "udp", from, error: text, bytes: session.assembler.receivedBytes });
    }
    const reply = new TextEncoder().encode(text);
    finished.set(session.key, { reply, until: performance.now() + LINGER_MS });
    await sendReply(session.from, reply);
    emit({ event: "reply", transport: "udp", to: from, text });
    if (options.once) stop();
  };

  /** Ends a classic session that went past a limit: nothing is kept (like a cut-off TCP stream). */
  const refuse = async (session: Session, text: string) => {
    sessions.delete(session.key);
    session.spool.discard();
    const from = formatAddr(session.from);
    emit({ event: "failed", transport: "udp", from, error: `${text}; nothing saved`, bytes: 0 });
    const reply = new TextEncoder().encode(text);
    finished.set(session.key, { reply, until: performance.now() + LINGER_MS });
    await sendReply(session.from, reply);
    emit({ event: "reply", transport: "udp", to: from, text });
    if (options.once) stop();
  };

  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const session of [...sessions.values()]) {
      if (now - session.lastSeen >= idleTimeoutMs) {
        void finalize(session, `end marker not received within ${idleTimeoutMs / 1000} s of the last packet`);
      }
    }
    for (const [key, entry] of finished) if (entry.until < now) finished.delete(key);
  }, Math.max(10, Math.min(1000, idleTimeoutMs / 4)));

  // Classic senders turned away (a key is required, or too many transfers), and when: the rest of
  // their datagrams are ignored, and each is told once (insertion order: oldest first).
  const told = new Map<string, number>();
  const refuseClassic = async (from: NetAddr, text: string) => {
    const key = formatAddr(from);
    const now = performance.now();
    if (now - (told.get(key) ?? -Infinity) < TOLD_MS) return;
    told.delete(key);
    if (told.size >= TOLD_CAPACITY) told.delete(told.keys().next().value as string);
    told.set(key, now);
    emit({ event: "failed", transport: "udp", from: key, error: text, bytes: 0 });
    await sendReply(from, new TextEncoder().encode(text));
  };

  /** One classic datagram. */
  const handleClassic = async (datagram: Uint8Array, from: NetAddr) => {
    if (options.psk) return await refuseClassic(from, CLASSIC_KEY_REQUIRED);
    const key = formatAddr(from);
    let decoded;
    try {
      decoded = decodeClassicDatagram(datagram);
    } catch (error) {
      if (error instanceof ProtocolError) {
        emit({ event: "ignored", transport: "udp", from: key, reason: error.message });
        return;
      }
      throw error;
    }
    const lingering = finished.get(key);
    if (lingering) {
      // A repeated end marker means our reply was lost: send it again.
      if (decoded.kind === "end") await sendReply(from, lingering.reply);
      return;
    }
    let session = sessions.get(key);
    if (!session) {
      if (draining) return; // shutting down: no new classic sessions
      if (told.has(key)) return await refuseClassic(from, CLASSIC_BUSY);
      if (sessions.size + reliable.activeCount >= maxSessions) return await refuseClassic(from, CLASSIC_BUSY);
      try {
        session = {
          from,
          key,
          assembler: new ClassicAssembler({ maxBytes }),
          spool: new ReceivingFile(options.outDir, receivedName("udp", CLASSIC_UDP_SENT_NAME)),
          hash: createHash("sha256"),
          watch: new Stopwatch(),
          lastSeen: performance.now(),
        };
      } catch (error) {
        const text = withContext("cannot store the file", error).message;
        emit({ event: "failed", transport: "udp", from: key, error: text, bytes: 0 });
        const reply = new TextEncoder().encode(`ERROR: ${text}`);
        finished.set(key, { reply, until: performance.now() + LINGER_MS });
        await sendReply(from, reply);
        if (options.once) stop();
        return;
      }
      sessions.set(key, session);
      emit({ event: "connection", transport: "udp", from: key });
    }
    session.lastSeen = performance.now();
    const action = session.assembler.accept(decoded);
    if (action.action === "store") {
      try {
        session.spool.writeAt(action.payload, action.spoolOffset);
      } catch (error) {
        await finalize(session, withContext("write failed", error).message);
        return;
      }
      if (session.assembler.spoolIsFile) session.hash.update(action.payload);
    } else if (action.action === "ignore") {
      emit({ event: "ignored", transport: "udp", from: key, reason: action.reason });
    } else if (action.action === "reject") {
      await refuse(session, `REFUSED: this server takes at most ${maxBytes} bytes per file (--max-size)`);
    } else if (action.action === "end") {
      await finalize(session);
    }
  };

  const done = (async () => {
    while (!stopping) {
      let batch: Array<[Uint8Array, NetAddr]>;
      try {
        batch = await socket.receiveBatch();
      } catch {
        break; // socket closed
      }
      let reliableSeen = false;
      for (const [datagram, from] of batch) {
        if (isReliableDatagram(datagram)) {
          reliable.handle(performance.now(), datagram, from);
          reliableSeen = true;
        } else {
          await handleClassic(datagram, from);
        }
      }
      if (reliableSeen) {
        await flushReliable();
        scheduleReliable();
      }
    }
    clearInterval(sweeper);
    clearTimeout(reliableTimer);
    reliable.closeAll(performance.now());
    for (const session of [...sessions.values()]) {
      session.spool.discard();
      sessions.delete(session.key);
    }
    stopPruning();
    emit({ event: "shutdown", transport: "udp" });
  })();

  return {
    addr,
    done,
    async close(graceMs = 0) {
      // Give sessions in progress up to `graceMs` to finish (datagrams keep
      // flowing meanwhile; new senders are turned away), then stop:
      // unfinished classic files are removed; unfinished reliable ones are
      // kept for a resume, and their senders are told.
      draining = true;
      reliable.refuseNew = true;
      const deadline = performance.now() + graceMs;
      while (!stopping && performance.now() < deadline && (sessions.size > 0 || reliable.activeCount > 0)) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      if (!stopping) {
        reliable.closeAll(performance.now());
        await flushReliable();
      }
      stop();
      await done;
    },
  };
}

/** Writes a session's file (in sequence order, holes zero-filled) and names it by its completeness. */
function saveSession(
  session: Session,
  outDir: string,
  overwrite: boolean,
  reason?: string,
): { event: ServerEvent; reply: string } {
  const { assembler, spool } = session;
  const outcome = assembler.outcome(reason);
  const complete = isCompleteOutcome(outcome);
  const name = receivedName("udp", CLASSIC_UDP_SENT_NAME, !complete);
  let path: string;
  let sha256: string;
  let bytes: number;
  if (complete && assembler.spoolIsFile) {
    bytes = assembler.receivedBytes;
    sha256 = toHex(new Uint8Array(session.hash.digest()));
    path = spool.commit(name, overwrite);
  } else {
    const out = new ReceivingFile(outDir, name);
    try {
      const hash = createHash("sha256");
      const copy = new Uint8Array(65536);
      // Holes are written as runs of zeros, 1 MiB at a time: a sender can
      // claim millions of one-byte packets missing, and one write per hole
      // would keep the server busy for minutes.
      const zeros = new Uint8Array(1 << 20);
      let hole = 0;
      const fillHole = () => {
        for (; hole > 0; hole -= Math.min(hole, zeros.length)) {
          const view = zeros.subarray(0, Math.min(hole, zeros.length));
          out.append(view);
          hash.update(view);
        }
      };
      for (const step of assembler.layout()) {
        if (step.kind === "hole") {
          hole += step.length;
          continue;
        }
        fillHole();
        const view = copy.subarray(0, step.length);
        spool.readAt(view, step.spoolOffset);
        out.append(view);
        hash.update(view);
      }
      fillHole();
      bytes = out.written;
      sha256 = toHex(new Uint8Array(hash.digest()));
      path = out.commit(name, overwrite);
    } catch (error) {
      out.discard();
      throw error;
    } finally {
      spool.discard();
    }
  }
  const event: ServerEvent = {
    event: "received",
    transport: "udp",
    mode: "classic",
    path,
    bytes,
    sha256,
    complete,
    from: formatAddr(session.from),
    packets: {
      received: outcome.received,
      expected: outcome.expected,
      missing: formatRanges(outcome.missing),
    },
    seconds: session.watch.elapsed(),
  };
  return { event, reply: formatClassicUdpReply(outcome) };
}
