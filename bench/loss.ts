/**
 * `bench:loss`: file-to-file goodput against real kernel packet loss, TCP
 * (ours framed and classic, socat) and our reliable UDP, so a user sees what
 * each does on a lossy link. The loss is the kernel's: an nftables rule on the
 * input hook of a private network namespace's loopback drops a random share of
 * every TCP and UDP packet (data and acknowledgements, both directions), on an
 * Ethernet-sized MTU with segmentation offloads off. A benchmark that prints
 * tables, not a test: it checks every received file's SHA-256 and writes every
 * raw run to `results/bench-loss.json` (chart: `results/bench-loss.svg`).
 *
 * ```sh
 * deno task bench:loss                          # 0,1,5,10,20% loss, 64 MiB, 3 runs
 * deno task bench:loss --quick                  # smoke run: 0 and 5%, 16 MiB, 1 run
 * deno task bench:loss --loss 0,2 --tools tcp-framed,udp-reliable --runtimes deno
 * bun bench/loss.ts --quick
 * ```
 *
 * It needs Linux, `unshare`, `ip` and `nft`, and the right to create a network
 * namespace (root, or unprivileged user namespaces); otherwise it prints
 * `loss sweep skipped: <reason>` and exits 0. It re-runs itself under
 * `unshare -nm` (or `unshare -rnm`), so the rule never touches the machine's
 * own network and the tmpfs the files are received into is seen by nobody
 * else; both disappear when the benchmark exits. Every child process runs
 * under a timeout and is stopped by its PID.
 *
 * @module
 */

import * as fs from "node:fs";
import { dirname, join, resolve } from "node:path";
import { EXIT_CODES_HELP, parseFlags, runMain, versionLine } from "../shared/cli.ts";
import { CliError, ExitCode, usageError } from "../shared/errors.ts";
import { runtime } from "../shared/runtime.ts";
import { lossBenchSvg } from "./chart.ts";
import {
  emptyDir,
  fmtMB,
  fmtRatio,
  jsonLines,
  list,
  median,
  progress,
  randomTestFile,
  ratio,
  round,
  type RunSummary,
  summarizeRuns,
  table,
  tail,
  which,
  whole,
} from "./common.ts";
import {
  type BenchRuntime,
  type Child,
  Children,
  type Ended,
  exitWithin,
  findRuntime,
  sleep,
  waitUntil,
} from "./children.ts";
import { entryCommand, freePort, ROOT, sha256 } from "./procs.ts";

/** `--help` text. */
export const HELP = `Usage: bench-loss [options]

Measures file-to-file goodput on a loopback link with real kernel packet
loss, for each --loss level and each tool:

  tcp-framed    tcp/server.ts --once + tcp/client.ts --buffer B (SHA-256 framed)
  tcp-classic   the same with --classic (raw stream)
  udp-reliable  udp/server.ts --once + udp/client.ts --buffer PAYLOAD
  socat         socat -u -b 131072 TCP-LISTEN → socat -u -b 131072 TCP
                (when installed)

Ours run on each --runtimes (server and client on the same runtime).

The loss: the benchmark re-runs itself in a private network and mount
namespace (unshare -nm as root, else unshare -rnm), sets lo up with MTU 1500 and
TSO/GSO/GRO off (Ethernet-sized packets), and adds an nftables rule on the
input hook, "meta l4proto { tcp, udp } numgen random mod 1000 < N drop":
every packet on lo passes that hook once, so data and acknowledgements in both
directions are dropped at the --loss rate (in steps of 0.1%). Counters on the
rule give the rate actually dropped, shown per run.

Goodput is file size / wall time from the client process's start until the
receiver holds the file (ours: the client's exit after the server's reply;
socat: the receiver's exit), in MB/s (10^6 bytes/s); process start is
included. Every received file's SHA-256 is checked; a run that fails, times
out (--timeout) or delivers a wrong file counts as failed, with its reason,
and is left out of the median. Received files go to a tmpfs mounted on
results/bench/loss-rx-PID in the private mount namespace (so disk writeback
does not count; not /dev/shm, which Deno grants only with --allow-all), or
to that folder on disk where no tmpfs can be mounted.

Options:
  --loss LIST        loss levels in percent (default 0,1,5,10,20; --quick 0,5)
  --size MIB         file size in MiB (default 64; --quick 16)
  --runs N           runs per tool and level (default 3; --quick 1)
  --runtimes LIST    runtimes for our server and client: deno,bun (default both)
  --tools LIST       tcp-framed,tcp-classic,udp-reliable,socat (default all)
  --buffer BYTES     TCP --buffer of our server and client (default 131072)
  --payload BYTES    UDP payload bytes per datagram (default 1400)
  --timeout SECS     limit for each client (default 120; servers get 60 s more)
  --report PATH      JSON report (default results/bench-loss.json; the SVG
                     chart goes beside it)
  --quick            smoke run: --loss 0,5 --size 16 --runs 1
  -h, --help         show this help
  -V, --version      show the version

The test file is results/bench/loss-<MIB>MiB.bin (made once, reused).
Exit code 0 when the benchmark ran (failed or timed-out runs at high loss are
results, not errors) or was skipped; 1 when one of our transfers reported
success but the received file was wrong or missing.

${EXIT_CODES_HELP}`;

/** Set (to the unshare flag used) in the re-run inside the private network namespace. */
const NETNS_ENV = "IMGXFER_BENCH_LOSS_NETNS";
/** Where ip, nft, ethtool and unshare usually live. */
const SBIN = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
const TOOL_NAMES = ["tcp-framed", "tcp-classic", "udp-reliable", "socat"] as const;
type ToolName = typeof TOOL_NAMES[number];
const SOCAT_BLOCK = 131072;
/** The nftables table and input chain made inside the namespace. */
const NFT_TABLE = "inet imx";
const NFT_CHAIN = `${NFT_TABLE} in`;
/** Set to the receive folder (made per run of the benchmark) in the re-run. */
const RX_ENV = "IMGXFER_BENCH_LOSS_RX";
/** Set to the outer process's network namespace (`net:[…]`) in the re-run, which must be in another. */
const OUTER_NS_ENV = "IMGXFER_BENCH_LOSS_OUTER_NETNS";

// ------------------------------------------------------------ processes ----

const children = new Children();
const startChild = children.start.bind(children);
const stopAll = () => children.stopAll();

/** Runs a short command to its end (at most `ms`); its exit code and output. */
async function exec(cmd: string[], ms = 15000): Promise<{ ok: boolean; out: string; err: string }> {
  const child = startChild(cmd.join(" "), cmd, ms);
  const ended = await child.ended;
  const err = ended.error ?? (ended.timedOut ? `timed out after ${ms / 1000} s` : child.out.stderr);
  return { ok: ended.code === 0, out: child.out.stdout, err: tail(err) };
}

// ---------------------------------------------------------------- config ----

interface Config {
  losses: number[];
  sizeMiB: number;
  runs: number;
  runtimeNames: Array<"deno" | "bun">;
  tools: ToolName[];
  buffer: number;
  payload: number;
  timeoutSecs: number;
  reportPath: string;
  quick: boolean;
}

function parseConfig(argv: string[]): Config | "help" | "version" {
  const flags = parseFlags(argv, {
    loss: { type: "string" },
    size: { type: "string" },
    runs: { type: "string" },
    runtimes: { type: "string", default: "deno,bun" },
    tools: { type: "string", default: TOOL_NAMES.join(",") },
    buffer: { type: "string", default: "131072" },
    payload: { type: "string", default: "1400" },
    timeout: { type: "string", default: "120" },
    report: { type: "string", default: join(ROOT, "results", "bench-loss.json") },
    quick: { type: "boolean", default: false },
  });
  if (flags.help) return "help";
  if (flags.version) return "version";
  const quick = flags.quick === true;
  const losses = list(String(flags.loss ?? (quick ? "0,5" : "0,1,5,10,20")), "loss").map((l) => {
    const n = Number(l.replace(/%$/, ""));
    if (!/^\d+(\.\d+)?%?$/.test(l) || !(n >= 0 && n <= 90) || Math.abs(n * 10 - Math.round(n * 10)) > 1e-9) {
      throw usageError(`--loss: each level must be 0-90 percent in steps of 0.1, got '${l}'`);
    }
    return n;
  });
  if (losses.length === 0) throw usageError("--loss names no level");
  if (new Set(losses).size !== losses.length) throw usageError("--loss names a level twice");
  const runtimeNames = list(String(flags.runtimes), "runtimes").map((r) => {
    if (r !== "deno" && r !== "bun") throw usageError(`--runtimes takes deno and/or bun, got '${r}'`);
    return r as "deno" | "bun";
  });
  const tools = list(String(flags.tools), "tools").map((t) => {
    if (!TOOL_NAMES.includes(t as ToolName)) {
      throw usageError(`--tools takes ${TOOL_NAMES.join(", ")}; got '${t}'`);
    }
    return t as ToolName;
  });
  if (tools.length === 0) throw usageError("--tools names no tool");
  const timeoutSecs = Number(flags.timeout);
  if (!(timeoutSecs > 0) || timeoutSecs > 86400) {
    throw usageError(`--timeout must be a positive number of seconds, got '${flags.timeout}'`);
  }
  return {
    losses: [...losses].sort((a, b) => a - b),
    sizeMiB: whole(String(flags.size ?? (quick ? 16 : 64)), "size", 1, 4096),
    runs: whole(String(flags.runs ?? (quick ? 1 : 3)), "runs", 1, 50),
    runtimeNames: [...new Set(runtimeNames)],
    tools: [...new Set(tools)],
    buffer: whole(String(flags.buffer), "buffer", 1, 64 << 20),
    payload: whole(String(flags.payload), "payload", 1, 65491),
    timeoutSecs,
    reportPath: resolve(String(flags.report)),
    quick,
  };
}

// ------------------------------------------------------------- the data ----

/** One timed transfer. */
interface RunRecord {
  run: number;
  ok: boolean;
  /** Wall seconds, client start until the receiver holds the file. */
  seconds: number | null;
  /** File bytes / seconds / 10^6. */
  mbPerS: number | null;
  error?: string;
  /** Our client said success, yet the file was wrong or missing. */
  integrity?: boolean;
  exitCode: number | null;
  sha256?: string;
  /** Our client's JSON summary, the nft counters and the kernel's TCP/UDP counters of the run. */
  details: Record<string, unknown>;
}

/** One tool (and runtime) at one loss level. */
interface Row {
  tool: ToolName;
  runtime?: "deno" | "bun";
  /** The series name: "tcp-framed (deno)", "socat". */
  label: string;
  lossPercent: number;
  command: string;
  skipped?: string;
  runs: RunRecord[];
  summary?: RunSummary;
  ratioToOwnZero?: number | null;
}

interface TestFile {
  path: string;
  bytes: number;
  sha256: string;
}

// --------------------------------------------------------- the namespace ----

/**
 * This process's network namespace, `net:[inode]` (read by `readlink`, its
 * child, in the same one), or another process's by its `link`; undefined if
 * unreadable.
 */
async function netnsId(link = "/proc/self/ns/net"): Promise<string | undefined> {
  const done = await exec([which("readlink", SBIN) ?? "readlink", link]);
  const id = done.out.trim();
  return done.ok && /^net:\[\d+\]$/.test(id) ? id : undefined;
}

/**
 * Inside: why this is not a fresh network namespace of our own, if it is not:
 * it must differ from the one the outer process ran in and from PID 1's (when
 * readable), and its lo must still be down (as unshare leaves it; a machine's
 * own lo is up).
 */
async function notOwnNamespace(ip: string): Promise<string | undefined> {
  const own = await netnsId();
  const outer = process.env[OUTER_NS_ENV];
  if (!own) return "this process's network namespace cannot be read (readlink /proc/self/ns/net)";
  if (!outer) return `${OUTER_NS_ENV} is not set (the outer process sets it)`;
  if (own === outer) return `this is the network namespace the benchmark was started in (${own})`;
  const init = await netnsId("/proc/1/ns/net");
  if (own === init) return `this is PID 1's network namespace (${own})`;
  const lo = await exec([ip, "-o", "link", "show", "lo"]);
  const flags = /<([^>]*)>/.exec(lo.out)?.[1].split(",") ?? [];
  if (!lo.ok) return `ip link show lo failed: ${lo.err}`;
  if (flags.includes("UP")) return `lo is already up (${flags.join(",")}): not a fresh namespace`;
  return undefined;
}

/** How the benchmark re-runs itself: `unshare FLAG`, preferring a private mount namespace too. */
type NsFlag = "-nm" | "-rnm" | "-n" | "-rn";

/**
 * Outside: whether a private network namespace can be made here, and how
 * (`-nm` as root, `-rnm` with user namespaces; without `m` when mount
 * namespaces are refused); a string says why not.
 */
async function namespaceSupport(): Promise<{ unshare: string; flag: NsFlag; outer: string } | string> {
  if (process.platform !== "linux") return `needs Linux network namespaces (this is ${process.platform})`;
  const unshare = which("unshare", SBIN);
  const missing = [
    !unshare && "unshare (util-linux)",
    !which("ip", SBIN) && "ip (iproute2)",
    !which("nft", SBIN) && "nft (nftables)",
  ].filter(Boolean);
  if (missing.length || !unshare) return `${missing.join(", ")} not found on PATH or in /usr/sbin, /sbin`;
  const outer = await netnsId();
  if (!outer) return "cannot tell this process's network namespace (readlink /proc/self/ns/net)";
  const reasons: string[] = [];
  for (const flag of ["-nm", "-rnm", "-n", "-rn"] as const) {
    const probe = await exec([unshare, flag, "true"], 10000);
    if (probe.ok) return { unshare, flag, outer };
    reasons.push(`unshare ${flag} true: ${probe.err || "failed"}`);
  }
  return `cannot create a network namespace (${reasons.join("; ")})`;
}

/** Outside: runs this benchmark again inside a new network namespace, its output streamed; its exit code. */
async function reRunInNamespace(
  ns: { unshare: string; flag: NsFlag; outer: string },
  argv: string[],
  config: Config,
  rx: string,
): Promise<number> {
  const self = entryCommand({ name: runtime.name, exe: process.execPath }, "bench/loss.ts", argv, [
    "--allow-run",
    "--allow-env",
    "--allow-read",
    "--allow-write",
    "--allow-net=127.0.0.1",
  ]);
  const env = which("env", ["/usr/bin", "/bin"]) ?? "/usr/bin/env";
  // Every run is bounded by --timeout plus the servers' start and stop; this bounds the lot.
  const perRun = config.timeoutSecs * 1000 + 90000;
  const budgetMs = config.losses.length * config.runs * config.tools.length *
      Math.max(1, config.runtimeNames.length) * perRun + 600000;
  const child = startChild(
    "bench/loss.ts in a network namespace",
    [
      ns.unshare,
      ns.flag,
      env,
      `${NETNS_ENV}=${ns.flag}`,
      `${OUTER_NS_ENV}=${ns.outer}`,
      `${RX_ENV}=${rx}`,
      ...self,
    ],
    budgetMs,
    { stdout: 1 },
  );
  // stdout goes straight through; stderr is captured, so pass it on as it comes.
  let sent = 0;
  const forward = () => {
    const text = child.out.stderr;
    if (text.length > sent) process.stderr.write(text.slice(sent));
    sent = text.length;
  };
  while (!child.exited) {
    await Promise.race([child.ended, sleep(100)]);
    forward();
  }
  const ended = await child.ended;
  forward();
  if (ended.error) {
    throw new CliError(`cannot run ${ns.unshare} ${ns.flag}: ${ended.error}`, ExitCode.INTERNAL);
  }
  if (ended.timedOut) {
    console.error(
      `bench-loss: the sweep ran past its ${Math.round(budgetMs / 1000)} s limit and was stopped`,
    );
    return ExitCode.TRANSFER_FAILED;
  }
  return ended.code ?? ExitCode.INTERNAL;
}

/** Inside: the rule that drops `loss` percent of TCP and UDP packets, after one that counts them all. */
async function setLoss(nft: string, loss: number): Promise<string | undefined> {
  const match = "meta l4proto { tcp, udp }";
  const commands = [`flush chain ${NFT_CHAIN}`, `add rule ${NFT_CHAIN} ${match} counter`];
  const n = Math.round(loss * 10);
  if (n > 0) commands.push(`add rule ${NFT_CHAIN} ${match} numgen random mod 1000 < ${n} counter drop`);
  const done = await exec([nft, commands.join("; ")]);
  return done.ok ? undefined : `nft: ${done.err}`;
}

/** Inside: the packets the input hook saw and dropped so far (since the level's rule was set). */
async function nftCounters(nft: string): Promise<{ packets: number; dropped: number } | undefined> {
  const done = await exec([nft, "-j", "list", "chain", ...NFT_CHAIN.split(" ")]);
  if (!done.ok) return undefined;
  try {
    const items = JSON.parse(done.out).nftables as Array<Record<string, { expr?: unknown[] }>>;
    const counters = items.filter((i) => i.rule).map((i) => {
      const expr = (i.rule.expr ?? []) as Array<Record<string, unknown>>;
      const counter = expr.find((e) => e.counter)?.counter as { packets?: number } | undefined;
      return { packets: counter?.packets ?? 0, drops: expr.some((e) => "drop" in e) };
    });
    return {
      packets: counters.find((c) => !c.drops)?.packets ?? 0,
      dropped: counters.find((c) => c.drops)?.packets ?? 0,
    };
  } catch {
    return undefined;
  }
}

/**
 * Inside: the kernel's TCP and UDP counters of this namespace (/proc/net/snmp:
 * `Tcp.RetransSegs`, `Udp.RcvbufErrors`, …; /proc/net/netstat: `TcpExt.TCPTimeouts`, …).
 */
async function kernelCounters(): Promise<Record<string, number>> {
  const text = (await children.readProc("/proc/net/snmp")) + "\n" +
    (await children.readProc("/proc/net/netstat"));
  const out: Record<string, number> = {};
  const lines = text.split("\n");
  for (let i = 0; i + 1 < lines.length; i++) {
    const [head, values] = [lines[i].split(/\s+/), lines[i + 1].split(/\s+/)];
    if (head[0] !== values[0] || !/^(Tcp|Udp|TcpExt):$/.test(head[0])) continue;
    head.slice(1).forEach((k, j) => out[`${head[0].slice(0, -1)}.${k}`] = Number(values[j + 1]));
    i++;
  }
  return out;
}

/** Inside: whether something listens on 127.0.0.1:`port` (TCP), from /proc/net/tcp. */

/**
 * Inside: mounts a tmpfs on `dir` when this namespace has its own mounts
 * (nobody else sees it; it goes with the namespace); says what the folder is.
 */
async function mountTmpfs(dir: string, nsFlag: string, sizeMiB: number): Promise<string> {
  if (!nsFlag.includes("m")) return "on disk (no private mount namespace for a tmpfs)";
  const mount = which("mount", SBIN);
  if (!mount) return "on disk (mount not found for a tmpfs)";
  const done = await exec([
    mount,
    "-t",
    "tmpfs",
    "-o",
    `size=${2 * sizeMiB + 64}m`,
    "imgxfer-bench-loss",
    dir,
  ]);
  return done.ok ? "a tmpfs private to this namespace" : `on disk (mount -t tmpfs failed: ${done.err})`;
}

// ------------------------------------------------------------ transfers ----

interface RunContext {
  file: TestFile;
  rx: string;
  timeoutMs: number;
  buffer: number;
  payload: number;
}

/** Checks the received file against the source; a reason when it differs. */
function checkFile(path: string, file: TestFile, record: RunRecord): string | undefined {
  try {
    const size = fs.statSync(path).size;
    if (size !== file.bytes) return `size mismatch: ${size} of ${file.bytes} bytes in ${path}`;
    record.sha256 = sha256(path);
    return record.sha256 === file.sha256 ? undefined : `SHA-256 mismatch in ${path}`;
  } catch (error) {
    return `cannot read the received file ${path}: ${(error as Error).message}`;
  }
}

/** One transfer of ours: a `--once` server, then the timed client; the server's file checked. */
async function ourRun(rt: BenchRuntime, tool: ToolName, ctx: RunContext, run: number): Promise<RunRecord> {
  const udp = tool === "udp-reliable";
  const record: RunRecord = { run, ok: false, seconds: null, mbPerS: null, exitCode: null, details: {} };
  const serverArgs = ["--host", "127.0.0.1", "--port", "0", "--once", "--json", "--out", ctx.rx];
  if (!udp) serverArgs.push("--buffer", String(ctx.buffer));
  const server = startChild(
    `${udp ? "udp" : "tcp"}-server (${rt.name})`,
    entryCommand(rt, udp ? "udp/server.ts" : "tcp/server.ts", serverArgs, [
      "--allow-net=127.0.0.1",
      `--allow-read=${ctx.rx}`,
      `--allow-write=${ctx.rx}`,
    ]),
    ctx.timeoutMs + 60000,
  );
  let client: Child | undefined;
  try {
    const listening = () => jsonLines(server.out.stdout).find((e) => e.event === "listening");
    if (!await waitUntil(server, () => listening() !== undefined, 30000)) {
      record.error = `the server did not start: ${
        tail(server.out.stderr || server.out.stdout) || "no output"
      }`;
      return record;
    }
    const port = Number(listening()!.port);
    const clientArgs = ["--host", "127.0.0.1", "--port", String(port), "--file", ctx.file.path, "--json"];
    clientArgs.push("--buffer", String(udp ? ctx.payload : ctx.buffer));
    if (tool === "tcp-classic") clientArgs.push("--classic");
    client = startChild(
      `${udp ? "udp" : "tcp"}-client (${rt.name})`,
      entryCommand(rt, udp ? "udp/client.ts" : "tcp/client.ts", clientArgs, [
        `--allow-net=127.0.0.1:${port}${udp ? ",0.0.0.0:0" : ""}`,
        `--allow-read=${ctx.file.path}`,
      ]),
      ctx.timeoutMs,
    );
    const ended = await client.ended;
    record.seconds = round(ended.seconds, 4);
    record.exitCode = ended.code;
    const summary = jsonLines(client.out.stdout).at(-1) ?? {};
    for (
      const key of ["status", "seconds", "retransmitted", "lossPercent", "srttMs", "datagrams", "response"]
    ) {
      if (summary[key] !== undefined) {
        record.details[key === "seconds" ? "clientSeconds" : key] = summary[key];
      }
    }
    // --once: the server exits after the one transfer (it printed "received" before replying).
    await exitWithin(server, ended.code === 0 ? 15000 : 2000);
    const received = jsonLines(server.out.stdout).find((e) => e.event === "received");
    if (ended.timedOut) record.error = `client timed out after ${ctx.timeoutMs / 1000} s (killed)`;
    else if (ended.error) record.error = `client did not start: ${ended.error}`;
    else if (ended.code !== 0 || summary.status !== "success") {
      record.error = `client exit ${ended.code ?? ended.signal}, status ${summary.status ?? "?"}: ${
        tail(client.out.stderr || String(summary.response ?? ""))
      }`;
    } else if (!received || received.complete !== true) {
      record.error = "the client reported success, but the server reported no complete file";
      record.integrity = true;
    } else {
      record.error = checkFile(String(received.path), ctx.file, record);
      if (record.error) record.integrity = true;
    }
    if (record.error) {
      record.details.clientStderr = tail(client.out.stderr, 800);
      record.details.serverStderr = tail(server.out.stderr, 800);
      record.details.serverEvents = jsonLines(server.out.stdout).map((e) => ({
        event: e.event,
        complete: e.complete,
        bytes: e.bytes,
        error: e.error,
        text: e.text,
      }));
    } else {
      record.ok = true;
      record.mbPerS = round(ctx.file.bytes / ended.seconds / 1e6, 3);
    }
    return record;
  } finally {
    await client?.stop();
    await server.stop();
  }
}

/** One socat transfer: the receiver listening, then the timed sender; time until the receiver exits. */
async function socatRun(socat: string, ctx: RunContext, run: number): Promise<RunRecord> {
  const record: RunRecord = { run, ok: false, seconds: null, mbPerS: null, exitCode: null, details: {} };
  const out = join(ctx.rx, "socat_rx.bin");
  const port = await freePort();
  const b = ["-b", String(SOCAT_BLOCK)];
  const receiver = startChild("socat receiver", [
    socat,
    "-u",
    ...b,
    `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`,
    `OPEN:${out},creat,trunc`,
  ], ctx.timeoutMs + 60000);
  let sender: Child | undefined;
  try {
    if (!await waitUntil(receiver, async () => await children.listeningOn(port) === true, 10000, 50)) {
      record.error = `the socat receiver did not listen: ${tail(receiver.out.stderr) || "no output"}`;
      return record;
    }
    const snd = sender = startChild("socat sender", [
      socat,
      "-u",
      ...b,
      `OPEN:${ctx.file.path}`,
      `TCP:127.0.0.1:${port}`,
    ], ctx.timeoutMs);
    // The receiver's exit ends the transfer; a sender that failed gives it 2 s more.
    await Promise.race([receiver.ended, snd.ended]);
    let received: Ended | undefined = receiver.exited ? await receiver.ended : undefined;
    if (!received) {
      const s = await snd.ended;
      const left = ctx.timeoutMs - (performance.now() - snd.startedAt);
      received = await exitWithin(receiver, s.code === 0 ? Math.max(1000, left) : 2000);
    }
    const sent = await exitWithin(snd, 10000) ?? await snd.stop();
    record.exitCode = received?.code ?? null;
    if (sent.timedOut) record.error = `the socat sender timed out after ${ctx.timeoutMs / 1000} s (killed)`;
    else if (!received) record.error = `the socat receiver did not finish within ${ctx.timeoutMs / 1000} s`;
    else if (sent.error || received.error) {
      record.error = `socat did not start: ${sent.error ?? received.error}`;
    } else if (received.code !== 0) {
      record.error = `socat receiver exit ${received.code}: ${tail(receiver.out.stderr)}`;
    } else if (sent.code !== 0) record.error = `socat sender exit ${sent.code}: ${tail(snd.out.stderr)}`;
    else {
      record.seconds = round((received.exitAt - snd.startedAt) / 1000, 4);
      record.error = checkFile(out, ctx.file, record);
    }
    if (!record.error && record.seconds !== null) {
      record.ok = true;
      record.mbPerS = round(ctx.file.bytes / record.seconds / 1e6, 3);
    }
    return record;
  } finally {
    await sender?.stop();
    await receiver.stop();
  }
}

// ------------------------------------------------------------------ main ----

function describeRun(r: RunRecord): string {
  const d = r.details;
  const nft = d.nft as { packets: number; dropped: number; dropPercent: number | null } | undefined;
  const extra = [
    nft && `dropped ${nft.dropped} of ${nft.packets} packets (${nft.dropPercent?.toFixed(1) ?? "-"}%)`,
    typeof d.tcpRetransSegs === "number" && d.tcpRetransSegs > 0 && `TCP retransmitted ${d.tcpRetransSegs}`,
    typeof d.tcpTimeouts === "number" && d.tcpTimeouts > 0 && `${d.tcpTimeouts} RTO timeout(s)`,
    typeof d.tcpSynRetrans === "number" && d.tcpSynRetrans > 0 && `${d.tcpSynRetrans} SYN retransmit(s)`,
    d.retransmitted !== undefined && `${d.retransmitted} retransmitted, loss seen ${d.lossPercent}%`,
    typeof d.udpRcvbufErrors === "number" && d.udpRcvbufErrors > 0 &&
    `${d.udpRcvbufErrors} dropped by a full socket buffer`,
    d.srttMs !== undefined && `srtt ${d.srttMs} ms`,
  ].filter(Boolean).join(", ");
  if (!r.ok) return `FAILED: ${r.error}${extra ? ` (${extra})` : ""}`;
  return `${r.seconds?.toFixed(3)} s, ${fmtMB(r.mbPerS)} MB/s, sha256 ok${extra ? `, ${extra}` : ""}`;
}

const pct = (loss: number) => `${loss}%`;

/** Inside the namespace: the whole sweep. */
async function sweep(config: Config, nsFlag: string): Promise<number> {
  const { losses, runs, tools } = config;
  const timeoutMs = config.timeoutSecs * 1000;
  const date = new Date().toISOString();
  const began = performance.now();
  const skip = (reason: string) => {
    console.log(`loss sweep skipped: ${reason}`);
    writeSkipReport(config, reason);
    return ExitCode.OK;
  };

  // Drop rules and lo changes go only into a fresh namespace of our own (checked before any change).
  const ip = which("ip", SBIN);
  const nft = which("nft", SBIN);
  if (!ip || !nft) return skip(`${!ip ? "ip" : "nft"} not found inside the namespace`);
  const foreign = await notOwnNamespace(ip);
  if (foreign) {
    throw new CliError(
      `${NETNS_ENV} is set, but ${foreign}; refusing to add packet-drop rules or change lo here`,
      ExitCode.INTERNAL,
    );
  }
  for (const args of [["link", "set", "lo", "up"], ["link", "set", "lo", "mtu", "1500"]]) {
    const done = await exec([ip, ...args]);
    if (!done.ok) return skip(`ip ${args.join(" ")} failed in the namespace: ${done.err}`);
  }
  const ethtool = which("ethtool", SBIN);
  let offloads: string;
  if (!ethtool) {
    offloads =
      "not changed: ethtool not found (lo keeps TSO/GSO/GRO: one drop can lose a 64 KiB super-segment)";
  } else {
    const done = await exec([ethtool, "-K", "lo", "tso", "off", "gso", "off", "gro", "off"]);
    offloads = done.ok ? "tso off, gso off, gro off" : `not changed: ethtool -K lo failed: ${done.err}`;
  }
  const made = await exec([
    nft,
    `add table ${NFT_TABLE}; add chain ${NFT_CHAIN} { type filter hook input priority 0; }`,
  ]);
  if (!made.ok) return skip(`nft cannot make a table in the namespace: ${made.err}`);
  const probe = await setLoss(nft, 5);
  if (probe) return skip(`nft cannot add the numgen drop rule: ${probe}`);
  const probeCount = await setLoss(nft, 0);
  if (probeCount) return skip(`nft cannot add the counting rule: ${probeCount}`);

  const machine = {
    ...await children.machine(),
    tcpCongestionControl: (await children.readProc("/proc/sys/net/ipv4/tcp_congestion_control")).trim() ||
      "unknown",
    tcpRmem: (await children.readProc("/proc/sys/net/ipv4/tcp_rmem")).trim().replace(/\s+/g, " ") ||
      "unknown",
    rmemMax: Number((await children.readProc("/proc/sys/net/core/rmem_max")).trim()) || null,
  };
  const code = await children.measuredCode();
  const nftVersion = (await exec([nft, "--version"])).out.trim();
  const namespace: Record<string, unknown> = {
    unshare: `unshare ${nsFlag}`,
    lo: { mtu: 1500, offloads },
    nft: nftVersion,
    rule: `${NFT_CHAIN} (input hook): meta l4proto { tcp, udp } numgen random mod 1000 < N drop, ` +
      "N = loss × 10",
  };

  const rts = new Map<string, BenchRuntime>();
  const rtSkip = new Map<string, string>();
  const ours = tools.some((t) => t !== "socat");
  for (const name of config.runtimeNames) {
    const found = ours ? await findRuntime(children, name) : "no tool of ours requested (--tools)";
    if (typeof found === "string") rtSkip.set(name, found);
    else rts.set(name, found);
  }
  let socat: string | undefined;
  let socatVersion: string | undefined;
  let socatSkip: string | undefined;
  if (tools.includes("socat")) {
    socat = which("socat", ["/usr/bin", "/bin"]);
    if (!socat) socatSkip = "socat not found on PATH";
    else {
      const v = startChild("socat -V", [socat, "-V"], 10000);
      await v.ended;
      socatVersion = /socat version (\S+)/.exec(v.out.stdout + v.out.stderr)?.[1] ?? "unknown";
    }
  }

  const rows: Row[] = [];
  for (const loss of losses) {
    for (const tool of tools) {
      if (tool === "socat") {
        rows.push({
          tool,
          label: "socat",
          lossPercent: loss,
          command:
            `socat -u -b ${SOCAT_BLOCK} TCP-LISTEN:P,bind=127.0.0.1,reuseaddr OPEN:RX/socat_rx.bin,creat,trunc; ` +
            `socat -u -b ${SOCAT_BLOCK} OPEN:FILE TCP:127.0.0.1:P`,
          skipped: socatSkip,
          runs: [],
        });
        continue;
      }
      for (const name of config.runtimeNames) {
        const udp = tool === "udp-reliable";
        rows.push({
          tool,
          runtime: name,
          label: `${tool} (${name})`,
          lossPercent: loss,
          command: udp
            ? `udp/server.ts --once --json --out RX; udp/client.ts --buffer ${config.payload} --json`
            : `tcp/server.ts --once --json --out RX --buffer ${config.buffer}; tcp/client.ts --buffer ${config.buffer} --json${
              tool === "tcp-classic" ? " --classic" : ""
            }`,
          skipped: rts.has(name) ? undefined : rtSkip.get(name) ?? "not available",
          runs: [],
        });
      }
    }
  }
  const labels = [...new Set(rows.map((r) => r.label))];
  const levels: Array<
    { lossPercent: number; nft?: { packets: number; dropped: number; dropPercent: number | null } }
  > = losses.map((lossPercent) => ({ lossPercent }));
  const report: Record<string, unknown> = {
    tool: "bench/loss.ts",
    date,
    machine,
    code,
    namespace,
    runtimes: Object.fromEntries([
      ...[...rts.values()].map((r) => [r.name, { version: r.version, exe: r.exe }]),
      ...[...rtSkip].map(([n, why]) => [n, { skipped: why }]),
    ]),
    peers: {
      socat: socat ? { exe: socat, version: socatVersion } : { skipped: socatSkip ?? "not requested" },
    },
    config: {
      lossesPercent: losses,
      sizeMiB: config.sizeMiB,
      runs,
      runtimes: config.runtimeNames,
      tools,
      tcpBuffer: config.buffer,
      udpPayload: config.payload,
      timeoutSecs: config.timeoutSecs,
      quick: config.quick,
      goodput:
        "file bytes / wall seconds from client process start until the receiver holds the file, 10^6 bytes/s",
    },
    levels,
    rows,
  };
  let integrityFailures = 0;
  const writeReport = () => {
    for (const row of rows) if (!row.skipped) row.summary = summarizeRuns(row.runs);
    report.medians = Object.fromEntries(labels.map((label) => [
      label,
      Object.fromEntries(
        rows.filter((r) => r.label === label).map((
          r,
        ) => [String(r.lossPercent), r.summary?.medianMBps ?? null]),
      ),
    ]));
    report.integrityFailures = integrityFailures;
    report.totalSeconds = round((performance.now() - began) / 1000, 1);
    fs.mkdirSync(dirname(config.reportPath), { recursive: true });
    fs.writeFileSync(config.reportPath, JSON.stringify(report, null, 2) + "\n");
    fs.writeFileSync(svgPath(config.reportPath), lossBenchSvg(report as Parameters<typeof lossBenchSvg>[0]));
  };

  console.log(`== imgxfer loss benchmark (${runtime.name} ${runtime.version}), ${date} ==`);
  console.log(
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), Linux ${machine.kernel}, load ${machine.loadavgAtStart}, ` +
      `TCP congestion control ${machine.tcpCongestionControl}`,
  );
  console.log(
    `code: ${code.commit}${
      code.uncommitted.length ? ` with uncommitted changes to ${code.uncommitted.join(", ")}` : ""
    }`,
  );
  console.log(
    `runtimes: ${[...rts.values()].map((r) => `${r.name} ${r.version}`).join(", ") || "none"}${
      [...rtSkip].map(([n, why]) => `; ${n} skipped: ${why}`).join("")
    }; socat ${socat ? socatVersion : `skipped: ${socatSkip ?? "not requested"}`}`,
  );
  console.log(
    `network: private namespace (unshare ${nsFlag}), lo MTU 1500, offloads ${offloads}; ` +
      `nftables input-hook drop of TCP and UDP packets (${nftVersion})`,
  );

  // The outer process names the folder (and removes it when the namespace is gone).
  const rx = process.env[RX_ENV] || join(ROOT, "results", "bench", `loss-rx-${process.pid}`);
  fs.mkdirSync(rx, { recursive: true });
  const storage = await mountTmpfs(rx, nsFlag, config.sizeMiB);
  namespace.receiveFolder = `${rx}: ${storage}`;
  console.log(`received files: ${rx}, ${storage}`);
  const onSignal = () => {
    console.error("bench-loss: interrupted; stopping child processes");
    // The tmpfs goes with the namespace; the folder itself, with the outer process.
    void stopAll().then(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const benchDir = join(ROOT, "results", "bench");
    fs.mkdirSync(benchDir, { recursive: true });
    const file = randomTestFile(benchDir, "loss", config.sizeMiB);
    report.file = { path: file.path, bytes: file.bytes, sha256: file.sha256 };
    console.log(
      `file: ${file.path} (${config.sizeMiB} MiB, ${file.reused ? "reused" : "new"}), sha256 ${file.sha256}`,
    );
    console.log(
      `goodput = file size / wall time from the client's start until the receiver holds the file; ` +
        `MB/s = 10^6 bytes/s; ${runs} run(s) per cell, median shown; TCP --buffer ${config.buffer}, ` +
        `UDP payload ${config.payload}\n`,
    );
    const ctx: RunContext = { file, rx, timeoutMs, buffer: config.buffer, payload: config.payload };
    for (const level of levels) {
      const loss = level.lossPercent;
      const failed = await setLoss(nft, loss);
      if (failed) throw new CliError(`cannot set the ${pct(loss)} loss rule: ${failed}`, ExitCode.INTERNAL);
      const these = rows.filter((r) => r.lossPercent === loss && !r.skipped);
      console.log(`--- loss ${pct(loss)} of packets, each direction ---`);
      // Interleave the tools run by run, so drift on a noisy machine hits them alike.
      for (let n = 1; n <= runs; n++) {
        for (const row of these) {
          emptyDir(rx);
          const [before, snmpBefore] = [await nftCounters(nft), await kernelCounters()];
          let record: RunRecord;
          try {
            record = row.tool === "socat"
              ? await socatRun(socat!, ctx, n)
              : await ourRun(rts.get(row.runtime!)!, row.tool, ctx, n);
          } catch (error) {
            // A bench-side failure fails this run, not the sweep.
            record = {
              run: n,
              ok: false,
              seconds: null,
              mbPerS: null,
              exitCode: null,
              error: `benchmark error: ${(error as Error).message ?? error}`,
              details: {},
            };
          }
          const [after, snmpAfter] = [await nftCounters(nft), await kernelCounters()];
          if (before && after) {
            const packets = after.packets - before.packets;
            const dropped = after.dropped - before.dropped;
            record.details.nft = {
              packets,
              dropped,
              dropPercent: packets > 0 ? round((100 * dropped) / packets, 2) : null,
            };
          }
          const delta = (k: string) =>
            Number.isFinite(snmpAfter[k] - snmpBefore[k]) ? snmpAfter[k] - snmpBefore[k] : undefined;
          if (row.tool !== "udp-reliable") {
            record.details.tcpRetransSegs = delta("Tcp.RetransSegs");
            record.details.tcpOutSegs = delta("Tcp.OutSegs");
            // RTO expiries (Linux's minimum RTO is 200 ms) and SYN retransmissions (1 s initial RTO).
            record.details.tcpTimeouts = delta("TcpExt.TCPTimeouts");
            record.details.tcpSynRetrans = delta("TcpExt.TCPSynRetrans");
            record.details.tcpLossProbes = delta("TcpExt.TCPLossProbes");
            // Retransmissions the receiver had already (DSACK): spurious, e.g. after reordering on lo.
            record.details.tcpDsackRecv = delta("TcpExt.TCPDSACKRecv");
          } else {
            record.details.udpRcvbufErrors = delta("Udp.RcvbufErrors");
            record.details.udpInErrors = delta("Udp.InErrors");
          }
          if (record.integrity) integrityFailures++;
          row.runs.push(record);
          progress(`[loss ${pct(loss)}] run ${n}/${runs} ${row.label}: ${describeRun(record)}`);
          writeReport();
          await sleep(200);
        }
      }
      const end = await nftCounters(nft);
      if (end) {
        level.nft = {
          ...end,
          dropPercent: end.packets > 0 ? round((100 * end.dropped) / end.packets, 2) : null,
        };
      }
    }
    writeReport();
    printTables(rows, labels, levels, report);
    writeReport();
  } finally {
    await stopAll();
    emptyDir(rx);
    if (storage.startsWith("a tmpfs")) await exec([which("umount", SBIN) ?? "umount", rx]);
    fs.rmSync(rx, { recursive: true, force: true });
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (integrityFailures > 0) {
    console.log(
      `\n${integrityFailures} of our transfers reported success with a wrong or missing file: see the report.`,
    );
  }
  console.log(
    `\nraw runs and medians: ${config.reportPath}; chart: ${svgPath(config.reportPath)} (${
      ((performance.now() - began) / 1000).toFixed(0)
    } s in all)`,
  );
  return integrityFailures > 0 ? ExitCode.TRANSFER_FAILED : ExitCode.OK;
}

/** The goodput table, the retransmission table and the TCP-vs-UDP lines (also kept in the report). */
function printTables(
  rows: Row[],
  labels: string[],
  levels: Array<{ lossPercent: number; nft?: { dropPercent: number | null } }>,
  report: Record<string, unknown>,
): void {
  const losses = levels.map((l) => l.lossPercent);
  const cell = (label: string, loss: number) => rows.find((r) => r.label === label && r.lossPercent === loss);
  const head = ["tool", ...losses.map(pct), "× own 0%", "widest min–max"];
  const body: string[][] = [];
  for (const label of labels) {
    const mine = rows.filter((r) => r.label === label);
    if (mine.every((r) => r.skipped)) {
      body.push([label, `skipped: ${mine[0].skipped}`]);
      continue;
    }
    const zero = cell(label, 0)?.summary?.medianMBps;
    let worst: { spread: number; loss: number; min: number; max: number } | undefined;
    const ratios: string[] = [];
    const cells = losses.map((loss) => {
      const row = cell(label, loss)!;
      const s = row.summary ?? summarizeRuns(row.runs);
      if (row.lossPercent !== 0) {
        row.ratioToOwnZero = ratio(s.medianMBps, zero);
        ratios.push(`${pct(loss)}: ${fmtRatio(row.ratioToOwnZero)}`);
      }
      if (s.medianMBps && s.minMBps !== null && s.maxMBps !== null && s.ok > 1) {
        const spread = (s.maxMBps - s.minMBps) / s.medianMBps;
        if (!worst || spread > worst.spread) worst = { spread, loss, min: s.minMBps, max: s.maxMBps };
      }
      if (s.ok === 0) return s.runs === 0 ? "-" : `FAILED ${s.runs}/${s.runs}`;
      return `${fmtMB(s.medianMBps)}${s.ok < s.runs ? ` (${s.ok}/${s.runs} ok)` : ""}`;
    });
    body.push([
      label,
      ...cells,
      zero ? ratios.join(" ") : losses.includes(0) ? "no 0% result" : "no 0% level",
      worst ? `${fmtMB(worst.min)}–${fmtMB(worst.max)} at ${pct(worst.loss)}` : "-",
    ]);
  }
  const runsPer = Math.max(0, ...rows.map((r) => r.runs.length));
  console.log(
    `\n=== Goodput (median MB/s) against packet loss each direction, ${runsPer} run(s) per cell ===`,
  );
  console.log(table([head, ...body], new Set(losses.map((_, i) => i + 1))));
  console.log(
    "× own 0%: each level's median / the same tool's median at 0% loss. widest min–max: the range of " +
      "MB/s at the level\nwhere it is widest relative to its median (needs 2 or more successful runs).",
  );

  // Retransmissions: the kernel's for TCP (this namespace's Tcp RetransSegs), the sender's for reliable UDP.
  const retxHead = ["tool", ...losses.map(pct), "counted by"];
  const retxBody = labels.filter((l) => !rows.find((r) => r.label === l)?.skipped).map((label) => {
    const udp = rows.find((r) => r.label === label)?.tool === "udp-reliable";
    return [
      label,
      ...losses.map((loss) => {
        const good = (cell(label, loss)?.runs ?? []).filter((r) => r.ok);
        const med = (key: string) => median(good.map((r) => Number(r.details[key])).filter(Number.isFinite));
        const m = med(udp ? "retransmitted" : "tcpRetransSegs");
        const rto = udp ? null : med("tcpTimeouts");
        return m === null ? "-" : `${Math.round(m)}${rto ? ` (${Math.round(rto)} RTO)` : ""}`;
      }),
      udp ? "our sender's retransmitted datagrams" : "kernel Tcp RetransSegs (RTO: TcpExt TCPTimeouts)",
    ];
  });
  if (retxBody.length) {
    console.log(`\n=== Retransmissions per transfer (median of successful runs) ===`);
    console.log(table([retxHead, ...retxBody], new Set(losses.map((_, i) => i + 1))));
  }
  console.log(
    `packets dropped by the rule (all runs of each level): ${
      levels.map((l) => `${pct(l.lossPercent)} → ${l.nft?.dropPercent?.toFixed(2) ?? "-"}%`).join(", ")
    }`,
  );

  // Best TCP tool against best reliable UDP at each level.
  const best = (loss: number, tcp: boolean) =>
    rows.filter((r) => r.lossPercent === loss && (r.tool === "udp-reliable") !== tcp && r.summary?.medianMBps)
      .sort((a, b) => b.summary!.medianMBps! - a.summary!.medianMBps!)[0];
  const versus = losses.map((loss) => {
    const t = best(loss, true);
    const u = best(loss, false);
    return {
      lossPercent: loss,
      bestTcp: t ? { label: t.label, medianMBps: t.summary!.medianMBps } : null,
      bestUdp: u ? { label: u.label, medianMBps: u.summary!.medianMBps } : null,
      udpOverTcp: ratio(u?.summary?.medianMBps, t?.summary?.medianMBps),
    };
  });
  report.tcpVsUdp = versus;
  console.log(`\n=== Best TCP vs best reliable UDP (median goodput) ===`);
  for (const v of versus) {
    const side = (x: { label: string; medianMBps: number | null } | null, what: string) =>
      x ? `${what} ${x.label} ${fmtMB(x.medianMBps)} MB/s` : `${what}: no successful run`;
    const verdict = v.udpOverTcp === null
      ? ""
      : ` → UDP/TCP ${fmtRatio(v.udpOverTcp)} (${v.udpOverTcp >= 1 ? "UDP" : "TCP"} faster)`;
    console.log(
      `  ${pct(v.lossPercent).padStart(4)}: ${side(v.bestTcp, "TCP")}; ${side(v.bestUdp, "UDP")}${verdict}`,
    );
  }
}

/** The chart beside a report: results/bench-loss.json → results/bench-loss.svg. */
function svgPath(reportPath: string): string {
  return reportPath.replace(/\.json$/, "") + ".svg";
}

/** A report that says why the sweep did not run (bench/all.ts reads it). */
function writeSkipReport(config: Config, reason: string): void {
  fs.mkdirSync(dirname(config.reportPath), { recursive: true });
  fs.writeFileSync(
    config.reportPath,
    JSON.stringify(
      {
        tool: "bench/loss.ts",
        date: new Date().toISOString(),
        skipped: reason,
        runtime: `${runtime.name} ${runtime.version}`,
        config: { ...config, reportPath: undefined },
      },
      null,
      2,
    ) + "\n",
  );
}

/**
 * Runs the loss benchmark with command-line `argv`; resolves to the exit code.
 * Outside a private network namespace it re-runs itself inside one (or says
 * why it cannot and resolves to 0).
 */
export async function main(argv: string[]): Promise<number> {
  const config = parseConfig(argv);
  if (config === "help") return console.log(HELP), 0;
  if (config === "version") return console.log(versionLine("bench-loss", runtime.name, runtime.version)), 0;
  const inside = process.env[NETNS_ENV];
  if (inside) return await sweep(config, inside);
  const ns = await namespaceSupport();
  if (typeof ns === "string") {
    console.log(`loss sweep skipped: ${ns}`);
    writeSkipReport(config, ns);
    return ExitCode.OK;
  }
  // The receive folder: a tmpfs mount point inside the namespace (or files on disk), this run's own.
  const rx = join(ROOT, "results", "bench", `loss-rx-${process.pid}`);
  const onSignal = () => {
    console.error("bench-loss: interrupted; stopping the sweep");
    void stopAll().then(() => {
      fs.rmSync(rx, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await reRunInNamespace(ns, argv, config, rx);
  } finally {
    await stopAll();
    // The namespace (and its tmpfs) is gone; the mount point, or files on disk, may be left.
    fs.rmSync(rx, { recursive: true, force: true });
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

if (import.meta.main) runMain("bench-loss", main);
