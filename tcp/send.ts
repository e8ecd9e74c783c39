/**
 * Sending a file over TCP, framed (default) or classic.
 *
 * Framed: header, bytes, SHA-256; the server's reply carries its own digest,
 * which must match. Classic: the raw bytes, then a half-close; the reply is
 * whatever text the server sends back (the original sends
 * `SUCCESS: File received`; `nc` and `socat` send nothing).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { BufferedReader, writeAll } from "../shared/conn_io.ts";
import { CliError, ExitCode, withContext } from "../shared/errors.ts";
import { InputFile, sentName } from "../shared/files.ts";
import { mbps, Stopwatch, type TransferSummary } from "../shared/metrics.ts";
import {
  bytesEqual,
  encodeFramedHeader,
  type FramedReply,
  FramedStatus,
  parseFramedReply,
  toHex,
} from "../shared/protocol.ts";
import { type Conn, runtime } from "../shared/runtime.ts";

/** Options for {@linkcode sendFileTcp}. */
export interface TcpSendOptions {
  /** Server address. */
  host: string;
  /** Server port. */
  port: number;
  /** Path of the file to send. */
  file: string;
  /** Bytes per write. */
  buffer: number;
  /** Speak the original raw-stream format instead of the framed one. */
  classic?: boolean;
  /** Milliseconds to wait for the server's reply after the last byte. */
  replyTimeoutMs?: number;
  /** Progress callback for the human or JSON output. */
  onEvent?: (event: TcpClientEvent) => void;
}

/** What a TCP client reports while it works. */
export type TcpClientEvent =
  | { type: "preparing"; file: string; bytes: number; host: string; port: number; buffer: number }
  | { type: "connected"; host: string; port: number }
  | { type: "progress"; bytes: number; total: number; seconds: number }
  | { type: "sent"; file: string; chunks: number }
  | { type: "response"; text: string };

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

async function readFramedReply(reader: BufferedReader): Promise<FramedReply | undefined> {
  let result = parseFramedReply(await reader.peek(1));
  while ("need" in result) {
    const view = await reader.peek(result.need);
    if (view.length < result.need) return undefined;
    result = parseFramedReply(view);
  }
  reader.skip(result.consumed);
  return result.value;
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

/**
 * Sends `options.file` to a TCP server and returns the measured summary.
 * Throws {@linkcode CliError} for local problems and network failures; a
 * transfer the server did not confirm is returned with a non-success status.
 */
export async function sendFileTcp(options: TcpSendOptions): Promise<TransferSummary> {
  const { host, port, buffer } = options;
  const classic = options.classic ?? false;
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
      // Only the framed format carries a digest; classic streams skip the hashing cost.
      const hash = classic ? undefined : createHash("sha256");
      const chunk = new Uint8Array(buffer);
      let chunks = 0;
      let sent = 0;
      let sendError: unknown;
      try {
        if (!classic) {
          await writeAll(conn, encodeFramedHeader({ name: sentName(options.file), size: input.size }));
        }
        while (sent < input.size) {
          const n = input.read(chunk.subarray(0, Math.min(buffer, input.size - sent)));
          if (n === 0) {
            throw new CliError(`'${options.file}' shrank while it was being sent`, ExitCode.FILE);
          }
          const view = chunk.subarray(0, n);
          hash?.update(view);
          await writeAll(conn, view);
          sent += n;
          chunks++;
          if ((chunks & 63) === 0) {
            emit({ type: "progress", bytes: sent, total: input.size, seconds: watch.elapsed() });
          }
        }
        const digest = hash ? new Uint8Array(hash.digest()) : undefined;
        if (digest) await writeAll(conn, digest);
        await conn.closeWrite();
        emit({ type: "sent", file: options.file, chunks });
        return await finish(conn, { ...options, classic }, input.size, chunks, watch, digest, emit);
      } catch (error) {
        sendError = error;
      }
      if (sendError instanceof CliError) throw sendError;
      // The server may have refused and closed while we were still sending:
      // its reply explains why, so read it before reporting the broken pipe.
      if (!classic) {
        const reply = await readFramedReply(new BufferedReader(conn, 8192)).catch(() => undefined);
        if (reply && reply.status !== FramedStatus.OK) {
          emit({ type: "response", text: reply.message });
          return summary(
            options,
            input.size,
            chunks,
            watch.elapsed(),
            0,
            STATUS_NAMES[reply.status] ?? "error",
            {
              response: reply.message,
              verified: false,
            },
          );
        }
      }
      throw withContext(`connection to ${host}:${port} lost after ${sent} of ${input.size} bytes`, sendError);
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  } finally {
    input.close();
  }
}

async function finish(
  conn: Conn,
  options: TcpSendOptions & { classic: boolean },
  size: number,
  chunks: number,
  watch: Stopwatch,
  digest: Uint8Array | undefined,
  emit: (event: TcpClientEvent) => void,
): Promise<TransferSummary> {
  const timeoutMs = options.replyTimeoutMs ?? 30_000;
  const guard = closeAfter(conn, timeoutMs);
  const reader = new BufferedReader(conn, 8192);
  const sha256 = digest ? toHex(digest) : undefined;
  try {
    if (options.classic) {
      const text = await readClassicReply(reader);
      const seconds = watch.elapsed();
      emit({ type: "response", text });
      // TCP delivered every byte to the peer's stack, so throughput counts
      // them all; only a reply says the file was stored ("confirmed").
      const status = text.startsWith("SUCCESS") ? "success" : text === "" ? "unconfirmed" : "error";
      return summary(options, size, chunks, seconds, status === "success" ? size : 0, status, {
        response: text,
        sha256,
        mbps: status === "error" ? 0 : mbps(size, seconds),
      });
    }
    const reply = await readFramedReply(reader);
    const seconds = watch.elapsed();
    if (!reply) {
      if (guard.fired()) {
        throw new CliError(
          `no reply from ${options.host}:${options.port} within ${timeoutMs / 1000} s`,
          ExitCode.NETWORK,
        );
      }
      return summary(options, size, chunks, seconds, 0, "no-reply", {
        response: "",
        sha256,
        verified: false,
      });
    }
    emit({ type: "response", text: reply.message });
    const verified = reply.status === FramedStatus.OK && reply.bytes === size && digest !== undefined &&
      bytesEqual(reply.digest, digest);
    const status = reply.status === FramedStatus.OK && !verified
      ? "mismatch"
      : STATUS_NAMES[reply.status] ?? "error";
    return summary(options, size, chunks, seconds, verified ? size : 0, status, {
      response: reply.message,
      sha256,
      verified,
    });
  } catch (error) {
    if (guard.fired()) {
      throw new CliError(
        `no reply from ${options.host}:${options.port} within ${timeoutMs / 1000} s`,
        ExitCode.NETWORK,
      );
    }
    throw withContext(`reading the reply from ${options.host}:${options.port}`, error);
  } finally {
    guard.cancel();
  }
}

function summary(
  options: TcpSendOptions,
  size: number,
  chunks: number,
  seconds: number,
  confirmedBytes: number,
  status: string,
  extra: Partial<TransferSummary>,
): TransferSummary {
  return {
    transport: "tcp",
    mode: options.classic ? "classic" : "framed",
    file: options.file,
    bytes: size,
    buffer: options.buffer,
    chunks,
    seconds,
    mbps: mbps(confirmedBytes, seconds),
    confirmedBytes,
    status,
    response: "",
    ...extra,
  };
}
