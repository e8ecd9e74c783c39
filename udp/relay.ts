/**
 * `udp-relay`: a UDP relay that impairs traffic on purpose (loss, bursts,
 * delay, jitter, reordering, duplication, corruption, a rate limit with a
 * queue), to try the clients and servers on a bad network.
 *
 * ```sh
 * deno task relay --listen 127.0.0.1:8083 --target 127.0.0.1:8082 --loss 5% --delay 20
 * bun udp/relay.ts --listen 127.0.0.1:0 --target 127.0.0.1:8082 --json --duration 60
 * ```
 *
 * One listening socket receives from clients; each client gets its own
 * upstream socket towards the target, so the target sees one address per
 * client and its replies go back to the right client. Each direction runs
 * its own {@linkcode Impairment} with its own seeded random stream. Held
 * datagrams wait in a single time-ordered queue served by one timer, and
 * sends are awaited one at a time.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import {
  COMMON_FLAGS_HELP,
  EXIT_CODES_HELP,
  Output,
  parseFlags,
  parseSeconds,
  runMain,
  str,
  versionLine,
} from "../shared/cli.ts";
import { describeError, errorKind, ExitCode, usageError, withContext } from "../shared/errors.ts";
import { seededRandom } from "../shared/rng.ts";
import { type DatagramConn, isIpLiteral, type NetAddr, runtime } from "../shared/runtime.ts";
import { TimedQueue } from "../shared/timed_queue.ts";
import { formatAddr } from "../shared/server_events.ts";
import { Impairment, type ImpairmentConfig, NO_IMPAIRMENT } from "./impairment.ts";

export type { ImpairmentConfig } from "./impairment.ts";
export type { NetAddr } from "../shared/runtime.ts";

/** Most clients served at once; datagrams from further clients are dropped. */
export const MAX_CLIENTS = 1024;
/** Most datagrams held for later delivery; beyond it new ones are dropped. */
export const MAX_HELD_DATAGRAMS = 100_000;
/** Most bytes held for later delivery; beyond it new datagrams are dropped. */
export const MAX_HELD_BYTES = 128 << 20;
/** A client silent this long (both ways, nothing held) loses its upstream socket. */
const CLIENT_IDLE_MS = 120_000;
/** Largest UDP datagram. */
const RECEIVE_BUFFER = 65536;

const REORDER_RANGE = `${NO_IMPAIRMENT.reorderMs / 2}-${NO_IMPAIRMENT.reorderMs * 1.5}`;

/** `--help` text. */
export const HELP = `Usage: udp-relay [options]

Relay UDP datagrams between clients and a target, impairing them on the way:
loss (random or in bursts), a rate limit with a queue, delay and jitter,
reordering, duplication and corruption. The same impairment applies in both
directions, each with its own random stream derived from --seed, so a run
with the same seed and the same traffic replays. Each client gets its own
upstream socket, so the target sees one address per client and its replies
go back to the right client. On SIGINT/SIGTERM, or after --duration, the
relay prints its counters for both directions and exits 0.

Options:
  --listen HOST:PORT   address to receive clients on; port 0 picks a free one
                       (default 127.0.0.1:8083)
  --target HOST:PORT   where to relay to (default 127.0.0.1:8082)
  --loss P             drop probability (default 0); P is 0.05 or 5%
  --burst-enter P      bursty loss (Gilbert-Elliott): chance per datagram to
                       enter the bad state (default 0: off)
  --burst-exit P       chance per datagram to leave the bad state (default 0.5)
  --burst-loss P       drop probability in the bad state (default 0.5);
                       --loss applies in the good state
  --rate MBIT          bandwidth limit in Mbit/s (default 0: unlimited)
  --queue BYTES        queue behind --rate; beyond it, tail drop (default ${NO_IMPAIRMENT.queueBytes})
  --delay MS           one-way delay in milliseconds (default 0)
  --jitter MS          extra random delay in [0, MS) (default 0)
  --reorder P          chance to hold a datagram back ${REORDER_RANGE} ms more, so later
                       ones overtake it (default 0)
  --dup P              chance to deliver a datagram twice (default 0)
  --corrupt P          chance to flip one random bit (default 0)
  --seed N             random seed, 0-4294967295 (default: random, printed)
  --duration SECS      stop after this long (default: until SIGINT/SIGTERM)
  --json               one JSON object per line on stdout: a "listening"
                       event, then the "stopped" counters
${COMMON_FLAGS_HELP}

Limits: ${MAX_CLIENTS} clients at once (a client silent for ${CLIENT_IDLE_MS / 1000} s is forgotten) and
${MAX_HELD_DATAGRAMS} held datagrams (${MAX_HELD_BYTES >> 20} MiB); beyond them datagrams are dropped
and counted as overflow.

Deno needs --allow-net for the listen host and the target host; for a
target that is not on loopback, also --allow-net=0.0.0.0 (IPv6: [::]) for
the upstream sockets. "deno task relay" allows 127.0.0.1 only.

Examples:
  deno task relay --loss 5% --delay 20 --jitter 5
  bun udp/relay.ts --listen 127.0.0.1:9000 --target 127.0.0.1:8082 --burst-enter 1% --seed 7

${EXIT_CODES_HELP}`;

// --------------------------------------------------------------- flags ----

/** A parsed `HOST:PORT`. */
export interface HostPort {
  /** Host name or IP address. */
  hostname: string;
  /** Port number. */
  port: number;
}

/** Parses `HOST:PORT` or `[IPV6]:PORT`. */
export function parseHostPort(value: string, flag: string, allowZero: boolean): HostPort {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(value.trim()) ?? /^([^:\s]+):(\d+)$/.exec(value.trim());
  if (!match) throw usageError(`--${flag} must be HOST:PORT (IPv6: [ADDR]:PORT), got '${value}'`);
  const port = Number(match[2]);
  const min = allowZero ? 0 : 1;
  if (port < min || port > 65535) throw usageError(`--${flag} port must be ${min}-65535, got ${match[2]}`);
  return { hostname: match[1], port };
}

/** Parses a probability: `0.1` or `10%`, between 0 and 1. */
export function parseProbability(value: string, flag: string): number {
  const text = value.trim();
  const percent = text.endsWith("%");
  const number = Number(percent ? text.slice(0, -1) : text);
  const p = percent ? number / 100 : number;
  if (text === "" || text === "%" || !Number.isFinite(p) || p < 0 || p > 1) {
    throw usageError(`--${flag} must be a probability from 0 to 1 (or 0% to 100%), got '${value}'`);
  }
  return p;
}

/** Parses a non-negative number (milliseconds, Mbit/s). */
function parseNonNegative(value: string, flag: string, unit: string): number {
  const number = Number(value);
  if (value.trim() === "" || !Number.isFinite(number) || number < 0) {
    throw usageError(`--${flag} must be a number of ${unit} (0 or more), got '${value}'`);
  }
  return number;
}

/** Parses a whole number in `[0, max]`. */
function parseWhole(value: string, flag: string, max: number): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) > max) {
    throw usageError(`--${flag} must be a whole number from 0 to ${max}, got '${value}'`);
  }
  return Number(value);
}

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^::ffff:/i, "");
  return h.startsWith("127.") || h === "::1";
}

function isIpv6(hostname: string): boolean {
  return hostname.includes(":");
}

function isUnspecified(hostname: string): boolean {
  return hostname === "0.0.0.0" || /^[0:]+$/.test(hostname);
}

/** Turns a host name into an address (literals as given, `localhost` as 127.0.0.1). */
async function resolveHost(hostname: string, flag: string): Promise<string> {
  if (isIpLiteral(hostname)) return hostname;
  if (hostname.toLowerCase() === "localhost") return "127.0.0.1";
  try {
    return (await lookup(hostname)).address;
  } catch (error) {
    throw withContext(`--${flag}: cannot resolve ${hostname}`, error);
  }
}

/** Strips IPv4-mapped prefixes so `::ffff:127.0.0.1` equals `127.0.0.1`. */
function sameAddr(a: { hostname: string; port: number }, b: { hostname: string; port: number }): boolean {
  const norm = (h: string) => h.replace(/^::ffff:/i, "").toLowerCase();
  return a.port === b.port && norm(a.hostname) === norm(b.hostname);
}

// ------------------------------------------------------------ counters ----

/** What the relay did to one direction's datagrams. */
export interface DirectionCounters {
  /** Datagrams received and offered to the impairment. */
  in: number;
  /** Datagrams sent on (duplicates included). */
  out: number;
  /** Dropped by random or burst loss. */
  lost: number;
  /** Dropped by the full queue behind --rate. */
  queueDrops: number;
  /** Extra copies made. */
  duplicated: number;
  /** Held back so later ones overtake them. */
  reordered: number;
  /** Bit-flipped. */
  corrupted: number;
  /** Dropped because too many datagrams were held. */
  overflow: number;
  /** Sends that failed. */
  sendErrors: number;
  /** Still held when the relay stopped (discarded). */
  unsent: number;
}

/** The `stopped` report: what the relay did, both ways. */
export interface RelayReport {
  /** Always `"stopped"`. */
  event: "stopped";
  /** `"SIGINT"`, `"SIGTERM"` or `"duration"`. */
  reason: string;
  /** Seconds the relay ran. */
  seconds: number;
  /** The seed the random streams came from. */
  seed: number;
  /** Distinct clients served (a client that comes back after going idle counts again). */
  clients: number;
  /** Datagrams dropped because {@linkcode MAX_CLIENTS} clients were already served. */
  clientsRefused: number;
  /** Datagrams that reached an upstream socket from somewhere other than the target. */
  ignored: number;
  /** Client to target. */
  forward: DirectionCounters;
  /** Target to client. */
  backward: DirectionCounters;
}

// ------------------------------------------------------------ schedule ----

/** A datagram waiting for its delivery time. */
interface Held {
  at: number;
  seq: number;
  bytes: Uint8Array;
  socket: DatagramConn;
  to: NetAddr;
  direction: Direction;
  flow?: Flow;
}

/** One direction: its impairment and the relay's own counters. */
class Direction {
  readonly impairment: Impairment;
  out = 0;
  overflow = 0;
  sendErrors = 0;
  unsent = 0;

  constructor(config: ImpairmentConfig, random: () => number) {
    this.impairment = new Impairment(config, random);
  }

  counters(): DirectionCounters {
    const c = this.impairment.counters;
    return {
      in: c.in,
      out: this.out,
      lost: c.lost,
      queueDrops: c.queueDrops,
      duplicated: c.duplicated,
      reordered: c.reordered,
      corrupted: c.corrupted,
      overflow: this.overflow,
      sendErrors: this.sendErrors,
      unsent: this.unsent,
    };
  }
}

/**
 * Holds datagrams until their time and sends them, one awaited send at a
 * time, from a single timer armed for the earliest.
 */
class Scheduler {
  #queue = new TimedQueue<Held>();
  #bytes = 0;
  #seq = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #pumping: Promise<void> | undefined;
  #stopped = false;
  #onSendError: (error: unknown) => void;

  constructor(onSendError: (error: unknown) => void) {
    this.#onSendError = onSendError;
  }

  /** Queues `bytes` for `socket.send(bytes, to)` at time `at`, unless too much is held. */
  schedule(
    at: number,
    bytes: Uint8Array,
    socket: DatagramConn,
    to: NetAddr,
    direction: Direction,
    flow?: Flow,
  ) {
    if (this.#stopped) return;
    if (this.#queue.size >= MAX_HELD_DATAGRAMS || this.#bytes + bytes.length > MAX_HELD_BYTES) {
      direction.overflow++;
      return;
    }
    this.#queue.push({ at, seq: this.#seq++, bytes, socket, to, direction, flow });
    this.#bytes += bytes.length;
    if (flow) flow.pending++;
    this.#arm();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #arm(): void {
    if (this.#pumping || this.#stopped) return;
    const next = this.#queue.peek();
    if (!next) return this.#clearTimer();
    const wait = next.at - performance.now();
    if (wait <= 0) {
      this.#clearTimer();
      this.#pumping = this.#pump();
      return;
    }
    if (this.#timer !== undefined && this.#timerAt <= next.at) return;
    this.#clearTimer();
    this.#timerAt = next.at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#arm();
    }, Math.max(1, Math.ceil(wait)));
  }

  async #pump(): Promise<void> {
    try {
      while (!this.#stopped) {
        const next = this.#queue.peek();
        if (!next || next.at > performance.now()) break;
        this.#queue.pop();
        this.#bytes -= next.bytes.length;
        try {
          await next.socket.send(next.bytes, next.to);
          next.direction.out++;
        } catch (error) {
          next.direction.sendErrors++;
          this.#onSendError(error);
        } finally {
          if (next.flow) next.flow.pending--;
        }
      }
    } finally {
      this.#pumping = undefined;
      this.#arm();
    }
  }

  /** Stops sending; held datagrams are counted as unsent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clearTimer();
    await this.#pumping;
    for (const held of this.#queue.drain()) held.direction.unsent++;
    this.#bytes = 0;
  }
}

// ---------------------------------------------------------------- relay ----

/** A client and its upstream socket. */
interface Flow {
  key: string;
  client: NetAddr;
  upstream: DatagramConn;
  lastSeen: number;
  pending: number;
  closed: boolean;
  done: Promise<void>;
}

/** Options for {@linkcode startRelay}. */
export interface RelayOptions {
  /** Address to listen on (port 0: any free port). */
  listen: HostPort;
  /** Where to relay to. */
  target: HostPort;
  /** The impairment, applied in both directions. */
  impairment: ImpairmentConfig;
  /** Seed of both random streams. */
  seed: number;
  /** Called for warnings (send errors, refused clients), once per kind. */
  onWarning?: (text: string) => void;
}

/** A running relay. */
export interface RelayHandle {
  /** The listening address, with the real port. */
  readonly addr: NetAddr;
  /** The target, resolved. */
  readonly target: NetAddr;
  /** Settles when the relay stops; rejects if the listening socket fails. */
  readonly done: Promise<void>;
  /** Stops the relay and reports what it did. */
  stop(reason: string): Promise<RelayReport>;
}

/** Errors a receive loop shrugs off: ICMP feedback for an earlier datagram. */
const TRANSIENT = new Set(["ConnectionRefused", "ECONNREFUSED", "ConnectionReset", "ECONNRESET"]);

/** Starts a relay. Throws (with context) when the sockets cannot be opened. */
export async function startRelay(options: RelayOptions): Promise<RelayHandle> {
  const warn = options.onWarning ?? (() => {});
  const warned = new Set<string>();
  const warnOnce = (kind: string, text: string) => {
    if (warned.has(kind)) return;
    warned.add(kind);
    warn(text);
  };
  const listenHost = await resolveHost(options.listen.hostname, "listen");
  const targetHost = await resolveHost(options.target.hostname, "target");
  if (isUnspecified(targetHost)) {
    throw usageError(`--target must be a concrete address, not ${targetHost}`);
  }
  const target: NetAddr = { transport: "udp", hostname: targetHost, port: options.target.port };
  if (sameAddr({ hostname: listenHost, port: options.listen.port }, target)) {
    throw usageError(`--listen and --target are the same address: the relay would send to itself`);
  }
  // Upstream sockets: loopback for a loopback target (which also keeps
  // Deno's --allow-net to the loopback address), else the wildcard address.
  const upstreamHost = isLoopback(targetHost)
    ? (isIpv6(targetHost) ? "::1" : "127.0.0.1")
    : (isIpv6(targetHost) ? "::" : "0.0.0.0");

  let listener: DatagramConn;
  try {
    listener = await runtime.listenDatagram({ hostname: listenHost, port: options.listen.port });
  } catch (error) {
    throw withContext(
      `cannot listen on ${formatAddr({ hostname: listenHost, port: options.listen.port })} (UDP)`,
      error,
    );
  }
  // Probe the upstream bind now, so a missing permission fails at start.
  try {
    (await runtime.listenDatagram({ hostname: upstreamHost, port: 0 })).close();
  } catch (error) {
    listener.close();
    throw withContext(
      `cannot open an upstream socket on ${formatAddr({ hostname: upstreamHost, port: 0 })}`,
      error,
    );
  }

  const forward = new Direction(options.impairment, seededRandom(options.seed ^ 0x5eed1));
  const backward = new Direction(options.impairment, seededRandom(options.seed ^ 0x5eed2));
  const scheduler = new Scheduler((error) => {
    const report = describeError(error);
    warnOnce(`send:${report.message}`, `send failed: ${report.message} (further such errors only counted)`);
  });
  const flows = new Map<string, Flow>();
  const started = performance.now();
  let clients = 0;
  let clientsRefused = 0;
  let ignored = 0;
  let stopping = false;

  const closeFlow = (flow: Flow) => {
    if (flow.closed) return;
    flow.closed = true;
    flows.delete(flow.key);
    try {
      flow.upstream.close();
    } catch { /* already closed */ }
  };

  const upstreamLoop = async (flow: Flow) => {
    const buffer = new Uint8Array(RECEIVE_BUFFER);
    while (!flow.closed) {
      let data: Uint8Array;
      let from: NetAddr;
      try {
        [data, from] = await flow.upstream.receive(buffer);
      } catch (error) {
        if (flow.closed || stopping) return;
        if (TRANSIENT.has(errorKind(error))) continue;
        warnOnce(`upstream:${errorKind(error)}`, `upstream socket failed: ${describeError(error).message}`);
        closeFlow(flow);
        return;
      }
      if (!sameAddr(from, target)) {
        ignored++;
        continue;
      }
      const now = performance.now();
      flow.lastSeen = now;
      for (const d of backward.impairment.process(now, data.slice())) {
        scheduler.schedule(d.at, d.bytes, listener, flow.client, backward);
      }
    }
  };

  const flowFor = async (client: NetAddr): Promise<Flow | undefined> => {
    const key = formatAddr(client);
    const existing = flows.get(key);
    if (existing) return existing;
    if (flows.size >= MAX_CLIENTS) {
      clientsRefused++;
      warnOnce("clients", `more than ${MAX_CLIENTS} clients: datagrams from new clients are dropped`);
      return undefined;
    }
    let upstream: DatagramConn;
    try {
      upstream = await runtime.listenDatagram({ hostname: upstreamHost, port: 0 });
    } catch (error) {
      clientsRefused++;
      warnOnce(`open:${errorKind(error)}`, `cannot open an upstream socket: ${describeError(error).message}`);
      return undefined;
    }
    const flow: Flow = {
      key,
      client: { transport: "udp", hostname: client.hostname, port: client.port },
      upstream,
      lastSeen: performance.now(),
      pending: 0,
      closed: false,
      done: Promise.resolve(),
    };
    flows.set(key, flow);
    clients++;
    flow.done = upstreamLoop(flow);
    return flow;
  };

  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const flow of [...flows.values()]) {
      if (flow.pending === 0 && now - flow.lastSeen >= CLIENT_IDLE_MS) closeFlow(flow);
    }
  }, Math.min(10_000, CLIENT_IDLE_MS / 4));

  const mainLoop = (async () => {
    const buffer = new Uint8Array(RECEIVE_BUFFER);
    while (!stopping) {
      let data: Uint8Array;
      let from: NetAddr;
      try {
        [data, from] = await listener.receive(buffer);
      } catch (error) {
        if (stopping) return;
        if (TRANSIENT.has(errorKind(error))) continue;
        throw withContext(`receive on ${formatAddr(listener.addr)} failed`, error);
      }
      const bytes = data.slice();
      const flow = await flowFor(from);
      if (!flow || stopping) continue;
      const now = performance.now();
      flow.lastSeen = now;
      for (const d of forward.impairment.process(now, bytes)) {
        scheduler.schedule(d.at, d.bytes, flow.upstream, target, forward, flow);
      }
    }
  })();

  let report: Promise<RelayReport> | undefined;
  const stop = (reason: string): Promise<RelayReport> => {
    report ??= (async () => {
      stopping = true;
      clearInterval(sweeper);
      await scheduler.stop();
      try {
        listener.close();
      } catch { /* already closed */ }
      const loops = [...flows.values()].map((flow) => flow.done);
      for (const flow of [...flows.values()]) closeFlow(flow);
      await Promise.allSettled([mainLoop, ...loops]);
      return {
        event: "stopped",
        reason,
        seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
        seed: options.seed,
        clients,
        clientsRefused,
        ignored,
        forward: forward.counters(),
        backward: backward.counters(),
      };
    })();
    return report;
  };

  return {
    addr: { transport: "udp", hostname: listenHost, port: listener.addr.port },
    target,
    done: mainLoop,
    stop,
  };
}

// ---------------------------------------------------------------- output ----

const ROWS: Array<[string, keyof DirectionCounters]> = [
  ["in", "in"],
  ["out", "out"],
  ["lost", "lost"],
  ["queue drops", "queueDrops"],
  ["duplicated", "duplicated"],
  ["reordered", "reordered"],
  ["corrupted", "corrupted"],
  ["overflow", "overflow"],
  ["send errors", "sendErrors"],
  ["unsent at stop", "unsent"],
];

/** The counters as a small table: one row per counter, one column per direction. */
export function formatReport(report: RelayReport): string {
  const head = ["", "client->target", "target->client"];
  const rows = ROWS.map(([label, key]) => [label, String(report.forward[key]), String(report.backward[key])]);
  const w0 = Math.max(...[head, ...rows].map((r) => r[0].length));
  const w1 = Math.max(...[head, ...rows].map((r) => r[1].length));
  const w2 = Math.max(...[head, ...rows].map((r) => r[2].length));
  const line = (r: string[]) => `${r[0].padEnd(w0)}  ${r[1].padStart(w1)}  ${r[2].padStart(w2)}`.trimEnd();
  const extra = [`clients: ${report.clients}`];
  if (report.clientsRefused > 0) extra.push(`datagrams from refused clients: ${report.clientsRefused}`);
  if (report.ignored > 0) extra.push(`datagrams not from the target (ignored): ${report.ignored}`);
  return ["=== Relay Counters ===", line(head), ...rows.map(line), ...extra].join("\n");
}

/** The impairment in words, for the human start line. */
function describeImpairment(c: ImpairmentConfig): string {
  const pct = (p: number) => `${Number((p * 100).toFixed(4))}%`;
  const parts: string[] = [];
  if (c.loss > 0) parts.push(`loss ${pct(c.loss)}`);
  if (c.burstEnter > 0) {
    parts.push(`bursts (enter ${pct(c.burstEnter)}, exit ${pct(c.burstExit)}, loss ${pct(c.burstLoss)})`);
  }
  if (c.rateMbit > 0) parts.push(`rate ${c.rateMbit} Mbit/s (queue ${c.queueBytes} bytes)`);
  if (c.delayMs > 0) parts.push(`delay ${c.delayMs} ms`);
  if (c.jitterMs > 0) parts.push(`jitter ${c.jitterMs} ms`);
  if (c.reorder > 0) parts.push(`reorder ${pct(c.reorder)}`);
  if (c.dup > 0) parts.push(`dup ${pct(c.dup)}`);
  if (c.corrupt > 0) parts.push(`corrupt ${pct(c.corrupt)}`);
  return parts.length > 0 ? parts.join(", ") : "none";
}

// ------------------------------------------------------------------ main ----

/** Runs the relay with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    listen: { type: "string", default: "127.0.0.1:8083" },
    target: { type: "string", default: "127.0.0.1:8082" },
    loss: { type: "string", default: "0" },
    "burst-enter": { type: "string", default: "0" },
    "burst-exit": { type: "string", default: String(NO_IMPAIRMENT.burstExit) },
    "burst-loss": { type: "string", default: String(NO_IMPAIRMENT.burstLoss) },
    dup: { type: "string", default: "0" },
    reorder: { type: "string", default: "0" },
    delay: { type: "string", default: "0" },
    jitter: { type: "string", default: "0" },
    rate: { type: "string", default: "0" },
    queue: { type: "string", default: String(NO_IMPAIRMENT.queueBytes) },
    corrupt: { type: "string", default: "0" },
    seed: { type: "string" },
    duration: { type: "string" },
    json: { type: "boolean", default: false },
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("udp-relay", runtime.name, runtime.version)), 0;
  const out = Output.fromFlags(flags);
  const listen = parseHostPort(str(flags, "listen"), "listen", true);
  const target = parseHostPort(str(flags, "target"), "target", false);
  const impairment: ImpairmentConfig = {
    ...NO_IMPAIRMENT,
    loss: parseProbability(str(flags, "loss"), "loss"),
    burstEnter: parseProbability(str(flags, "burst-enter"), "burst-enter"),
    burstExit: parseProbability(str(flags, "burst-exit"), "burst-exit"),
    burstLoss: parseProbability(str(flags, "burst-loss"), "burst-loss"),
    dup: parseProbability(str(flags, "dup"), "dup"),
    reorder: parseProbability(str(flags, "reorder"), "reorder"),
    delayMs: parseNonNegative(str(flags, "delay"), "delay", "milliseconds"),
    jitterMs: parseNonNegative(str(flags, "jitter"), "jitter", "milliseconds"),
    rateMbit: parseNonNegative(str(flags, "rate"), "rate", "Mbit/s"),
    queueBytes: parseWhole(str(flags, "queue"), "queue", 2 ** 32),
    corrupt: parseProbability(str(flags, "corrupt"), "corrupt"),
  };
  const seed = typeof flags.seed === "string"
    ? parseWhole(flags.seed, "seed", 0xffffffff)
    : Math.floor(Math.random() * 0x100000000);
  const durationMs = typeof flags.duration === "string"
    ? parseSeconds(flags.duration, "duration")
    : undefined;

  const relay = await startRelay({ listen, target, impairment, seed, onWarning: (text) => out.warn(text) });
  // Watch for the stop signals before announcing the port: a caller may
  // signal as soon as it reads the announcement.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let off = () => {};
  const stopRequested = new Promise<string>((resolve) => {
    off = runtime.onShutdownSignal(resolve);
    if (durationMs !== undefined) timer = setTimeout(() => resolve("duration"), durationMs);
  });
  const where = formatAddr(relay.addr);
  const to = formatAddr(relay.target);
  out.record({
    event: "listening",
    transport: "udp",
    host: relay.addr.hostname,
    port: relay.addr.port,
    target: to,
    seed,
    impairment,
  });
  out.log(`[*] Relay listening on ${where} -> ${to}`);
  out.log(`[*] Impairment each way: ${describeImpairment(impairment)} (seed ${seed})`);
  let reason: string;
  try {
    // relay.done settles early only when the listening socket fails: then it rejects.
    reason = await Promise.race([stopRequested, relay.done.then(() => "closed")]);
  } finally {
    off();
    if (timer !== undefined) clearTimeout(timer);
  }
  const report = await relay.stop(reason);
  out.record(report as unknown as Record<string, unknown>);
  out.log(`[*] Relay stopped (${reason}) after ${report.seconds.toFixed(1)} s.`);
  out.result(formatReport(report));
  return ExitCode.OK;
}

if (import.meta.main) runMain("udp-relay", main);
