/**
 * `demo`: send the sample image over TCP (framed, classic, framed with a
 * pre-shared key) and over UDP (reliable, classic, reliable with the key) on
 * loopback, each server and client a separate process with the narrowest
 * Deno permissions (the key is read from a file each is allowed to read),
 * then print the summaries side by side like the course report's table.
 *
 * ```sh
 * deno task demo                 # servers and clients on Deno
 * bun demo.ts                    # the same on Bun
 * deno task demo --file photo.png --buffer 1400
 * ```
 *
 * @module
 */

import * as fs from "node:fs";
import { join } from "node:path";
import { EXIT_CODES_HELP, parseBuffer, parseFlags, runMain, str, versionLine } from "../shared/cli.ts";
import { CliError, ExitCode } from "../shared/errors.ts";
import { runtime } from "../shared/runtime.ts";
import { command, freePort, ROOT, sha256, start, waitFor } from "./procs.ts";

/** `--help` text. */
export const HELP = `Usage: demo [options]

Runs a TCP server and client (framed, classic, then framed with a pre-shared
key from a key file) and a UDP server and client (reliable, classic, then
reliable with the key) on 127.0.0.1, sending one file, and prints the
summaries side by side. Received files go to --out; the key file is made in
a folder beside it (--out followed by -key).

Options:
  --file PATH      file to send (default: the sample input.jpeg)
  --buffer BYTES   chunk / payload size (default 4096)
  --out DIR        folder for received files (default results/demo)
  -h, --help       show this help
  -V, --version    show the version

${EXIT_CODES_HELP}`;

interface Run {
  label: string;
  summary: Record<string, unknown>;
  saved: string;
  intact: boolean;
}

/** How one demo transfer runs. */
interface Mode {
  /** The original format (`--classic`). */
  classic?: boolean;
  /** A key file both ends read (`--psk-file`). */
  keyFile?: string;
}

async function transfer(
  label: string,
  transport: "tcp" | "udp",
  file: string,
  buffer: number,
  out: string,
  mode: Mode = {},
): Promise<Run> {
  const port = await freePort();
  const host = "127.0.0.1";
  const serverNet = transport === "tcp" ? `--allow-net=${host}:${port}` : `--allow-net=${host}`;
  const clientNet = transport === "tcp"
    ? `--allow-net=${host}:${port}`
    : `--allow-net=${host}:${port},0.0.0.0:0`;
  console.log(`\n--- ${label}: ${transport}/server.ts and ${transport}/client.ts on ${runtime.name} ---`);
  const key = mode.keyFile ? ["--psk-file", mode.keyFile] : [];
  const keyRead = mode.keyFile ? `,${mode.keyFile}` : "";
  const server = start(command(
    `${transport}/server.ts`,
    [
      "--host",
      host,
      "--port",
      String(port),
      "--out",
      out,
      "--once",
      "--json",
      "--buffer",
      String(buffer),
      ...key,
    ],
    [serverNet, `--allow-read=${out}${keyRead}`, `--allow-write=${out}`],
  ));
  await waitFor(server, '"listening"', 15000);
  const clientArgs = [
    "--host",
    host,
    "--port",
    String(port),
    "--file",
    file,
    "--buffer",
    String(buffer),
    ...key,
  ];
  if (mode.classic) clientArgs.push("--classic");
  const human = start(
    command(`${transport}/client.ts`, clientArgs, [clientNet, `--allow-read=${file}${keyRead}`]),
  );
  const code = await human.code;
  process.stdout.write(human.stdout);
  if (human.stderr) process.stderr.write(human.stderr);
  await server.code;
  const events = server.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  const received = events.find((e) => e.event === "received");
  if (code !== 0 || !received) {
    throw new CliError(`demo: the ${label} transfer failed (client exit ${code})`, ExitCode.TRANSFER_FAILED);
  }
  const summary = parseSummary(human.stdout);
  return { label, summary, saved: received.path, intact: sha256(received.path) === sha256(file) };
}

/** Reads the `Label : value` rows of a printed summary block. */
function parseSummary(text: string): Record<string, string> {
  const rows: Record<string, string> = {};
  const block = text.slice(text.indexOf("==="));
  for (const line of block.split("\n")) {
    const m = /^([A-Za-z ]+?)\s+: (.*)$/.exec(line);
    if (m) rows[m[1].trim()] = m[2].trim();
  }
  return rows;
}

function table(runs: Run[]): string {
  const metrics = [
    "File size",
    "Buffer size",
    "Chunks/packets",
    "Total time",
    "Throughput",
    "Received intact",
  ];
  const value = (run: Run, metric: string) => {
    const s = run.summary as Record<string, string>;
    if (metric === "Chunks/packets") return s["Chunks sent"] ?? s["Packets sent"] ?? "";
    if (metric === "Received intact") return run.intact ? "yes (SHA-256 equal)" : "NO";
    return s[metric] ?? "";
  };
  const header = ["Metric", ...runs.map((r) => r.label)];
  const rows = metrics.map((m) => [m, ...runs.map((r) => value(r, m))]);
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** Writes a fresh random key (32 bytes, base64) to `dir/imgxfer.key`, readable by its owner only. */
function makeKeyFile(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const path = join(fs.realpathSync(dir), "imgxfer.key");
  fs.rmSync(path, { force: true });
  fs.writeFileSync(path, `${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}\n`, {
    mode: 0o600,
  });
  return path;
}

/** Runs the demo with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    file: { type: "string", default: join(ROOT, "input.jpeg") },
    buffer: { type: "string", default: "4096" },
    out: { type: "string", default: join(ROOT, "results", "demo") },
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("demo", runtime.name, runtime.version)), 0;
  const file = fs.realpathSync(str(flags, "file"));
  const buffer = parseBuffer(str(flags, "buffer"), 65503, " (it is also the UDP payload size)");
  const out = str(flags, "out");
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const realOut = fs.realpathSync(out);
  console.log(`== imgxfer demo on ${runtime.name} ${runtime.version}: '${file}' over loopback ==`);
  const keyFile = makeKeyFile(`${realOut}-key`);
  const runs = [
    await transfer("TCP framed", "tcp", file, buffer, realOut),
    await transfer("TCP classic", "tcp", file, buffer, realOut, { classic: true }),
    await transfer("TCP + key", "tcp", file, buffer, realOut, { keyFile }),
    await transfer("UDP reliable", "udp", file, buffer, realOut),
    await transfer("UDP classic", "udp", file, buffer, realOut, { classic: true }),
    await transfer("UDP + key", "udp", file, buffer, realOut, { keyFile }),
  ];
  console.log("\n=== Side by side ===");
  console.log(table(runs));
  console.log(`\nReceived files are in ${realOut}:`);
  for (const run of runs) console.log(`  ${run.label.padEnd(12)} ${run.saved}`);
  console.log(
    "\nOne 61 KB image on loopback measures process start and round trips more than bandwidth:" +
      " compare transports with bigger files (deno task demo --file BIG).",
  );
  return runs.every((r) => r.intact) ? ExitCode.OK : ExitCode.TRANSFER_FAILED;
}

if (import.meta.main) runMain("demo", main);
