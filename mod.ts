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

export { sendFileTcp, type TcpClientEvent, type TcpSendOptions } from "./tcp/send.ts";
export { CLASSIC_TCP_NAME, serveTcp, type TcpServeOptions } from "./tcp/serve.ts";
export { resolveHost, sendFileUdp, type UdpClientEvent, type UdpSendOptions } from "./udp/send.ts";
export { CLASSIC_UDP_SENT_NAME, serveUdp, type UdpServeOptions } from "./udp/serve.ts";
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
export { receivedName, safeBaseName } from "./shared/files.ts";
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
export { VERSION } from "./shared/version.ts";
export { type ReliableClientEvent, type ReliableSendOptions, sendFileReliable } from "./udp/reliable_send.ts";
export { type Outgoing, type ReliableServeOptions, ReliableSessions } from "./udp/reliable_serve.ts";
export {
  ReliableSender,
  type SenderEvent,
  type SenderOptions,
  type SenderPhase,
  type SenderStats,
  type SenderTransmit,
} from "./udp/reliable_sender.ts";
export {
  type ReceiverEvent,
  type ReceiverOptions,
  type ReceiverPhase,
  type ReceiverStats,
  ReliableReceiver,
} from "./udp/reliable_receiver.ts";
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
