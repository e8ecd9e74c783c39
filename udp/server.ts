/**
 * `udp-server`: receive files sent in the classic UDP format.
 *
 * ```sh
 * deno task udp:server --port 8082
 * bun udp/server.ts --port 8082 --once --json
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
  runMain,
  SERVER_FLAGS_HELP,
  serverFlags,
  serverFlagValues,
  str,
  versionLine,
} from "../shared/cli.ts";
import { MAX_CLASSIC_BUFFER } from "../shared/protocol.ts";
import { printServerEvent, runServer, warnUnauthenticated } from "../shared/report.ts";
import type { ServerEvent } from "../shared/server_events.ts";
import { runtime } from "../shared/runtime.ts";
import { serveUdp } from "./serve.ts";

/** `--help` text. */
export const HELP = `Usage: udp-server [options]

Receive files sent as UDP datagrams with a 4-byte sequence number and a -1
end marker (the original course format). Senders are told apart by address,
so several can send at once. Unlike the original, this server tells the
truth: when packets are missing it replies "INCOMPLETE: …" and saves the data
under a name containing "incomplete"; when the end marker is lost it ends
the session after --idle-timeout seconds of silence.

Reliable transfers (imgxfer's UDP default) are verified with SHA-256, and an
unfinished one (sender gone, server stopped) holding at least 64 KiB leaves a
hidden partial in --out that a sender run with --resume continues. With a pre-shared key (--psk,
--psk-file or IMGXFER_PSK) every reliable sender must prove it holds the key
before any file is created, every datagram is authenticated, and classic
senders are refused (they cannot carry a key).

Options:
  --host HOST           address to bind (default 0.0.0.0)
  --port PORT           port to bind, 0 for any free port (default 8082)
  --buffer BYTES        expected payload size, 1-${MAX_CLASSIC_BUFFER} (default 4096;
                        larger datagrams are still read whole)
  --out DIR             folder for received files (default .)
  --once                exit after one transfer, like the original
  --idle-timeout SECS   end a silent session after this long (default 3)
${SERVER_FLAGS_HELP}
${COMMON_FLAGS_HELP}

Examples:
  deno task udp:server
  bun udp/server.ts --host 127.0.0.1 --port 9001 --out in --once
  IMGXFER_PSK=… deno task udp:server

${EXIT_CODES_HELP}`;

/** Runs the UDP server with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    host: { type: "string", default: "0.0.0.0" },
    port: { type: "string", default: "8082" },
    buffer: { type: "string", default: "4096" },
    ...serverFlags("3"),
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("udp-server", runtime.name, runtime.version)), 0;
  const out = Output.fromFlags(flags);
  const common = serverFlagValues(flags);
  const { psk } = common;
  const options = {
    host: str(flags, "host"),
    port: parsePort(str(flags, "port"), true),
    buffer: parseBuffer(str(flags, "buffer"), MAX_CLASSIC_BUFFER, " (65507 minus the 4-byte header)"),
    ...common,
    maxSessions: common.maxClients,
    onEvent: (event: ServerEvent) => printServerEvent(out, event),
  };
  return await runServer(
    async () => {
      const handle = await serveUdp(options);
      if (psk) out.log("[*] Pre-shared key set: reliable senders must prove it; classic UDP is refused");
      else warnUnauthenticated(out, handle.addr, options.outDir);
      return handle;
    },
    out,
    common.shutdownGraceMs,
  );
}

if (import.meta.main) runMain("udp-server", main);
