/**
 * `udp-client`: send a file over UDP, reliably (default) or in the classic
 * fire-and-forget format.
 *
 * ```sh
 * deno task udp:client --file input.jpeg
 * bun udp/client.ts --host 127.0.0.1 --port 8082 --buffer 1400
 * bun udp/client.ts --classic --file input.jpeg
 * IMGXFER_PSK=… bun udp/client.ts --file big.iso --resume
 * ```
 *
 * @module
 */

import {
  COMMON_FLAGS_HELP,
  EXIT_CODES_HELP,
  Output,
  parseBuffer,
  parseFlags,
  parsePort,
  parseSeconds,
  PSK_FLAGS,
  PSK_FLAGS_HELP,
  pskFromFlags,
  runMain,
  str,
  versionLine,
} from "../shared/cli.ts";
import { usageError } from "../shared/errors.ts";
import { MAX_CLASSIC_BUFFER } from "../shared/protocol.ts";
import { MAX_RELIABLE_CHUNK, MAX_TAGGED_RELIABLE_CHUNK } from "../shared/protocol_reliable.ts";
import type { TransferSummary } from "../shared/metrics.ts";
import { clientExitCode, failureLine, printClientEvent, printSummary } from "../shared/report.ts";
import { runtime } from "../shared/runtime.ts";
import { type ReliableClientEvent, sendFileReliable } from "./reliable_send.ts";
import { sendFileUdp } from "./send.ts";

/** `--help` text. */
export const HELP = `Usage: udp-client [options]

Send a file over UDP and print a summary. By default the transfer is
reliable: a handshake, sequence-numbered datagrams with selective
acknowledgements, retransmission of what is lost, paced sending, and a final
SHA-256 check by the server, so the file arrives intact through loss,
reordering and duplication. --classic sends the original course format
instead: datagrams with a 4-byte sequence number and a -1 end marker, no
retransmission; the server reports what is missing (INCOMPLETE).
Throughput counts the bytes the server confirmed, not the bytes sent.

With a pre-shared key (--psk, --psk-file or IMGXFER_PSK; the server needs
the same one), the client and the server prove to each other that they hold
it before any data moves, and every datagram is authenticated, so nobody
without the key can store a file or fake the server's confirmation.
--resume continues a transfer the server kept unfinished (the client or the
server was stopped): the chunks the server holds are checked by SHA-256 and
only the rest is sent.

Options:
  --host HOST        server address (default 127.0.0.1)
  --port PORT        server port (default 8082)
  --file PATH        file to send (default input.jpeg)
  --buffer BYTES     payload bytes per datagram (default 4096; reliable
                     1-${MAX_RELIABLE_CHUNK}, classic 1-${MAX_CLASSIC_BUFFER}; 1400 fits an Ethernet MTU)
  --classic          the original fire-and-forget format; the end marker
                     carries the packet count, chunk size and file size,
                     which original servers ignore
  --bare-marker      with --classic: the bare 4-byte end marker, byte for
                     byte like the original client
  --rate MBIT        reliable: pace at this fixed rate in Mbit/s instead of
                     adapting to loss and queueing (like uftp -R); default adaptive
  --timeout SECS     wait this long for the server's answers (default 5)
  --resume           reliable: skip what the server kept from an earlier,
                     unfinished transfer of this file (checked by SHA-256)
  --json             print the summary as one JSON object on stdout
${PSK_FLAGS_HELP}
${COMMON_FLAGS_HELP}

Examples:
  deno task udp:client --file input.jpeg
  bun udp/client.ts --port 8082 --buffer 1400 --json
  deno task udp:client --classic --file input.jpeg
  bun udp/client.ts --psk-file key.txt --file big.iso --resume

${EXIT_CODES_HELP}`;

/** Parses `--rate` (Mbit/s, 0 = adaptive) into bytes per second. */
function parseRate(value: string): number {
  const mbit = Number(value);
  if (value.trim() === "" || !Number.isFinite(mbit) || mbit < 0) {
    throw usageError(`--rate must be a number of Mbit/s (0: adaptive), got '${value}'`);
  }
  return (mbit * 1e6) / 8;
}

/** Runs the UDP client with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8082" },
    file: { type: "string", default: "input.jpeg" },
    buffer: { type: "string", default: "4096" },
    classic: { type: "boolean", default: false },
    "bare-marker": { type: "boolean", default: false },
    timeout: { type: "string", default: "5" },
    rate: { type: "string", default: "0" },
    resume: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    ...PSK_FLAGS,
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("udp-client", runtime.name, runtime.version)), 0;
  const out = Output.fromFlags(flags);
  const host = str(flags, "host");
  const port = parsePort(str(flags, "port"), false);
  const timeoutMs = parseSeconds(str(flags, "timeout"), "timeout");
  const classic = flags.classic === true || flags["bare-marker"] === true;
  const file = str(flags, "file");
  const psk = pskFromFlags(flags);
  if (classic && psk) {
    throw usageError(
      "--classic cannot carry a key: drop --classic (or the key: --psk, --psk-file, IMGXFER_PSK)",
    );
  }
  if (classic && flags.resume === true) throw usageError("--resume needs the reliable mode: drop --classic");
  const onEvent = (event: ReliableClientEvent) => {
    if (event.type === "resumed") out.log(`[*] Resuming: the server already holds ${event.bytes} bytes`);
    else printClientEvent(out, "udp", event);
  };
  const summary: TransferSummary = classic
    ? await sendFileUdp({
      host,
      port,
      file,
      buffer: parseBuffer(str(flags, "buffer"), MAX_CLASSIC_BUFFER, " (65507 minus the 4-byte header)"),
      timeoutMs,
      bareMarker: flags["bare-marker"] === true,
      onEvent,
    })
    : await sendFileReliable({
      host,
      port,
      file,
      buffer: psk
        ? parseBuffer(
          str(flags, "buffer"),
          MAX_TAGGED_RELIABLE_CHUNK,
          " with a key (65507 minus 32 header bytes)",
        )
        : parseBuffer(str(flags, "buffer"), MAX_RELIABLE_CHUNK, " (65507 minus the 16-byte header)"),
      timeoutMs,
      fixedRate: parseRate(str(flags, "rate")),
      psk,
      resume: flags.resume === true,
      onEvent,
    });
  printSummary(out, summary);
  const failure = failureLine(summary, host, port, timeoutMs);
  if (failure) console.error(`udp-client: ${failure}`);
  return clientExitCode(summary);
}

if (import.meta.main) runMain("udp-client", main);
