/**
 * Reliable UDP on real sockets through the impairment relay, on both
 * runtimes: 1%, 10% and 30% loss each way with reordering and duplication,
 * file sizes 0, 1, one chunk, one chunk + 1 and 10 MiB. Every file must
 * arrive intact (SHA-256) and both sides must say so.
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import {
  commandFor,
  lastJson,
  makeFile,
  runEntry,
  type RuntimeInfo,
  runtimes,
  sha256File,
  startServer,
  tempDir,
} from "./helpers.ts";

const RTS = runtimes();
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const CHUNK = 1400;

/** Starts a UDP server and a relay in front of it; returns the relay's port. */
async function withRelay(
  rt: RuntimeInfo,
  impairment: string[],
  body: (relayPort: number, out: string, server: Awaited<ReturnType<typeof startServer>>) => Promise<void>,
): Promise<void> {
  const out = tempDir();
  dirs.push(out);
  const server = await startServer(rt, "udp/server.ts", ["--out", out]);
  let relay: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    relay = await startServer(rt, "udp/relay.ts", [], {
      cmd: commandFor(rt, "udp/relay.ts", [
        "--listen",
        "127.0.0.1:0",
        "--target",
        `127.0.0.1:${server.port}`,
        "--json",
        ...impairment,
      ]),
    });
    await body(relay.port, out, server);
  } finally {
    await relay?.stop();
    await server.stop();
  }
}

async function sendThrough(
  client: RuntimeInfo,
  port: number,
  file: string,
): Promise<Record<string, unknown>> {
  const res = await runEntry(client, "udp/client.ts", [
    "--port",
    String(port),
    "--file",
    file,
    "--buffer",
    String(CHUNK),
    "--timeout",
    "10",
    "--json",
  ], { timeoutMs: 120_000 });
  assert.equal(res.code, 0, `client exit ${res.code}: ${res.stderr}\n${res.stdout}`);
  return lastJson(res.stdout);
}

const LEVELS = [
  {
    name: "1% loss",
    args: ["--loss", "0.01", "--reorder", "0.02", "--dup", "0.02", "--delay", "1", "--seed", "11"],
  },
  {
    name: "10% loss",
    args: ["--loss", "0.1", "--reorder", "0.05", "--dup", "0.05", "--delay", "1", "--seed", "12"],
  },
  {
    name: "30% loss",
    args: ["--loss", "0.3", "--reorder", "0.05", "--dup", "0.05", "--delay", "1", "--seed", "13"],
  },
];

const SIZES = [0, 1, CHUNK, CHUNK + 1, 10 * 1024 * 1024];

for (const server of RTS) {
  // Each server runtime with the other runtime's client too, so both directions of mixing are covered.
  const client = RTS.find((r) => r.name !== server.name) ?? server;
  for (const level of LEVELS) {
    describe(`reliable UDP through the relay, ${level.name}: ${server.name} server, ${client.name} client`, () => {
      test("every size arrives intact", { timeout: 300_000 }, async () => {
        const src = tempDir();
        dirs.push(src);
        await withRelay(server, level.args, async (port, out, srv) => {
          for (const size of SIZES) {
            const file = makeFile(src, `f${size}.bin`, size);
            const summary = await sendThrough(client, port, file);
            assert.equal(summary.status, "success", `${size} bytes: ${JSON.stringify(summary)}`);
            assert.equal(summary.verified, true);
            assert.equal(summary.confirmedBytes, size);
            const rec = await srv.waitFor((e) =>
              e.event === "received" && e.bytes === size && e.mode === "reliable"
            );
            assert.equal(rec.complete, true);
            assert.equal(rec.sha256, sha256File(file), `${size} bytes: digest`);
            assert.equal(sha256File(String(rec.path)), sha256File(file), `${size} bytes: saved file`);
            assert.equal(rec.path, join(out, `received_f${size}_udp.bin`));
            if (size >= 1024 * 1024 && level.name !== "1% loss") {
              assert.ok(Number(summary.retransmitted) > 0, "loss must have forced retransmissions");
            }
          }
          assert.ok(
            !srv.events.some((e) => e.event === "failed"),
            JSON.stringify(srv.events.filter((e) => e.event === "failed")),
          );
        });
      });
    });
  }
}
