/**
 * `bench:tcp`: file-to-file TCP throughput and peak memory on loopback, ours
 * (framed with SHA-256, framed with XXH3-128 and classic, on Deno, on Bun and
 * as compiled binaries) against the peers (socat, nc, the original Python
 * scripts, iperf3 as the ceiling), and the start-to-finish time of sending
 * the 61 KB sample image. A benchmark that prints tables, not a test: it
 * checks every received file's SHA-256, prints the issue's targets and whether
 * this run meets them, and writes every raw run to `results/bench-tcp.json`
 * (chart: `results/bench-tcp.svg`).
 *
 * ```sh
 * deno task bench:tcp                 # 64 MiB and 1 GiB, 3 runs: about 10 minutes on the 2-core VM
 * deno task bench:tcp --quick         # smoke run: 64 MiB, 1 run, image 3 runs
 * bun bench/tcp.ts --runtimes bun --peers socat --sizes 256
 * ```
 *
 * Every child process runs in its own process group under a timeout and is
 * stopped by its PID (the group's id, so a `/usr/bin/time` wrapper and what it
 * runs go together); our Deno children get only the permissions they need.
 *
 * @module
 */

import * as fs from "node:fs";
import { dirname, join, resolve } from "node:path";
import { EXIT_CODES_HELP, parseFlags, runMain, versionLine } from "../shared/cli.ts";
import { ExitCode, usageError } from "../shared/errors.ts";
import { runtime } from "../shared/runtime.ts";
import { tcpBenchSvg } from "./chart.ts";
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
import { type Child, Children, type Ended, exitWithin, findRuntime, sleep, waitUntil } from "./children.ts";
import { entryCommand, freePort, ROOT, sha256 } from "./procs.ts";

/** `--help` text. */
export const HELP = `Usage: bench-tcp [options]

Measures file-to-file TCP transfers on loopback (127.0.0.1 only) and prints
one table per file size, then the small-image table and the targets:

 1. Throughput, for each --sizes file (random bytes): ours in each --modes
    (framed: end-to-end SHA-256, the default; framed-xxh128: framed with the
    client's --digest xxh128; classic: --classic), at each --buffers size
    (server and client both), with server and client on Deno (deno run,
    narrow permissions), on Bun, and as the compiled binaries
    dist/imgxfer-tcp-server and -client; socat -u with its default 8 KiB
    blocks and with -b 131072; nc (OpenBSD: nc -l / nc -N); the original
    Python scripts (tests/peers/tcp_server.py and tcp_client.py,
    --buffer 4096); and iperf3 TCP memory to memory (-t 3) as the ceiling.
 2. Small image: start-to-finish time of sending input.jpeg (61,306 bytes):
    ours (framed, default flags) on Deno, on Bun and compiled; the Python
    client to the Python server; nc; socat.

Time is wall time from the client process's start until the receiver holds
the whole file: the client's exit after the receiver confirmed (ours, Python),
or the receiver's exit (nc, socat). Process start is included; the receiver is
started and listening beforehand. MB/s = 10^6 bytes/s. Each run's received
file is compared by SHA-256 with the source; a failed, mismatched or timed-out
run is left out of the median. Tools run interleaved, run by run. Peak RSS of
the sender and the receiver comes from /usr/bin/time -f %M (else from polling
VmHWM in /proc/PID/status). A missing tool gets a "skipped: <reason>" row.

Options:
  --sizes LIST       file sizes in MiB (default 64,1024; --quick 64)
  --buffers LIST     our --buffer sizes (default 4096,131072)
  --runs N           runs per throughput row (default 3; --quick 1)
  --small-runs N     runs per small-image row (default max(5, --runs); --quick 3)
  --runtimes LIST    deno,bun,compiled (default all three)
  --modes LIST       our throughput modes: classic,framed,framed-xxh128
                     (default all three; the small image is always framed)
  --peers LIST       socat,nc,python,iperf3 (default all; "none")
  --sections LIST    throughput,small (default both)
  --rss MODE         auto (/usr/bin/time, else /proc polling), time, proc, off
                     (default auto)
  --timeout SECS     limit for each client process (default 180; servers get
                     30 s more)
  --report PATH      JSON report (default results/bench-tcp.json; the SVG
                     chart goes beside it)
  --quick            smoke run: --sizes 64 --runs 1 --small-runs 3
  -h, --help         show this help
  -V, --version      show the version

Test files are results/bench/tcp-<MIB>MiB.bin (made once, reused); received
files go to results/bench/tcp-rx/ and are deleted after each run.
Exit code 0 when the benchmark ran, whether or not the targets are met;
1 when one of our own transfers failed (wrong SHA-256, error, hang).

${EXIT_CODES_HELP}`;

// ------------------------------------------------------------ processes ----

const children = new Children();
const startChild = children.start.bind(children);
const stopAll = () => children.stopAll();
const readProc = (path: string) => children.readProc(path);

/** Whether something listens on 127.0.0.1:`port` (TCP), from /proc/net/tcp; undefined if unreadable. */

// ------------------------------------------------------------ peak RSS ----

type RssMode = "time" | "proc" | "off";
const GNU_TIME = "/usr/bin/time";

/** Measures one process's peak RSS: wraps its command in /usr/bin/time, or polls /proc. */
class RssProbe {
  private file?: string;
  private maxKiB: number | null = null;
  private polling = false;
  private poller?: Promise<void>;

  constructor(readonly mode: RssMode, dir: string, name: string) {
    if (mode === "time") {
      this.file = join(dir, `.rss-${name}-${process.pid}.txt`);
      fs.rmSync(this.file, { force: true });
    }
  }

  /** The command to run (wrapped when measuring with /usr/bin/time). */
  wrap(cmd: string[]): string[] {
    return this.file ? [GNU_TIME, "-f", "%M", "-o", this.file, ...cmd] : cmd;
  }

  /** Starts polling VmHWM of `child` (proc mode). */
  watch(child: Child): void {
    if (this.mode !== "proc" || child.pid === undefined) return;
    this.polling = true;
    const pid = child.pid;
    this.poller = (async () => {
      while (this.polling && !child.exited) {
        const kib = Number(/VmHWM:\s*(\d+)/.exec(await readProc(`/proc/${pid}/status`))?.[1]);
        if (Number.isFinite(kib) && kib > 0) this.maxKiB = Math.max(this.maxKiB ?? 0, kib);
        await sleep(children.readsProcDirectly ? 20 : 100);
      }
    })();
  }

  /** Peak RSS in KiB once the process exited (null if unknown). */
  async result(): Promise<number | null> {
    this.polling = false;
    await this.poller;
    if (this.file) {
      try {
        // "Command exited with non-zero status N" may come first; the figure is the last line.
        const lines = fs.readFileSync(this.file, "utf8").trim().split("\n");
        const kib = Number(lines.at(-1));
        this.maxKiB = Number.isFinite(kib) && kib > 0 ? kib : null;
      } catch {
        this.maxKiB = null;
      }
      fs.rmSync(this.file, { force: true });
    }
    return this.maxKiB;
  }
}

// -------------------------------------------------------------- runtimes ----

/** Where our programs run: a runtime (deno/bun) or the compiled binaries. */
interface Ours {
  name: "deno" | "bun" | "compiled";
  /** The runtime executable, or the compiled server binary. */
  exe: string;
  /** The compiled client binary. */
  clientExe?: string;
  version: string;
  /** Compiled binaries older than their sources: why. */
  stale?: string;
}

/** The compiled binaries in dist/, if both are there and run. */
async function findCompiled(): Promise<Ours | string> {
  const server = join(ROOT, "dist", "imgxfer-tcp-server");
  const client = join(ROOT, "dist", "imgxfer-tcp-client");
  const missing = [server, client].filter((p) => !fs.existsSync(p));
  if (missing.length) {
    return `${missing.map((p) => `dist/${p.split("/").at(-1)}`).join(" and ")} not found ` +
      "(build them with deno task compile:bun or deno task compile)";
  }
  const line = await children.versionOf(server, ["--version"]);
  const clientLine = await children.versionOf(client, ["--version"]);
  if (!/^tcp-server /.test(line) || !/^tcp-client /.test(clientLine)) {
    return `dist/imgxfer-tcp-server/-client do not run here: ${tail(line || clientLine, 120)}`;
  }
  // "tcp-server 0.1.0 (bun 1.4.5)": the runtime the binary was built with.
  const built = /\((\w+ [\d.]+)\)/.exec(line)?.[1] ?? line;
  return {
    name: "compiled",
    exe: server,
    clientExe: client,
    version: built,
    stale: staleness([server, client]),
  };
}

/**
 * Whether compiled binaries are older than the sources they are built from
 * (then they measure old code): the newer sources, or undefined when current.
 */
function staleness(binaries: string[]): string | undefined {
  const built = Math.min(...binaries.map((b) => fs.statSync(b).mtimeMs));
  const newer: Array<{ path: string; mtime: number }> = [];
  const visit = (rel: string) => {
    const path = join(ROOT, rel);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(path);
    } catch {
      return;
    }
    if (stat.isDirectory()) {
      for (const name of fs.readdirSync(path)) if (name.endsWith(".ts")) visit(join(rel, name));
    } else if (stat.mtimeMs > built) newer.push({ path: rel, mtime: stat.mtimeMs });
  };
  // What tcp/server.ts and tcp/client.ts import (by modification time: a fresh checkout looks newer).
  for (const rel of ["tcp", "shared"]) visit(rel);
  if (newer.length === 0) return undefined;
  newer.sort((a, b) => b.mtime - a.mtime);
  return `the binaries (built ${new Date(built).toISOString()}) are older than ${
    newer.map((n) => n.path).join(", ")
  }: they run older code; rebuild with deno task compile:bun`;
}

/** The command running our TCP server or client on `ours` (deno run: with `permissions`). */
function ourCommand(ours: Ours, role: "server" | "client", args: string[], permissions: string[]): string[] {
  if (ours.name === "compiled") return [role === "server" ? ours.exe : ours.clientExe!, ...args];
  return entryCommand({ name: ours.name, exe: ours.exe }, `tcp/${role}.ts`, args, permissions);
}

// ------------------------------------------------------------- the data ----

/** One timed transfer. */
export interface RunRecord {
  run: number;
  ok: boolean;
  /** Wall seconds, client start until the receiver holds the file (iperf3: its measured interval). */
  seconds: number | null;
  /** Bytes / seconds / 10^6. */
  mbPerS: number | null;
  error?: string;
  senderExit: number | null;
  receiverExit: number | null;
  /** Peak RSS in KiB. */
  senderRssKiB: number | null;
  receiverRssKiB: number | null;
  sha256?: string;
  /** Tool-specific figures: our client's summary, iperf3's retransmits, … */
  details: Record<string, unknown>;
}

/** Median and spread of a row's successful runs. */
export interface RowSummary extends RunSummary {
  /** Peak RSS medians over successful runs, in MiB. */
  senderRssMiB: number | null;
  receiverRssMiB: number | null;
  /** The highest receiver peak RSS of any run, in MiB. */
  receiverRssMaxMiB: number | null;
}

type Tool = "ours" | "socat" | "socat-b" | "nc" | "python" | "iperf3";

/** One table row: a tool and configuration at one file size. */
export interface Row {
  section: "throughput" | "small";
  /** File size in MiB (throughput), or 0 for the image. */
  sizeMiB: number;
  bytes: number;
  tool: Tool;
  runtime?: "deno" | "bun" | "compiled";
  mode?: OurMode;
  buffer?: number;
  label: string;
  command?: string;
  skipped?: string;
  runs: RunRecord[];
  summary?: RowSummary;
  /** Median MB/s ÷ the best peer's (throughput); median time ÷ the Python client's (small). */
  ratioToBestPeer?: number | null;
  ratioToSocatB?: number | null;
  ratioToCeiling?: number | null;
  ratioToPython?: number | null;
}

const mib = (kib: number | null) => (kib === null ? null : round(kib / 1024, 1));

function summarize(row: Row): RowSummary {
  const good = row.runs.filter((r) => r.ok && r.mbPerS !== null && r.seconds !== null);
  const tx = good.map((r) => r.senderRssKiB).filter((x): x is number => x !== null);
  const rx = good.map((r) => r.receiverRssKiB).filter((x): x is number => x !== null);
  return {
    ...summarizeRuns(row.runs),
    senderRssMiB: mib(median(tx)),
    receiverRssMiB: mib(median(rx)),
    receiverRssMaxMiB: mib(rx.length ? Math.max(...rx) : null),
  };
}

function fmtMiB(x: number | null | undefined): string {
  return x === null || x === undefined ? "-" : x.toFixed(1);
}

function fmtMs(seconds: number | null | undefined): string {
  return seconds === null || seconds === undefined ? "-" : (seconds * 1000).toFixed(1);
}

// ---------------------------------------------------------- the files ----

interface TestFile {
  path: string;
  bytes: number;
  sha256: string;
  reused?: boolean;
}

/** Removes everything in `dir` (received files, leftovers of a failed run). */

// ------------------------------------------------------------ transfers ----

/** The tools found on this machine. */
interface Peers {
  socat?: string;
  nc?: string;
  python?: string;
  iperf3?: string;
  skip: Partial<Record<"socat" | "nc" | "python" | "iperf3", string>>;
  versions: Record<string, string>;
}

/** What one run starts: a receiver, then (once it listens) a timed sender. */
interface Job {
  receiver: { cmd: string[]; stdoutFile?: string };
  /** How to tell the receiver listens: our JSON event, a line it prints, or /proc/net/tcp. */
  ready: { kind: "ours" } | { kind: "text"; text: RegExp; port: number } | { kind: "port"; port: number };
  sender: (port: number) => { cmd: string[]; stdinFile?: string };
  /** The receiver holds the file when the sender exits (it confirmed) or when the receiver exits. */
  timing: "sender" | "receiver";
  /** Checks the sender's and receiver's output; returns the received file's path, or throws a reason. */
  check(sender: Child, receiver: Child, senderEnded: Ended, receiverEnded: Ended | undefined): string;
  /** Copies tool-specific figures from the sender's output into the record. */
  details?(sender: Child, record: RunRecord): void;
}

interface RunContext {
  rx: string;
  rssMode: RssMode;
  timeoutMs: number;
}

/** Runs one job: receiver, readiness, timed sender, exits, SHA-256, peak RSS. */
async function runJob(
  job: Job,
  file: TestFile,
  run: number,
  ctx: RunContext,
  measureRss: boolean,
): Promise<RunRecord> {
  emptyDir(ctx.rx);
  const record: RunRecord = {
    run,
    ok: false,
    seconds: null,
    mbPerS: null,
    senderExit: null,
    receiverExit: null,
    senderRssKiB: null,
    receiverRssKiB: null,
    details: {},
  };
  const mode: RssMode = measureRss ? ctx.rssMode : "off";
  const rxProbe = new RssProbe(mode, dirname(ctx.rx), "rx");
  const txProbe = new RssProbe(mode, dirname(ctx.rx), "tx");
  let outFd: number | undefined;
  let inFd: number | undefined;
  let receiver: Child | undefined;
  let sender: Child | undefined;
  try {
    if (job.receiver.stdoutFile) outFd = fs.openSync(job.receiver.stdoutFile, "w", 0o644);
    receiver = startChild("receiver", rxProbe.wrap(job.receiver.cmd), ctx.timeoutMs + 30000, {
      stdout: outFd,
    });
    rxProbe.watch(receiver);
    const rcv = receiver;
    // Which port it listens on, once it does.
    let port: number | undefined;
    const ready = job.ready;
    if (ready.kind === "ours") {
      const listening = () => jsonLines(rcv.out.stdout).find((e) => e.event === "listening");
      if (await waitUntil(rcv, () => listening() !== undefined, 30000)) port = Number(listening()!.port);
    } else if (ready.kind === "text") {
      if (await waitUntil(rcv, () => ready.text.test(rcv.out.stdout + rcv.out.stderr), 30000)) {
        port = ready.port;
      }
    } else {
      const probe = await children.listeningOn(ready.port);
      if (probe === undefined) {
        await sleep(300); // no /proc/net/tcp: give it time
        if (!rcv.exited) port = ready.port;
      } else if (await waitUntil(rcv, async () => await children.listeningOn(ready.port) === true, 30000)) {
        port = ready.port;
      }
    }
    if (port === undefined) {
      const ended = await exitWithin(rcv, 100);
      record.error = `the receiver did not start listening${
        ended ? ` (exit ${ended.code ?? ended.signal})` : " within 30 s"
      }: ${tail(rcv.out.stderr || rcv.out.stdout) || "no output"}`;
      return record;
    }
    const s = job.sender(port);
    if (s.stdinFile) inFd = fs.openSync(s.stdinFile, "r");
    sender = startChild("sender", txProbe.wrap(s.cmd), ctx.timeoutMs, { stdin: inFd });
    txProbe.watch(sender);
    const t0 = sender.startedAt;
    let senderEnded: Ended;
    let receiverEnded: Ended | undefined;
    if (job.timing === "receiver") {
      // The receiver's exit ends the transfer; a sender that failed first gets it 2 s more.
      const snd = sender;
      await Promise.race([rcv.ended, snd.ended.then((e) => e.code === 0 ? rcv.ended : undefined)]);
      receiverEnded = await exitWithin(rcv, rcv.exited ? 0 : snd.exited ? 2000 : ctx.timeoutMs);
      senderEnded = await exitWithin(snd, 10000) ?? await snd.stop();
      if (!receiverEnded) receiverEnded = await rcv.stop();
    } else {
      senderEnded = await sender.ended;
      // Ours exits after one transfer (--once), the Python server after its one connection.
      receiverEnded = await exitWithin(rcv, senderEnded.code === 0 ? 15000 : 2000);
    }
    record.senderExit = senderEnded.code;
    record.receiverExit = receiverEnded?.code ?? null;
    const end = job.timing === "receiver" ? receiverEnded!.exitAt : senderEnded.exitAt;
    record.seconds = round((end - t0) / 1000, 5);
    if (senderEnded.timedOut) record.error = `the sender timed out after ${ctx.timeoutMs / 1000} s (killed)`;
    else if (receiverEnded?.timedOut) record.error = "the receiver timed out (killed)";
    else if (senderEnded.error) record.error = `the sender did not start: ${senderEnded.error}`;
    else if (receiverEnded?.error) record.error = `the receiver did not start: ${receiverEnded.error}`;
    else {
      try {
        const path = job.check(sender, rcv, senderEnded, receiverEnded);
        if (file.bytes > 0 && path !== "") {
          const size = fs.statSync(path).size;
          record.sha256 = sha256(path);
          if (size !== file.bytes) record.error = `size mismatch: ${size} of ${file.bytes} bytes in ${path}`;
          else if (record.sha256 !== file.sha256) record.error = `SHA-256 mismatch in ${path}`;
        }
        if (path === "") record.details.memoryToMemory = true;
        job.details?.(sender, record);
      } catch (error) {
        record.error = (error as Error).message;
      }
    }
    if (!receiverEnded) {
      receiverEnded = await rcv.stop();
      if (!record.error) record.details.note = "the receiver did not exit by itself (stopped)";
    }
    record.receiverExit = receiverEnded.code;
    if (record.error) {
      record.details.senderStderr = tail(sender.out.stderr, 800);
      record.details.receiverStderr = tail(rcv.out.stderr, 800);
    }
    if (!record.error && record.seconds !== null && record.seconds > 0) {
      record.ok = true;
      const bytes = Number(record.details.bytes ?? file.bytes);
      const seconds = Number(record.details.seconds ?? record.seconds);
      record.mbPerS = round(bytes / seconds / 1e6, 3);
    }
    return record;
  } catch (error) {
    // A bench-side failure (a file that cannot be opened, …) fails this run, not the benchmark.
    record.ok = false;
    record.error = `benchmark error: ${(error as Error).message ?? error}`;
    return record;
  } finally {
    await sender?.stop();
    await receiver?.stop();
    record.senderRssKiB = await txProbe.result();
    record.receiverRssKiB = await rxProbe.result();
    if (outFd !== undefined) fs.closeSync(outFd);
    if (inFd !== undefined) fs.closeSync(inFd);
    emptyDir(ctx.rx);
  }
}

/**
 * Our transfer modes, in table order: the row label, the client flags (the
 * server needs none), and the issue's throughput target, a multiple of socat
 * -b's MB/s (framed: "with its end-to-end digest ≥ 0.8×", either digest).
 */
const OUR_MODES = {
  framed: { label: "framed (SHA-256)", clientArgs: [], target: 0.8 },
  "framed-xxh128": { label: "framed (XXH3-128)", clientArgs: ["--digest", "xxh128"], target: 0.8 },
  classic: { label: "classic", clientArgs: ["--classic"], target: 1.0 },
} as const satisfies Record<string, { label: string; clientArgs: readonly string[]; target: number }>;
type OurMode = keyof typeof OUR_MODES;
const OUR_MODE_NAMES = Object.keys(OUR_MODES) as OurMode[];

/** Our server and client in `mode` at `buffer` (both ends). */
function ourJob(ours: Ours, file: TestFile, rx: string, mode: OurMode, buffer?: number): Job {
  const bufferArgs = buffer === undefined ? [] : ["--buffer", String(buffer)];
  return {
    receiver: {
      cmd: ourCommand(
        ours,
        "server",
        ["--host", "127.0.0.1", "--port", "0", "--once", "--json", "--out", rx, ...bufferArgs],
        ["--allow-net=127.0.0.1", `--allow-read=${rx}`, `--allow-write=${rx}`],
      ),
    },
    ready: { kind: "ours" },
    sender: (port) => ({
      cmd: ourCommand(
        ours,
        "client",
        [
          ...["--host", "127.0.0.1", "--port", String(port), "--file", file.path, "--json"],
          ...bufferArgs,
          ...OUR_MODES[mode].clientArgs,
        ],
        [`--allow-net=127.0.0.1:${port}`, `--allow-read=${file.path}`],
      ),
    }),
    timing: "sender",
    check(sender, receiver, senderEnded) {
      const summary = jsonLines(sender.out.stdout).at(-1) ?? {};
      const received = jsonLines(receiver.out.stdout).find((e) => e.event === "received");
      if (senderEnded.code !== 0 || summary.status !== "success") {
        throw new Error(
          `client exit ${senderEnded.code ?? senderEnded.signal}, status ${summary.status ?? "?"}: ${
            tail(sender.out.stderr || String(summary.response ?? ""))
          }`,
        );
      }
      if (!received || received.complete !== true) throw new Error("the server reported no complete file");
      return String(received.path);
    },
  };
}

function socatJob(tool: string, file: TestFile, rx: string, port: number, block?: number): Job {
  const b = block === undefined ? [] : ["-b", String(block)];
  const out = join(rx, "tcp_rx.bin");
  return {
    receiver: {
      cmd: [tool, "-u", ...b, `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`, `OPEN:${out},creat,trunc`],
    },
    ready: { kind: "port", port },
    sender: () => ({ cmd: [tool, "-u", ...b, `OPEN:${file.path}`, `TCP:127.0.0.1:${port}`] }),
    timing: "receiver",
    check(sender, receiver, senderEnded, receiverEnded) {
      if (receiverEnded?.code !== 0) {
        throw new Error(`socat receiver exit ${receiverEnded?.code}: ${tail(receiver.out.stderr)}`);
      }
      if (senderEnded.code !== 0) {
        throw new Error(`socat sender exit ${senderEnded.code}: ${tail(sender.out.stderr)}`);
      }
      return out;
    },
  };
}

function ncJob(tool: string, file: TestFile, rx: string, port: number): Job {
  const out = join(rx, "tcp_rx.bin");
  return {
    receiver: { cmd: [tool, "-l", "127.0.0.1", String(port)], stdoutFile: out },
    ready: { kind: "port", port },
    sender: () => ({ cmd: [tool, "-N", "127.0.0.1", String(port)], stdinFile: file.path }),
    timing: "receiver",
    check(sender, receiver, senderEnded, receiverEnded) {
      if (receiverEnded?.code !== 0) {
        throw new Error(`nc -l exit ${receiverEnded?.code}: ${tail(receiver.out.stderr)}`);
      }
      if (senderEnded.code !== 0) {
        throw new Error(`nc -N exit ${senderEnded.code}: ${tail(sender.out.stderr)}`);
      }
      return out;
    },
  };
}

function pythonJob(python: string, file: TestFile, rx: string, port: number, buffer: number): Job {
  const peers = join(ROOT, "tests", "peers");
  return {
    receiver: {
      cmd: [
        python,
        join(peers, "tcp_server.py"),
        ...["--host", "127.0.0.1", "--port", String(port), "--buffer", String(buffer), "--out", rx],
      ],
    },
    ready: { kind: "text", text: /Listening on/, port },
    sender: () => ({
      cmd: [
        python,
        join(peers, "tcp_client.py"),
        ...["--host", "127.0.0.1", "--port", String(port), "--file", file.path, "--buffer", String(buffer)],
      ],
    }),
    timing: "sender",
    check(sender, receiver, senderEnded) {
      if (senderEnded.code !== 0) {
        throw new Error(
          `Python client exit ${senderEnded.code}: ${tail(sender.out.stderr || sender.out.stdout)}`,
        );
      }
      if (!/Server response: SUCCESS/.test(sender.out.stdout)) {
        throw new Error(
          `Python client got no SUCCESS: ${tail(sender.out.stdout)}; ${tail(receiver.out.stderr)}`,
        );
      }
      return join(rx, "received_input.jpeg");
    },
  };
}

function iperfJob(tool: string, port: number, seconds: number): Job {
  return {
    receiver: { cmd: [tool, "-s", "-1", "-B", "127.0.0.1", "-p", String(port)] },
    ready: { kind: "port", port },
    sender: () => ({ cmd: [tool, "-c", "127.0.0.1", "-p", String(port), "-t", String(seconds), "-J"] }),
    timing: "sender",
    check(sender, _receiver, senderEnded) {
      let report: {
        error?: string;
        end?: { sum_received?: { bytes?: number; seconds?: number }; sum_sent?: { retransmits?: number } };
      };
      try {
        report = JSON.parse(sender.out.stdout);
      } catch {
        throw new Error(`iperf3 printed no JSON (exit ${senderEnded.code}): ${tail(sender.out.stderr)}`);
      }
      if (report.error) throw new Error(`iperf3: ${report.error}`);
      const got = report.end?.sum_received;
      if (senderEnded.code !== 0 || !got?.bytes || !got.seconds) {
        throw new Error(`iperf3 exit ${senderEnded.code}, no end.sum_received`);
      }
      return "";
    },
    details(sender, record) {
      // iperf3's rate is from its own interval (end.sum_received), not the process's wall time.
      const end = JSON.parse(sender.out.stdout).end;
      record.details.bytes = end.sum_received.bytes;
      record.details.seconds = end.sum_received.seconds;
      record.details.retransmits = end.sum_sent?.retransmits;
    },
  };
}

async function findPeers(wanted: Set<string>): Promise<Peers> {
  const peers: Peers = { skip: {}, versions: {} };
  const find = async (
    key: "socat" | "nc" | "python" | "iperf3",
    names: string[],
    versionArgs: string[],
    pick: (text: string) => string,
  ) => {
    if (!wanted.has(key)) return peers.skip[key] = "not requested (--peers)";
    const exe = names.map((n) => which(n, ["/usr/bin", "/bin"])).find((p) => p !== undefined);
    if (!exe) return peers.skip[key] = `${names.join(" or ")} not found on PATH`;
    const child = startChild(`${key} version`, [exe, ...versionArgs], 10000);
    await child.ended;
    peers[key] = exe;
    peers.versions[key] = pick(child.out.stdout + child.out.stderr);
  };
  await find("socat", ["socat"], ["-V"], (t) => /socat version (\S+)/.exec(t)?.[1] ?? "unknown");
  await find("nc", ["nc"], ["-h"], (t) => t.split("\n")[0].trim());
  if (peers.nc && !/OpenBSD/i.test(peers.versions.nc)) {
    peers.skip.nc = `${peers.nc} is not OpenBSD netcat (${peers.versions.nc}): -N and "-l host port" differ`;
    delete peers.nc;
  }
  await find("python", ["python3", "python"], ["--version"], (t) => t.trim().split("\n")[0]);
  if (peers.python && !fs.existsSync(join(ROOT, "tests", "peers", "tcp_client.py"))) {
    peers.skip.python = "tests/peers/tcp_client.py not found";
    delete peers.python;
  }
  await find("iperf3", ["iperf3"], ["--version"], (t) => /iperf (\S+)/.exec(t)?.[1] ?? "unknown");
  return peers;
}

// ------------------------------------------------------------------ main ----

function oneOf<T extends string>(value: string, flag: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw usageError(`--${flag} takes ${allowed.join(", ")}; got '${value}'`);
  }
  return value as T;
}

function describeRun(r: RunRecord): string {
  if (!r.ok) return `FAILED: ${r.error}`;
  const rss = r.senderRssKiB !== null || r.receiverRssKiB !== null
    ? `, peak RSS tx ${fmtMiB(mib(r.senderRssKiB))} / rx ${fmtMiB(mib(r.receiverRssKiB))} MiB`
    : "";
  const what = r.details.memoryToMemory ? "memory to memory" : "sha256 ok";
  return `${r.seconds?.toFixed(4)} s, ${fmtMB(r.mbPerS)} MB/s, ${what}${rss}`;
}

/** A target's outcome. */
export interface Target {
  target: string;
  result: "PASS" | "NOT MET" | "not measured" | "cannot judge";
  met: boolean | null;
  detail: string;
}

const OUR_NAMES = ["deno", "bun", "compiled"] as const;
const PEER_NAMES = ["socat", "nc", "python", "iperf3"] as const;
/** The figures the targets name. */
const TARGET_MIB = 1024;
const TARGET_BUFFER = 131072;
const SOCAT_BIG_BLOCK = 131072;
const PYTHON_BUFFER = 4096;
const IPERF_SECONDS = 3;

/** Runs the benchmark with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    sizes: { type: "string" },
    buffers: { type: "string", default: "4096,131072" },
    runs: { type: "string" },
    "small-runs": { type: "string" },
    runtimes: { type: "string", default: OUR_NAMES.join(",") },
    modes: { type: "string", default: OUR_MODE_NAMES.join(",") },
    peers: { type: "string", default: PEER_NAMES.join(",") },
    sections: { type: "string", default: "throughput,small" },
    rss: { type: "string", default: "auto" },
    timeout: { type: "string", default: "180" },
    report: { type: "string", default: join(ROOT, "results", "bench-tcp.json") },
    quick: { type: "boolean", default: false },
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("bench-tcp", runtime.name, runtime.version)), 0;
  const quick = flags.quick === true;
  const sizes = list(String(flags.sizes ?? (quick ? "64" : "64,1024")), "sizes").map((s) =>
    whole(s, "sizes", 1, 16384)
  );
  const buffers = list(String(flags.buffers), "buffers").map((b) => whole(b, "buffers", 1, 64 << 20));
  const runs = whole(String(flags.runs ?? (quick ? 1 : 3)), "runs", 1, 50);
  const smallRuns = whole(
    String(flags["small-runs"] ?? (quick ? 3 : Math.max(5, runs))),
    "small-runs",
    1,
    100,
  );
  const ourNames = list(String(flags.runtimes), "runtimes").map((r) => oneOf(r, "runtimes", OUR_NAMES));
  const modeSet = new Set(list(String(flags.modes), "modes").map((m) => oneOf(m, "modes", OUR_MODE_NAMES)));
  const modes = OUR_MODE_NAMES.filter((m) => modeSet.has(m));
  const peerNames = new Set(list(String(flags.peers), "peers").map((p) => oneOf(p, "peers", PEER_NAMES)));
  const sections = new Set(
    list(String(flags.sections), "sections").map((s) =>
      oneOf(s, "sections", ["throughput", "small"] as const)
    ),
  );
  const rssChoice = oneOf(String(flags.rss), "rss", ["auto", "time", "proc", "off"] as const);
  const timeoutSecs = Number(flags.timeout);
  if (!(timeoutSecs > 0)) {
    throw usageError(`--timeout must be a positive number of seconds, got '${flags.timeout}'`);
  }
  const timeoutMs = timeoutSecs * 1000;
  const reportPath = resolve(String(flags.report));

  const began = performance.now();
  const date = new Date().toISOString();
  const benchDir = join(ROOT, "results", "bench");
  const rx = join(benchDir, "tcp-rx");
  const onSignal = () => {
    console.error("bench-tcp: interrupted; stopping child processes");
    void stopAll().then(() => {
      fs.rmSync(rx, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  fs.mkdirSync(benchDir, { recursive: true });
  emptyDir(rx);

  let rssMode: RssMode;
  let rssHow: string;
  const hasTime = fs.existsSync(GNU_TIME);
  if (rssChoice === "time" && !hasTime) throw usageError(`--rss time: ${GNU_TIME} not found`);
  if (rssChoice === "off") [rssMode, rssHow] = ["off", "not measured (--rss off)"];
  else if (rssChoice === "time" || (rssChoice === "auto" && hasTime)) {
    [rssMode, rssHow] = ["time", `${GNU_TIME} -f %M (ru_maxrss of each process)`];
  } else {
    [rssMode, rssHow] = [
      "proc",
      `VmHWM from /proc/PID/status, polled (may miss the peak of a process that lives under 0.1 s)${
        hasTime ? "" : `; ${GNU_TIME} not found`
      }`,
    ];
  }

  const machine = {
    ...await children.machine(),
    tcpRmem: (await readProc("/proc/sys/net/ipv4/tcp_rmem")).trim().replace(/\s+/g, " ") || null,
    tcpWmem: (await readProc("/proc/sys/net/ipv4/tcp_wmem")).trim().replace(/\s+/g, " ") || null,
  };
  const { cpuModel } = machine;
  const code = await children.measuredCode();

  const ours = new Map<string, Ours>();
  const oursSkip = new Map<string, string>();
  for (const name of ourNames) {
    const found = name === "compiled" ? await findCompiled() : await findRuntime(children, name);
    if (typeof found === "string") oursSkip.set(name, found);
    else ours.set(name, found);
  }
  const peers = await findPeers(peerNames);
  const peerInfo = (p: typeof PEER_NAMES[number]) =>
    peers[p] ? { exe: peers[p], version: peers.versions[p] } : { skipped: peers.skip[p] };

  const rows: Row[] = [];
  const files: Record<string, unknown>[] = [];
  const targets: Target[] = [];
  const report: Record<string, unknown> = {
    tool: "bench/tcp.ts",
    date,
    machine,
    code,
    ours: Object.fromEntries([
      ...[...ours.values()].map((o) => [o.name, { ...o, name: undefined }]),
      ...[...oursSkip].map(([n, why]) => [n, { skipped: why }]),
    ]),
    peers: Object.fromEntries(PEER_NAMES.map((p) => [p, peerInfo(p)])),
    config: {
      sizesMiB: sizes,
      buffers,
      runs,
      smallRuns,
      modes,
      sections: [...sections],
      timeoutSecs,
      quick,
      rss: rssHow,
      time: "wall seconds from the client process's start until the receiver holds the whole file: " +
        "the client's exit after the receiver confirmed (ours, Python), the receiver's exit (nc, socat)",
      mbPerS: "file bytes / time / 10^6 (iperf3: end.sum_received bytes / seconds / 10^6)",
    },
    files,
    rows,
    targets,
  };
  const writeReport = () => {
    for (const row of rows) if (!row.skipped) row.summary = summarize(row);
    report.totalSeconds = round((performance.now() - began) / 1000, 1);
    fs.mkdirSync(dirname(reportPath), { recursive: true });
    fs.writeFileSync(reportPath, JSON.stringify(report, null, 2) + "\n");
    // The chart beside the report: results/bench-tcp.json → results/bench-tcp.svg.
    fs.writeFileSync(
      reportPath.replace(/\.json$/, "") + ".svg",
      tcpBenchSvg(report as unknown as Parameters<typeof tcpBenchSvg>[0]),
    );
  };

  console.log(`== imgxfer TCP benchmark (${runtime.name} ${runtime.version}), ${date} ==`);
  console.log(
    `machine: ${machine.cpus} CPUs (${cpuModel}), Linux ${machine.kernel}, load ${machine.loadavgAtStart}`,
  );
  console.log(
    `code: ${code.commit}${
      code.uncommitted.length ? ` with uncommitted changes to ${code.uncommitted.join(", ")}` : ""
    }`,
  );
  const ourList = [...ours.values()].map((
    o,
  ) => (o.name === "compiled" ? `compiled (${o.version})` : `${o.name} ${o.version}`));
  const ourSkips = [...oursSkip].map(([n, why]) => `; ${n} skipped: ${why}`).join("");
  console.log(`ours: ${ourList.join(", ") || "none"}${ourSkips}`);
  const peerList = PEER_NAMES.map((
    p,
  ) => (peers[p] ? `${p} ${peers.versions[p]}` : `${p} skipped: ${peers.skip[p]}`));
  console.log(`peers: ${peerList.join("; ")}`);
  const stale = ours.get("compiled")?.stale;
  if (stale) console.log(`WARNING: compiled: ${stale}`);
  console.log(`peak RSS: ${rssHow}`);
  console.log(
    `time = client start until the receiver holds the file (ours/Python: client exit after the receiver ` +
      `confirmed; nc/socat: receiver exit);\nMB/s = 10^6 bytes/s; medians over successful runs; every ` +
      `received file SHA-256 checked.\n`,
  );

  const ctx: RunContext = { rx, rssMode, timeoutMs };
  let oursFailed = 0;
  const image: TestFile = { path: join(ROOT, "input.jpeg"), bytes: 0, sha256: "" };
  image.bytes = fs.statSync(image.path).size;
  image.sha256 = sha256(image.path);

  const ourLabel = (o: string) => o === "compiled" ? "compiled" : `${o} run`;
  const oursRow = (
    section: Row["section"],
    name: "deno" | "bun" | "compiled",
    file: TestFile,
    sizeMiB: number,
    mode: OurMode,
    buffer: number | undefined,
  ): Row => ({
    section,
    sizeMiB,
    bytes: file.bytes,
    tool: "ours",
    runtime: name,
    mode,
    buffer,
    label: `ours ${OUR_MODES[mode].label}, ${
      name === "compiled" ? `compiled${ours.get(name)?.stale ? " (stale)" : ""}` : name
    }${buffer === undefined ? "" : ` --buffer ${buffer}`}`,
    command: `tcp/server.ts --once --json --out RX${buffer === undefined ? "" : ` --buffer ${buffer}`}; ` +
      `tcp/client.ts --file FILE --json${buffer === undefined ? "" : ` --buffer ${buffer}`}${
        OUR_MODES[mode].clientArgs.map((a) => ` ${a}`).join("")
      } (${ourLabel(name)})`,
    skipped: ours.has(name) ? undefined : oursSkip.get(name) ?? "not available",
    runs: [],
  });
  const peerRow = (
    section: Row["section"],
    tool: Exclude<Tool, "ours">,
    file: TestFile,
    sizeMiB: number,
  ): Row => {
    const key = tool === "socat-b" ? "socat" : tool;
    const label = {
      socat: "socat -u (8 KiB blocks)",
      "socat-b": `socat -u -b ${SOCAT_BIG_BLOCK}`,
      nc: "nc -l / nc -N (OpenBSD)",
      python: `original Python scripts (--buffer ${PYTHON_BUFFER})`,
      iperf3: `iperf3 TCP, memory to memory (-t ${IPERF_SECONDS}, ceiling)`,
    }[tool];
    const command = {
      socat:
        "socat -u TCP-LISTEN:P,bind=127.0.0.1,reuseaddr OPEN:RX/tcp_rx.bin,creat,trunc; socat -u OPEN:FILE TCP:127.0.0.1:P",
      "socat-b":
        `socat -u -b ${SOCAT_BIG_BLOCK} TCP-LISTEN:P,… ; socat -u -b ${SOCAT_BIG_BLOCK} OPEN:FILE TCP:127.0.0.1:P`,
      nc: "nc -l 127.0.0.1 P > RX/tcp_rx.bin < /dev/null; nc -N 127.0.0.1 P < FILE",
      python: `tests/peers/tcp_server.py --host 127.0.0.1 --port P --buffer ${PYTHON_BUFFER} --out RX; ` +
        `tests/peers/tcp_client.py --host 127.0.0.1 --port P --file FILE --buffer ${PYTHON_BUFFER}`,
      iperf3: `iperf3 -s -1 -B 127.0.0.1 -p P; iperf3 -c 127.0.0.1 -p P -t ${IPERF_SECONDS} -J`,
    }[tool];
    return {
      section,
      sizeMiB,
      bytes: file.bytes,
      tool,
      buffer: tool === "socat-b" ? SOCAT_BIG_BLOCK : tool === "python" ? PYTHON_BUFFER : undefined,
      label,
      command,
      skipped: peers[key] ? undefined : peers.skip[key],
      runs: [],
    };
  };
  const jobFor = async (row: Row, file: TestFile): Promise<Job> => {
    if (row.tool === "ours") return ourJob(ours.get(row.runtime!)!, file, rx, row.mode!, row.buffer);
    const port = await freePort();
    switch (row.tool) {
      case "socat":
        return socatJob(peers.socat!, file, rx, port);
      case "socat-b":
        return socatJob(peers.socat!, file, rx, port, SOCAT_BIG_BLOCK);
      case "nc":
        return ncJob(peers.nc!, file, rx, port);
      case "python":
        return pythonJob(peers.python!, file, rx, port, PYTHON_BUFFER);
      case "iperf3":
        return iperfJob(peers.iperf3!, port, IPERF_SECONDS);
    }
  };
  const runRow = async (row: Row, file: TestFile, run: number, measureRss: boolean): Promise<RunRecord> => {
    const record = await runJob(await jobFor(row, file), file, run, ctx, measureRss);
    if (row.tool === "iperf3" && record.ok) {
      record.details.wallSeconds = record.seconds;
      record.seconds = round(Number(record.details.seconds), 4);
    }
    if (row.tool === "ours" && !record.ok) oursFailed++;
    return record;
  };

  try {
    // Warm-up: one untimed transfer of the image per runtime, so no timed run pays for a cold
    // module cache (Deno's transpile cache, Bun's, Python's .pyc).
    const warm: Row[] = [
      ...[...ours.keys()].map((n) => oursRow("small", n as Ours["name"], image, 0, "framed", undefined)),
      ...(peers.python ? [peerRow("small", "python", image, 0)] : []),
    ];
    if (warm.length) {
      const outcomes: string[] = [];
      for (const row of warm) {
        const r = await runRow(row, image, 0, false);
        if (row.tool === "ours" && !r.ok) oursFailed--; // not counted: the timed runs will tell
        outcomes.push(
          `${row.tool === "ours" ? row.runtime : "python"} ${r.ok ? "ok" : `FAILED (${r.error})`}`,
        );
      }
      console.log(`warm-up (input.jpeg once each, not timed): ${outcomes.join(", ")}\n`);
    }

    // ---------------------------------------------- 1. throughput ----
    const bySize = new Map<number, Row[]>();
    if (sections.has("throughput")) {
      for (const sizeMiB of sizes) {
        const file = randomTestFile(benchDir, "tcp", sizeMiB);
        files.push({ path: file.path, sizeMiB, bytes: file.bytes, sha256: file.sha256, reused: file.reused });
        console.log(`--- 1. TCP file to file, ${sizeMiB} MiB ---`);
        console.log(`file: ${file.path} (${file.reused ? "reused" : "new"}), sha256 ${file.sha256}`);
        const these: Row[] = [];
        for (const name of ourNames) {
          for (const mode of modes) {
            for (const buffer of buffers) {
              these.push(oursRow("throughput", name, file, sizeMiB, mode, buffer));
            }
          }
        }
        for (const tool of ["socat", "socat-b", "nc", "python", "iperf3"] as const) {
          if (peerNames.has(tool === "socat-b" ? "socat" : tool)) {
            these.push(peerRow("throughput", tool, file, sizeMiB));
          } else {
            these.push({ ...peerRow("throughput", tool, file, sizeMiB), skipped: "not requested (--peers)" });
          }
        }
        rows.push(...these);
        bySize.set(sizeMiB, these);
        // Interleave the tools run by run, so drift on this noisy machine hits them alike.
        for (let run = 1; run <= runs; run++) {
          for (const row of these) {
            if (row.skipped) continue;
            const record = await runRow(row, file, run, true);
            row.runs.push(record);
            progress(`[${sizeMiB} MiB] run ${run}/${runs} ${row.label}: ${describeRun(record)}`);
            writeReport();
            await sleep(200);
          }
        }
        printThroughput(sizeMiB, these, runs);
      }
    }

    // ---------------------------------------------- 2. small image ----
    const small: Row[] = [];
    if (sections.has("small")) {
      console.log(`--- 2. small image: ${image.path} (${image.bytes} bytes), start to finish ---`);
      for (const name of ourNames) small.push(oursRow("small", name, image, 0, "framed", undefined));
      for (const tool of ["python", "nc", "socat"] as const) {
        small.push(
          peerNames.has(tool)
            ? peerRow("small", tool, image, 0)
            : { ...peerRow("small", tool, image, 0), skipped: "not requested (--peers)" },
        );
      }
      rows.push(...small);
      for (let run = 1; run <= smallRuns; run++) {
        for (const row of small) {
          if (row.skipped) continue;
          const record = await runRow(row, image, run, false);
          row.runs.push(record);
          progress(`[image] run ${run}/${smallRuns} ${row.label}: ${describeRun(record)}`);
          writeReport();
          await sleep(100);
        }
      }
      printSmall(small, smallRuns);
    }

    // ------------------------------------------------- targets ----
    targets.push(...judgeTargets(sections, sizes, buffers, modes, bySize, small, ourNames));
    if (stale) {
      for (const t of targets) {
        if (/ compiled\b/.test(t.target) && t.met !== null) {
          t.detail += " (stale binaries: older than the sources, see the warning above)";
        }
      }
    }
    console.log("=== Targets (from the issue), this run ===");
    for (const t of targets) {
      console.log(`  ${t.result.padEnd(12)} ${t.target}${t.detail ? `: ${t.detail}` : ""}`);
    }
    if (oursFailed > 0) {
      console.log(`\n${oursFailed} of our transfers FAILED; see the run lines above and the report.`);
    }
    report.oursFailedRuns = oursFailed;
    // Other work on the machine skews every figure: show whether the load rose during the run.
    const loadEnd = (await readProc("/proc/loadavg")).trim().split(" ").slice(0, 3).join(" ");
    (machine as Record<string, unknown>).loadavgAtEnd = loadEnd;
    console.log(`\nload average at the start ${machine.loadavgAtStart}, at the end ${loadEnd}`);
  } finally {
    await stopAll();
    emptyDir(rx);
    fs.rmSync(rx, { recursive: true, force: true });
    writeReport();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  console.log(
    `\nraw runs and medians: ${reportPath}; chart: ${reportPath.replace(/\.json$/, "")}.svg (${
      ((performance.now() - began) / 1000).toFixed(0)
    } s in all)`,
  );
  return oursFailed > 0 ? ExitCode.TRANSFER_FAILED : ExitCode.OK;
}

// ---------------------------------------------------------------- tables ----

const FILE_PEERS: Tool[] = ["socat", "socat-b", "nc", "python"];

/** Fills each row's ratios and prints the throughput table of one size. */
function printThroughput(sizeMiB: number, these: Row[], runs: number): void {
  for (const row of these) row.summary = row.skipped ? undefined : summarize(row);
  const peerRows = these.filter((r) => FILE_PEERS.includes(r.tool) && r.summary?.medianMBps);
  const best = peerRows.reduce<Row | undefined>(
    (b, r) => (b === undefined || r.summary!.medianMBps! > b.summary!.medianMBps! ? r : b),
    undefined,
  );
  const socatB = these.find((r) => r.tool === "socat-b")?.summary?.medianMBps;
  const ceiling = these.find((r) => r.tool === "iperf3")?.summary?.medianMBps;
  const head = [
    "tool",
    "ok",
    "median MB/s",
    "min–max MB/s",
    "median s",
    "× best peer",
    "× socat -b 128K",
    "× iperf3",
    "tx RSS MiB",
    "rx RSS MiB",
  ];
  const body: string[][] = [];
  for (const row of these) {
    const s = row.summary;
    if (row.skipped || !s) {
      body.push([row.label, `skipped: ${row.skipped}`]);
      continue;
    }
    row.ratioToBestPeer = ratio(s.medianMBps, best?.summary?.medianMBps);
    row.ratioToSocatB = ratio(s.medianMBps, socatB);
    row.ratioToCeiling = row.tool === "iperf3" ? null : ratio(s.medianMBps, ceiling);
    body.push([
      row.label,
      s.ok === s.runs ? `${s.ok}/${s.runs}` : `${s.ok}/${s.runs} FAILED ${s.runs - s.ok}`,
      fmtMB(s.medianMBps),
      s.minMBps === null ? "-" : `${fmtMB(s.minMBps)}–${fmtMB(s.maxMBps)}`,
      s.medianSeconds === null ? "-" : s.medianSeconds.toFixed(3),
      row.tool === "iperf3" ? "" : fmtRatio(row.ratioToBestPeer),
      row.tool === "iperf3" ? "" : fmtRatio(row.ratioToSocatB),
      row.tool === "iperf3" ? "" : fmtRatio(row.ratioToCeiling),
      fmtMiB(s.senderRssMiB),
      fmtMiB(s.receiverRssMiB),
    ]);
  }
  console.log(`\n=== TCP file to file, ${sizeMiB} MiB, ${runs} run(s) per row ===`);
  console.log(table([head, ...body], new Set([2, 4, 5, 6, 7, 8, 9])));
  console.log(
    [
      `best peer: ${best ? `${best.label}, ${fmtMB(best.summary?.medianMBps)} MB/s` : "none measured"} ` +
      `(file-to-file peers: socat, nc, Python; iperf3 is the memory-to-memory ceiling).`,
      "Ratios: the row's median MB/s ÷ the other's median MB/s in this run. RSS: median peak RSS of the",
      "sending and receiving processes (tx, rx); iperf3's time is its own 3-second interval.\n",
    ].join("\n"),
  );
}

/** Fills each row's ratios and prints the small-image table. */
function printSmall(small: Row[], runs: number): void {
  for (const row of small) row.summary = row.skipped ? undefined : summarize(row);
  const python = small.find((r) => r.tool === "python")?.summary?.medianSeconds;
  const peerRows = small.filter((r) => r.tool !== "ours" && r.summary?.medianSeconds);
  const best = peerRows.reduce<Row | undefined>(
    (b, r) => (b === undefined || r.summary!.medianSeconds! < b.summary!.medianSeconds! ? r : b),
    undefined,
  );
  const head = ["tool", "ok", "median ms", "min–max ms", "÷ Python client's time", "÷ best peer's time"];
  const body: string[][] = [];
  for (const row of small) {
    const s = row.summary;
    if (row.skipped || !s) {
      body.push([row.label, `skipped: ${row.skipped}`]);
      continue;
    }
    row.ratioToPython = ratio(s.medianSeconds, python);
    row.ratioToBestPeer = ratio(s.medianSeconds, best?.summary?.medianSeconds);
    body.push([
      row.label,
      s.ok === s.runs ? `${s.ok}/${s.runs}` : `${s.ok}/${s.runs} FAILED ${s.runs - s.ok}`,
      fmtMs(s.medianSeconds),
      s.minSeconds === null ? "-" : `${fmtMs(s.minSeconds)}–${fmtMs(s.maxSeconds)}`,
      fmtRatio(row.ratioToPython),
      fmtRatio(row.ratioToBestPeer),
    ]);
  }
  console.log(`\n=== Small image (input.jpeg), start to finish, ${runs} run(s) per row ===`);
  console.log(table([head, ...body], new Set([2, 4, 5])));
  console.log(
    [
      `best peer: ${best ? `${best.label}, ${fmtMs(best.summary?.medianSeconds)} ms` : "none measured"}.`,
      "Time ratios: lower is faster. Ours: framed, default flags (--buffer 4096); Python: its client to its",
      "server; each server started (and listening) before the timed client.\n",
    ].join("\n"),
  );
}

function judgeTargets(
  sections: Set<string>,
  sizes: number[],
  buffers: number[],
  modes: readonly OurMode[],
  bySize: Map<number, Row[]>,
  small: Row[],
  ourNames: readonly ("deno" | "bun" | "compiled")[],
): Target[] {
  const targets: Target[] = [];
  const big = sizes.includes(TARGET_MIB) ? TARGET_MIB : Math.max(...sizes);
  const at = bySize.get(big) ?? [];
  const sizeNote = big === TARGET_MIB ? "1 GiB" : `${big} MiB (not 1 GiB: indicative only)`;
  const socatB = at.find((r) => r.tool === "socat-b");
  const name = (n: string) => (n === "compiled" ? "compiled" : n);
  for (const mode of OUR_MODE_NAMES) {
    const factor = OUR_MODES[mode].target;
    for (const rt of ourNames) {
      const target = `TCP ${sizeNote}, --buffer ${TARGET_BUFFER}, ${OUR_MODES[mode].label} on ${name(rt)} ≥ ${
        factor.toFixed(1)
      }× socat -b ${SOCAT_BIG_BLOCK}`;
      const row = at.find((r) =>
        r.tool === "ours" && r.runtime === rt && r.mode === mode && r.buffer === TARGET_BUFFER
      );
      if (!sections.has("throughput") || !buffers.includes(TARGET_BUFFER) || !modes.includes(mode)) {
        targets.push({
          target,
          result: "not measured",
          met: null,
          detail: !modes.includes(mode) ? `needs --modes ${mode}` : `needs --buffers ${TARGET_BUFFER}`,
        });
      } else if (!row || row.skipped) {
        targets.push({
          target,
          result: "cannot judge",
          met: null,
          detail: `skipped: ${row?.skipped ?? "?"}`,
        });
      } else if (!socatB || socatB.skipped || !socatB.summary?.medianMBps) {
        targets.push({
          target,
          result: "cannot judge",
          met: null,
          detail: socatB?.skipped ? `socat skipped: ${socatB.skipped}` : "no successful socat -b run",
        });
      } else if (!row.summary?.medianMBps) {
        targets.push({ target, result: "NOT MET", met: false, detail: "no successful run" });
      } else {
        const x = row.summary.medianMBps / socatB.summary.medianMBps;
        const met = x >= factor;
        targets.push({
          target,
          result: met ? "PASS" : "NOT MET",
          met,
          detail: `${fmtMB(row.summary.medianMBps)} vs ${fmtMB(socatB.summary.medianMBps)} MB/s = ${
            fmtRatio(x)
          }`,
        });
      }
    }
  }
  for (const rt of ourNames) {
    const target = `receiver peak RSS, ${sizeNote}, ≤ 100 MiB on ${
      name(rt)
    } (every mode and buffer, every run)`;
    const mine = at.filter((r) => r.tool === "ours" && r.runtime === rt && !r.skipped);
    const peaks = mine.flatMap((r) =>
      r.runs.filter((x) => x.ok && x.receiverRssKiB !== null).map((x) => ({ r, kib: x.receiverRssKiB! }))
    );
    if (!sections.has("throughput")) {
      targets.push({ target, result: "not measured", met: null, detail: "throughput section not run" });
    } else if (mine.length === 0) {
      const skipped = at.find((r) => r.tool === "ours" && r.runtime === rt)?.skipped;
      targets.push({ target, result: "cannot judge", met: null, detail: `skipped: ${skipped ?? "?"}` });
    } else if (peaks.length === 0) {
      targets.push({
        target,
        result: "cannot judge",
        met: null,
        detail: "no peak RSS measured (--rss off?)",
      });
    } else {
      const worst = peaks.reduce((a, b) => (b.kib > a.kib ? b : a));
      // A row without a measured run could hide a higher peak: then only a failure is conclusive.
      const unmeasured = mine.filter((r) => !r.runs.some((x) => x.ok && x.receiverRssKiB !== null));
      const met = worst.kib > 100 * 1024 ? false : unmeasured.length ? null : true;
      targets.push({
        target,
        result: met === true ? "PASS" : met === false ? "NOT MET" : "cannot judge",
        met,
        detail: `${
          unmeasured.length
            ? `no measured run for ${unmeasured.map((r) => `${r.mode}/${r.buffer}`).join(", ")}; `
            : ""
        }highest ${fmtMiB(worst.kib / 1024)} MiB (${worst.r.mode}, --buffer ${worst.r.buffer}); medians ${
          mine.map((r) => `${r.mode}/${r.buffer} ${fmtMiB(r.summary?.receiverRssMiB)}`).join(", ")
        } MiB`,
      });
    }
  }
  const python = small.find((r) => r.tool === "python");
  for (
    const [rt, factor, what] of [["compiled", 1.0, "compiled client"], ["deno", 2.0, "deno run"]] as const
  ) {
    const target = `61 KB image: ${what} time ≤ ${factor.toFixed(1)}× the Python original client's`;
    const row = small.find((r) => r.tool === "ours" && r.runtime === rt);
    if (!sections.has("small")) {
      targets.push({ target, result: "not measured", met: null, detail: "small section not run" });
    } else if (!row) {
      targets.push({ target, result: "not measured", met: null, detail: `${rt} not in --runtimes` });
    } else if (row.skipped) {
      targets.push({ target, result: "cannot judge", met: null, detail: `skipped: ${row.skipped}` });
    } else if (!python || python.skipped || !python.summary?.medianSeconds) {
      targets.push({
        target,
        result: "cannot judge",
        met: null,
        detail: python?.skipped ? `Python skipped: ${python.skipped}` : "no successful Python run",
      });
    } else if (!row.summary?.medianSeconds) {
      targets.push({ target, result: "NOT MET", met: false, detail: "no successful run" });
    } else {
      const x = row.summary.medianSeconds / python.summary.medianSeconds;
      const met = x <= factor;
      targets.push({
        target,
        result: met ? "PASS" : "NOT MET",
        met,
        detail: `${fmtMs(row.summary.medianSeconds)} vs ${fmtMs(python.summary.medianSeconds)} ms = ${
          fmtRatio(x)
        }`,
      });
    }
  }
  return targets;
}

if (import.meta.main) runMain("bench-tcp", main);
