/**
 * `udp-client`: send a file as classic UDP datagrams.
 *
 * ```sh
 * deno task udp:client --file input.jpeg
 * bun udp/client.ts --host 127.0.0.1 --port 8082 --buffer 1400
 * ```
 *
 * @module
 */

import {
  EXIT_CODES_HELP,
  Output,
  parseBuffer,
  parseFlags,
  parsePort,
  parseSeconds,
  runMain,
  str,
  versionLine,
} from "../shared/cli.ts";
import { MAX_CLASSIC_BUFFER } from "../shared/protocol.ts";
import { clientExitCode, failureLine, printClientEvent, printSummary } from "../shared/report.ts";
import { runtime } from "../shared/runtime.ts";
import { sendFileUdp } from "./send.ts";

/** `--help` text. */
export const HELP = `Usage: udp-client [options]

Send a file as UDP datagrams: a 4-byte sequence number and up to --buffer
payload bytes each, then a -1 end marker, like the original course script,
and print a summary. Throughput counts the bytes the server confirmed, not
the bytes sent. UDP here is fire-and-forget: lost packets are reported by
the server (INCOMPLETE), not resent.

Options:
  --host HOST        server address (default 127.0.0.1)
  --port PORT        server port (default 8082)
  --file PATH        file to send (default input.jpeg)
  --buffer BYTES     payload bytes per datagram, 1-${MAX_CLASSIC_BUFFER} (default 4096)
  --classic          send the bare 4-byte end marker, byte for byte like the
                     original (without it, the marker also carries the packet
                     count and size, which original servers ignore)
  --timeout SECS     wait this long for the server's reply (default 5)
  --json             print the summary as one JSON object on stdout
  -h, --help         show this help
  -V, --version      show the version

Examples:
  deno task udp:client --file input.jpeg
  bun udp/client.ts --port 8082 --buffer 1400 --json

${EXIT_CODES_HELP}`;

/** Runs the UDP client with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8082" },
    file: { type: "string", default: "input.jpeg" },
    buffer: { type: "string", default: "4096" },
    classic: { type: "boolean", default: false },
    timeout: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("udp-client", runtime.name, runtime.version)), 0;
  const out = new Output(flags.json === true);
  const host = str(flags, "host");
  const port = parsePort(str(flags, "port"), false);
  const timeoutMs = parseSeconds(str(flags, "timeout"), "timeout");
  const summary = await sendFileUdp({
    host,
    port,
    file: str(flags, "file"),
    buffer: parseBuffer(str(flags, "buffer"), MAX_CLASSIC_BUFFER, " (65507 minus the 4-byte header)"),
    timeoutMs,
    bareMarker: flags.classic === true,
    onEvent: (event) => printClientEvent(out, "udp", event),
  });
  printSummary(out, summary);
  const failure = failureLine(summary, host, port, timeoutMs);
  if (failure) console.error(`udp-client: ${failure}`);
  return clientExitCode(summary);
}

if (import.meta.main) runMain("udp-client", main);
