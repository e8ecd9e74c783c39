/**
 * `bench`: runs the TCP benchmark (bench/tcp.ts), then the UDP benchmark
 * (bench/udp.ts), then the sweep against kernel packet loss (bench/loss.ts;
 * it skips itself, with the reason, where no network namespace can be made),
 * then writes the reports into `results/bench.json`, the charts stacked into
 * `results/bench.svg`, and prints every target of the issue in one table.
 *
 * ```sh
 * deno task bench                     # all three, full
 * deno task bench --quick             # smoke run of all three
 * bun bench/all.ts --only tcp --tcp "--sizes 256 --peers socat"
 * deno task bench --only loss --loss "--loss 0,2,5 --tools tcp-framed,udp-reliable"
 * ```
 *
 * Each benchmark runs in this process (its own `main`), writes its own report
 * (`results/bench-tcp.json`, `results/bench-udp.json`,
 * `results/bench-loss.json`) and chart as when run alone, and stops its child
 * processes by PID before the next one starts.
 *
 * @module
 */

import * as fs from "node:fs";
import { dirname, join, resolve } from "node:path";
import { EXIT_CODES_HELP, parseFlags, runMain, versionLine } from "../shared/cli.ts";
import { describeError, ExitCode, usageError } from "../shared/errors.ts";
import { runtime } from "../shared/runtime.ts";
import { benchAllSvg } from "./chart.ts";
import { ROOT } from "./procs.ts";
import { main as tcpMain } from "./tcp.ts";
import { main as udpMain } from "./udp.ts";
import { main as lossMain } from "./loss.ts";

/** `--help` text. */
export const HELP = `Usage: bench [options]

Runs bench/tcp.ts, then bench/udp.ts, then bench/loss.ts (each prints its
own tables and writes its own report and chart; the loss sweep skips itself,
with the reason, where it cannot make a network namespace), then writes the
combined report and chart and prints one table with every target of the
issue and whether this run met it.

Options:
  --quick            smoke run of each (each benchmark's --quick)
  --runs N           runs per case, passed to each
  --timeout SECS     per-process limit, passed to each (defaults: TCP 180,
                     UDP 120, loss 120)
  --runtimes LIST    deno,bun,compiled for TCP; its deno and bun for UDP and
                     the loss sweep
  --sizes LIST       TCP file sizes in MiB (bench/tcp.ts --sizes)
  --only LIST        tcp,udp,loss (default all three)
  --tcp "FLAGS"      more flags for bench/tcp.ts, e.g. --tcp "--peers socat,nc"
  --udp "FLAGS"      more flags for bench/udp.ts, e.g. --udp "--sections loopback"
  --loss "FLAGS"     more flags for bench/loss.ts, e.g. --loss "--loss 0,2,5"
  --report PATH      combined JSON report (default results/bench.json; the
                     SVG chart goes beside it)
  -h, --help         show this help
  -V, --version      show the version

Exit code 0 when the benchmarks ran (or the loss sweep was skipped), whether
or not the targets are met; 1 when one of our own transfers failed; 2 for a
bad flag (here or in --tcp, --udp or --loss).

${EXIT_CODES_HELP}`;

interface SubTarget {
  target: string;
  result: string;
  met: boolean | null;
  detail: string;
}

type BenchName = "tcp" | "udp" | "loss";

interface Ran {
  name: BenchName;
  exitCode: number;
  seconds: number;
  error?: string;
  reportPath: string;
  report: Record<string, unknown> | null;
}

function words(value: string | undefined): string[] {
  return (value ?? "").split(/\s+/).filter((w) => w !== "");
}

/** Runs one benchmark's `main` here; a thrown error (a bad flag, a crash) is kept, not fatal. */
async function runOne(
  name: BenchName,
  main: (argv: string[]) => Promise<number>,
  argv: string[],
  reportPath: string,
): Promise<Ran> {
  const began = performance.now();
  console.log(`\n######## bench/${name}.ts ${argv.join(" ")} ########\n`);
  let exitCode: number;
  let error: string | undefined;
  // A stale report must not pass for this run's.
  fs.rmSync(reportPath, { force: true });
  try {
    exitCode = await main([...argv, "--report", reportPath]);
  } catch (e) {
    const described = describeError(e);
    exitCode = described.exitCode;
    error = described.message;
    console.error(`bench-${name}: error: ${error}`);
  }
  let report: Record<string, unknown> | null = null;
  try {
    report = JSON.parse(fs.readFileSync(reportPath, "utf8"));
  } catch { /* it stopped before writing one */ }
  return { name, exitCode, seconds: (performance.now() - began) / 1000, error, reportPath, report };
}

/** Runs the benchmarks with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    quick: { type: "boolean", default: false },
    runs: { type: "string" },
    timeout: { type: "string" },
    runtimes: { type: "string" },
    sizes: { type: "string" },
    only: { type: "string", default: "tcp,udp,loss" },
    tcp: { type: "string" },
    udp: { type: "string" },
    loss: { type: "string" },
    report: { type: "string", default: join(ROOT, "results", "bench.json") },
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("bench", runtime.name, runtime.version)), 0;
  const only = new Set(String(flags.only).split(",").map((s) => s.trim()).filter((s) => s !== ""));
  for (const o of only) {
    if (o !== "tcp" && o !== "udp" && o !== "loss") {
      throw usageError(`--only takes tcp, udp and/or loss, got '${o}'`);
    }
  }
  if (only.size === 0) throw usageError("--only names no benchmark");
  const reportPath = resolve(String(flags.report));
  const dir = dirname(reportPath);

  const common: string[] = [];
  if (flags.quick === true) common.push("--quick");
  if (typeof flags.runs === "string") common.push("--runs", flags.runs);
  if (typeof flags.timeout === "string") common.push("--timeout", flags.timeout);
  const tcpArgs = [...common];
  const udpArgs = [...common];
  const lossArgs = [...common];
  if (typeof flags.runtimes === "string") {
    tcpArgs.push("--runtimes", flags.runtimes);
    const udpRts = flags.runtimes.split(",").map((s) => s.trim()).filter((s) => s === "deno" || s === "bun");
    udpArgs.push("--runtimes", udpRts.length ? udpRts.join(",") : "none");
    lossArgs.push("--runtimes", udpRts.length ? udpRts.join(",") : "none");
  }
  if (typeof flags.sizes === "string") tcpArgs.push("--sizes", flags.sizes);
  tcpArgs.push(...words(flags.tcp as string | undefined));
  udpArgs.push(...words(flags.udp as string | undefined));
  lossArgs.push(...words(flags.loss as string | undefined));

  const began = performance.now();
  const date = new Date().toISOString();
  console.log(
    `== imgxfer benchmarks (${runtime.name} ${runtime.version}), ${date}: ${[...only].join(", ")} ==`,
  );
  const ran: Ran[] = [];
  if (only.has("tcp")) ran.push(await runOne("tcp", tcpMain, tcpArgs, join(dir, "bench-tcp.json")));
  if (only.has("udp")) ran.push(await runOne("udp", udpMain, udpArgs, join(dir, "bench-udp.json")));
  if (only.has("loss")) ran.push(await runOne("loss", lossMain, lossArgs, join(dir, "bench-loss.json")));

  const byName = (n: string) => ran.find((r) => r.name === n);
  const targets = ran.flatMap((r) =>
    ((r.report?.targets ?? []) as SubTarget[]).map((t) => ({ bench: r.name.toUpperCase(), ...t }))
  );
  const combined = {
    tool: "bench/all.ts",
    date,
    argv,
    runtime: `${runtime.name} ${runtime.version}`,
    totalSeconds: Number(((performance.now() - began) / 1000).toFixed(1)),
    runs: ran.map((r) => ({
      bench: `bench/${r.name}.ts`,
      exitCode: r.exitCode,
      seconds: Number(r.seconds.toFixed(1)),
      error: r.error,
      report: r.reportPath,
    })),
    targets,
    tcp: byName("tcp")?.report ?? null,
    udp: byName("udp")?.report ?? null,
    loss: byName("loss")?.report ?? null,
  };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(reportPath, JSON.stringify(combined, null, 2) + "\n");
  const svgPath = reportPath.replace(/\.json$/, "") + ".svg";
  fs.writeFileSync(svgPath, benchAllSvg(combined as Parameters<typeof benchAllSvg>[0]));

  console.log(`\n######## all benchmarks ########\n`);
  for (const r of ran) {
    const skipped = r.report?.skipped;
    const state = r.error
      ? `stopped: ${r.error}`
      : typeof skipped === "string"
      ? `skipped: ${skipped}`
      : r.exitCode === 0
      ? "ran"
      : `ran, exit ${r.exitCode} (one of our transfers failed)`;
    console.log(`bench/${r.name}.ts: ${state} (${r.seconds.toFixed(0)} s); report ${r.reportPath}`);
  }
  console.log("\n=== Targets (from the issue), this run ===");
  if (targets.length === 0) console.log("(none judged)");
  else {
    const verdict = (t: SubTarget) => (t.met === true ? "PASS" : t.met === false ? "NOT MET" : t.result);
    const width = Math.max(...targets.map((t) => verdict(t).length));
    for (const t of targets) {
      console.log(`  ${t.bench}  ${verdict(t).padEnd(width)}  ${t.target}`);
      if (t.detail) console.log(`  ${" ".repeat(t.bench.length + width + 4)}${t.detail}`);
    }
    const met = targets.filter((t) => t.met === true).length;
    const notMet = targets.filter((t) => t.met === false).length;
    console.log(`\n${met} PASS, ${notMet} NOT MET, ${targets.length - met - notMet} not judged`);
  }
  console.log(
    `\ncombined report: ${reportPath}; chart: ${svgPath} (${combined.totalSeconds.toFixed(0)} s in all)`,
  );
  // A bad flag wins (2), then a failed transfer (1).
  const codes = ran.map((r) => r.exitCode);
  if (codes.includes(ExitCode.USAGE)) return ExitCode.USAGE;
  return codes.find((c) => c !== 0) ?? ExitCode.OK;
}

if (import.meta.main) runMain("bench", main);
