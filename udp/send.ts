/**
 * Sending a file in the classic UDP format: datagrams with sequence numbers
 * 0, 1, 2, …, then the `-1` marker (with our end trailer), then a wait for
 * the server's reply. The marker is repeated while no reply has come, so a
 * lost marker or a lost reply costs a second, not the transfer. Throughput
 * counts the bytes the server confirmed, not the bytes sent.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { lookup } from "node:dns/promises";
import { CliError, ExitCode, isTransientSendError, usageError, withContext } from "../shared/errors.ts";
import { InputFile } from "../shared/files.ts";
import { mbps, Stopwatch, type TransferSummary } from "../shared/metrics.ts";
import {
  CLASSIC_HEADER_SIZE,
  encodeClassicEnd,
  MAX_CLASSIC_BUFFER,
  parseUdpReply,
  toHex,
  writeClassicHeader,
} from "../shared/protocol.ts";
import { type DatagramConn, isIpLiteral, type NetAddr, runtime } from "../shared/runtime.ts";

/** Options for {@linkcode sendFileUdp}. */
export interface UdpSendOptions {
  /** Server address. */
  host: string;
  /** Server port. */
  port: number;
  /** Path of the file to send. */
  file: string;
  /** Payload bytes per datagram (at most 65503). */
  buffer: number;
  /** Milliseconds to wait for the server's reply. */
  timeoutMs?: number;
  /** Milliseconds between repeated end markers while no reply has come. */
  markerRetryMs?: number;
  /** Send the bare 4-byte marker, exactly like the original client. */
  bareMarker?: boolean;
  /** Progress callback for output. */
  onEvent?: (event: UdpClientEvent) => void;
}

/** What a UDP client reports while it works. */
export type UdpClientEvent =
  | { type: "preparing"; file: string; bytes: number; host: string; port: number; buffer: number }
  | { type: "progress"; bytes: number; total: number; seconds: number }
  | { type: "sent"; file: string; packets: number }
  | { type: "response"; text: string };

/** Resolves a host name to an IP literal (Bun's UDP send needs one). */
export async function resolveHost(host: string): Promise<string> {
  if (isIpLiteral(host)) return host;
  try {
    return (await lookup(host)).address;
  } catch (error) {
    throw withContext(`cannot resolve '${host}'`, error);
  }
}

/** Whether a datagram from `from` comes from `server` (IPv4-mapped and bracketed forms compare equal). */
export function isFrom(server: NetAddr, from: NetAddr): boolean {
  const strip = (h: string) => h.replace(/^::ffff:/i, "").replace(/^\[|\]$/g, "");
  return from.port === server.port && strip(from.hostname) === strip(server.hostname);
}

/** Resolves `host` and opens a client UDP socket of the same address family, on any port. */
export async function openClientSocket(
  host: string,
  port: number,
): Promise<{ socket: DatagramConn; server: NetAddr }> {
  const ip = await resolveHost(host);
  const server: NetAddr = { transport: "udp", hostname: ip, port };
  try {
    const socket = await runtime.listenDatagram({ hostname: ip.includes(":") ? "::" : "0.0.0.0", port: 0 });
    return { socket, server };
  } catch (error) {
    throw withContext("cannot open a UDP socket", error);
  }
}

/** Waits for the first datagram from `server`; rejects when the socket closes. */
async function firstReplyFrom(socket: DatagramConn, server: NetAddr): Promise<string> {
  const buffer = new Uint8Array(65536);
  for (;;) {
    const [data, from] = await socket.receive(buffer);
    if (isFrom(server, from)) {
      return new TextDecoder().decode(data).trim();
    }
  }
}

/**
 * Sends `options.file` in the classic UDP format and returns the summary.
 * Throws {@linkcode CliError} for local problems; no reply is a summary with
 * status `no-reply`.
 */
export async function sendFileUdp(options: UdpSendOptions): Promise<TransferSummary> {
  const { port, buffer } = options;
  if (!Number.isInteger(buffer) || buffer < 1 || buffer > MAX_CLASSIC_BUFFER) {
    throw usageError(
      `--buffer must be 1-${MAX_CLASSIC_BUFFER} for UDP (a datagram holds at most 65507 bytes)`,
    );
  }
  const emit = options.onEvent ?? (() => {});
  const timeoutMs = options.timeoutMs ?? 5000;
  const retryMs = options.markerRetryMs ?? 1000;
  const input = InputFile.open(options.file);
  let socket: DatagramConn | undefined;
  try {
    const opened = await openClientSocket(options.host, port);
    socket = opened.socket;
    const server = opened.server;
    emit({ type: "preparing", file: options.file, bytes: input.size, host: options.host, port, buffer });
    const watch = new Stopwatch();
    const reply = firstReplyFrom(socket, server);
    reply.catch(() => {}); // handled below; silences an early rejection
    const hash = createHash("sha256");
    const datagram = new Uint8Array(CLASSIC_HEADER_SIZE + buffer);
    let packets = 0;
    let sent = 0;
    try {
      while (sent < input.size) {
        const n = input.read(
          datagram.subarray(CLASSIC_HEADER_SIZE, CLASSIC_HEADER_SIZE + Math.min(buffer, input.size - sent)),
        );
        if (n === 0) throw new CliError(`'${options.file}' shrank while it was being sent`, ExitCode.FILE);
        writeClassicHeader(datagram, packets);
        hash.update(datagram.subarray(CLASSIC_HEADER_SIZE, CLASSIC_HEADER_SIZE + n));
        try {
          await socket.send(datagram.subarray(0, CLASSIC_HEADER_SIZE + n), server);
        } catch (error) {
          // Lost like any datagram the network drops: the server reports it missing.
          if (!isTransientSendError(error)) throw error;
        }
        sent += n;
        packets++;
        if ((packets & 255) === 0) {
          emit({ type: "progress", bytes: sent, total: input.size, seconds: watch.elapsed() });
        }
      }
    } catch (error) {
      throw withContext(`sending to ${options.host}:${port}`, error);
    }
    const marker = encodeClassicEnd(
      options.bareMarker ? undefined : { packets, chunk: buffer, bytes: input.size },
    );
    emit({ type: "sent", file: options.file, packets });
    const text = await waitForReply(socket, server, marker, reply, timeoutMs, retryMs);
    const seconds = watch.elapsed();
    const base = {
      transport: "udp" as const,
      mode: "classic" as const,
      file: options.file,
      bytes: input.size,
      buffer,
      packets,
      seconds,
      sha256: toHex(new Uint8Array(hash.digest())),
    };
    if (text === undefined) {
      return { ...base, mbps: 0, confirmedBytes: 0, status: "no-reply", response: "" };
    }
    emit({ type: "response", text });
    const parsed = parseUdpReply(text);
    const confirmedBytes = parsed.status === "success" ? input.size : parsed.receivedBytes ?? 0;
    const status = parsed.status === "other" ? "error" : parsed.status;
    return { ...base, mbps: mbps(confirmedBytes, seconds), confirmedBytes, status, response: text };
  } finally {
    try {
      socket?.close();
    } catch { /* already closed */ }
    input.close();
  }
}

/** Sends the marker, repeats it every `retryMs` until a reply arrives or `timeoutMs` passes. */
async function waitForReply(
  socket: DatagramConn,
  server: NetAddr,
  marker: Uint8Array,
  reply: Promise<string>,
  timeoutMs: number,
  retryMs: number,
): Promise<string | undefined> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    for (;;) {
      await socket.send(marker, server).catch(() => {});
      const left = timeoutMs - (performance.now() - started);
      if (left <= 0) return undefined;
      const tick = new Promise<"tick">((resolve) =>
        timer = setTimeout(() => resolve("tick"), Math.min(retryMs, left))
      );
      const result = await Promise.race([reply.catch(() => undefined), tick]);
      clearTimeout(timer);
      if (result !== "tick") return result;
      if (performance.now() - started >= timeoutMs) return undefined;
    }
  } finally {
    clearTimeout(timer);
  }
}
