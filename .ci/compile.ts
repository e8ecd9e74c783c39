/**
 * Builds imgxfer's programs as standalone executables in `dist/`:
 * `imgxfer-tcp-server`, `imgxfer-tcp-client`, `imgxfer-udp-server`,
 * `imgxfer-udp-client`, `imgxfer-relay`, and `imgxfer` (all five as
 * subcommands, from `mod.ts`).
 *
 * ```sh
 * deno task compile        # deno compile (needs the 'denort' runtime: downloaded, or DENORT_BIN)
 * deno task compile:bun    # bun build --compile (works offline)
 * bun .ci/compile.ts --bun
 * ```
 *
 * `deno compile` bakes in the narrowest permissions each program needs, with
 * `--no-prompt`: the programs take `--host/--port/--out/--file` at run time,
 * so the flags grant a kind of access without naming the address or path.
 * Bun has no permissions: its binaries can do what the user can.
 *
 * Each binary is built under a temporary name, checked with `--version`
 * (a binary that does not run imgxfer, such as the REPL one `deno compile`
 * makes when `DENORT_BIN` points at a full `deno`, is refused), then renamed
 * into place, so `dist/` only ever holds binaries that run. Runs on Deno and
 * on Bun (node:child_process). Exit codes: 0 built, 1 a build failed,
 * 2 bad flag, 3 `DENORT_BIN` names no file, 4 `deno compile` could not
 * download its runtime (offline).
 *
 * @module
 */

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** Exit codes, in the spirit of the programs' own (README, "Exit codes"). */
const Exit = { BUILD_FAILED: 1, USAGE: 2, FILE: 3, NETWORK: 4, INTERNAL: 70 } as const;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DIST = join(ROOT, "dist");

/** What each program needs from Deno. Servers bind, read and write `--out`; clients connect and read `--file`. */
const SERVER = ["--allow-net", "--allow-read", "--allow-write", "--allow-env=IMGXFER_PSK"];
const CLIENT = ["--allow-net", "--allow-read", "--allow-env=IMGXFER_PSK"];
const RELAY = ["--allow-net"];

interface Program {
  /** File name in `dist/`. */
  name: string;
  /** Entry module, relative to the repository root. */
  entry: string;
  /** Deno permissions baked in. */
  permissions: string[];
  /** How the program names itself in `--version`. */
  versionName: string;
}

const PROGRAMS: Program[] = [
  { name: "imgxfer-tcp-server", entry: "tcp/server.ts", permissions: SERVER, versionName: "tcp-server" },
  { name: "imgxfer-tcp-client", entry: "tcp/client.ts", permissions: CLIENT, versionName: "tcp-client" },
  { name: "imgxfer-udp-server", entry: "udp/server.ts", permissions: SERVER, versionName: "udp-server" },
  { name: "imgxfer-udp-client", entry: "udp/client.ts", permissions: CLIENT, versionName: "udp-client" },
  { name: "imgxfer-relay", entry: "udp/relay.ts", permissions: RELAY, versionName: "udp-relay" },
  // The union of the above.
  { name: "imgxfer", entry: "mod.ts", permissions: SERVER, versionName: "imgxfer" },
];

const HELP = `Usage: .ci/compile.ts [--deno | --bun] [--quiet]

Builds dist/imgxfer-tcp-server, -tcp-client, -udp-server, -udp-client,
-relay and dist/imgxfer (all five as subcommands).

  --deno    deno compile, with each program's permissions baked in (default
            on Deno). Needs the 'denort' runtime: downloaded from
            dl.deno.land, or DENORT_BIN=/path/to/denort.
  --bun     bun build --compile (default on Bun); works offline.
  --quiet   one line on success instead of the table.

Exit codes: 0 built, 1 a build failed, 2 bad flag, 3 DENORT_BIN names no
file, 4 deno compile could not download its runtime (offline).`;

/** A failure this script reports in one line. */
class CompileError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

/** Runs a command to completion with stdin closed, killing it after `timeoutMs`. */
function runCommand(cmd: string[], timeoutMs: number): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(cmd[0], cmd.slice(1), {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => stdout += d.toString());
    child.stderr!.on("data", (d) => stderr += d.toString());
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs / 1000} s)`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr, error });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The runtime's executable: `node_modules/.bin/NAME`, else NAME on PATH. */
function tool(name: "deno" | "bun"): string {
  const local = join(ROOT, "node_modules", ".bin", name);
  return fs.existsSync(local) ? local : name;
}

// deno-lint-ignore no-control-regex
const stripAnsi = (text: string) => text.replace(/\u001b\[[0-9;]*[A-Za-z]/g, "");

/**
 * One line out of a failed command's output: deno's first type error, or
 * deno's `error: …` line and its `Caused by:` chain, or bun's `error: …`
 * line, else the last line.
 */
function summarize(output: string): string {
  const lines = stripAnsi(output).split("\n").map((l) => l.trim()).filter((l) => l !== "");
  // A type error: deno prints the diagnostics, then "error: Type checking failed."
  const diagnostic = lines.findIndex((l) => /^TS\d+ \[ERROR\]:/.test(l));
  if (diagnostic >= 0) {
    const where = lines.slice(diagnostic + 1).find((l) => /^at /.test(l));
    const more = lines.filter((l) => /^TS\d+ \[ERROR\]:/.test(l)).length - 1;
    return `type error: ${lines[diagnostic]}${
      where ? ` ${where.replace(/file:\/\/\S*?\/(?=[^/]+\/[^/]+:\d)/, "")}` : ""
    }${more > 0 ? ` (and ${more} more)` : ""}`;
  }
  const first = lines.findIndex((l) => /^error\b|\berror:/i.test(l));
  if (first < 0) return lines.at(-1) ?? "no output";
  const parts = [lines[first].replace(/^error:\s*/i, "")];
  for (const line of lines.slice(first + 1)) {
    if (/^Stack backtrace:/.test(line)) break;
    const cause = /^\d+: (.*)$/.exec(line);
    if (cause && !parts.some((p) => p.includes(cause[1]))) parts.push(cause[1]);
  }
  const text = parts.join(": ");
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

/** Whether `deno compile` failed fetching its `denort` runtime over the network. */
function isRuntimeDownloadFailure(stderr: string): boolean {
  const text = stripAnsi(stderr);
  return /denort|base binary|dl\.deno\.land/i.test(text) &&
    /error sending request|dns error|failed to lookup address|Connect\b|connection refused|timed out|network is unreachable|certificate/i
      .test(text);
}

function commandLine(kind: "deno" | "bun", program: Program, output: string): string[] {
  if (kind === "bun") return [tool("bun"), "build", "--compile", program.entry, "--outfile", output];
  return [
    tool("deno"),
    "compile",
    "--no-prompt",
    ...program.permissions,
    "--config",
    "deno.json",
    // The programs import no npm package; without this the whole
    // node_modules (the deno and bun binaries) would be embedded.
    "--exclude",
    "node_modules",
    "--output",
    output,
    program.entry,
  ];
}

/** Builds one program into `dist/`; returns its `--version` line. */
async function build(kind: "deno" | "bun", program: Program): Promise<string> {
  const final = join(DIST, program.name);
  const temp = join(DIST, `.${program.name}.building`);
  fs.rmSync(temp, { force: true });
  const res = await runCommand(commandLine(kind, program, temp), 600_000);
  if (res.error) {
    throw new CompileError(
      `cannot run ${kind}: ${res.error.message} (install it with: npm ci)`,
      Exit.BUILD_FAILED,
    );
  }
  if (res.code !== 0 || !fs.existsSync(temp)) {
    fs.rmSync(temp, { force: true });
    if (kind === "deno" && isRuntimeDownloadFailure(res.stderr)) {
      throw new CompileError(
        "deno compile could not download its runtime 'denort' from dl.deno.land (offline?): " +
          "set DENORT_BIN=/path/to/denort (a denort binary of this Deno version, not deno itself), " +
          "or build with Bun: deno task compile:bun",
        Exit.NETWORK,
      );
    }
    const missing = /Could not find denort at '([^']*)'/.exec(stripAnsi(res.stderr));
    if (kind === "deno" && missing) {
      throw new CompileError(`DENORT_BIN=${missing[1]}: no such file`, Exit.FILE);
    }
    const tool = kind === "deno" ? "deno compile" : "bun build --compile";
    throw new CompileError(
      `${tool} ${program.entry} failed (exit ${res.code}): ${summarize(res.stderr + "\n" + res.stdout)}`,
      Exit.BUILD_FAILED,
    );
  }
  // A binary that does not run imgxfer must not land in dist/.
  const check = await runCommand([temp, "--version"], 20_000);
  const line = check.stdout.trim().split("\n")[0] ?? "";
  if (check.code !== 0 || !line.startsWith(`${program.versionName} `)) {
    fs.rmSync(temp, { force: true });
    const got = line || summarize(check.stderr) || `exit ${check.code}`;
    const hint = kind === "deno" && process.env.DENORT_BIN
      ? `; DENORT_BIN=${process.env.DENORT_BIN} must be a denort binary, not deno itself`
      : "";
    throw new CompileError(
      `dist/${program.name} was built but does not run ${program.entry}: '--version' printed '${got}'${hint}`,
      Exit.BUILD_FAILED,
    );
  }
  fs.renameSync(temp, final);
  return line;
}

function versionOf(kind: "deno" | "bun"): Promise<Finished> {
  return runCommand([tool(kind), "--version"], 20_000);
}

async function main(argv: string[]): Promise<number> {
  const known = new Set(["--deno", "--bun", "--quiet", "--help", "-h"]);
  const unknown = argv.find((a) => !known.has(a));
  if (unknown !== undefined) throw new CompileError(`unknown option ${unknown} (see --help)`, Exit.USAGE);
  if (argv.includes("--help") || argv.includes("-h")) return console.log(HELP), 0;
  if (argv.includes("--deno") && argv.includes("--bun")) {
    throw new CompileError("give --deno or --bun, not both", Exit.USAGE);
  }
  const onDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
  const kind: "deno" | "bun" = argv.includes("--bun")
    ? "bun"
    : argv.includes("--deno")
    ? "deno"
    : onDeno
    ? "deno"
    : "bun";
  const quiet = argv.includes("--quiet");

  const denort = process.env.DENORT_BIN;
  const version = await versionOf(kind);
  if (version.error || version.code !== 0) {
    throw new CompileError(`cannot run ${tool(kind)} (install it with: npm ci)`, Exit.BUILD_FAILED);
  }
  const number = /\d+\.\d+\.\d+\S*/.exec(stripAnsi(version.stdout))?.[0] ?? "(unknown version)";
  const toolVersion = `${kind} ${number}`;
  fs.mkdirSync(DIST, { recursive: true });
  const how = kind === "deno"
    ? `deno compile${denort ? `, DENORT_BIN=${denort}` : ""}`
    : "bun build --compile";

  const started = performance.now();
  const built: Array<{ name: string; bytes: number; version: string }> = [];
  for (const program of PROGRAMS) {
    const versionLine = await build(kind, program);
    built.push({
      name: program.name,
      bytes: fs.statSync(join(DIST, program.name)).size,
      version: versionLine,
    });
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  const total = built.reduce((sum, b) => sum + b.bytes, 0);
  if (quiet) {
    console.log(
      `compile: built ${built.length} programs with ${toolVersion} into dist/ ` +
        `(${built.map((b) => b.name).join(", ")}; ${mb(total)}) in ${seconds} s`,
    );
    return 0;
  }
  console.log(`compile: ${toolVersion} (${how}) into ${relative(ROOT, DIST)}/`);
  const width = Math.max(...built.map((b) => b.name.length));
  console.log(`  ${"name".padEnd(width)}  ${"size".padStart(9)}  --version`);
  for (const b of built) console.log(`  ${b.name.padEnd(width)}  ${mb(b.bytes).padStart(9)}  ${b.version}`);
  console.log(`compile: built ${built.length} programs (${mb(total)}) in ${seconds} s`);
  return 0;
}

try {
  process.exit(await main(process.argv.slice(2)));
} catch (error) {
  const known = error instanceof CompileError;
  console.error(
    `compile: error: ${known ? error.message : `internal error: ${String(error).split("\n")[0]}`}`,
  );
  process.exit(known ? error.exitCode : Exit.INTERNAL);
}
