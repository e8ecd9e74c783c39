/**
 * Resume of reliable UDP transfers on real sockets and real processes, for
 * Deno and Bun, with and without a key: a client killed with SIGKILL in the
 * middle of a 64 MiB transfer leaves a partial and its sidecar on the
 * server; the client run again with `--resume` sends only the rest (the
 * summary says how much it skipped), the final SHA-256 equals the source's,
 * and the partial and sidecar are gone. A server stopped with SIGTERM in the
 * middle of a transfer keeps the partial, and a resumed transfer against the
 * restarted server completes. Without `--resume`, a kept partial is not
 * used: the transfer starts from empty.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import {
  commandFor,
  lastJson,
  listDir,
  makeFile,
  run,
  type RuntimeInfo,
  runtimes,
  ScratchDirs,
  type ServerProcess,
  sha256File,
  sleep,
  startServer,
  waitUntil,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = runtimes();
const KEY = "resume test key, shared by both ends";
const SIZE = 64 << 20;
const scratch = new ScratchDirs("imgxfer-udp-resume-");
after(() => scratch.cleanup());
const freshDir = (): string => scratch.fresh();

/** The partial (`….resume.part`) and its sidecar (`….resume.part.json`) in `dir`. */
function partials(dir: string): { part?: string; sidecar?: string } {
  const names = listDir(dir);
  return {
    part: names.find((n) => n.startsWith(".") && n.endsWith(".resume.part")),
    sidecar: names.find((n) => n.startsWith(".") && n.endsWith(".resume.part.json")),
  };
}

/** Whether the partial holds at least `bytes` and a sidecar records some chunks. */
function holds(dir: string, bytes: number): boolean {
  const { part, sidecar } = partials(dir);
  if (!part || !sidecar) return false;
  try {
    const record = JSON.parse(fs.readFileSync(join(dir, sidecar), "utf8"));
    return fs.statSync(join(dir, part)).size >= bytes && record.ranges.length > 0;
  } catch {
    return false; // being replaced
  }
}

/** Client arguments for `file` to `port`: 1400-byte datagrams, JSON, and the key when keyed. */
function clientArgs(port: number, file: string, keyed: boolean, extra: string[] = []): string[] {
  return [
    "--port",
    String(port),
    "--file",
    file,
    "--buffer",
    "1400",
    "--json",
    "--timeout",
    "5",
    ...(keyed ? ["--psk", KEY] : []),
    ...extra,
  ];
}

/**
 * Runs the client with `--resume` until it is not turned away as BUSY (the
 * server keeps the killed client's session until it has been silent for
 * `--idle-timeout`); returns its JSON summary.
 */
async function resume(
  rt: RuntimeInfo,
  port: number,
  file: string,
  keyed: boolean,
): Promise<Record<string, unknown>> {
  for (let attempt = 0;; attempt++) {
    const res = await run(commandFor(rt, "udp/client.ts", clientArgs(port, file, keyed, ["--resume"])), {
      timeoutMs: 120_000,
    });
    const summary = lastJson(res.stdout);
    if (summary.status === "refused" && /BUSY/.test(String(summary.response)) && attempt < 20) {
      await sleep(500);
      continue;
    }
    assert.equal(res.code, 0, `${res.stderr}\n${res.stdout}`);
    return summary;
  }
}

/** Starts a paced client (about 25 MB/s) that the test will interrupt. */
function startSlowClient(rt: RuntimeInfo, port: number, file: string, keyed: boolean) {
  const cmd = commandFor(rt, "udp/client.ts", clientArgs(port, file, keyed, ["--rate", "200"]));
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  child.stdout!.on("data", (d) => stdout += d.toString());
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, exited, stdout: () => stdout };
}

async function startUdpServer(rt: RuntimeInfo, out: string, keyed: boolean): Promise<ServerProcess> {
  const server = await startServer(rt, "udp/server.ts", [
    "--out",
    out,
    "--idle-timeout",
    "1",
    "--shutdown-grace",
    "0.2",
    ...(keyed ? ["--psk", KEY] : []),
  ]);
  await sleep(300); // signal handlers are in place before the bind; let the runtime settle
  return server;
}

function assertResumedWhole(summary: Record<string, unknown>, source: string, out: string): void {
  assert.equal(summary.status, "success", JSON.stringify(summary));
  assert.ok(Number(summary.resumedBytes) > 0, `resumedBytes ${summary.resumedBytes}`);
  assert.ok(Number(summary.resumedBytes) < SIZE, `resumedBytes ${summary.resumedBytes}`);
  assert.equal(summary.sha256, sha256File(source));
  assert.deepEqual(listDir(out), ["received_big_udp.bin"], "the partial and its sidecar are gone");
  assert.equal(sha256File(join(out, "received_big_udp.bin")), sha256File(source));
}

for (const rt of RTS) {
  describe(`${rt.name}: resuming reliable UDP transfers`, () => {
    for (const keyed of [false, true]) {
      test(`a client killed mid-transfer, then run with --resume${keyed ? " (keyed)" : ""}`, {
        timeout: 120_000,
      }, async () => {
        const out = freshDir();
        const source = makeFile(freshDir(), "big.bin", SIZE);
        const srv = await startUdpServer(rt, out, keyed);
        try {
          const slow = startSlowClient(rt, srv.port, source, keyed);
          await waitUntil(() => holds(out, 8 << 20), "8 MiB recorded in the partial's sidecar", 30_000, 50);
          process.kill(slow.child.pid!, "SIGKILL");
          await slow.exited;
          assert.ok(!srv.events.some((e) => e.event === "received"), "the kill landed before the end");

          const summary = await resume(rt, srv.port, source, keyed);
          assertResumedWhole(summary, source, out);
          const kept = await srv.waitFor((e) =>
            e.event === "failed" && /kept [\d,]+ bytes in .* for --resume/.test(String(e.error))
          );
          assert.ok(Number(kept.bytes) > 0);
          const received = await srv.waitFor((e) => e.event === "received");
          assert.equal(received.resumedBytes, summary.resumedBytes);
        } finally {
          await srv.stop();
        }
      });
    }

    test(
      "a server stopped mid-transfer keeps the partial; the restarted server completes a resumed transfer (keyed)",
      {
        timeout: 120_000,
      },
      async () => {
        const out = freshDir();
        const source = makeFile(freshDir(), "big.bin", SIZE);
        const first = await startUdpServer(rt, out, true);
        let second: ServerProcess | undefined;
        try {
          const slow = startSlowClient(rt, first.port, source, true);
          await waitUntil(() => holds(out, 8 << 20), "8 MiB recorded in the partial's sidecar", 30_000, 50);
          process.kill(first.child.pid!, "SIGTERM");
          assert.equal(await first.exited(10_000), 0, first.stderr());
          await sleep(200); // the last lines of its output
          const kept = first.events.find((e) => e.event === "failed");
          assert.match(String(kept?.error), /shutting down; kept [\d,]+ bytes in .* for --resume/);
          // The client is told, and stops.
          assert.equal(await slow.exited, 1);
          assert.match(String(lastJson(slow.stdout()).response), /shutting down/);
          const { part, sidecar } = partials(out);
          assert.ok(part && sidecar, `partial and sidecar kept: ${listDir(out)}`);
          assert.equal(listDir(out).length, 2, `only the partial and its sidecar: ${listDir(out)}`);

          second = await startUdpServer(rt, out, true);
          const summary = await resume(rt, second.port, source, true);
          assertResumedWhole(summary, source, out);
        } finally {
          await first.stop();
          await second?.stop();
        }
      },
    );

    test(
      "without --resume a kept partial is not used: the transfer starts from empty",
      { timeout: 120_000 },
      async () => {
        const out = freshDir();
        const source = makeFile(freshDir(), "big.bin", SIZE);
        const srv = await startUdpServer(rt, out, false);
        try {
          const slow = startSlowClient(rt, srv.port, source, false);
          await waitUntil(() => holds(out, 8 << 20), "8 MiB recorded in the partial's sidecar", 30_000, 50);
          process.kill(slow.child.pid!, "SIGKILL");
          await slow.exited;
          // Past --idle-timeout (1 s) of silence the killed client's session gives way to a new sender.
          await sleep(2500);
          const res = await run(commandFor(rt, "udp/client.ts", clientArgs(srv.port, source, false)), {
            timeoutMs: 120_000,
          });
          assert.equal(res.code, 0, res.stderr);
          const summary = lastJson(res.stdout);
          assert.equal(summary.resumedBytes, undefined, "no --resume: no resumedBytes field");
          assert.equal(summary.sha256, sha256File(source));
          assert.deepEqual(listDir(out), ["received_big_udp.bin"]);
          assert.equal(sha256File(join(out, "received_big_udp.bin")), sha256File(source));
          const received = await srv.waitFor((e) => e.event === "received");
          assert.equal(received.resumedBytes, 0);
          assert.ok(
            srv.events.some((e) => e.event === "failed" && /kept [\d,]+ bytes/.test(String(e.error))),
          );
        } finally {
          await srv.stop();
        }
      },
    );
  });
}
