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
  parseDigest,
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
import { clientExitCode, failureLine, printClientEvent, printSummary } from "../shared/report.ts";
import { runtime } from "../shared/runtime.ts";
import { groupDigits } from "../shared/metrics.ts";
import { sendFileTcp, type TcpClientEvent } from "./send.ts";

/** `--help` text. */
export const HELP = `Usage: tcp-client [options]

Send a file over TCP and print a transfer summary. By default the stream is
framed: a header with the name and size, the bytes, and their SHA-256, which
the server checks and echoes. --classic sends the raw bytes like the original
script (works with the original server, nc -l and socat).

With a key (--psk, --psk-file or IMGXFER_PSK) the client and the server each
prove they hold it before any data moves, and every record of the file (up
to 1 MiB each; "Chunks sent" counts them) and the server's reply are
authenticated. A server without the key, or with another one, is refused
and the file is not sent.

--resume asks the server what it already holds of this file: a failed
framed transfer leaves its bytes on the server as
.received_NAME.<id>.resume.part in the server's --out folder, where they stay
until a resumed transfer completes (or a transfer without --resume starts
over). When the server's bytes match the start of the file (SHA-256), only
the rest is sent; otherwise the transfer starts from the beginning. The
digest check always covers the whole file.

--digest xxh128 checks the file with XXH3-128 (rsync's default checksum)
instead of SHA-256: it catches the same accidental corruption at a quarter
of the CPU cost, which on a 2-core machine is what limits a fast transfer.
Like SHA-256 without a key, it does not stop an attacker who can rewrite
the stream; keys therefore always use SHA-256.

Options:
  --host HOST        server address (default 127.0.0.1)
  --port PORT        server port (default 8081)
  --file PATH        file to send (default input.jpeg)
  --buffer BYTES     bytes per write (default 4096)
  --classic          the original raw-stream format, no verification
  --resume           send only what the server does not hold yet (framed)
  --digest NAME      sha256 (default) or xxh128 (faster, no key)
  --timeout SECS     wait this long for each answer of the server (default 30)
  --json             print the summary as one JSON object on stdout
${PSK_FLAGS_HELP}
${COMMON_FLAGS_HELP}

Examples:
  deno task tcp:client --file input.jpeg
  bun tcp/client.ts --host 127.0.0.1 --port 8081 --file input.jpeg --buffer 131072
  deno task tcp:client --classic --json
  bun tcp/client.ts --psk-file key.txt --resume --file big.iso

${EXIT_CODES_HELP}`;

/** Runs the TCP client with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8081" },
    file: { type: "string", default: "input.jpeg" },
    buffer: { type: "string", default: "4096" },
    classic: { type: "boolean", default: false },
    resume: { type: "boolean", default: false },
    digest: { type: "string", default: "sha256" },
    timeout: { type: "string", default: "30" },
    json: { type: "boolean", default: false },
    ...PSK_FLAGS,
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
    psk: pskFromFlags(flags),
    resume: flags.resume === true,
    digest: parseDigest(str(flags, "digest")),
    replyTimeoutMs: timeoutMs,
    onEvent: (event) => printEvent(out, event),
  });
  printSummary(out, summary);
  const failure = summary.status === "refused"
    ? `refused: ${summary.response.replace(/^REFUSED: /, "")}`
    : failureLine(summary, host, port, timeoutMs);
  if (failure) console.error(`tcp-client: ${failure}`);
  return clientExitCode(summary);
}

/** Prints a client event: the session's own lines here, the rest as every client does. */
function printEvent(out: Output, event: TcpClientEvent): void {
  switch (event.type) {
    case "authenticated":
      out.log("[*] Authenticated: the server proved it holds the key");
      break;
    case "resuming":
      out.log(
        `[*] Resuming: the server already holds the first ${groupDigits(event.skipped)} bytes; ` +
          `sending the other ${groupDigits(event.total - event.skipped)}`,
      );
      break;
    case "restarting":
      out.log(
        `[*] The server holds ${
          groupDigits(event.held)
        } bytes of a different file under this name: sending from the start`,
      );
      break;
    default:
      printClientEvent(out, "tcp", event);
  }
}

if (import.meta.main) runMain("tcp-client", main);
