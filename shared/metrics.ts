/**
 * The numbers: throughput, chunk counts, timing, and the summary block.
 *
 * Throughput follows the course report: bytes × 8 / seconds / 10^6 (Mbps).
 *
 * @module
 */

/** Megabits per second for `bytes` moved in `seconds`; 0 when no time passed. */
export function mbps(bytes: number, seconds: number): number {
  if (!(seconds > 0)) return 0;
  return (bytes * 8) / seconds / 1e6;
}

/** Number of `buffer`-size chunks needed for `size` bytes: ceil(size / buffer). */
export function chunkCount(size: number, buffer: number): number {
  if (!(buffer > 0)) throw new RangeError(`buffer must be positive, got ${buffer}`);
  return Math.ceil(size / buffer);
}

/** A monotonic stopwatch, in seconds. */
export class Stopwatch {
  #start: number;

  /** Starts the stopwatch now. */
  constructor() {
    this.#start = performance.now();
  }

  /** Seconds since start. */
  elapsed(): number {
    return (performance.now() - this.#start) / 1000;
  }
}

/** Formats seconds like the original scripts: `0.004`. */
export function formatSeconds(seconds: number): string {
  return seconds.toFixed(3);
}

/** Formats Mbps like the original scripts: `140.38`. */
export function formatMbps(value: number): string {
  return value.toFixed(2);
}

/** One labelled row of a summary block. */
export type SummaryRow = readonly [label: string, value: string];

/**
 * Formats a summary block like the original's:
 *
 * ```
 * === TCP Transfer Summary ===
 * File size   : 61973 bytes
 * Buffer size : 4096 bytes
 * ```
 *
 * Labels are padded to the longest one.
 */
export function formatSummary(title: string, rows: readonly SummaryRow[]): string {
  const width = Math.max(0, ...rows.map(([label]) => label.length));
  return [`=== ${title} ===`, ...rows.map(([label, value]) => `${label.padEnd(width)} : ${value}`)].join(
    "\n",
  );
}

/** What a client measured for one transfer; the shape of its `--json` summary. */
export interface TransferSummary {
  /** `"tcp"` or `"udp"`. */
  transport: "tcp" | "udp";
  /** `"framed"` or `"classic"` (TCP), `"classic"` or `"reliable"` (UDP). */
  mode: "framed" | "classic" | "reliable";
  /** The file's path as given. */
  file: string;
  /** File size in bytes. */
  bytes: number;
  /** Chunk (TCP) or payload (UDP) size. */
  buffer: number;
  /** TCP: writes of `buffer` bytes. */
  chunks?: number;
  /** UDP: data datagrams sent (the end marker not counted). */
  packets?: number;
  /** Seconds from before connecting until the reply arrived. */
  seconds: number;
  /** Delivered (server-confirmed) bytes × 8 / seconds / 10^6. */
  mbps: number;
  /** Bytes the server confirmed holding. */
  confirmedBytes: number;
  /** `"success"`, `"incomplete"`, `"mismatch"`, `"refused"`, `"error"`, `"no-reply"` or `"unconfirmed"`. */
  status: string;
  /** The server's reply text, or an empty string. */
  response: string;
  /** SHA-256 of the file as sent (hex), when computed. */
  sha256?: string;
  /** XXH3-128 of the file as sent (hex), when the transfer used that digest (`--digest xxh128`). */
  xxh128?: string;
  /** Whether the server's digest matched ours (framed TCP only). */
  verified?: boolean;
  /** With `--resume`: bytes not sent because the server already held them (0 when none). */
  resumedBytes?: number;
  /** With a key: whether the server proved it holds the key and its answers were authentic. */
  authenticated?: boolean;
}

/** The reliable client's summary: the common fields plus protocol counters. */
export interface ReliableSummary extends TransferSummary {
  /** Datagrams sent (data, retransmissions and control). */
  datagrams: number;
  /** DATA datagrams that were retransmissions. */
  retransmitted: number;
  /** Duplicate chunks the receiver reported. */
  duplicates: number;
  /** ACKs received. */
  acks: number;
  /** Transmissions declared lost, as a percentage of DATA datagrams sent. */
  lossPercent: number;
  /** Smoothed round-trip time, ms (0 when nothing was acknowledged). */
  srttMs: number;
  /** Delivered file bytes per second ×8/10^6 (same as `mbps`). */
  goodputMbps: number;
  /** Bytes on the wire (headers and retransmissions included) ×8 / seconds / 10^6. */
  wireMbps: number;
  /** Wire bytes beyond the confirmed bytes, as a percentage of them (0 when nothing was confirmed). */
  overheadPercent: number;
}

/** `52428800` → `52,428,800`. */
export function groupDigits(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
