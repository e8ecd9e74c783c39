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
  KEEP_PARTIALS_HELP,
  Output,
  parseBuffer,
  parseCount,
  parseDays,
  parseFlags,
  parsePort,
  parseSeconds,
  parseSize,
  PSK_FLAGS,
  PSK_FLAGS_HELP,
  pskFromFlags,
  runMain,
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
and renamed when complete; an existing file is never overwritten.

With a key (--psk, --psk-file or IMGXFER_PSK), framed clients must prove
they hold it before any file is created, every record they send is
authenticated, and classic raw streams (which cannot carry a key) are refused.

A framed transfer that fails (connection lost, idle, server stopped) leaves
its bytes in --out as .received_NAME.<id>.resume.part, where they stay until
a client's --resume completes the file (a transfer of the same file without
--resume starts over).

Options:
  --host HOST           address to bind (default 0.0.0.0)
  --port PORT           port to bind, 0 for any free port (default 8081)
  --buffer BYTES        receive size (default 4096; reads are at least 1 MiB)
  --out DIR             folder for received files (default .)
  --once                exit after one transfer, like the original (a connection
                        that sends nothing, such as a port probe, does not count)
  --idle-timeout SECS   drop a connection silent this long (default 30)
  --max-size SIZE       refuse files larger than SIZE (e.g. 64M, 2G): a framed
                        or reliable sender is refused before a byte is written,
                        a classic stream is cut off (default: no limit)
  --max-clients N       transfers served at once; more are refused (default 256)
  --shutdown-grace SECS on SIGINT/SIGTERM, let transfers in progress finish for
                        this long, then stop (default 5; a second signal stops now)
  --json                one JSON object per line on stdout
${PSK_FLAGS_HELP}
${KEEP_PARTIALS_HELP}
  --overwrite           replace an existing file of the same name (default:
                        never overwrite; save as NAME_1, NAME_2, …)
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
    out: { type: "string", default: "." },
    once: { type: "boolean", default: false },
    "idle-timeout": { type: "string", default: "30" },
    "max-size": { type: "string" },
    "max-clients": { type: "string", default: "256" },
    "shutdown-grace": { type: "string", default: "5" },
    "keep-partials": { type: "string", default: "7" },
    overwrite: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    ...PSK_FLAGS,
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("tcp-server", runtime.name, runtime.version)), 0;
  const out = Output.fromFlags(flags);
  const grace = parseSeconds(str(flags, "shutdown-grace"), "shutdown-grace");
  const psk = pskFromFlags(flags);
  const options = {
    host: str(flags, "host"),
    port: parsePort(str(flags, "port"), true),
    buffer: parseBuffer(str(flags, "buffer"), 64 << 20),
    outDir: str(flags, "out"),
    once: flags.once === true,
    idleTimeoutMs: parseSeconds(str(flags, "idle-timeout"), "idle-timeout"),
    maxBytes: typeof flags["max-size"] === "string" ? parseSize(flags["max-size"], "max-size") : undefined,
    maxClients: parseCount(str(flags, "max-clients"), "max-clients"),
    keepPartialsMs: parseDays(str(flags, "keep-partials"), "keep-partials"),
    overwrite: flags.overwrite === true,
    psk,
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
    grace,
  );
}

if (import.meta.main) runMain("tcp-server", main);
