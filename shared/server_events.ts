/**
 * What both servers report, and the handle they return. Entry points turn
 * these events into the original's `[*]` lines or into JSON lines.
 *
 * @module
 */

import type { NetAddr } from "./runtime.ts";

/** A file the server stored (complete, or under an `incomplete` name). */
export interface ReceivedEvent {
  /** Always `"received"`. */
  event: "received";
  /** `"tcp"` or `"udp"`. */
  transport: "tcp" | "udp";
  /** Wire format the sender used. */
  mode: "framed" | "classic" | "reliable";
  /** Where the file was saved. */
  path: string;
  /** Bytes saved. */
  bytes: number;
  /**
   * SHA-256 (hex) of the saved bytes; absent only when a framed TCP sender
   * chose XXH3-128 (`--digest xxh128`), which `xxh128` then carries.
   */
  sha256?: string;
  /** XXH3-128 (hex) of the saved bytes, for a framed TCP transfer with `--digest xxh128`. */
  xxh128?: string;
  /** Whether the file is whole (and, for framed TCP, verified). */
  complete: boolean;
  /** Whether the sender's digest was checked and matched (framed TCP only). */
  verified?: boolean;
  /** The sender, `host:port`. */
  from: string;
  /** UDP: packets received and expected, and the missing ranges, when incomplete. */
  packets?: { received: number; expected: number; missing: string };
  /** Reliable UDP: duplicate chunks received (retransmissions that were not needed). */
  duplicates?: number;
  /** Bytes that were already here from an earlier, interrupted attempt (`--resume`). */
  resumedBytes?: number;
  /** Under a key: the sender proved the key and every record or datagram written was authentic. */
  authenticated?: boolean;
  /** Under a key (UDP): datagrams dropped because their authenticator did not verify. */
  forged?: number;
  /** Seconds from the first byte to the save. */
  seconds: number;
}

/** Everything a server reports. */
export type ServerEvent =
  | { event: "listening"; transport: "tcp" | "udp"; host: string; port: number }
  | { event: "connection"; transport: "tcp" | "udp"; from: string }
  | ReceivedEvent
  | { event: "reply"; transport: "tcp" | "udp"; to: string; text: string }
  | { event: "failed"; transport: "tcp" | "udp"; from: string; error: string; bytes: number }
  | { event: "ignored"; transport: "udp"; from: string; reason: string }
  | {
    /** Bytes received so far in a transfer (for progress bars; not printed as JSON). */
    event: "progress";
    transport: "tcp" | "udp";
    from: string;
    bytes: number;
    total?: number;
  }
  | { event: "shutdown"; transport: "tcp" | "udp" }
  | {
    /** Resumable partials deleted because nobody resumed them within `days`. */
    event: "pruned";
    transport: "tcp" | "udp";
    names: string[];
    days: number;
  };

/** A running server. */
export interface ServerHandle {
  /** The bound address, with the real port. */
  readonly addr: NetAddr;
  /** Resolves when the server has stopped (after `--once`, or `close()`). */
  readonly done: Promise<void>;
  /**
   * Stops accepting, lets transfers in progress finish for up to `graceMs`
   * (default 0), ends the rest (their temporary files are removed), and
   * resolves when stopped.
   */
  close(graceMs?: number): Promise<void>;
}

/** Formats an address as `host:port` (IPv6 in brackets). */
export function formatAddr(addr: { hostname: string; port: number }): string {
  return addr.hostname.includes(":") ? `[${addr.hostname}]:${addr.port}` : `${addr.hostname}:${addr.port}`;
}
