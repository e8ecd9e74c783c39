/**
 * `demo:lossy`: the sample image through the impairment relay at 10% loss
 * each way, first in the classic format (the course's: what is lost stays
 * lost, and our server says so), then with the reliable protocol (intact,
 * SHA-256 verified). Each process runs with the narrowest Deno permissions.
 *
 * ```sh
 * deno task demo:lossy
 * deno task demo:lossy --loss 0.3 --seed 7
 * bun bench/demo_lossy.ts
 * ```
 *
 * @module
 */

import * as fs from "node:fs";
import { join } from "node:path";
import { EXIT_CODES_HELP, parseBuffer, parseFlags, runMain, str, versionLine } from "../shared/cli.ts";
import { CliError, ExitCode, usageError } from "../shared/errors.ts";
import { runtime } from "../shared/runtime.ts";
import { command, freePort, ROOT, sha256, start, waitFor } from "./procs.ts";

/** `--help` text. */
export const HELP = `Usage: demo-lossy [options]

Sends a file through the UDP impairment relay (udp/relay.ts) twice: in the
classic course format, which has no retransmission, and with the reliable
protocol. With loss, the classic transfer arrives broken (the server saves it
as *.incomplete.* and says what is missing); the reliable one arrives intact.

Options:
  --file PATH      file to send (default: the sample input.jpeg)
  --buffer BYTES   payload size (default 1024, so the image is 60 datagrams)
  --loss P         loss each way, 0-0.9 (default 0.1)
  --seed N         the relay's random seed (default 42)
  --out DIR        folder for received files (default results/demo-lossy)
  -h, --help       show this help
  -V, --version    show the version

${EXIT_CODES_HELP}`;

function lastJson(text: string): Record<string, unknown> {
  const lines = text.trim().split("\n").filter((l) => l.startsWith("{"));
  return lines.length ? JSON.parse(lines[lines.length - 1]) : {};
}

/** Runs the lossy demo with command-line `argv`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    file: { type: "string", default: join(ROOT, "input.jpeg") },
    buffer: { type: "string", default: "1024" },
    loss: { type: "string", default: "0.1" },
    seed: { type: "string", default: "42" },
    out: { type: "string", default: join(ROOT, "results", "demo-lossy") },
  });
  if (flags.help) return console.log(HELP), 0;
  if (flags.version) return console.log(versionLine("demo-lossy", runtime.name, runtime.version)), 0;
  const file = fs.realpathSync(str(flags, "file"));
  const buffer = parseBuffer(str(flags, "buffer"), 65491);
  const loss = Number(str(flags, "loss"));
  if (!(loss >= 0 && loss <= 0.9)) throw usageError(`--loss must be 0-0.9, got ${str(flags, "loss")}`);
  const seed = str(flags, "seed");
  const out = str(flags, "out");
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const realOut = fs.realpathSync(out);
  const host = "127.0.0.1";
  const serverPort = await freePort();
  const relayPort = await freePort();
  console.log(`== imgxfer lossy demo on ${runtime.name} ${runtime.version} ==`);
  console.log(`'${file}' (${fs.statSync(file).size} bytes) in ${buffer}-byte datagrams, through a relay`);
  console.log(`dropping ${(loss * 100).toFixed(0)}% of datagrams each way (seed ${seed}).\n`);
  const server = start(command("udp/server.ts", [
    "--host",
    host,
    "--port",
    String(serverPort),
    "--out",
    realOut,
    "--json",
    "--idle-timeout",
    "2",
  ], [`--allow-net=${host}`, `--allow-read=${realOut}`, `--allow-write=${realOut}`]));
  const relay = start(command("udp/relay.ts", [
    "--listen",
    `${host}:${relayPort}`,
    "--target",
    `${host}:${serverPort}`,
    "--loss",
    String(loss),
    "--seed",
    seed,
  ], [`--allow-net=${host}`]));
  try {
    await waitFor(server, '"listening"', 15000);
    await waitFor(relay, "listening", 15000);
    const clientArgs = [
      "--host",
      host,
      "--port",
      String(relayPort),
      "--file",
      file,
      "--buffer",
      String(buffer),
    ];
    const clientPerms = [`--allow-net=${host}:${relayPort},0.0.0.0:0`, `--allow-read=${file}`];

    console.log("--- 1. classic UDP (the course's format: no retransmission) ---");
    const classic = start(command("udp/client.ts", [...clientArgs, "--classic", "--json"], clientPerms));
    const classicCode = await classic.code;
    const c = lastJson(classic.stdout);
    console.log(`client: status ${c.status}, exit ${classicCode}`);
    console.log(`server said: ${c.response || "(no reply reached the client: it was lost too)"}`);

    console.log("\n--- 2. reliable UDP (acknowledgements, retransmission, SHA-256 check) ---");
    const reliable = start(command("udp/client.ts", [...clientArgs, "--json"], clientPerms));
    const reliableCode = await reliable.code;
    const r = lastJson(reliable.stdout);
    console.log(
      `client: status ${r.status}, exit ${reliableCode}, ${r.datagrams} datagrams sent, ` +
        `${r.retransmitted} retransmitted, observed loss ${r.lossPercent} %, ${r.seconds} s`,
    );
    console.log(`server said: ${r.response}`);

    // Let the server finish the classic session (idle timeout) before reading its files.
    const deadline = performance.now() + 5000;
    while (performance.now() < deadline && (server.stdout.match(/"event":"received"/g) ?? []).length < 2) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const saved = fs.readdirSync(realOut).filter((n) => !n.startsWith("."));
    const broken = saved.filter((n) => n.includes("incomplete"));
    const intact = saved.filter((n) =>
      !n.includes("incomplete") && sha256(join(realOut, n)) === sha256(file)
    );
    console.log("\n=== Result ===");
    for (const name of saved) {
      const tag = broken.includes(name)
        ? "BROKEN (missing packets zero-filled)"
        : intact.includes(name)
        ? "intact"
        : "differs";
      console.log(`  ${name.padEnd(40)} ${tag}`);
    }
    const classicFailed = c.status !== "success";
    const reliableOk = r.status === "success" && intact.length > 0;
    console.log(
      `\nClassic UDP ${
        classicFailed ? "lost data and said so" : "happened to lose nothing (try another --seed)"
      }; ` +
        `reliable UDP ${reliableOk ? "delivered the file intact" : "FAILED"}. Files are in ${realOut}.`,
    );
    if (!reliableOk) {
      throw new CliError("the reliable transfer did not arrive intact", ExitCode.TRANSFER_FAILED);
    }
    return ExitCode.OK;
  } finally {
    relay.kill();
    server.kill();
    await relay.code;
    await server.code;
    const at = relay.stdout.indexOf("=== Relay Counters");
    if (at >= 0) console.log(`\n${relay.stdout.slice(at).trim()}`);
  }
}

if (import.meta.main) runMain("demo-lossy", main);
