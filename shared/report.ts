/**
 * Human and JSON output for clients and servers, in the original scripts'
 * shape (`[*] …` lines and a summary block), shared by TCP and UDP. Logs go
 * to stderr and results to stdout (see {@linkcode Output}).
 *
 * @module
 */

import { ExitCode, type Output, pythonAddr } from "./cli.ts";
import {
  formatMbps,
  formatSeconds,
  formatSummary,
  groupDigits,
  type ReliableSummary,
  type SummaryRow,
  type TransferSummary,
} from "./metrics.ts";
import { digestLabel } from "./digest.ts";
import { runtime } from "./runtime.ts";
import type { ServerEvent, ServerHandle } from "./server_events.ts";

/** Events both clients emit. */
export type ClientEvent =
  | { type: "preparing"; file: string; bytes: number; host: string; port: number; buffer: number }
  | { type: "connected"; host: string; port: number }
  | { type: "progress"; bytes: number; total: number; seconds: number }
  | { type: "sent"; file: string; chunks?: number; packets?: number }
  | { type: "response"; text: string };

/** Prints a client event as the original's `[*]` line (human mode only). */
export function printClientEvent(out: Output, transport: "tcp" | "udp", event: ClientEvent): void {
  switch (event.type) {
    case "preparing": {
      const over = transport === "udp" ? " over UDP" : "";
      out.log(
        `[*] Preparing to send '${event.file}' (${event.bytes} bytes) to ${event.host}:${event.port}${over}`,
      );
      out.log(`[*] Using buffer size of ${event.buffer} bytes`);
      break;
    }
    case "connected":
      out.log(
        transport === "udp"
          ? `[*] Session accepted by ${event.host}:${event.port}`
          : `[*] Connected to ${event.host}:${event.port}`,
      );
      break;
    case "progress":
      out.progress("send", transport === "udp" ? "sending (UDP)" : "sending", event.bytes, event.total);
      break;
    case "sent":
      out.endProgress("send");
      out.log(
        event.packets !== undefined
          ? `[*] File '${event.file}' sent (${event.packets} packets).`
          : `[*] File '${event.file}' sent (${event.chunks} chunks).`,
      );
      break;
    case "response":
      out.endProgress("send");
      out.log(
        `[*] Server response: ${
          event.text === "" ? "(none: the server closed without replying)" : event.text
        }`,
      );
      break;
  }
}

/** The digest a summary or event names: XXH3-128 when the transfer used it, else SHA-256. */
function namedDigest(d: { sha256?: string; xxh128?: string }): { label: string; hex?: string } {
  return d.xxh128 !== undefined
    ? { label: digestLabel("xxh128"), hex: d.xxh128 }
    : { label: digestLabel("sha256"), hex: d.sha256 };
}

/** The summary block's rows: the original's five, then what we add. */
export function summaryRows(s: TransferSummary): SummaryRow[] {
  const rows: SummaryRow[] = [
    ["File size", `${s.bytes} bytes`],
    ["Buffer size", `${s.buffer} bytes`],
    s.transport === "udp" ? ["Packets sent", `${s.packets}`] : ["Chunks sent", `${s.chunks}`],
    ["Total time", `${formatSeconds(s.seconds)} s`],
    ["Throughput", `${formatMbps(s.mbps)} Mbps`],
  ];
  if (s.transport === "udp" || s.status !== "success") {
    rows.push(["Confirmed", `${s.confirmedBytes} of ${s.bytes} bytes`]);
  }
  if (isReliable(s)) {
    const r: ReliableSummary = s;
    rows.push(
      ["Datagrams", `${r.datagrams} sent, ${r.retransmitted} retransmitted, ${r.acks} ACKs received`],
      ["Duplicates", `${r.duplicates} received by the server`],
      ["Loss", `${r.lossPercent.toFixed(2)} % of data datagrams (observed)`],
      ["Smoothed RTT", r.srttMs > 0 ? `${r.srttMs.toFixed(3)} ms` : "n/a (no acknowledgement)"],
      [
        "Goodput",
        `${formatMbps(r.goodputMbps)} Mbps (wire ${formatMbps(r.wireMbps)} Mbps, overhead ${
          r.confirmedBytes > 0 ? `${r.overheadPercent.toFixed(1)} %` : "n/a"
        })`,
      ],
    );
  }
  if (s.resumedBytes !== undefined) {
    rows.push(["Resumed", `skipped ${groupDigits(s.resumedBytes)} bytes already on the server`]);
  }
  const verified = s.verified ? `, ${namedDigest(s).label} verified by the server` : "";
  const keyed = s.authenticated ? ", authenticated with the pre-shared key" : "";
  rows.push(["Mode", `${s.mode}${verified}${keyed}`]);
  rows.push(["Status", s.status]);
  return rows;
}

function isReliable(s: TransferSummary): s is ReliableSummary {
  return s.mode === "reliable";
}

/** Prints the summary block, or the JSON summary. */
export function printSummary(out: Output, s: TransferSummary): void {
  if (out.json) {
    const { transport, mode, file, bytes, buffer, seconds, mbps, status, response } = s;
    const count = s.transport === "udp" ? { packets: s.packets } : { chunks: s.chunks };
    const reliable = isReliable(s)
      ? {
        datagrams: s.datagrams,
        retransmitted: s.retransmitted,
        duplicates: s.duplicates,
        acks: s.acks,
        lossPercent: Number(s.lossPercent.toFixed(3)),
        srttMs: Number(s.srttMs.toFixed(3)),
        goodputMbps: Number(s.goodputMbps.toFixed(3)),
        wireMbps: Number(s.wireMbps.toFixed(3)),
        overheadPercent: Number(s.overheadPercent.toFixed(2)),
      }
      : {};
    out.record({
      transport,
      mode,
      file,
      bytes,
      buffer,
      ...count,
      seconds: Number(seconds.toFixed(6)),
      mbps: Number(mbps.toFixed(3)),
      confirmedBytes: s.confirmedBytes,
      status,
      response,
      sha256: s.sha256,
      xxh128: s.xxh128,
      verified: s.verified,
      resumedBytes: s.resumedBytes,
      authenticated: s.authenticated,
      ...reliable,
    });
    return;
  }
  out.endProgress("send");
  if (s.verified) {
    const { label, hex } = namedDigest(s);
    out.log(`[*] Verified: the server's ${label} matches (${hex})`);
  }
  out.result("");
  out.result(formatSummary(`${s.transport.toUpperCase()} Transfer Summary`, summaryRows(s)));
  out.log(s.transport === "tcp" ? "[*] Connection closed." : "[*] Socket closed.");
}

/** A client's exit code for its summary. */
export function clientExitCode(s: TransferSummary): number {
  return s.status === "success" || s.status === "unconfirmed" ? ExitCode.OK : ExitCode.TRANSFER_FAILED;
}

/** Why a summary is not a success, as one line for stderr, or `undefined`. */
export function failureLine(
  s: TransferSummary,
  host: string,
  port: number,
  timeoutMs: number,
): string | undefined {
  switch (s.status) {
    case "success":
    case "unconfirmed":
      return undefined;
    case "no-reply":
      return s.transport === "udp"
        ? `no reply from ${host}:${port} within ${
          timeoutMs / 1000
        } s (is the server running? UDP reports no connection errors)`
        : `${host}:${port} closed the connection without a framed reply (is it an imgxfer server? try --classic)`;
    case "mismatch":
      return `the server's ${namedDigest(s).label} does not match the file: the transfer was corrupted`;
    default:
      return `the server did not confirm the file: ${s.response || s.status}`;
  }
}

/** Prints a server event as the original's lines, or as a JSON line. */
export function printServerEvent(out: Output, event: ServerEvent): void {
  if (event.event === "progress") {
    out.progress(event.from, `receiving from ${event.from}`, event.bytes, event.total);
    return;
  }
  out.record(event as unknown as Record<string, unknown>);
  switch (event.event) {
    case "listening":
      out.log(
        event.transport === "tcp"
          ? `[*] Listening on ${event.host}:${event.port}`
          : `[*] UDP server listening on ${event.host}:${event.port}`,
      );
      break;
    case "connection":
      out.log(
        event.transport === "tcp"
          ? `[*] Connection established from ${pythonAddr(event.from)}`
          : `[*] Receiving packets from ${pythonAddr(event.from)}`,
      );
      break;
    case "received":
      out.endProgress(event.from);
      if (event.complete) {
        out.result(`[*] File received and saved as '${event.path}'.`);
        if (event.verified) {
          const { label, hex } = namedDigest(event);
          out.log(`[*] ${label} verified: ${hex}`);
        }
        if (event.resumedBytes) {
          out.log(
            `[*] Resumed: ${groupDigits(event.resumedBytes)} bytes were already here from an earlier attempt`,
          );
        }
        if (event.authenticated) out.log("[*] Authenticated: the sender proved the pre-shared key");
        if (event.forged) {
          out.log(`[*] Dropped ${event.forged} forged datagrams (authenticator did not verify)`);
        }
      } else {
        const p = event.packets;
        const missing = p && p.missing ? `, missing ${p.missing}` : "";
        out.result(
          `[!] File INCOMPLETE (${p?.received}/${p?.expected} packets${missing}); saved as '${event.path}'.`,
        );
      }
      break;
    case "reply":
      out.log(
        event.text.startsWith("SUCCESS")
          ? "[*] Confirmation sent to client."
          : `[*] Reply sent to client: ${event.text}`,
      );
      break;
    case "failed":
      out.endProgress(event.from);
      if (!out.json) out.warn(`Transfer from ${pythonAddr(event.from)} failed: ${event.error}`);
      break;
    case "ignored":
      break;
    case "shutdown":
      out.log("[*] Server shutdown.");
      break;
    case "pruned":
      out.log(
        `[*] Deleted ${event.names.length} resumable partial file(s) nobody resumed within ${event.days} day(s)`,
      );
      break;
  }
}

/**
 * Warns, on stderr, that the server accepts files from anyone who can reach
 * it (there is no authentication yet; see the README's security model).
 */
export function warnUnauthenticated(
  out: Output,
  addr: { hostname: string; port: number },
  outDir: string,
): void {
  const where = addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
  const scope = addr.hostname === "127.0.0.1" || addr.hostname === "::1" ? "any local program" : "anyone";
  if (!out.quiet) {
    out.warn(`no authentication: ${scope} that can reach ${where} can write files into '${outDir}'`);
  }
}

/**
 * Starts a server with `start` and waits for it to stop. The SIGINT/SIGTERM
 * handler is installed before the server binds, so a signal that arrives
 * while it starts is not lost: the first signal stops accepting and gives
 * transfers in progress `graceMs` to finish, a second one stops at once.
 * Returns the exit code (0: a stop on request is a clean stop).
 */
export async function runServer(
  start: () => ServerHandle | Promise<ServerHandle>,
  out?: Output,
  graceMs = 5000,
): Promise<number> {
  let signals = 0;
  let handle: ServerHandle | undefined;
  const off = runtime.onShutdownSignal((signal) => {
    signals++;
    if (signals === 1) {
      out?.log(`[*] ${signal}: finishing transfers in progress (up to ${graceMs / 1000} s)…`);
    }
    if (handle) void handle.close(signals === 1 ? graceMs : 0);
  });
  try {
    handle = await start();
    if (signals > 0) void handle.close(signals === 1 ? graceMs : 0);
    await handle.done;
  } finally {
    off();
  }
  return ExitCode.OK;
}
