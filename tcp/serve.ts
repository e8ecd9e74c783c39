/**
 * The TCP receiver: one port serves framed and classic senders, told apart by
 * the first bytes. Each connection is independent; a failed or stalled one
 * never stops the server.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { BufferedReader, lingerClose, writeAll } from "../shared/conn_io.ts";
import { describeError, withContext } from "../shared/errors.ts";
import { checkOutputDir, receivedName, ReceivingFile, safeBaseName, sha256OfFile } from "../shared/files.ts";
import { Stopwatch } from "../shared/metrics.ts";
import {
  CLASSIC_TCP_REPLY,
  DIGEST_SIZE,
  encodeFramedReply,
  FRAMED_MAGIC,
  FRAMED_VERSION,
  type FramedHeader,
  FramedStatus,
  type FramedStatusValue,
  looksFramed,
  parseFramedHeader,
  ProtocolError,
  toHex,
} from "../shared/protocol.ts";
import { type Conn, type Listener, runtime } from "../shared/runtime.ts";
import { formatAddr, type ServerEvent, type ServerHandle } from "../shared/server_events.ts";
import { IdleWatchdog } from "../shared/watchdog.ts";

/** Options for {@linkcode serveTcp}. */
export interface TcpServeOptions {
  /** Address to bind. */
  host: string;
  /** Port to bind; 0 picks a free one (see the handle's `addr`). */
  port: number;
  /** Receive size in bytes. */
  buffer: number;
  /** Folder where received files are saved. */
  outDir: string;
  /** Stop after the first connection ends. */
  once?: boolean;
  /** Close a connection after this many milliseconds without data. */
  idleTimeoutMs?: number;
  /** Largest file accepted, bytes: a framed header declaring more is refused before a byte is written; a classic stream is cut off. Default: unlimited. */
  maxBytes?: number;
  /** Most connections served at once; more are refused with a clear message. Default 256. */
  maxClients?: number;
  /** Event callback for output. */
  onEvent?: (event: ServerEvent) => void;
}

/** The name classic TCP files are saved under, like the original server. */
export const CLASSIC_TCP_NAME = "received_input.jpeg";
const ZERO_DIGEST = new Uint8Array(DIGEST_SIZE);

/** Raised inside a connection handler to end it with a reply. */
class TransferFailure extends Error {
  constructor(readonly status: FramedStatusValue, message: string) {
    super(message);
  }
}

/**
 * Starts a TCP server. Throws {@linkcode CliError} when the address cannot be
 * bound or the output folder is unusable.
 */
export function serveTcp(options: TcpServeOptions): ServerHandle {
  checkOutputDir(options.outDir);
  const emit = options.onEvent ?? (() => {});
  let listener: Listener;
  try {
    listener = runtime.listen({ hostname: options.host, port: options.port });
  } catch (error) {
    throw withContext(
      `cannot listen on ${formatAddr({ hostname: options.host, port: options.port })}`,
      error,
    );
  }
  const addr = listener.addr;
  emit({ event: "listening", transport: "tcp", host: options.host, port: addr.port });
  const active = new Set<Promise<void>>();
  const conns = new Set<Conn>();
  let stopping = false;

  const stop = () => {
    if (stopping) return;
    stopping = true;
    try {
      listener.close();
    } catch { /* already closed */ }
  };

  const maxClients = options.maxClients ?? 256;
  const done = (async () => {
    for (;;) {
      let conn: Conn;
      try {
        conn = await listener.accept();
      } catch {
        break; // listener closed
      }
      if (stopping) {
        conn.close();
        break;
      }
      if (conns.size >= maxClients) {
        void refuseBusy(conn, maxClients, emit);
        continue;
      }
      conns.add(conn);
      const task = handleConnection(conn, options, emit).finally(() => {
        conns.delete(conn);
        active.delete(task);
      });
      active.add(task);
      if (options.once) {
        await task;
        stop();
        break;
      }
    }
    await Promise.allSettled([...active]);
    emit({ event: "shutdown", transport: "tcp" });
  })();

  return {
    addr,
    done,
    async close(graceMs = 0) {
      stop();
      // Let transfers in progress finish within the grace period, then cut them.
      if (graceMs > 0 && active.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          Promise.allSettled([...active]),
          new Promise((resolve) => timer = setTimeout(resolve, graceMs)),
        ]);
        clearTimeout(timer);
      }
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      await done;
    },
  };
}

/**
 * Turns a connection away because the server is at `--max-clients`: a framed
 * sender gets a REFUSED reply it can print, a classic one a text line.
 */
async function refuseBusy(conn: Conn, maxClients: number, emit: (e: ServerEvent) => void): Promise<void> {
  const from = formatAddr(conn.remoteAddr);
  const text = `BUSY: this server is serving ${maxClients} transfers already; try again later`;
  emit({ event: "failed", transport: "tcp", from, error: text, bytes: 0 });
  try {
    const reader = new BufferedReader(conn, 64);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const prefix = await Promise.race([
      reader.peek(FRAMED_MAGIC.length),
      new Promise<Uint8Array>((resolve) => timer = setTimeout(() => resolve(new Uint8Array(0)), 1000)),
    ]);
    clearTimeout(timer);
    const reply = looksFramed(prefix)
      ? encodeFramedReply({ status: FramedStatus.REFUSED, bytes: 0, digest: ZERO_DIGEST, message: text })
      : new TextEncoder().encode(text);
    await writeAll(conn, reply);
  } catch { /* the client is gone */ }
  await lingerClose(conn, 500);
}

async function handleConnection(conn: Conn, options: TcpServeOptions, emit: (e: ServerEvent) => void) {
  const from = formatAddr(conn.remoteAddr);
  emit({ event: "connection", transport: "tcp", from });
  let idle = false;
  const watchdog = new IdleWatchdog(options.idleTimeoutMs ?? 30_000, () => {
    idle = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  });
  // Big enough for any framed header (20 + 1024 bytes).
  // Reads of at least 1 MiB: one system call (and one file write) per
  // megabyte rather than per --buffer, which is what the original's 4 KiB
  // receive size cost it.
  const reader = new BufferedReader(conn, Math.max(options.buffer, 1 << 20));
  let file: ReceivingFile | undefined;
  let framed = false;
  try {
    const prefix = await reader.peek(FRAMED_MAGIC.length);
    watchdog.touch();
    framed = looksFramed(prefix);
    if (framed) {
      await receiveFramed(conn, reader, options, emit, from, watchdog, (f) => file = f);
    } else {
      await receiveClassic(conn, reader, options, emit, from, watchdog, (f) => file = f);
    }
  } catch (error) {
    file?.discard();
    const bytes = file?.written ?? reader.totalRead;
    const message = idle
      ? `no data for ${(options.idleTimeoutMs ?? 30_000) / 1000} s`
      : error instanceof TransferFailure || error instanceof ProtocolError
      ? error.message
      : describeError(error).message;
    const saved = file?.committedPath;
    const outcome = saved ? `the reply was not delivered (file saved as '${saved}')` : "nothing saved";
    emit({ event: "failed", transport: "tcp", from, error: `${message}; ${outcome}`, bytes });
    if (framed && !idle && !saved) {
      const status = error instanceof TransferFailure
        ? error.status
        : error instanceof ProtocolError
        ? FramedStatus.REFUSED
        : FramedStatus.SERVER_ERROR;
      const text = status === FramedStatus.SERVER_ERROR
        ? `ERROR: server cannot store the file: ${message}`
        : message;
      try {
        await writeAll(conn, encodeFramedReply({ status, bytes, digest: ZERO_DIGEST, message: text }));
        emit({ event: "reply", transport: "tcp", to: from, text });
      } catch { /* the client is gone */ }
    } else if (!framed && !idle && !saved && error instanceof TransferFailure) {
      // A classic sender reads text until EOF: tell it why it was cut off.
      try {
        await writeAll(conn, new TextEncoder().encode(error.message));
        emit({ event: "reply", transport: "tcp", to: from, text: error.message });
      } catch { /* the client is gone */ }
    }
    await lingerClose(conn, 1000);
  } finally {
    watchdog.stop();
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

async function readHeader(reader: BufferedReader): Promise<FramedHeader> {
  let result = parseFramedHeader(await reader.peek(FRAMED_MAGIC.length));
  while ("need" in result) {
    const view = await reader.peek(result.need);
    if (view.length < result.need) {
      throw new TransferFailure(FramedStatus.SHORT, "stream ended inside the framed header");
    }
    result = parseFramedHeader(view);
  }
  reader.skip(result.consumed);
  return result.value;
}

async function receiveFramed(
  conn: Conn,
  reader: BufferedReader,
  options: TcpServeOptions,
  emit: (e: ServerEvent) => void,
  from: string,
  watchdog: IdleWatchdog,
  track: (file: ReceivingFile) => void,
): Promise<void> {
  const header = await readHeader(reader);
  if (header.version !== FRAMED_VERSION) {
    throw new TransferFailure(
      FramedStatus.UNSUPPORTED_VERSION,
      `REFUSED: protocol version ${header.version} is not supported (this server speaks ${FRAMED_VERSION})`,
    );
  }
  if (options.maxBytes !== undefined && header.size > options.maxBytes) {
    throw new TransferFailure(
      FramedStatus.REFUSED,
      `REFUSED: ${header.size} bytes is more than this server's limit of ${options.maxBytes} bytes`,
    );
  }
  const name = safeBaseName(header.name);
  if (!name) {
    throw new TransferFailure(
      FramedStatus.REFUSED,
      `REFUSED: unusable file name ${JSON.stringify(header.name)}`,
    );
  }
  const watch = new Stopwatch();
  const finalName = receivedName("tcp", name);
  const file = new ReceivingFile(options.outDir, finalName);
  track(file);
  const hash = createHash("sha256");
  let remaining = header.size;
  let lastProgress = performance.now();
  while (remaining > 0) {
    if (performance.now() - lastProgress >= 100) {
      lastProgress = performance.now();
      emit({ event: "progress", transport: "tcp", from, bytes: header.size - remaining, total: header.size });
    }
    const chunk = await reader.chunk(remaining);
    if (chunk === null) {
      throw new TransferFailure(
        FramedStatus.SHORT,
        `INCOMPLETE: stream ended after ${header.size - remaining} of ${header.size} bytes`,
      );
    }
    watchdog.touch();
    file.append(chunk);
    hash.update(chunk);
    remaining -= chunk.length;
  }
  const trailer = await reader.peek(DIGEST_SIZE);
  if (trailer.length < DIGEST_SIZE) {
    throw new TransferFailure(FramedStatus.SHORT, "INCOMPLETE: stream ended before the SHA-256 trailer");
  }
  const digest = new Uint8Array(hash.digest());
  const expected = trailer.slice(0, DIGEST_SIZE);
  reader.skip(DIGEST_SIZE);
  if (toHex(expected) !== toHex(digest)) {
    throw new TransferFailure(
      FramedStatus.DIGEST_MISMATCH,
      `MISMATCH: SHA-256 of the received bytes is ${toHex(digest)}, the sender's is ${toHex(expected)}`,
    );
  }
  const path = file.commit(finalName);
  const sha256 = toHex(digest);
  emit({
    event: "received",
    transport: "tcp",
    mode: "framed",
    path,
    bytes: header.size,
    sha256,
    complete: true,
    verified: true,
    from,
    seconds: watch.elapsed(),
  });
  const text = CLASSIC_TCP_REPLY;
  await writeAll(
    conn,
    encodeFramedReply({ status: FramedStatus.OK, bytes: header.size, digest, message: text }),
  );
  emit({ event: "reply", transport: "tcp", to: from, text });
}

async function receiveClassic(
  conn: Conn,
  reader: BufferedReader,
  options: TcpServeOptions,
  emit: (e: ServerEvent) => void,
  from: string,
  watchdog: IdleWatchdog,
  track: (file: ReceivingFile) => void,
): Promise<void> {
  const watch = new Stopwatch();
  const file = new ReceivingFile(options.outDir, CLASSIC_TCP_NAME);
  track(file);
  let lastProgress = performance.now();
  for (;;) {
    if (performance.now() - lastProgress >= 100) {
      lastProgress = performance.now();
      emit({ event: "progress", transport: "tcp", from, bytes: file.written });
    }
    const chunk = await reader.chunk(1 << 20);
    if (chunk === null) break;
    watchdog.touch();
    if (options.maxBytes !== undefined && file.written + chunk.length > options.maxBytes) {
      throw new TransferFailure(
        FramedStatus.REFUSED,
        `REFUSED: the stream went past this server's limit of ${options.maxBytes} bytes`,
      );
    }
    file.append(chunk);
  }
  const bytes = file.written;
  const seconds = watch.elapsed();
  const path = file.commit(CLASSIC_TCP_NAME);
  // A classic stream carries no digest to check, so the sender is answered
  // (and its connection half-closed) first; the SHA-256 for the log is
  // computed afterwards, off the transfer's critical path.
  const text = CLASSIC_TCP_REPLY;
  await writeAll(conn, new TextEncoder().encode(text));
  await conn.closeWrite();
  const sha256 = await sha256OfFile(path);
  emit({
    event: "received",
    transport: "tcp",
    mode: "classic",
    path,
    bytes,
    sha256,
    complete: true,
    from,
    seconds,
  });
  emit({ event: "reply", transport: "tcp", to: from, text });
}
