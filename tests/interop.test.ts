/**
 * Interoperability with independent peers: Python re-implementations of the
 * original course scripts (tests/peers/*.py), OpenBSD netcat and socat,
 * talking to our servers and clients over real sockets on 127.0.0.1.
 *
 * A test whose peer program is missing is skipped with a printed reason.
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import {
  hasCommand,
  lastJson,
  makeFile,
  ROOT,
  run,
  runEntry,
  type RunResult,
  type RuntimeInfo,
  runtimes,
  SAMPLE,
  sha256File,
  skipBecause,
  startServer,
  tempDir,
} from "./helpers.ts";

const RTS = runtimes();
const PEERS = join(ROOT, "tests", "peers");
const BUFFER = 4096;
const TEST_TIMEOUT = 60_000;

const dirs: string[] = [];
const live = new Set<ChildProcess>();

after(() => {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = tempDir("imgxfer-interop-");
  dirs.push(dir);
  return dir;
}

// ------------------------------------------------------------ peer tools ----

function ncIsOpenBsd(): boolean {
  const res = spawnSync("nc", ["-h"], { encoding: "utf8", timeout: 5000 });
  return /OpenBSD/i.test(`${res.stdout ?? ""}${res.stderr ?? ""}`);
}

/** Skip reasons (printed once), or false when the tool is available. */
const SKIP_PYTHON: string | false = hasCommand("python3") ? false : skipBecause("python3 is not installed");
const SKIP_NC: string | false = !hasCommand("nc")
  ? skipBecause("nc (OpenBSD netcat) is not installed")
  : !ncIsOpenBsd()
  ? skipBecause("nc is not OpenBSD netcat (these tests need its -N flag)")
  : false;
const SKIP_SOCAT: string | false = hasCommand("socat") ? false : skipBecause("socat is not installed");

/** The test files: the sample image and a generated file whose size is not a multiple of the buffer. */
const FILES_DIR = freshDir();
const GENERATED = makeFile(FILES_DIR, "generated.bin", 300_001);
const TCP_FILES: Array<{ label: string; path: string }> = [
  { label: "sample image", path: SAMPLE },
  { label: "generated 300 KB file", path: GENERATED },
];
const HASHES = new Map<string, string>([[SAMPLE, sha256File(SAMPLE)], [GENERATED, sha256File(GENERATED)]]);
const sizeOf = (path: string) => fs.statSync(path).size;
const chunksOf = (path: string) => Math.ceil(sizeOf(path) / BUFFER);

/** A peer program started in the background. */
interface Peer {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Waits for `re` in stdout or stderr; rejects if the process exits first or on timeout. */
  waitForOutput(re: RegExp, stream: "stdout" | "stderr", timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Waits for the exit code; rejects on timeout. */
  exited(timeoutMs?: number): Promise<number | null>;
  /** Kills it (SIGKILL) if still running and waits. */
  kill(): Promise<void>;
}

function spawnPeer(cmd: string[]): Peer {
  const child = spawn(cmd[0], cmd.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  const out = { stdout: "", stderr: "" };
  let exitCode: number | null | undefined;
  let spawnError: Error | undefined;
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of [...listeners]) l();
  };
  child.stdout!.on("data", (d) => {
    out.stdout += d.toString();
    notify();
  });
  child.stderr!.on("data", (d) => {
    out.stderr += d.toString();
    notify();
  });
  child.on("error", (e) => {
    spawnError = e;
    notify();
  });
  child.on("close", (code) => {
    exitCode = code;
    live.delete(child);
    notify();
  });
  const describeState = () => `cmd: ${cmd.join(" ")}\nstdout: ${out.stdout}\nstderr: ${out.stderr}`;
  const waitUntil = <T>(probe: () => T | undefined, what: string, timeoutMs: number) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        let value: T | undefined;
        try {
          value = probe();
        } catch (error) {
          cleanup();
          reject(error);
          return;
        }
        if (value !== undefined) {
          cleanup();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${what} within ${timeoutMs} ms\n${describeState()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });
  const exited = (timeoutMs = 15_000) =>
    waitUntil<{ code: number | null }>(
      () => {
        if (spawnError) throw spawnError;
        return exitCode === undefined ? undefined : { code: exitCode };
      },
      "peer did not exit",
      timeoutMs,
    ).then((r) => r.code);
  return {
    child,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    waitForOutput: (re, stream, timeoutMs = 10_000) =>
      waitUntil(
        () => {
          const match = re.exec(out[stream]);
          if (match) return match;
          if (spawnError) throw spawnError;
          if (exitCode !== undefined) {
            throw new Error(`peer exited (${exitCode}) before printing ${re}\n${describeState()}`);
          }
          return undefined;
        },
        `no ${re} on ${stream}`,
        timeoutMs,
      ),
    exited,
    async kill() {
      if (exitCode !== undefined || spawnError) return;
      child.kill("SIGKILL");
      await exited(5000).catch(() => {});
    },
  };
}

/** A port that was free a moment ago: bind port 0, read it, close. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a listening peer that cannot pick its own port (nc, socat) on a
 * free port, and waits for its "listening" log line. Retries with another
 * port if the peer exits early (the port was taken in between).
 */
async function startListeningPeer(
  makeCmd: (port: number) => string[],
  ready: RegExp,
): Promise<{ peer: Peer; port: number }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const peer = spawnPeer(makeCmd(port));
    try {
      await peer.waitForOutput(ready, "stderr", 5000);
      return { peer, port };
    } catch (error) {
      lastError = error;
      if (peer.child.exitCode === null && peer.child.signalCode === null) {
        // Still running but silent: carry on, the client retries its connect.
        return { peer, port };
      }
      await peer.kill();
    }
  }
  throw new Error(`could not start the listening peer: ${lastError}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs one of our clients, retrying briefly while the connection is refused
 * (a listening peer may not have reached accept() yet). Each attempt that is
 * refused never reached the peer, so the retry is harmless.
 */
async function runClientUntilAccepted(rt: RuntimeInfo, script: string, args: string[]): Promise<RunResult> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const res = await runEntry(rt, script, args, { timeoutMs: 30_000 });
    if (res.code === 4 && /refused/i.test(res.stderr) && performance.now() < deadline) {
      await sleep(100);
      continue;
    }
    return res;
  }
}

/** Starts a Python server peer with --port 0 and returns it with the port it printed. */
async function startPythonServer(script: string, out: string): Promise<{ peer: Peer; port: number }> {
  const peer = spawnPeer([
    "python3",
    "-u",
    join(PEERS, script),
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--buffer",
    String(BUFFER),
    "--out",
    out,
  ]);
  const match = await peer.waitForOutput(/listening on 127\.0\.0\.1:(\d+)/i, "stdout", 10_000);
  return { peer, port: Number(match[1]) };
}

/** Checks our TCP server's `received` event for a classic transfer of `source`. */
async function assertTcpReceived(
  srv: Awaited<ReturnType<typeof startServer>>,
  out: string,
  source: string,
): Promise<void> {
  const rec = await srv.waitFor((e) => e.event === "received");
  assert.equal(rec.mode, "classic");
  assert.equal(rec.complete, true);
  assert.equal(rec.bytes, sizeOf(source));
  assert.equal(rec.sha256, HASHES.get(source));
  assert.equal(rec.path, join(out, "received_input.jpeg"));
  assert.equal(sha256File(join(out, "received_input.jpeg")), HASHES.get(source));
  assert.equal(await srv.exited(), 0);
}

// ----------------------------------------------------------------- tests ----

for (const rt of RTS) {
  describe(`interop (${rt.name})`, () => {
    // ---------------------------------------------------------- Python ----
    for (const { label, path } of TCP_FILES) {
      test(`Python TCP client -> our TCP server: ${label}`, {
        timeout: TEST_TIMEOUT,
        skip: SKIP_PYTHON,
      }, async () => {
        const out = freshDir();
        const srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--once"]);
        try {
          const res = await run([
            "python3",
            "-u",
            join(PEERS, "tcp_client.py"),
            "--host",
            "127.0.0.1",
            "--port",
            String(srv.port),
            "--file",
            path,
            "--buffer",
            String(BUFFER),
          ], { timeoutMs: 30_000 });
          assert.equal(res.code, 0, res.stderr);
          assert.match(res.stdout, /\[\*\] Server response: SUCCESS: File received\n/);
          assert.match(res.stdout, /=== TCP Transfer Summary ===/);
          assert.match(res.stdout, new RegExp(`Chunks sent : ${chunksOf(path)}\\n`));
          await assertTcpReceived(srv, out, path);
        } finally {
          await srv.stop();
        }
      });

      test(`our TCP client --classic -> Python TCP server: ${label}`, {
        timeout: TEST_TIMEOUT,
        skip: SKIP_PYTHON,
      }, async () => {
        const out = freshDir();
        const { peer, port } = await startPythonServer("tcp_server.py", out);
        try {
          const res = await runEntry(rt, "tcp/client.ts", [
            "--host",
            "127.0.0.1",
            "--port",
            String(port),
            "--file",
            path,
            "--buffer",
            String(BUFFER),
            "--classic",
            "--json",
          ], { timeoutMs: 30_000 });
          assert.equal(res.code, 0, res.stderr);
          const summary = lastJson(res.stdout);
          assert.equal(summary.status, "success");
          assert.equal(summary.mode, "classic");
          assert.equal(summary.response, "SUCCESS: File received");
          assert.equal(summary.bytes, sizeOf(path));
          assert.equal(summary.chunks, chunksOf(path));
          // Classic TCP carries no digest, so the client does not spend time computing one.
          assert.equal(summary.sha256, undefined);
          assert.equal(await peer.exited(), 0, peer.stderr());
          assert.match(peer.stdout(), /\[\*\] Connection established from \('127\.0\.0\.1', \d+\)/);
          assert.match(peer.stdout(), /\[\*\] Confirmation sent to client\.\n\[\*\] Server shutdown\.\n/);
          assert.equal(sha256File(join(out, "received_input.jpeg")), HASHES.get(path));
        } finally {
          await peer.kill();
        }
      });
    }

    test("Python UDP client -> our UDP server: sample image", {
      timeout: TEST_TIMEOUT,
      skip: SKIP_PYTHON,
    }, async () => {
      const out = freshDir();
      const srv = await startServer(rt, "udp/server.ts", ["--out", out, "--once"]);
      try {
        const res = await run([
          "python3",
          "-u",
          join(PEERS, "udp_client.py"),
          "--host",
          "127.0.0.1",
          "--port",
          String(srv.port),
          "--file",
          SAMPLE,
          "--buffer",
          String(BUFFER),
        ], { timeoutMs: 30_000 });
        assert.equal(res.code, 0, res.stderr);
        assert.match(res.stdout, /\[\*\] Server response: SUCCESS: File received via UDP\n/);
        assert.match(res.stdout, /=== UDP Transfer Summary ===/);
        assert.match(res.stdout, new RegExp(`Packets sent : ${chunksOf(SAMPLE)}\\n`));
        const rec = await srv.waitFor((e) => e.event === "received");
        assert.equal(rec.complete, true);
        assert.equal(rec.mode, "classic");
        assert.equal(rec.sha256, HASHES.get(SAMPLE));
        assert.equal(rec.path, join(out, "received_input_udp.jpeg"));
        assert.equal(sha256File(join(out, "received_input_udp.jpeg")), HASHES.get(SAMPLE));
        assert.equal(await srv.exited(), 0);
      } finally {
        await srv.stop();
      }
    });

    for (const bare of [false, true]) {
      const flag = bare
        ? " --classic --bare-marker (bare 4-byte marker)"
        : " --classic (marker with end trailer)";
      test(`our UDP client${flag} -> Python UDP server: sample image`, {
        timeout: TEST_TIMEOUT,
        skip: SKIP_PYTHON,
      }, async () => {
        const out = freshDir();
        const { peer, port } = await startPythonServer("udp_server.py", out);
        try {
          const args = [
            "--host",
            "127.0.0.1",
            "--port",
            String(port),
            "--file",
            SAMPLE,
            "--buffer",
            String(BUFFER),
            "--json",
          ];
          args.push("--classic");
          if (bare) args.push("--bare-marker");
          const res = await runEntry(rt, "udp/client.ts", args, { timeoutMs: 30_000 });
          assert.equal(res.code, 0, res.stderr);
          const summary = lastJson(res.stdout);
          assert.equal(summary.status, "success");
          assert.equal(summary.response, "SUCCESS: File received via UDP");
          assert.equal(summary.packets, chunksOf(SAMPLE));
          assert.equal(summary.confirmedBytes, sizeOf(SAMPLE));
          assert.equal(await peer.exited(), 0, peer.stderr());
          assert.match(peer.stdout(), /\[\*\] Confirmation sent to client\.\n\[\*\] Server shutdown\.\n/);
          assert.equal(sha256File(join(out, "received_input_udp.jpeg")), HASHES.get(SAMPLE));
        } finally {
          await peer.kill();
        }
      });
    }

    // ---------------------------------------------------- nc and socat ----
    for (const { label, path } of TCP_FILES) {
      test(`nc -N -> our TCP server: ${label}`, { timeout: TEST_TIMEOUT, skip: SKIP_NC }, async () => {
        const out = freshDir();
        const srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--once"]);
        try {
          const res = await run(
            ["sh", "-c", 'exec nc -N 127.0.0.1 "$1" < "$2"', "sh", String(srv.port), path],
            { timeoutMs: 30_000 },
          );
          assert.equal(res.code, 0, res.stderr);
          assert.equal(res.stdout, "SUCCESS: File received"); // nc prints the server's reply
          await assertTcpReceived(srv, out, path);
        } finally {
          await srv.stop();
        }
      });

      test(`socat -> our TCP server: ${label}`, { timeout: TEST_TIMEOUT, skip: SKIP_SOCAT }, async () => {
        const out = freshDir();
        const srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--once"]);
        try {
          const res = await run(
            ["socat", "-u", `OPEN:${path}`, `TCP:127.0.0.1:${srv.port}`],
            { timeoutMs: 30_000 },
          );
          assert.equal(res.code, 0, res.stderr);
          await assertTcpReceived(srv, out, path);
        } finally {
          await srv.stop();
        }
      });

      const peers = [
        {
          name: "nc -l",
          skip: SKIP_NC,
          start: (target: string) =>
            startListeningPeer(
              (port) => ["sh", "-c", 'exec nc -v -l 127.0.0.1 "$1" > "$2"', "sh", String(port), target],
              /Listening/i,
            ),
        },
        {
          name: "socat TCP-LISTEN",
          skip: SKIP_SOCAT,
          start: (target: string) =>
            startListeningPeer(
              (port) => [
                "socat",
                "-d",
                "-d",
                "-u",
                `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`,
                `OPEN:${target},creat,trunc`,
              ],
              /listening on/i,
            ),
        },
      ];
      for (const p of peers) {
        test(`our TCP client --classic -> ${p.name}: ${label}`, {
          timeout: TEST_TIMEOUT,
          skip: p.skip,
        }, async () => {
          const out = freshDir();
          const target = join(out, "out.bin");
          const { peer, port } = await p.start(target);
          try {
            const res = await runClientUntilAccepted(rt, "tcp/client.ts", [
              "--host",
              "127.0.0.1",
              "--port",
              String(port),
              "--file",
              path,
              "--buffer",
              String(BUFFER),
              "--classic",
              "--json",
            ]);
            assert.equal(res.code, 0, res.stderr);
            const summary = lastJson(res.stdout);
            assert.equal(summary.status, "unconfirmed"); // these peers send no reply
            assert.equal(summary.response, "");
            assert.equal(summary.bytes, sizeOf(path));
            assert.equal(summary.chunks, chunksOf(path));
            assert.equal(await peer.exited(), 0, peer.stderr());
            assert.equal(sha256File(target), HASHES.get(path));
          } finally {
            await peer.kill();
          }
        });
      }
    }
  });
}
