/**
 * `tcp-server`: receive files over TCP, framed or classic, on one port.
 *
 * ```sh
 * deno task tcp:server --port 8081 --out received/
 * bun tcp/server.ts --port 8081 --once
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
import { printServerEvent, runServer, warnUnauthenticated } from "../shared/report.ts";
import type { ServerEvent } from "../shared/server_events.ts";
import { runtime } from "../shared/runtime.ts";
import { serveTcp } from "./serve.ts";

/** `--help` text. */
export const HELP = `Usage: tcp-server [options]

Receive files over TCP. One port serves both formats: framed senders (our
default: name, size and SHA-256 verified) and classic raw streams (the
original scripts, nc -N, socat). Files are written under a temporary name
and renamed when complete; an existing file is never overwritten (unless
--overwrite).

With a key (--psk, --psk-file or IMGXFER_PSK), framed clients must prove
they hold it before any file is created, every record they send is
authenticated, and classic raw streams (which cannot carry a key) are refused.

A framed transfer that fails (connection lost, idle, server stopped) with at
least 64 KiB received leaves its bytes in --out as .received_NAME.<id>.resume.part,
where they stay until a client's --resume completes the file (a transfer of
the same file without --resume starts over) or --keep-partials days pass.

Options:
  --host HOST           address to bind (default 0.0.0.0)
  --port PORT           port to bind, 0 for any free port (default 8081)
  --buffer BYTES        receive size (default 4096; reads are at least 1 MiB)
  --out DIR             folder for received files (default .)
  --once                exit after one transfer, like the original (a connection
                        that sends nothing, such as a port probe, does not count)
  --idle-timeout SECS   drop a connection silent this long (default 30)
${SERVER_FLAGS_HELP}
${COMMON_FLAGS_HELP}

Examples:
  deno task tcp:server
  deno run --allow-net=127.0.0.1:9000 --allow-read=in --allow-write=in tcp/server.ts --host 127.0.0.1 --port 9000 --out in --once
  bun tcp/server.ts --port 8081 --json
  IMGXFER_PSK=$(cat key.txt) deno task tcp:server --out received

${EXIT_CODES_HELP}`;

/** Runs the TCP server with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    host: { type: "string", default: "0.0.0.0" },
    port: { type: "string", default: "8081" },
    buffer: { type: "string", default: "4096" },
    ...serverFlags("30"),
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("tcp-server", runtime.name, runtime.version)), 0;
  const out = Output.fromFlags(flags);
  const common = serverFlagValues(flags);
  const { psk } = common;
  const options = {
    host: str(flags, "host"),
    port: parsePort(str(flags, "port"), true),
    buffer: parseBuffer(str(flags, "buffer"), 64 << 20),
    ...common,
    onEvent: (event: ServerEvent) => printServerEvent(out, event),
  };
  return await runServer(
    () => {
      const handle = serveTcp(options);
      if (psk) out.log("[*] Clients must prove the pre-shared key; classic raw streams are refused");
      else warnUnauthenticated(out, handle.addr, options.outDir);
      return handle;
    },
    out,
    common.shutdownGraceMs,
  );
}

if (import.meta.main) runMain("tcp-server", main);
