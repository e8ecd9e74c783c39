/**
 * imgxfer: send files over TCP and UDP, on Deno and Bun, with honest numbers.
 *
 * ```ts
 * import { sendFileTcp, serveTcp } from "./mod.ts";
 *
 * const server = serveTcp({ host: "127.0.0.1", port: 0, buffer: 65536, outDir: "." });
 * const summary = await sendFileTcp({
 *   host: "127.0.0.1",
 *   port: server.addr.port,
 *   file: "input.jpeg",
 *   buffer: 65536,
 * });
 * console.log(summary.status, summary.mbps);
 * await server.close();
 * ```
 *
 * @module
 */

export {
  sendFileTcp,
  type TcpClientEvent,
  type TcpSendOptions,
  type TcpTransferSummary,
} from "./tcp/send.ts";
export { CLASSIC_TCP_NAME, serveTcp, type TcpServeOptions } from "./tcp/serve.ts";
export { resolveHost, sendFileUdp, type UdpClientEvent, type UdpSendOptions } from "./udp/send.ts";
export {
  CLASSIC_BUSY,
  CLASSIC_KEY_REQUIRED,
  CLASSIC_UDP_SENT_NAME,
  serveUdp,
  type UdpServeOptions,
} from "./udp/serve.ts";
export { type AssemblerAction, ClassicAssembler, type LayoutStep } from "./udp/classic_assembler.ts";
export * from "./shared/protocol.ts";
export * from "./shared/metrics.ts";
export {
  formatAddr,
  type ReceivedEvent,
  type ServerEvent,
  type ServerHandle,
} from "./shared/server_events.ts";
export { CliError, describeError, type ErrorReport, ExitCode, type ExitCodeValue } from "./shared/errors.ts";
export {
  receivedName,
  ReceivingFile,
  type ReceivingFileOptions,
  resumeId,
  safeBaseName,
} from "./shared/files.ts";
export {
  type Conn,
  type DatagramConn,
  type Listener,
  type NetAddr,
  type Runtime,
  runtime,
  type TcpOptions,
} from "./shared/runtime.ts";
export { RangeSet } from "./shared/range_set.ts";
export {
  Authenticator,
  constantTimeEqual,
  handshakeProof,
  loadPsk,
  NONCE_SIZE,
  PSK_ENV,
  type PskSources,
  randomNonce,
  ReplayGuard,
  type Role,
  sessionKey,
  TAG_SIZE,
  verifyHandshakeProof,
  WRONG_KEY,
} from "./shared/auth.ts";
export {
  DAY_MS,
  DEFAULT_KEEP_PARTIALS_MS,
  keepPartialsPruned,
  PARTIAL_NAME,
  prunePartials,
} from "./shared/partials.ts";
export {
  type ContentHash,
  createContentHash,
  DIGEST_FIELD_SIZE,
  DIGEST_NAMES,
  digestField,
  digestLabel,
  type DigestName,
  sha256Hash,
} from "./shared/digest.ts";
export {
  defaultHashWorkers,
  InlineHash,
  OFFLOAD_THRESHOLD,
  OffloadedSha256,
  Sha256Offloader,
  type StreamHash,
  streamSha256,
} from "./shared/sha256_offload.ts";
export { VERSION } from "./shared/version.ts";
export {
  type ReliableClientEvent,
  type ReliableSendOptions,
  type ReliableSendSummary,
  sendFileReliable,
} from "./udp/reliable_send.ts";
export {
  type Outgoing,
  type ReliableReceivedEvent,
  type ReliableServeOptions,
  ReliableSessions,
} from "./udp/reliable_serve.ts";
export {
  ReliableSender,
  type SenderEvent,
  type SenderOptions,
  type SenderPhase,
  type SenderStats,
  type SenderTransmit,
  SERVER_HAS_NO_KEY,
  SERVER_PROOF_FAILED,
} from "./udp/reliable_sender.ts";
export {
  type ReceiverEvent,
  type ReceiverKeys,
  type ReceiverOptions,
  type ReceiverPhase,
  type ReceiverStats,
  ReliableReceiver,
} from "./udp/reliable_receiver.ts";
export { type GateOptions, type GateVerdict, HandshakeGate } from "./udp/handshake_gate.ts";
export { DEFAULT_RATE_CONFIG, type RateConfig, RateController } from "./udp/rate_control.ts";
export { DEFAULT_RTT_CONFIG, type RttConfig, RttEstimator } from "./udp/rtt.ts";
export {
  type Delivery,
  Impairment,
  type ImpairmentConfig,
  type ImpairmentCounters,
  NO_IMPAIRMENT,
} from "./udp/impairment.ts";
export * from "./shared/protocol_reliable.ts";
export { seededRandom } from "./shared/rng.ts";

// ------------------------------------------------------ command line ----
//
// `imgxfer <command> [options]`: one program for the five entry points, for
// `deno run mod.ts …` and the compiled `dist/imgxfer`. It runs only when
// this file is the main module: importing mod.ts as a library runs nothing
// and loads none of the entry points (they are imported on demand).

import { EXIT_CODES_HELP, runMain, versionLine } from "./shared/cli.ts";
import { describeError as describeCommandError, usageError } from "./shared/errors.ts";
import { runtime as currentRuntime } from "./shared/runtime.ts";

/** An entry point as the dispatcher sees it. */
interface EntryPoint {
  main(argv: string[]): Promise<number>;
}

/** The subcommands: the name each program prints its errors under, a description, and its module. */
const COMMANDS: Record<string, { prog: string; about: string; load: () => Promise<EntryPoint> }> = {
  "tcp-server": {
    prog: "tcp-server",
    about: "receive files over TCP (framed and classic on one port)",
    load: () => import("./tcp/server.ts"),
  },
  "tcp-client": {
    prog: "tcp-client",
    about: "send a file over TCP, framed and SHA-256 verified, or --classic",
    load: () => import("./tcp/client.ts"),
  },
  "udp-server": {
    prog: "udp-server",
    about: "receive files over UDP (reliable and classic on one port)",
    load: () => import("./udp/server.ts"),
  },
  "udp-client": {
    prog: "udp-client",
    about: "send a file over UDP, reliably (default) or --classic",
    load: () => import("./udp/client.ts"),
  },
  relay: {
    prog: "udp-relay",
    about: "relay UDP between clients and a server, impairing it on purpose",
    load: () => import("./udp/relay.ts"),
  },
};

const COMMAND_LIST = Object.keys(COMMANDS).join(", ");

const IMGXFER_HELP = `Usage: imgxfer <command> [options]

Send files over TCP and UDP, with honest numbers. Each command is one of
imgxfer's programs, with the same options and output as when run alone;
"imgxfer <command> --help" shows them.

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.about}`).join("\n")}

Options:
  -h, --help       show this help
  -V, --version    show the version

Examples:
  imgxfer tcp-server --port 8081 --out received --once
  imgxfer tcp-client --host 127.0.0.1 --port 8081 --file input.jpeg
  imgxfer udp-server --port 8082 --json
  imgxfer udp-client --port 8082 --buffer 1400 --file input.jpeg
  imgxfer udp-client --port 8082 --classic
  imgxfer relay --listen 127.0.0.1:8083 --target 127.0.0.1:8082 --loss 10%

${EXIT_CODES_HELP}`;

/**
 * Runs `imgxfer <command> [options]`: the command's own `main` with the rest
 * of the arguments. Its failures are reported under the command's own name
 * (`tcp-client: error: …`), as when it runs alone.
 */
async function dispatch(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) throw usageError(`missing command: one of ${COMMAND_LIST} (see --help)`);
  if (first === "-h" || first === "--help" || first === "help") return console.log(IMGXFER_HELP), 0;
  if (first === "-V" || first === "--version") {
    return console.log(versionLine("imgxfer", currentRuntime.name, currentRuntime.version)), 0;
  }
  const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (command === undefined) {
    const what = first.startsWith("-") ? "unknown option" : "unknown command";
    throw usageError(`${what} '${first}': expected a command, one of ${COMMAND_LIST} (see --help)`);
  }
  const entry = await command.load();
  try {
    return await entry.main(rest);
  } catch (error) {
    const report = describeCommandError(error);
    console.error(`${command.prog}: error: ${report.message}`);
    return report.exitCode;
  }
}

if (import.meta.main) runMain("imgxfer", dispatch);
export { type Timed, TimedQueue } from "./shared/timed_queue.ts";
