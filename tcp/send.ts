/**
 * Sending a file over TCP, framed (default) or classic.
 *
 * Framed: header, bytes, SHA-256 (or, asked for, XXH3-128); the server's
 * reply carries its own digest, which must match. Classic: the raw bytes,
 * then a half-close; the reply is whatever text the server sends back (the
 * original sends `SUCCESS: File received`; `nc` and `socat` send nothing).
 *
 * With a pre-shared key, `resume` or the XXH3-128 digest, the framed sender
 * speaks a version-2 session instead: a key handshake (the server proves itself first, then the
 * client), the server's offer of what it already holds of the file, and,
 * under a key, authenticated records (the pieces both ends share are in
 * `session.ts`).
 *
 * @module
 */

import { availableParallelism } from "node:os";
import {
  concatBytes,
  constantTimeEqual,
  handshakeProof,
  randomNonce,
  verifyHandshakeProof,
} from "../shared/auth.ts";
import { BufferedReader, writeAll } from "../shared/conn_io.ts";
import { type ContentHash, createContentHash, digestField, type DigestName } from "../shared/digest.ts";
import { CliError, ExitCode, usageError, withContext } from "../shared/errors.ts";
import { InputFile, sentName } from "../shared/files.ts";
import { mbps, Stopwatch, type TransferSummary } from "../shared/metrics.ts";
import {
  bytesEqual,
  encodeFramedHeader,
  encodeProof,
  encodeSessionRequest,
  encodeStart,
  type FramedReply,
  FramedStatus,
  MAX_RECORD_PAYLOAD,
  parseFramedReply,
  type ParseResult,
  parseServerMessage,
  ProtocolError,
  RECORD_HEADER_SIZE,
  recordTagPrefix,
  type ServerSessionMessage,
  SESSION_TAG_SIZE,
  SessionFlags,
  type SessionOffer,
  toHex,
  trailerTagPrefix,
  writeRecordHeader,
} from "../shared/protocol.ts";
import { type Conn, runtime } from "../shared/runtime.ts";
import { defaultHashWorkers, Sha256Offloader, type StreamHash } from "../shared/sha256_offload.ts";
import { hashPrefix, readFrame, type SessionKeys, tcpSessionKeys } from "./session.ts";

/** Options for {@linkcode sendFileTcp}. */
export interface TcpSendOptions {
  /** Server address. */
  host: string;
  /** Server port. */
  port: number;
  /** Path of the file to send. */
  file: string;
  /** Bytes per write (under a key: per file read; records are up to 1 MiB). */
  buffer: number;
  /** Speak the original raw-stream format instead of the framed one. */
  classic?: boolean;
  /** Pre-shared key: prove it, check the server's proof, send authenticated records. */
  psk?: Uint8Array;
  /** Ask the server what it already holds of this file and send only the rest. */
  resume?: boolean;
  /**
   * The end-to-end digest of a framed transfer: `"sha256"` (default) or
   * `"xxh128"` (XXH3-128: 4-5× less CPU, no key; see shared/digest.ts).
   */
  digest?: DigestName;
  /** Milliseconds to wait for each answer of the server (handshake and reply). */
  replyTimeoutMs?: number;
  /** Progress callback for the human or JSON output. */
  onEvent?: (event: TcpClientEvent) => void;
  /**
   * Worker threads for the SHA-256 of large framed transfers (hashing then
   * overlaps the socket and file I/O). Default: {@linkcode defaultHashWorkers}
   * of the machine's cores (none below 4 cores, where it does not pay).
   */
  hashWorkers?: number;
}

/** What a TCP client reports while it works. */
export type TcpClientEvent =
  | { type: "preparing"; file: string; bytes: number; host: string; port: number; buffer: number }
  | { type: "connected"; host: string; port: number }
  | { type: "authenticated" }
  | { type: "resuming"; skipped: number; total: number }
  | { type: "restarting"; held: number }
  | { type: "progress"; bytes: number; total: number; seconds: number }
  | { type: "sent"; file: string; chunks: number }
  | { type: "response"; text: string };

/** A TCP client's summary: the common fields, plus what a session did. */
export type TcpTransferSummary = TransferSummary;

const STATUS_NAMES: Record<number, string> = {
  [FramedStatus.OK]: "success",
  [FramedStatus.DIGEST_MISMATCH]: "mismatch",
  [FramedStatus.SHORT]: "incomplete",
  [FramedStatus.REFUSED]: "refused",
  [FramedStatus.SERVER_ERROR]: "error",
  [FramedStatus.UNSUPPORTED_VERSION]: "refused",
};

/** Largest classic reply text we read. */
const MAX_CLASSIC_REPLY = 4096;

// ------------------------------------------------------------- replies ----

async function readClassicReply(reader: BufferedReader): Promise<string> {
  const parts: Uint8Array[] = [];
  let total = 0;
  while (total < MAX_CLASSIC_REPLY) {
    const chunk = await reader.chunk(MAX_CLASSIC_REPLY - total);
    if (chunk === null) break;
    parts.push(chunk.slice());
    total += chunk.length;
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return new TextDecoder().decode(all).trim();
}

/** A framed reply and, in a keyed session, whether its tag was right. */
interface CheckedReply {
  reply: FramedReply;
  authentic?: boolean;
}

/** Reads the framed reply; under `keys`, also its tag, which is checked. */
function readReply(reader: BufferedReader, keys?: SessionKeys): Promise<CheckedReply | undefined> {
  return readFrame(reader, (bytes): ParseResult<CheckedReply> => {
    const r = parseFramedReply(bytes);
    if ("need" in r) return r;
    if (!keys) return { value: { reply: r.value }, consumed: r.consumed };
    const total = r.consumed + SESSION_TAG_SIZE;
    if (bytes.length < total) return { need: total };
    const authentic = keys.toClient.verify(bytes.subarray(r.consumed, total), bytes.subarray(0, r.consumed));
    return { value: { reply: r.value, authentic }, consumed: total };
  });
}

/** Calls `conn.close()` after `ms` unless cancelled, so a silent server cannot hang the client. */
function closeAfter(conn: Conn, ms: number): { cancel(): void; fired(): boolean } {
  let fired = false;
  const timer = setTimeout(() => {
    fired = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  }, ms);
  return { cancel: () => clearTimeout(timer), fired: () => fired };
}

// ---------------------------------------------------------------- send ----

/** What one transfer knows while it runs. */
interface Transfer {
  options: TcpSendOptions & { classic: boolean };
  conn: Conn;
  input: InputFile;
  watch: Stopwatch;
  emit: (event: TcpClientEvent) => void;
  /** Replies are read through this one reader. */
  reader: BufferedReader;
  /** Under a key, once the handshake succeeded. */
  keys?: SessionKeys;
  /** What the summary adds for a session. */
  extra: Partial<TcpTransferSummary>;
  /** The running digest of the file (none for classic streams). */
  hash?: ContentHash;
  /** Write calls (records under a key) so far. */
  chunks: number;
  /** The next byte of the file to send. */
  sent: number;
}

/**
 * Sends `options.file` to a TCP server and returns the measured summary.
 * Throws {@linkcode CliError} for local problems and network failures; a
 * transfer the server did not confirm (or, under a key, did not
 * authenticate) is returned with a non-success status.
 */
export async function sendFileTcp(options: TcpSendOptions): Promise<TcpTransferSummary> {
  const { host, port, buffer } = options;
  const classic = options.classic ?? false;
  if (classic && options.psk) {
    throw usageError(
      "--classic streams cannot carry a key (--psk, --psk-file or IMGXFER_PSK): drop --classic or the key",
    );
  }
  if (classic && options.resume) throw usageError("--resume needs the framed format: drop --classic");
  const digest = options.digest ?? "sha256";
  if (digest !== "sha256" && classic) {
    throw usageError("--classic streams carry no digest: drop --classic or --digest");
  }
  if (digest !== "sha256" && options.psk) {
    throw usageError(
      `a key's tags need SHA-256: drop --digest ${digest} or the key (--psk, --psk-file or IMGXFER_PSK)`,
    );
  }
  const emit = options.onEvent ?? (() => {});
  const input = InputFile.open(options.file);
  try {
    emit({ type: "preparing", file: options.file, bytes: input.size, host, port, buffer });
    const watch = new Stopwatch();
    let conn: Conn;
    try {
      conn = await runtime.connect({ hostname: host, port });
    } catch (error) {
      throw withContext(`cannot connect to ${host}:${port}`, error);
    }
    try {
      emit({ type: "connected", host, port });
      const t: Transfer = {
        options: { ...options, classic },
        conn,
        input,
        watch,
        emit,
        reader: new BufferedReader(conn, 8192),
        extra: {},
        // Only the framed format carries a digest; classic streams skip the hashing cost.
        hash: classic ? undefined : await createContentHash(digest),
        chunks: 0,
        sent: 0,
      };
      if (options.psk) t.extra.authenticated = false;
      if (options.resume) t.extra.resumedBytes = 0;
      return await transfer(t);
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  } finally {
    input.close();
  }
}

async function transfer(t: Transfer): Promise<TcpTransferSummary> {
  const { classic, psk, resume, host, port } = t.options;
  const session = !classic && (psk !== undefined || resume === true || algorithm(t) !== "sha256");
  let digest: Uint8Array | undefined;
  try {
    if (session) {
      const refusal = await handshake(t);
      if (refusal) return refusal;
    } else if (!classic) {
      await writeAll(t.conn, encodeFramedHeader({ name: sentName(t.options.file), size: t.input.size }));
    }
    digest = await sendBody(t);
    await t.conn.closeWrite();
  } catch (error) {
    if (error instanceof CliError) throw error;
    // The server may have refused and closed while we were still sending:
    // its reply explains why, so read it before reporting the broken pipe.
    if (!classic) {
      const checked = await readReply(t.reader, t.keys).catch(() => undefined);
      if (checked && checked.reply.status !== FramedStatus.OK) return refusedSummary(t, checked);
    }
    const size = t.input.size;
    throw withContext(`connection to ${host}:${port} lost after ${t.sent} of ${size} bytes`, error);
  }
  t.emit({ type: "sent", file: t.options.file, chunks: t.chunks });
  return await finish(t, digest);
}

/**
 * Runs a session's opening: the request, under a key the handshake, the
 * server's offer and the start message. Returns a summary when the server
 * refused (or could not prove the key), else `undefined` with `t.sent` at
 * the first byte to send.
 */
async function handshake(t: Transfer): Promise<TcpTransferSummary | undefined> {
  const { psk, resume } = t.options;
  const clientNonce = randomNonce();
  const flags = (psk ? SessionFlags.KEY : 0) | (resume ? SessionFlags.RESUME : 0) |
    (algorithm(t) === "xxh128" ? SessionFlags.XXH128 : 0);
  const request = encodeSessionRequest({
    name: sentName(t.options.file),
    size: t.input.size,
    flags,
    clientNonce,
  });
  await writeAll(t.conn, request);
  if (psk) {
    const refusal = await proveKey(t, psk, request, clientNonce);
    if (refusal) return refusal;
  }
  const answer = await nextServerMessage(t, "accept");
  if (answer.type === "reply") return refusedSummary(t, { reply: answer.reply });
  if (answer.type !== "accept") {
    throw protocolFailure(t, `expected the server's accept, got a ${answer.type}`);
  }
  if (t.keys) {
    if (!t.keys.toClient.verify(answer.tag, answer.signed)) {
      return failedSummary(t, "refused", "REFUSED: wrong key: the server's answer is not authentic");
    }
    t.extra.authenticated = true;
    t.emit({ type: "authenticated" });
  }
  if (resume && answer.offer.bytes > 0) {
    const prefix = await createContentHash(algorithm(t));
    if (await sameAsOffered(t, answer.offer, prefix)) {
      t.hash = prefix;
      t.sent = answer.offer.bytes;
      t.extra.resumedBytes = t.sent;
      t.emit({ type: "resuming", skipped: t.sent, total: t.input.size });
    } else {
      t.emit({ type: "restarting", held: answer.offer.bytes });
    }
  }
  await writeAll(t.conn, encodeStart(t.sent, t.keys ? (b) => t.keys!.toServer.tag(b) : undefined));
  return undefined;
}

/**
 * The key handshake: checks the server's proof, sends the client's, and
 * derives the session keys into `t.keys`. Returns a summary when the server
 * refused or cannot prove it holds the key.
 */
async function proveKey(
  t: Transfer,
  psk: Uint8Array,
  request: Uint8Array,
  clientNonce: Uint8Array,
): Promise<TcpTransferSummary | undefined> {
  const challenge = await nextServerMessage(t, "challenge");
  if (challenge.type === "reply") return refusedSummary(t, { reply: challenge.reply });
  if (challenge.type !== "challenge") throw protocolFailure(t, "the server skipped the key handshake");
  const { serverNonce } = challenge;
  const serverProved = verifyHandshakeProof(
    psk,
    "server",
    clientNonce,
    serverNonce,
    request,
    challenge.proof,
  );
  // Sent even when the server's proof is wrong, so the server logs the wrong key too.
  await writeAll(t.conn, encodeProof(handshakeProof(psk, "client", clientNonce, serverNonce, request)));
  if (!serverProved) {
    return failedSummary(t, "refused", "REFUSED: wrong key: the server cannot prove it holds this key");
  }
  t.keys = tcpSessionKeys(psk, clientNonce, serverNonce, request);
  return undefined;
}

/** Whether this file begins with the `offer.bytes` bytes the server holds; feeds them to `hash`. */
async function sameAsOffered(t: Transfer, offer: SessionOffer, hash: ContentHash): Promise<boolean> {
  if (offer.bytes > t.input.size) return false;
  if (!await hashPrefix(t.input, offer.bytes, hash)) return false;
  return constantTimeEqual(digestField(hash.peek()), offer.digest);
}

/** The transfer's digest algorithm. */
function algorithm(t: Transfer): DigestName {
  return t.hash?.algorithm ?? "sha256";
}

/**
 * The server's next handshake message (`what` names it for errors), read
 * within the reply timeout. Throws {@linkcode CliError} when the server
 * goes silent, closes, or sends something else than imgxfer messages.
 */
async function nextServerMessage(t: Transfer, what: string): Promise<ServerSessionMessage> {
  const { host, port } = t.options;
  const timeoutMs = t.options.replyTimeoutMs ?? 30_000;
  const guard = closeAfter(t.conn, timeoutMs);
  let message: ServerSessionMessage | undefined;
  try {
    message = await readFrame(t.reader, parseServerMessage);
  } catch (error) {
    if (guard.fired()) throw silentServer(t, timeoutMs, what);
    if (error instanceof ProtocolError) throw protocolFailure(t, error.message);
    throw withContext(`waiting for the ${what} from ${host}:${port}`, error);
  } finally {
    guard.cancel();
  }
  if (message) return message;
  if (guard.fired()) throw silentServer(t, timeoutMs, what);
  throw new CliError(
    `${host}:${port} closed the connection instead of sending the ${what} (is it an imgxfer server?)`,
    ExitCode.NETWORK,
  );
}

function silentServer(t: Transfer, timeoutMs: number, what: string): CliError {
  return new CliError(
    `no ${what} from ${t.options.host}:${t.options.port} within ${timeoutMs / 1000} s ` +
      "(is it an imgxfer server? --psk and --resume need one)",
    ExitCode.NETWORK,
  );
}

function protocolFailure(t: Transfer, message: string): CliError {
  return new CliError(`${t.options.host}:${t.options.port}: ${message}`, ExitCode.NETWORK);
}

/**
 * Sends the file from byte `t.sent`: raw writes of `--buffer` bytes (version
 * 1, classic, and keyless sessions), or, under a key, authenticated
 * records. Then the digest trailer (none for classic). Returns the digest.
 * With `hashWorkers`, a large file's SHA-256 runs on a worker thread,
 * overlapping the reads and writes (not after a resumed prefix, whose hash
 * state stays here, nor for XXH3-128, which is fast enough inline).
 */
async function sendBody(t: Transfer): Promise<Uint8Array | undefined> {
  if (!t.hash) return await sendRaw(t, undefined);
  const workers = t.options.hashWorkers ?? defaultHashWorkers(availableParallelism());
  const hash = await new Sha256Offloader(workers).start(
    t.input.size - t.sent,
    t.hash,
    { running: t.keys !== undefined },
  );
  try {
    return t.keys ? await sendRecords(t, t.keys, hash) : await sendRaw(t, hash);
  } finally {
    hash.close();
  }
}

async function sendRaw(t: Transfer, hash: StreamHash | undefined): Promise<Uint8Array | undefined> {
  const { buffer } = t.options;
  const size = t.input.size;
  const chunk = new Uint8Array(buffer);
  while (t.sent < size) {
    const n = t.input.readAt(chunk.subarray(0, Math.min(buffer, size - t.sent)), t.sent);
    if (n === 0) throw shrank(t);
    const view = chunk.subarray(0, n);
    hash?.update(view);
    await writeAll(t.conn, view);
    t.sent += n;
    t.chunks++;
    if ((t.chunks & 63) === 0) progress(t);
  }
  const digest = hash ? await hash.digest() : undefined;
  if (digest) await writeAll(t.conn, digestField(digest));
  return digest;
}

/**
 * Sends the file from byte `t.sent` in records `[u32 length][payload][tag]`
 * of up to 1 MiB, each tagged over its index, length and the SHA-256 of the
 * file up to the record's end, then the SHA-256 and its tag.
 */
async function sendRecords(t: Transfer, keys: SessionKeys, hash: StreamHash): Promise<Uint8Array> {
  const size = t.input.size;
  const record = new Uint8Array(RECORD_HEADER_SIZE + MAX_RECORD_PAYLOAD + SESSION_TAG_SIZE);
  let index = 0;
  while (t.sent < size) {
    const length = Math.min(MAX_RECORD_PAYLOAD, size - t.sent);
    const payload = record.subarray(RECORD_HEADER_SIZE, RECORD_HEADER_SIZE + length);
    if (t.input.readAt(payload, t.sent) !== length) throw shrank(t);
    hash.update(payload);
    writeRecordHeader(record, length);
    // The tag covers the SHA-256 of the whole file so far: it authenticates
    // every byte up to here without a second pass over the payload.
    record.set(
      keys.toServer.tag(recordTagPrefix(index, length), hash.running!()),
      RECORD_HEADER_SIZE + length,
    );
    await writeAll(t.conn, record.subarray(0, RECORD_HEADER_SIZE + length + SESSION_TAG_SIZE));
    t.sent += length;
    t.chunks++;
    index++;
    progress(t);
  }
  const digest = await hash.digest();
  await writeAll(t.conn, concatBytes(digest, keys.toServer.tag(trailerTagPrefix(index, size), digest)));
  return digest;
}

function shrank(t: Transfer): CliError {
  return new CliError(`'${t.options.file}' shrank while it was being sent`, ExitCode.FILE);
}

function progress(t: Transfer): void {
  t.emit({ type: "progress", bytes: t.sent, total: t.input.size, seconds: t.watch.elapsed() });
}

/** Reads the server's reply after the last byte and makes the summary. */
async function finish(t: Transfer, digest: Uint8Array | undefined): Promise<TcpTransferSummary> {
  const { host, port } = t.options;
  const size = t.input.size;
  const timeoutMs = t.options.replyTimeoutMs ?? 30_000;
  const guard = closeAfter(t.conn, timeoutMs);
  // The summary names the digest by its algorithm: `sha256` or `xxh128`.
  const named: Partial<TcpTransferSummary> = digest ? { [algorithm(t)]: toHex(digest) } : {};
  const noReply = () =>
    new CliError(`no reply from ${host}:${port} within ${timeoutMs / 1000} s`, ExitCode.NETWORK);
  try {
    if (t.options.classic) {
      const text = await readClassicReply(t.reader);
      const seconds = t.watch.elapsed();
      t.emit({ type: "response", text });
      // TCP delivered every byte to the peer's stack, so throughput counts
      // them all; only a reply says the file was stored ("confirmed").
      const status = text.startsWith("SUCCESS") ? "success" : text === "" ? "unconfirmed" : "error";
      return summary(t, status, status === "success" ? size : 0, {
        response: text,
        ...named,
        seconds,
        mbps: status === "error" ? 0 : mbps(size, seconds),
      });
    }
    const checked = await readReply(t.reader, t.keys);
    const seconds = t.watch.elapsed();
    if (!checked) {
      if (guard.fired()) throw noReply();
      return summary(t, "no-reply", 0, { response: "", ...named, verified: false, seconds });
    }
    const { reply, authentic } = checked;
    t.emit({ type: "response", text: reply.message });
    if (authentic === false) {
      return summary(t, "error", 0, {
        response: `${reply.message} (not authentic: the reply's tag does not match this session's key)`,
        ...named,
        verified: false,
        seconds,
      });
    }
    const verified = reply.status === FramedStatus.OK && reply.bytes === size && digest !== undefined &&
      bytesEqual(reply.digest, digestField(digest));
    const status = reply.status === FramedStatus.OK && !verified
      ? "mismatch"
      : STATUS_NAMES[reply.status] ?? "error";
    return summary(t, status, verified ? size : 0, { response: reply.message, ...named, verified, seconds });
  } catch (error) {
    if (guard.fired()) throw noReply();
    throw withContext(`reading the reply from ${host}:${port}`, error);
  } finally {
    guard.cancel();
  }
}

/** The summary of a transfer the server refused (its reply), or a failed handshake. */
function refusedSummary(t: Transfer, { reply }: CheckedReply): TcpTransferSummary {
  t.emit({ type: "response", text: reply.message });
  const asked = [
    t.options.psk !== undefined && "a key",
    t.options.resume === true && "--resume",
    algorithm(t) !== "sha256" && `--digest ${algorithm(t)}`,
  ].filter(Boolean).join(" and ");
  const text = reply.status === FramedStatus.UNSUPPORTED_VERSION && asked
    ? `${reply.message} (${asked} need${asked.includes(" and ") ? "" : "s"} a newer imgxfer server)`
    : reply.message;
  return summary(t, STATUS_NAMES[reply.status] ?? "error", 0, { response: text, verified: false });
}

function failedSummary(t: Transfer, status: string, text: string): TcpTransferSummary {
  return summary(t, status, 0, { response: text, verified: false });
}

function summary(
  t: Transfer,
  status: string,
  confirmedBytes: number,
  extra: Partial<TcpTransferSummary>,
): TcpTransferSummary {
  const seconds = extra.seconds ?? t.watch.elapsed();
  // Throughput counts the bytes this run moved, not those the server already held.
  const moved = Math.max(0, confirmedBytes - (t.extra.resumedBytes ?? 0));
  return {
    transport: "tcp",
    mode: t.options.classic ? "classic" : "framed",
    file: t.options.file,
    bytes: t.input.size,
    buffer: t.options.buffer,
    chunks: t.chunks,
    seconds,
    mbps: mbps(moved, seconds),
    confirmedBytes,
    status,
    response: "",
    ...t.extra,
    ...extra,
  };
}
