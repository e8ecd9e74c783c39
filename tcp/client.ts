/**
 * `tcp-client`: send a file over TCP, framed (verified) or `--classic`.
 *
 * ```sh
 * deno task tcp:client --file input.jpeg
 * bun tcp/client.ts --host 127.0.0.1 --port 8081 --file photo.png --classic
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
  runMain,
  str,
  versionLine,
} from "../shared/cli.ts";
import { clientExitCode, failureLine, printClientEvent, printSummary } from "../shared/report.ts";
import { runtime } from "../shared/runtime.ts";
import { sendFileTcp } from "./send.ts";

/** `--help` text. */
export const HELP = `Usage: tcp-client [options]

Send a file over TCP and print a transfer summary. By default the stream is
framed: a header with the name and size, the bytes, and their SHA-256, which
the server checks and echoes. --classic sends the raw bytes like the original
script (works with the original server, nc -l and socat).

Options:
  --host HOST        server address (default 127.0.0.1)
  --port PORT        server port (default 8081)
  --file PATH        file to send (default input.jpeg)
  --buffer BYTES     bytes per write (default 4096)
  --classic          the original raw-stream format, no verification
  --timeout SECS     wait this long for the server's reply (default 30)
  --json             print the summary as one JSON object on stdout
${COMMON_FLAGS_HELP}

Examples:
  deno task tcp:client --file input.jpeg
  bun tcp/client.ts --host 127.0.0.1 --port 8081 --file input.jpeg --buffer 131072
  deno task tcp:client --classic --json

${EXIT_CODES_HELP}`;

/** Runs the TCP client with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8081" },
    file: { type: "string", default: "input.jpeg" },
    buffer: { type: "string", default: "4096" },
    classic: { type: "boolean", default: false },
    timeout: { type: "string", default: "30" },
    json: { type: "boolean", default: false },
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("tcp-client", runtime.name, runtime.version)), 0;
  const out = Output.fromFlags(flags);
  const host = str(flags, "host");
  const port = parsePort(str(flags, "port"), false);
  const timeoutMs = parseSeconds(str(flags, "timeout"), "timeout");
  const summary = await sendFileTcp({
    host,
    port,
    file: str(flags, "file"),
    buffer: parseBuffer(str(flags, "buffer"), 64 << 20),
    classic: flags.classic === true,
    replyTimeoutMs: timeoutMs,
    onEvent: (event) => printClientEvent(out, "tcp", event),
  });
  printSummary(out, summary);
  const failure = failureLine(summary, host, port, timeoutMs);
  if (failure) console.error(`tcp-client: ${failure}`);
  return clientExitCode(summary);
}

if (import.meta.main) runMain("tcp-client", main);
