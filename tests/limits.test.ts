/**
 * Server limits and shutdown, run as real processes on every runtime found:
 * `--max-size` (framed and reliable senders refused before a byte is written,
 * classic streams cut off), `--max-clients` (a clear BUSY refusal), graceful
 * shutdown on SIGTERM with `--shutdown-grace` (transfers in progress may
 * finish, stalled ones are cut and leave nothing behind), and the warning
 * that the servers accept files from anyone.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { encodeFramedHeader, FramedStatus, parseFramedReply } from "../shared/protocol.ts";
import {
  lastJson,
  listDir,
  makeFile,
  runEntry,
  type RuntimeInfo,
  runtimes,
  SAMPLE,
  ScratchDirs,
  type ServerProcess,
  sha256File,
  sleep,
  startServer,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = runtimes();
const SAMPLE_BYTES = 61306;
const LIMIT = 10 * 1024; // --max-size 10K
const SMALL = 5 * 1024;

const scratch = new ScratchDirs("imgxfer-limits-");
after(() => scratch.cleanup());
const freshDir = (): string => scratch.fresh();

/** Polls `check` every 20 ms until it returns true; fails after `timeoutMs`. */
async function until(check: () => boolean, what: string, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Files left behind by an unfinished transfer: hidden temporary `.part` files. */
function partFiles(dir: string): string[] {
  return listDir(dir).filter((f) => f.endsWith(".part"));
}

/** The folder holds one resumable partial (of a cut framed transfer), with exactly `bytes`. */
function assertOnlyPartial(dir: string, bytes: Uint8Array): void {
  const files = listDir(dir);
  assert.equal(files.length, 1, `expected one partial, found: ${files.join(", ")}`);
  assert.match(files[0], /^\.received_big\.bin\.[0-9a-f]+\.resume\.part$/);
  assert.ok(fs.readFileSync(join(dir, files[0])).equals(bytes), "the partial is not the bytes received");
}

/** A raw TCP connection that records what it receives and when it closes. */
interface RawConn {
  sock: net.Socket;
  received(): Uint8Array;
  closed: Promise<void>;
  isClosed(): boolean;
  write(bytes: Uint8Array): Promise<void>;
}

function connectRaw(port: number, timeoutMs = 5000): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks: Uint8Array[] = [];
    let isClosed = false;
    const closed = new Promise<void>((res) => sock.once("close", () => (isClosed = true, res())));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no connection to 127.0.0.1:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("data", (d: Uint8Array) => chunks.push(new Uint8Array(d)));
    sock.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    sock.on("error", () => {/* reset by the server: seen through `closed` */});
    sock.once("connect", () => {
      clearTimeout(timer);
      resolve({
        sock,
        received: () => new Uint8Array(Buffer.concat(chunks)),
        closed,
        isClosed: () => isClosed,
        write: (bytes) =>
          new Promise<void>((res, rej) => sock.write(bytes, (error) => (error ? rej(error) : res()))),
      });
    });
  });
}

/** Tries to connect: `"refused"` when nothing listens, else `"connected"` (the socket is closed again). */
function tryConnect(port: number, timeoutMs = 3000): Promise<"refused" | "connected" | string> {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => {
      sock.destroy();
      resolve("timeout");
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.destroy();
      resolve("connected");
    });
    sock.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code === "ECONNREFUSED" ? "refused" : `error ${error.code}`);
    });
  });
}

/**
 * Waits until a freshly started server can take a signal: its `listening`
 * event comes before it installs its SIGINT/SIGTERM handlers, so a signal
 * sent at once kills it (exit 143, no `shutdown` event). Waits for the
 * warning printed just before the handlers, then a little more.
 */
async function readyForSignals(srv: ServerProcess): Promise<void> {
  await until(() => warningLines(srv.stderr()).length > 0, "the start-up warning", 5000);
  await sleep(300);
}

/** Sends SIGTERM (process.kill, not child.kill(): see tests/relay.test.ts) and returns the time. */
function sigterm(srv: ServerProcess): number {
  process.kill(srv.child.pid!, "SIGTERM");
  return performance.now();
}

/** Counts the `[!] no authentication:` lines on a server's stderr. */
function warningLines(stderr: string): string[] {
  return stderr.split(/\r?\n/).filter((l) => l.includes("no authentication"));
}

for (const rt of RTS) {
  describe(`${rt.name}: --max-size`, () => {
    test(
      "TCP --max-size 10K refuses the sample (framed and classic), lets 5 KB through, leaves nothing else",
      {
        timeout: 90000,
      },
      async () => {
        const out = freshDir();
        const src = freshDir();
        const small = makeFile(src, "small.bin", SMALL);
        const srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--max-size", "10K"]);
        try {
          const base = ["--port", String(srv.port), "--json"];

          // Framed: refused from the header, before a byte is written.
          const framed = await runEntry(rt, "tcp/client.ts", [...base, "--file", SAMPLE], {
            timeoutMs: 30000,
          });
          assert.equal(framed.code, 1, `stdout: ${framed.stdout}\nstderr: ${framed.stderr}`);
          const fs1 = lastJson(framed.stdout);
          assert.equal(fs1.status, "refused", framed.stdout);
          assert.equal(fs1.verified, false);
          assert.equal(fs1.confirmedBytes, 0);
          const fResponse = String(fs1.response);
          assert.match(fResponse, /^REFUSED/, fResponse);
          assert.ok(fResponse.includes(String(LIMIT)), `the limit is not named: ${fResponse}`);
          assert.ok(fResponse.includes(String(SAMPLE_BYTES)), `the file size is not named: ${fResponse}`);
          assert.match(framed.stderr, /tcp-client: .*limit of 10240/, framed.stderr);

          // Classic: cut off once the stream passes the limit; the reply says why.
          const classic = await runEntry(rt, "tcp/client.ts", [...base, "--file", SAMPLE, "--classic"], {
            timeoutMs: 30000,
          });
          assert.equal(classic.code, 1, `stdout: ${classic.stdout}\nstderr: ${classic.stderr}`);
          const cs = lastJson(classic.stdout);
          assert.equal(cs.status, "error", classic.stdout);
          assert.equal(cs.confirmedBytes, 0);
          const cResponse = String(cs.response);
          assert.match(cResponse, /^REFUSED/, cResponse);
          assert.ok(cResponse.includes(String(LIMIT)), `the limit is not named: ${cResponse}`);

          // A file under the limit passes, verified.
          const ok = await runEntry(rt, "tcp/client.ts", [...base, "--file", small], { timeoutMs: 30000 });
          assert.equal(ok.code, 0, `stdout: ${ok.stdout}\nstderr: ${ok.stderr}`);
          const os = lastJson(ok.stdout);
          assert.equal(os.status, "success");
          assert.equal(os.verified, true);
          const rec = await srv.waitFor((e) => e.event === "received");
          assert.equal(rec.bytes, SMALL);
          assert.equal(rec.path, join(out, "received_small.bin"));

          // Both refusals were logged as failures with nothing saved.
          const failed = srv.events.filter((e) => e.event === "failed");
          assert.equal(failed.length, 2, JSON.stringify(srv.events));
          for (const f of failed) assert.match(String(f.error), /nothing saved/, JSON.stringify(f));

          // Only the small file: no leftovers, no temporary files.
          assert.deepEqual(listDir(out), ["received_small.bin"]);
          assert.equal(sha256File(join(out, "received_small.bin")), sha256File(small));
        } finally {
          await srv.stop();
        }
        assert.deepEqual(partFiles(out), []);
      },
    );

    test("UDP (reliable) --max-size 10K refuses the sample before writing, lets 5 KB through", {
      timeout: 90000,
    }, async () => {
      const out = freshDir();
      const src = freshDir();
      const small = makeFile(src, "small.bin", SMALL);
      const srv = await startServer(rt, "udp/server.ts", ["--out", out, "--max-size", "10K"]);
      try {
        const base = ["--port", String(srv.port), "--json"];
        const refused = await runEntry(rt, "udp/client.ts", [...base, "--file", SAMPLE], {
          timeoutMs: 30000,
        });
        assert.equal(refused.code, 1, `stdout: ${refused.stdout}\nstderr: ${refused.stderr}`);
        const rs = lastJson(refused.stdout);
        assert.equal(rs.mode, "reliable");
        assert.equal(rs.status, "refused", refused.stdout);
        assert.equal(rs.confirmedBytes, 0);
        const response = String(rs.response);
        assert.match(response, /REFUSED/, response);
        assert.ok(response.includes(String(LIMIT)), `the limit is not named: ${response}`);
        const failed = await srv.waitFor((e) => e.event === "failed");
        assert.match(String(failed.error), /limit/, JSON.stringify(failed));
        assert.deepEqual(listDir(out), [], "nothing may be written for a refused transfer");

        const ok = await runEntry(rt, "udp/client.ts", [...base, "--file", small], { timeoutMs: 30000 });
        assert.equal(ok.code, 0, `stdout: ${ok.stdout}\nstderr: ${ok.stderr}`);
        const os = lastJson(ok.stdout);
        assert.equal(os.status, "success");
        assert.equal(os.verified, true);
        const rec = await srv.waitFor((e) => e.event === "received");
        assert.equal(rec.bytes, SMALL);
        assert.deepEqual(listDir(out), ["received_small_udp.bin"]);
        assert.equal(sha256File(join(out, "received_small_udp.bin")), sha256File(small));
      } finally {
        await srv.stop();
      }
      assert.deepEqual(partFiles(out), []);
    });

    test(
      "--max-size is inclusive: exactly 10K passes, one byte more is refused (TCP framed/classic, UDP reliable)",
      {
        timeout: 90000,
      },
      async () => {
        const src = freshDir();
        const exact = makeFile(src, "exact.bin", LIMIT);
        const over = makeFile(src, "over.bin", LIMIT + 1);
        const tcpOut = freshDir();
        const udpOut = freshDir();
        const tcp = await startServer(rt, "tcp/server.ts", ["--out", tcpOut, "--max-size", "10K"]);
        const udp = await startServer(rt, "udp/server.ts", ["--out", udpOut, "--max-size", "10K"]);
        try {
          const cases: Array<[string, number, string[], string, number, string]> = [
            ["tcp/client.ts", tcp.port, [], exact, 0, "success"],
            ["tcp/client.ts", tcp.port, [], over, 1, "refused"],
            ["tcp/client.ts", tcp.port, ["--classic"], over, 1, "error"],
            ["udp/client.ts", udp.port, [], exact, 0, "success"],
            ["udp/client.ts", udp.port, [], over, 1, "refused"],
          ];
          for (const [client, port, extra, file, code, status] of cases) {
            const args = ["--port", String(port), "--json", "--file", file, ...extra];
            const res = await runEntry(rt, client, args, { timeoutMs: 30000 });
            const label = `${client} ${extra.join(" ")} ${file}`;
            assert.equal(res.code, code, `${label}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
            assert.equal(lastJson(res.stdout).status, status, `${label}: ${res.stdout}`);
          }
          await tcp.waitFor((e) => e.event === "received");
          await udp.waitFor((e) => e.event === "received");
          assert.deepEqual(listDir(tcpOut), ["received_exact.bin"]);
          assert.deepEqual(listDir(udpOut), ["received_exact_udp.bin"]);
          assert.equal(sha256File(join(tcpOut, "received_exact.bin")), sha256File(exact));
          assert.equal(sha256File(join(udpOut, "received_exact_udp.bin")), sha256File(exact));
        } finally {
          await tcp.stop();
          await udp.stop();
        }
      },
    );
  });

  describe(`${rt.name}: --max-clients`, () => {
    test("TCP --max-clients 1: a second sender is refused with BUSY, then served once the slot frees", {
      timeout: 90000,
    }, async () => {
      const out = freshDir();
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--max-clients", "1"]);
      let raw: RawConn | undefined;
      try {
        // Hold the only slot: a framed header cut short, then silence.
        raw = await connectRaw(srv.port);
        const header = encodeFramedHeader({ name: "held.bin", size: 1000 });
        await raw.write(header.subarray(0, 12));
        const local = `127.0.0.1:${raw.sock.localPort}`;
        await srv.waitFor((e) => e.event === "connection" && e.from === local);

        const busy = await runEntry(rt, "tcp/client.ts", [
          "--port",
          String(srv.port),
          "--file",
          SAMPLE,
          "--json",
        ], {
          timeoutMs: 30000,
        });
        assert.equal(busy.code, 1, `stdout: ${busy.stdout}\nstderr: ${busy.stderr}`);
        const bs = lastJson(busy.stdout);
        assert.equal(bs.status, "refused", busy.stdout);
        assert.match(String(bs.response), /BUSY/, busy.stdout);
        assert.match(busy.stderr, /BUSY/, busy.stderr);
        assert.ok(
          srv.events.some((e) => e.event === "failed" && /BUSY/.test(String(e.error))),
          JSON.stringify(srv.events),
        );
        assert.equal(raw.isClosed(), false, "the held connection must not be dropped by the refusal");

        // Free the slot: the server answers the short header and closes; then a transfer succeeds.
        raw.sock.end();
        await raw.closed;
        await srv.waitFor((e) => e.event === "failed" && e.from === local);
        await sleep(300);
        const ok = await runEntry(rt, "tcp/client.ts", [
          "--port",
          String(srv.port),
          "--file",
          SAMPLE,
          "--json",
        ], {
          timeoutMs: 30000,
        });
        assert.equal(ok.code, 0, `stdout: ${ok.stdout}\nstderr: ${ok.stderr}`);
        assert.equal(lastJson(ok.stdout).status, "success");
        await srv.waitFor((e) => e.event === "received");
        assert.deepEqual(listDir(out), ["received_input.jpeg"]);
        assert.equal(sha256File(join(out, "received_input.jpeg")), sha256File(SAMPLE));
      } finally {
        raw?.sock.destroy();
        await srv.stop();
      }
    });
  });

  describe(`${rt.name}: graceful shutdown`, () => {
    const TOTAL = 1 << 20;
    const FIRST = 100 * 1024;

    /** Starts a framed transfer of `data` by hand: the header and the first FIRST bytes, then a pause. */
    async function startStalledTransfer(srv: ServerProcess, out: string, data: Uint8Array): Promise<RawConn> {
      await readyForSignals(srv);
      const raw = await connectRaw(srv.port);
      await raw.write(encodeFramedHeader({ name: "big.bin", size: data.length }));
      await raw.write(data.subarray(0, FIRST));
      // In progress: the temporary file holds the first bytes.
      await until(() => {
        const part = partFiles(out)[0];
        return part !== undefined && fs.statSync(join(out, part)).size >= FIRST;
      }, "the first 100 KB in a .part file");
      return raw;
    }

    test(
      "TCP SIGTERM: stops accepting, waits the grace period for a stalled transfer, exits 0, keeps only its partial",
      {
        timeout: 60000,
      },
      async () => {
        const out = freshDir();
        const data = new Uint8Array(randomBytes(TOTAL));
        const srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--shutdown-grace", "2"]);
        let raw: RawConn | undefined;
        try {
          raw = await startStalledTransfer(srv, out, data);
          const t0 = sigterm(srv);
          await sleep(400);
          assert.equal(await tryConnect(srv.port), "refused", "the server must stop accepting at once");
          assert.equal(raw.isClosed(), false, "the transfer in progress must get its grace period");
          const shutdown = await srv.waitFor((e) => e.event === "shutdown", 10000);
          const elapsed = performance.now() - t0;
          assert.equal(shutdown.transport, "tcp");
          assert.equal(await srv.exited(10000), 0, srv.stderr());
          assert.ok(elapsed >= 1800, `stopped after ${elapsed.toFixed(0)} ms, before the 2 s grace period`);
          assert.ok(
            elapsed <= 4500,
            `stopped after ${elapsed.toFixed(0)} ms, long after the 2 s grace period`,
          );
          assert.ok(!srv.events.some((e) => e.event === "received"), JSON.stringify(srv.events));
          const failed = srv.events.find((e) => e.event === "failed");
          assert.ok(failed, `no failed event for the cut transfer: ${JSON.stringify(srv.events)}`);
          // The cut transfer's bytes stay for a client's --resume, and nothing else.
          assert.match(String(failed.error), /shutting down; kept 102,400 bytes in .* for --resume/);
          await Promise.race([raw.closed, sleep(3000)]);
          assert.equal(raw.isClosed(), true, "the stalled connection must be closed");
          assertOnlyPartial(out, data.subarray(0, FIRST));
        } finally {
          raw?.sock.destroy();
          await srv.stop();
        }
      },
    );

    test(
      "TCP SIGTERM: a transfer that completes within the grace period is saved and verified, then exit 0",
      {
        timeout: 60000,
      },
      async () => {
        const out = freshDir();
        const data = new Uint8Array(randomBytes(TOTAL));
        const digest = new Uint8Array(createHash("sha256").update(data).digest());
        const srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--shutdown-grace", "2"]);
        let raw: RawConn | undefined;
        try {
          raw = await startStalledTransfer(srv, out, data);
          const t0 = sigterm(srv);
          await sleep(300);
          assert.equal(await tryConnect(srv.port), "refused", "the server must stop accepting at once");
          await raw.write(data.subarray(FIRST));
          await raw.write(digest);
          raw.sock.end();
          await Promise.race([raw.closed, sleep(5000)]);
          const parsed = parseFramedReply(raw.received());
          assert.ok("value" in parsed, `no complete framed reply (${raw.received().length} bytes)`);
          assert.equal(parsed.value.status, FramedStatus.OK, parsed.value.message);
          assert.equal(parsed.value.bytes, TOTAL);
          assert.deepEqual(parsed.value.digest, digest);

          const rec = await srv.waitFor((e) => e.event === "received", 5000);
          assert.equal(rec.verified, true);
          assert.equal(rec.bytes, TOTAL);
          await srv.waitFor((e) => e.event === "shutdown", 10000);
          assert.equal(await srv.exited(10000), 0, srv.stderr());
          const elapsed = performance.now() - t0;
          assert.ok(elapsed <= 4500, `stopped after ${elapsed.toFixed(0)} ms`);
          const order = srv.events.map((e) => e.event);
          assert.ok(order.indexOf("received") < order.indexOf("shutdown"), order.join(", "));
          assert.deepEqual(listDir(out), ["received_big.bin"]);
          assert.equal(sha256File(join(out, "received_big.bin")), Buffer.from(digest).toString("hex"));
        } finally {
          raw?.sock.destroy();
          await srv.stop();
        }
      },
    );

    test(
      "TCP: SIGINT starts the graceful stop, a second SIGINT stops at once",
      { timeout: 60000 },
      async () => {
        const out = freshDir();
        const data = new Uint8Array(randomBytes(TOTAL));
        const srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--shutdown-grace", "20"]);
        let raw: RawConn | undefined;
        try {
          raw = await startStalledTransfer(srv, out, data);
          const t0 = performance.now();
          process.kill(srv.child.pid!, "SIGINT");
          await sleep(500);
          assert.equal(await tryConnect(srv.port), "refused", "the first SIGINT must stop accepting");
          assert.equal(
            srv.events.some((e) => e.event === "shutdown"),
            false,
            "stopped before the grace period",
          );
          process.kill(srv.child.pid!, "SIGINT");
          await srv.waitFor((e) => e.event === "shutdown", 5000);
          assert.equal(await srv.exited(5000), 0, srv.stderr());
          const elapsed = performance.now() - t0;
          assert.ok(elapsed < 3000, `the second signal took ${elapsed.toFixed(0)} ms to stop the server`);
          assert.ok(!srv.events.some((e) => e.event === "received"), JSON.stringify(srv.events));
          assertOnlyPartial(out, data.subarray(0, FIRST));
        } finally {
          raw?.sock.destroy();
          await srv.stop();
        }
      },
    );

    test("UDP SIGTERM on an idle server: shutdown event, exit 0 promptly", { timeout: 30000 }, async () => {
      const out = freshDir();
      const srv = await startServer(rt, "udp/server.ts", ["--out", out]);
      try {
        await readyForSignals(srv);
        const t0 = sigterm(srv);
        const shutdown = await srv.waitFor((e) => e.event === "shutdown", 5000);
        assert.equal(shutdown.transport, "udp");
        assert.equal(await srv.exited(5000), 0, srv.stderr());
        const elapsed = performance.now() - t0;
        assert.ok(elapsed < 2000, `an idle server took ${elapsed.toFixed(0)} ms to stop`);
        assert.deepEqual(listDir(out), []);
      } finally {
        await srv.stop();
      }
    });

    test(
      "UDP SIGTERM during a slow reliable transfer: new senders get BUSY, the cut transfer leaves only its resumable partial",
      {
        timeout: 60000,
      },
      async () => {
        const out = freshDir();
        const srv = await startServer(rt, "udp/server.ts", ["--out", out, "--shutdown-grace", "3"]);
        try {
          await readyForSignals(srv);
          const big = makeFile(freshDir(), "big.bin", 1 << 20);
          const base = ["--port", String(srv.port), "--json"];
          // 0.4 Mbit/s = 50 KB/s after a 64 KB burst: 1 MiB would take about 20 s.
          const slowArgs = [...base, "--file", big, "--rate", "0.4", "--buffer", "1024"];
          const slow = runEntry(rt, "udp/client.ts", slowArgs, { timeoutMs: 40000 });
          await srv.waitFor((e) => e.event === "connection", 15000);
          await sleep(300);
          assert.equal(partFiles(out).length, 1, "the slow transfer should be in progress");
          const t0 = sigterm(srv);
          await sleep(200);
          const busy = await runEntry(rt, "udp/client.ts", [...base, "--file", SAMPLE], { timeoutMs: 30000 });
          assert.equal(busy.code, 1, `stdout: ${busy.stdout}\nstderr: ${busy.stderr}`);
          const bs = lastJson(busy.stdout);
          assert.equal(bs.status, "refused", busy.stdout);
          assert.match(String(bs.response), /BUSY/, busy.stdout);

          await srv.waitFor((e) => e.event === "shutdown", 10000);
          assert.equal(await srv.exited(10000), 0, srv.stderr());
          const elapsed = performance.now() - t0;
          assert.ok(elapsed >= 2700, `stopped after ${elapsed.toFixed(0)} ms, before the 3 s grace period`);
          assert.ok(elapsed <= 6000, `stopped after ${elapsed.toFixed(0)} ms`);
          assert.ok(!srv.events.some((e) => e.event === "received"), JSON.stringify(srv.events));
          // Only the partial kept for --resume (and its sidecar of held chunks) may be left.
          const failed = srv.events.find((e) => e.event === "failed" && /kept/.test(String(e.error)));
          assert.match(
            String(failed?.error),
            /shutting down; kept [\d,]+ bytes in .* for --resume/,
            JSON.stringify(srv.events),
          );
          const left = listDir(out);
          assert.equal(left.length, 2, `left: ${left.join(", ")}`);
          assert.ok(
            left.every((n) => /^\.received_big_udp\.bin\.[0-9a-f]{24}\.resume\.part(\.json)?$/.test(n)),
            left.join(", "),
          );

          const slowRes = await slow;
          assert.equal(slowRes.code, 1, `stdout: ${slowRes.stdout}\nstderr: ${slowRes.stderr}`);
          assert.notEqual(lastJson(slowRes.stdout).status, "success");
        } finally {
          await srv.stop();
        }
      },
    );
  });

  describe(`${rt.name}: no-authentication warning`, () => {
    for (const script of ["tcp/server.ts", "udp/server.ts"]) {
      test(`${script} warns once on stderr at start, naming the address`, { timeout: 30000 }, async () => {
        const out = freshDir();
        const srv = await startServer(rt, script, ["--out", out]);
        try {
          await readyForSignals(srv);
          const where = `127.0.0.1:${srv.port}`;
          // Still once after some time and a stop.
          sigterm(srv);
          assert.equal(await srv.exited(10000), 0, srv.stderr());
          const lines = warningLines(srv.stderr());
          assert.equal(lines.length, 1, srv.stderr());
          assert.match(lines[0], /^\[!\] no authentication: /, lines[0]);
          assert.ok(lines[0].includes(where), `the warning does not name ${where}: ${lines[0]}`);
          assert.ok(lines[0].includes(out), `the warning does not name the folder: ${lines[0]}`);
        } finally {
          await srv.stop();
        }
      });
    }
  });
}
