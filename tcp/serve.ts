/**
 * The TCP receiver: one port serves framed and classic senders, told apart by
 * the first bytes. Each connection is independent; a failed or stalled one
 * never stops the server.
 *
 * Framed transfers are received into resumable partial files: a transfer
 * that fails (connection lost, idle, server stopped, bad record) leaves its
 * verified bytes in `.received_NAME.<id>.resume.part` for a client's
 * `--resume`. With a pre-shared key, a client must prove the key before any
 * file is created, every record is authenticated, and classic streams are
 * refused.
 *
 * @module
 */

import { createHmac } from "node:crypto";
import { availableParallelism } from "node:os";
import {
  concatBytes,
  handshakeProof,
  KEY_REQUIRED,
  randomNonce,
  ReplayGuard,
  SERVER_KEYLESS,
  verifyHandshakeProof,
  WRONG_KEY,
} from "../shared/auth.ts";
import { BufferedReader, lingerClose, writeAll } from "../shared/conn_io.ts";
import {
  type ContentHash,
  createContentHash,
  digestField,
  digestLabel,
  type DigestName,
} from "../shared/digest.ts";
import { CliError, describeError, ExitCode, withContext } from "../shared/errors.ts";
import {
  checkOutputDir,
  receivedName,
  ReceivingFile,
  resumeId,
  safeBaseName,
  sha256OfFile,
} from "../shared/files.ts";
import { groupDigits, Stopwatch } from "../shared/metrics.ts";
import {
  CLASSIC_TCP_REPLY,
  DIGEST_SIZE,
  encodeAccept,
  encodeChallenge,
  encodeFramedReply,
  FRAMED_MAGIC,
  FRAMED_SESSION_VERSION,
  FRAMED_VERSION,
  type FramedRequest,
  FramedStatus,
  type FramedStatusValue,
  looksFramed,
  MAX_RECORD_PAYLOAD,
  parseFramedRequest,
  parseProof,
  parseRecordHeader,
  type ParseResult,
  parseStart,
  ProtocolError,
  RECORD_OVERHEAD,
  recordTagPrefix,
  SEALED_TRAILER_SIZE,
  SESSION_TAG_SIZE,
  sessionDigest,
  SessionFlags,
  type SessionOffer,
  toHex,
  trailerTagPrefix,
} from "../shared/protocol.ts";
import { type Conn, type Listener, runtime } from "../shared/runtime.ts";
import {
  DAY_MS,
  DEFAULT_KEEP_PARTIALS_MS,
  keepPartialsPruned,
  MIN_RESUME_BYTES,
} from "../shared/partials.ts";
import { defaultHashWorkers, Sha256Offloader, type StreamHash } from "../shared/sha256_offload.ts";
import { formatAddr, type ServerEvent, type ServerHandle } from "../shared/server_events.ts";
import { IdleWatchdog } from "../shared/watchdog.ts";
import { hashPrefix, readFrame, type SessionKeys, tcpSessionKeys } from "./session.ts";

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
  /** Stop after the first transfer ends (a connection that sends nothing does not count). */
  once?: boolean;
  /** Close a connection after this many milliseconds without data. */
  idleTimeoutMs?: number;
  /** Largest file accepted, bytes: a framed header declaring more is refused before a byte is written; a classic stream is cut off. Default: unlimited. */
  maxBytes?: number;
  /** Most connections served at once; more are refused with a clear message. Default 256. */
  maxClients?: number;
  /**
   * Pre-shared key: framed clients must prove they hold it before any file is
   * created, their records are authenticated, and classic streams are refused.
   */
  psk?: Uint8Array;
  /** Resumable partials older than this many milliseconds are deleted at start and hourly. Default 7 days. */
  keepPartialsMs?: number;
  /** Replace an existing file of the same name instead of saving as `_1`, `_2`, … (`--overwrite`). */
  overwrite?: boolean;
  /** Event callback for output. */
  onEvent?: (event: ServerEvent) => void;
  /**
   * Worker threads for the SHA-256 of large framed transfers (hashing then
   * overlaps the socket and file I/O). Default: {@linkcode defaultHashWorkers}
   * of the machine's cores (none below 4 cores, where it does not pay).
   */
  hashWorkers?: number;
}

/** The read buffer every connection starts with (it grows for large transfers). */
const SMALL_READ_BUFFER = 64 * 1024;

/** The name classic TCP files are saved under, like the original server. */
export const CLASSIC_TCP_NAME = "received_input.jpeg";
const ZERO_DIGEST = new Uint8Array(DIGEST_SIZE);

/** Raised inside a connection handler to end it with a reply. */
class TransferFailure extends Error {
  constructor(readonly status: FramedStatusValue, message: string) {
    super(message);
  }
}

/** What every connection of one server shares. */
interface ServerState {
  options: TcpServeOptions;
  emit: (event: ServerEvent) => void;
  /** Under a key, mixed into resume ids, so transfers under different keys never share a partial. */
  keyId?: string;
  /** Client nonces seen recently: a replayed handshake is refused at once. */
  replays: ReplayGuard;
  /** Resume ids of the partial files live transfers are writing. */
  partialsInUse: Set<string>;
  /** Set once the server stops: a transfer cut off then says so. */
  stopping: boolean;
  /** Hashes large transfers on worker threads, at most one per spare core. */
  offloader: Sha256Offloader;
}

/** One connection. */
interface Connection {
  server: ServerState;
  conn: Conn;
  reader: BufferedReader;
  from: string;
  watchdog: IdleWatchdog;
  /** The file being received, once created. */
  file?: ReceivingFile;
  /** Frees the file's resume id for other transfers. */
  release?: () => void;
  /** Whether the sender speaks the framed format (and so reads framed replies). */
  framed: boolean;
  /** Under a key, once the server has accepted: its replies then carry a tag. */
  keys?: SessionKeys;
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
  const keepMs = options.keepPartialsMs ?? DEFAULT_KEEP_PARTIALS_MS;
  const stopPruning = keepPartialsPruned(
    options.outDir,
    keepMs,
    (names) => emit({ event: "pruned", transport: "tcp", names, days: keepMs / DAY_MS }),
  );
  const server: ServerState = {
    options,
    emit,
    keyId: options.psk ? keyId(options.psk) : undefined,
    replays: new ReplayGuard(),
    partialsInUse: new Set(),
    stopping: false,
    offloader: new Sha256Offloader(options.hashWorkers ?? defaultHashWorkers(availableParallelism())),
  };
  const active = new Set<Promise<boolean>>();
  const conns = new Set<Conn>();

  const stop = () => {
    if (server.stopping) return;
    server.stopping = true;
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
      if (server.stopping) {
        conn.close();
        break;
      }
      if (conns.size >= maxClients) {
        void refuseBusy(conn, maxClients, emit);
        continue;
      }
      conns.add(conn);
      const task = handleConnection(conn, server).finally(() => {
        conns.delete(conn);
        active.delete(task);
      });
      active.add(task);
      if (options.once && await task) {
        stop();
        break;
      }
    }
    await Promise.allSettled([...active]);
    stopPruning();
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

/** A short id of the key (an HMAC under it), so partials of different keys get different names. */
function keyId(psk: Uint8Array): string {
  return createHmac("sha256", psk).update("imgxfer-v1 tcp resume partition").digest("hex").slice(0, 16);
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

/**
 * Serves one connection. Resolves to whether it was a transfer attempt
 * (false for a connection that closed without sending a byte, such as a
 * port probe, which saves nothing and does not end a `--once` server).
 */
async function handleConnection(conn: Conn, server: ServerState): Promise<boolean> {
  const { options, emit } = server;
  const from = formatAddr(conn.remoteAddr);
  emit({ event: "connection", transport: "tcp", from });
  let idle = false;
  const idleMs = options.idleTimeoutMs ?? 30_000;
  const watchdog = new IdleWatchdog(idleMs, () => {
    idle = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  });
  // Every connection starts with a 64 KiB buffer (enough for any framed
  // header and handshake message), so thousands of probes or small files
  // cost little; a large transfer grows it to reads of at least 1 MiB: one
  // system call (and one file write) per megabyte rather than per --buffer,
  // which is what the original's 4 KiB receive size cost it; and room for a
  // whole authenticated record, which is written only once its tag is checked.
  const reader = new BufferedReader(
    conn,
    SMALL_READ_BUFFER,
    Math.max(options.buffer, MAX_RECORD_PAYLOAD + RECORD_OVERHEAD),
  );
  const c: Connection = { server, conn, reader, from, watchdog, framed: false };
  try {
    const prefix = await reader.peek(FRAMED_MAGIC.length);
    watchdog.touch();
    if (prefix.length === 0) {
      const why = idle
        ? `no data for ${idleMs / 1000} s`
        : "empty connection (closed without sending anything)";
      emit({ event: "failed", transport: "tcp", from, error: `${why}; nothing saved`, bytes: 0 });
      return false;
    }
    c.framed = looksFramed(prefix);
    if (c.framed) await receiveFramed(c);
    else await receiveClassic(c);
  } catch (error) {
    await fail(c, error, failureMessage(error, idle ? idleMs : undefined, server.stopping), idle);
  } finally {
    c.release?.();
    watchdog.stop();
    try {
      conn.close();
    } catch { /* already closed */ }
  }
  return true;
}

/** Why a connection failed, in one line: idle (`idleMs` given), cut off by a shutdown, or the error. */
function failureMessage(error: unknown, idleMs: number | undefined, stopping: boolean): string {
  if (idleMs !== undefined) return `no data for ${idleMs / 1000} s`;
  const streamCut = !(error instanceof ProtocolError) &&
    (!(error instanceof TransferFailure) || error.status === FramedStatus.SHORT);
  if (stopping && streamCut) return "cut off: the server is shutting down";
  if (error instanceof TransferFailure || error instanceof ProtocolError) return error.message;
  return describeError(error).message;
}

/** Ends a failed connection: settles the file, logs, and tells the sender why when it can. */
async function fail(c: Connection, error: unknown, message: string, idle: boolean): Promise<void> {
  const { emit } = c.server;
  const { from, file } = c;
  const bytes = file?.written ?? c.reader.totalRead;
  const saved = file?.committedPath;
  const outcome = settle(file, error);
  emit({ event: "failed", transport: "tcp", from, error: `${message}; ${outcome}`, bytes });
  const status = error instanceof TransferFailure
    ? error.status
    : error instanceof ProtocolError
    ? FramedStatus.REFUSED
    : FramedStatus.SERVER_ERROR;
  const text = status === FramedStatus.SERVER_ERROR
    ? `ERROR: server cannot store the file: ${message}`
    : message;
  // A classic sender reads text until EOF: tell it why it was cut off, or that the file could not be stored.
  const classicReply = error instanceof TransferFailure || cannotStore(error);
  if (!idle && !saved && (c.framed || classicReply)) {
    try {
      const reply = c.framed
        ? replyBytes(c, { status, bytes, digest: ZERO_DIGEST, message: text })
        : new TextEncoder().encode(text);
      await writeAll(c.conn, reply);
      emit({ event: "reply", transport: "tcp", to: from, text });
    } catch { /* the client is gone */ }
  }
  await lingerClose(c.conn, 1000);
}

/** Whether `error` says this server cannot store files (disk full, permissions), not that the transfer broke. */
function cannotStore(error: unknown): boolean {
  const code = describeError(error).exitCode;
  return code === ExitCode.FILE || code === ExitCode.PERMISSION;
}

/**
 * Decides what becomes of an unfinished file and says so for the log: a
 * resumable partial holding at least {@linkcode MIN_RESUME_BYTES} is kept for `--resume` (cut back to the
 * bytes written) when the transfer was cut (connection lost, idle, server
 * stopped, a bad record); it is removed when the digest did not match or
 * the server could not store it (disk full, permissions), like any other.
 */
function settle(file: ReceivingFile | undefined, error: unknown): string {
  if (!file) return "nothing saved";
  const saved = file.committedPath;
  if (saved) return `the reply was not delivered (file saved as '${saved}')`;
  const mismatch = error instanceof TransferFailure && error.status === FramedStatus.DIGEST_MISMATCH;
  if (!mismatch && !cannotStore(error) && file.resumable && file.written >= MIN_RESUME_BYTES) {
    try {
      file.truncate(file.written);
      if (file.keep()) {
        return `kept ${groupDigits(file.written)} bytes in '${file.tempPath}' for --resume`;
      }
    } catch { /* cannot keep it: removed below */ }
  }
  file.discard();
  return "nothing saved";
}

/** A reply, followed by its tag once a keyed session was accepted. */
function replyBytes(c: Connection, reply: Parameters<typeof encodeFramedReply>[0]): Uint8Array {
  const bytes = encodeFramedReply(reply);
  return c.keys ? concatBytes(bytes, c.keys.toClient.tag(bytes)) : bytes;
}

/** Reads one client message; the stream ending first is a SHORT failure naming `what`. */
async function readClientMessage<T>(
  c: Connection,
  parse: (bytes: Uint8Array) => ParseResult<T>,
  what: string,
): Promise<T> {
  const value = await readFrame(c.reader, parse);
  if (value === undefined) {
    throw new TransferFailure(FramedStatus.SHORT, `INCOMPLETE: stream ended inside ${what}`);
  }
  c.watchdog.touch();
  return value;
}

/** Checks what a request asks for against this server's key and limits; returns the safe name. */
function admit(request: FramedRequest, options: TcpServeOptions): string {
  if (request.version !== FRAMED_VERSION && request.version !== FRAMED_SESSION_VERSION) {
    throw new TransferFailure(
      FramedStatus.UNSUPPORTED_VERSION,
      `REFUSED: protocol version ${request.version} is not supported (this server speaks ${FRAMED_VERSION} and ${FRAMED_SESSION_VERSION})`,
    );
  }
  const keyed = (request.flags & SessionFlags.KEY) !== 0;
  if (options.psk && !keyed) throw new TransferFailure(FramedStatus.REFUSED, KEY_REQUIRED);
  if (!options.psk && keyed) {
    throw new TransferFailure(FramedStatus.REFUSED, SERVER_KEYLESS);
  }
  if (options.maxBytes !== undefined && request.size > options.maxBytes) {
    throw new TransferFailure(
      FramedStatus.REFUSED,
      `REFUSED: ${request.size} bytes is more than this server's limit of ${options.maxBytes} bytes`,
    );
  }
  const name = safeBaseName(request.name);
  if (!name) {
    throw new TransferFailure(
      FramedStatus.REFUSED,
      `REFUSED: unusable file name ${JSON.stringify(request.name)}`,
    );
  }
  return name;
}

/**
 * Runs the key handshake of a session request: refuses a client nonce seen
 * before, sends a fresh server nonce with the server's proof, and checks the
 * client's proof. Returns the session keys.
 */
async function authenticate(c: Connection, request: FramedRequest, raw: Uint8Array): Promise<SessionKeys> {
  const psk = c.server.options.psk!;
  const clientNonce = request.clientNonce!;
  if (!c.server.replays.check(clientNonce, performance.now())) {
    throw new TransferFailure(
      FramedStatus.REFUSED,
      "REFUSED: replayed handshake (this client nonce was used before)",
    );
  }
  const serverNonce = randomNonce();
  const proof = handshakeProof(psk, "server", clientNonce, serverNonce, raw);
  await writeAll(c.conn, encodeChallenge({ serverNonce, proof }));
  const clientProof = await readClientMessage(c, parseProof, "the key handshake");
  if (!verifyHandshakeProof(psk, "client", clientNonce, serverNonce, raw, clientProof)) {
    throw new TransferFailure(FramedStatus.REFUSED, WRONG_KEY);
  }
  return tcpSessionKeys(psk, clientNonce, serverNonce, raw);
}

/**
 * Creates the file for `name`: the resumable partial of this name, size
 * (and key), unless a live transfer is writing it or it is not a plain file
 * (a link planted at its name is never followed), in which case a plain
 * temporary file that cannot be resumed.
 */
function openFile(c: Connection, name: string, size: number): ReceivingFile {
  const { options, keyId, partialsInUse } = c.server;
  const finalName = receivedName("tcp", name);
  const id = resumeId(keyId ? ["tcp", name, size, keyId] : ["tcp", name, size]);
  if (partialsInUse.has(id)) return new ReceivingFile(options.outDir, finalName);
  let file: ReceivingFile;
  try {
    file = new ReceivingFile(options.outDir, finalName, { resumeId: id });
  } catch (error) {
    if (!(error instanceof CliError) || !/symbolic link|single link/.test(error.message)) throw error;
    return new ReceivingFile(options.outDir, finalName);
  }
  partialsInUse.add(id);
  c.release = () => partialsInUse.delete(id);
  return file;
}

/**
 * The server's offer for a `--resume` request: the partial's length and the
 * digest (of the session's algorithm) of its bytes, hashed in blocks that
 * let other clients be served. Returns the offer and the hash state after
 * those bytes.
 */
async function offerPartial(
  c: Connection,
  file: ReceivingFile,
  size: number,
  algorithm: DigestName,
): Promise<[SessionOffer, ContentHash]> {
  const hash = await createContentHash(algorithm);
  const held = file.existingBytes;
  if (!file.resumable || held === 0 || held > size) return [{ bytes: 0, digest: ZERO_DIGEST }, hash];
  if (!await hashPrefix(file, held, hash, () => c.watchdog.touch())) {
    return [{ bytes: 0, digest: ZERO_DIGEST }, await createContentHash(algorithm)];
  }
  return [{ bytes: held, digest: digestField(hash.peek()) }, hash];
}

/**
 * Opens the data phase of a version-2 session: sends the accept (with the
 * offer for `--resume`; under a key its tags are on from here), reads the
 * start message and positions the file there. Returns the hash state of
 * the bytes before the start (a fresh hash when it is byte 0).
 */
async function startSession(
  c: Connection,
  request: FramedRequest,
  file: ReceivingFile,
  keys: SessionKeys | undefined,
): Promise<ContentHash> {
  const algorithm = sessionDigest(request.flags);
  let offer: SessionOffer = { bytes: 0, digest: ZERO_DIGEST };
  let hash: ContentHash | undefined;
  if (request.flags & SessionFlags.RESUME) {
    [offer, hash] = await offerPartial(c, file, request.size, algorithm);
  }
  await writeAll(c.conn, encodeAccept(offer, keys ? (b) => keys.toClient.tag(b) : undefined));
  c.keys = keys;
  const start = await readClientMessage(c, parseStart, "the start message");
  if (keys && !keys.toServer.verify(start.tag, start.signed)) {
    throw new TransferFailure(FramedStatus.REFUSED, "REFUSED: the start message failed authentication");
  }
  if (start.offset !== 0 && start.offset !== offer.bytes) {
    throw new ProtocolError(
      `the client asked to start at byte ${start.offset}; this server offered ${offer.bytes}`,
    );
  }
  file.resumeAt(start.offset);
  return start.offset !== 0 && hash ? hash : await createContentHash(algorithm);
}

async function receiveFramed(c: Connection): Promise<void> {
  const { options, emit } = c.server;
  let raw: Uint8Array | undefined;
  const request = await readClientMessage(c, (bytes) => {
    const r = parseFramedRequest(bytes);
    if (!("need" in r)) raw = bytes.slice(0, r.consumed);
    return r;
  }, "the framed header");
  const name = admit(request, options);
  const session = request.version === FRAMED_SESSION_VERSION;
  const keys = options.psk ? await authenticate(c, request, raw!) : undefined;
  const watch = new Stopwatch();
  const file = c.file = openFile(c, name, request.size);
  const algorithm = sessionDigest(request.flags);
  let hash: ContentHash;
  if (session) {
    hash = await startSession(c, request, file, keys);
  } else {
    file.resumeAt(0);
    hash = await createContentHash(algorithm);
  }
  const resumedBytes = file.written;
  const stream = await c.server.offloader.start(
    request.size - resumedBytes,
    hash,
    { running: keys !== undefined },
  );
  let expected: Uint8Array;
  let digest: Uint8Array;
  try {
    expected = keys
      ? await receiveRecords(c, file, stream, request.size, keys)
      : await receiveRaw(c, file, stream, request.size);
    digest = await stream.digest();
  } finally {
    stream.close();
  }
  const field = digestField(digest);
  if (toHex(expected) !== toHex(field)) {
    const sent = toHex(expected.subarray(0, digest.length));
    throw new TransferFailure(
      FramedStatus.DIGEST_MISMATCH,
      `MISMATCH: ${digestLabel(algorithm)} of the received bytes is ${
        toHex(digest)
      }, the sender's is ${sent}`,
    );
  }
  const path = file.commit(receivedName("tcp", name), options.overwrite);
  emit({
    event: "received",
    transport: "tcp",
    mode: "framed",
    path,
    bytes: request.size,
    [algorithm]: toHex(digest),
    complete: true,
    verified: true,
    from: c.from,
    seconds: watch.elapsed(),
    resumedBytes: request.flags & SessionFlags.RESUME ? resumedBytes : undefined,
    authenticated: keys ? true : undefined,
  });
  const text = CLASSIC_TCP_REPLY;
  await writeAll(
    c.conn,
    replyBytes(c, { status: FramedStatus.OK, bytes: request.size, digest: field, message: text }),
  );
  emit({ event: "reply", transport: "tcp", to: c.from, text });
}

/** Emits a progress event at most every 100 ms. */
function progressReporter(c: Connection, total?: number): (bytes: number) => void {
  let last = performance.now();
  return (bytes) => {
    if (performance.now() - last < 100) return;
    last = performance.now();
    c.server.emit({ event: "progress", transport: "tcp", from: c.from, bytes, total });
  };
}

/** Receives raw bytes up to `size`, then the 32-byte SHA-256 trailer, which it returns. */
async function receiveRaw(
  c: Connection,
  file: ReceivingFile,
  hash: StreamHash,
  size: number,
): Promise<Uint8Array> {
  const progress = progressReporter(c, size);
  while (file.written < size) {
    progress(file.written);
    const chunk = await c.reader.chunk(size - file.written);
    if (chunk === null) {
      throw new TransferFailure(
        FramedStatus.SHORT,
        `INCOMPLETE: stream ended after ${file.written} of ${size} bytes`,
      );
    }
    c.watchdog.touch();
    file.append(chunk);
    hash.update(chunk);
  }
  const trailer = await c.reader.peek(DIGEST_SIZE);
  if (trailer.length < DIGEST_SIZE) {
    throw new TransferFailure(FramedStatus.SHORT, "INCOMPLETE: stream ended before the digest trailer");
  }
  const expected = trailer.slice(0, DIGEST_SIZE);
  c.reader.skip(DIGEST_SIZE);
  return expected;
}

/**
 * Receives authenticated records up to `size`: each is written only once
 * its tag is right, so a bad one ends the transfer with nothing after the
 * last good record written. Then the sealed SHA-256 trailer, which it
 * returns.
 */
async function receiveRecords(
  c: Connection,
  file: ReceivingFile,
  hash: StreamHash,
  size: number,
  keys: SessionKeys,
): Promise<Uint8Array> {
  const progress = progressReporter(c, size);
  let index = 0;
  while (file.written < size) {
    progress(file.written);
    const start = file.written;
    const length = await readClientMessage(c, (b) => parseRecordHeader(b, size - start), `record ${index}`);
    const body = await c.reader.peek(length + SESSION_TAG_SIZE);
    if (body.length < length + SESSION_TAG_SIZE) {
      throw new TransferFailure(
        FramedStatus.SHORT,
        `INCOMPLETE: stream ended inside record ${index}, after ${start} of ${size} bytes`,
      );
    }
    c.watchdog.touch();
    const payload = body.subarray(0, length);
    // The tag covers the SHA-256 of everything up to this record's end, so
    // one hash pass both verifies the records and computes the digest.
    hash.update(payload);
    if (
      !keys.toServer.verify(
        body.subarray(length, length + SESSION_TAG_SIZE),
        recordTagPrefix(index, length),
        hash.running!(),
      )
    ) {
      throw new TransferFailure(
        FramedStatus.REFUSED,
        `REFUSED: record ${index} (bytes ${start}-${
          start + length - 1
        }) failed authentication: altered in transit or not from the key holder; nothing after byte ${start} was written`,
      );
    }
    file.append(payload);
    c.reader.skip(length + SESSION_TAG_SIZE);
    index++;
  }
  const trailer = await c.reader.peek(SEALED_TRAILER_SIZE);
  if (trailer.length < SEALED_TRAILER_SIZE) {
    throw new TransferFailure(FramedStatus.SHORT, "INCOMPLETE: stream ended before the SHA-256 trailer");
  }
  const expected = trailer.slice(0, DIGEST_SIZE);
  if (
    !keys.toServer.verify(
      trailer.subarray(DIGEST_SIZE, SEALED_TRAILER_SIZE),
      trailerTagPrefix(index, size),
      expected,
    )
  ) {
    throw new TransferFailure(FramedStatus.REFUSED, "REFUSED: the SHA-256 trailer failed authentication");
  }
  c.reader.skip(SEALED_TRAILER_SIZE);
  return expected;
}

async function receiveClassic(c: Connection): Promise<void> {
  const { options, emit } = c.server;
  if (options.psk) {
    throw new TransferFailure(
      FramedStatus.REFUSED,
      "REFUSED: this server requires a key, and classic raw TCP streams cannot carry one (send with tcp-client --psk, --psk-file or IMGXFER_PSK)",
    );
  }
  const watch = new Stopwatch();
  const file = c.file = new ReceivingFile(options.outDir, CLASSIC_TCP_NAME);
  const progress = progressReporter(c);
  for (;;) {
    progress(file.written);
    const chunk = await c.reader.chunk(1 << 20);
    if (chunk === null) break;
    c.watchdog.touch();
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
  const path = file.commit(CLASSIC_TCP_NAME, options.overwrite);
  // A classic stream carries no digest to check, so the sender is answered
  // (and its connection half-closed) first; the SHA-256 for the log is
  // computed afterwards, off the transfer's critical path.
  const text = CLASSIC_TCP_REPLY;
  await writeAll(c.conn, new TextEncoder().encode(text));
  await c.conn.closeWrite();
  const sha256 = await sha256OfFile(path);
  emit({
    event: "received",
    transport: "tcp",
    mode: "classic",
    path,
    bytes,
    sha256,
    complete: true,
    from: c.from,
    seconds,
  });
  emit({ event: "reply", transport: "tcp", to: c.from, text });
}
