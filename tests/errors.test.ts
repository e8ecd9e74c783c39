/**
 * Error paths of the four entry points, run as real processes on Deno and
 * Bun: each failure must end with its documented exit code and exactly one
 * line on stderr that says what went wrong, never a stack trace.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { encodeFramedHeader } from "../shared/protocol.ts";
import {
  listDir,
  makeFile,
  ROOT,
  runEntry,
  type RuntimeInfo,
  runtimeNamed,
  SAMPLE,
  sha256File,
  skipBecause,
  startServer,
  tempDir,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = [runtimeNamed("deno"), runtimeNamed("bun")];
const ENTRIES = ["tcp/server.ts", "tcp/client.ts", "udp/server.ts", "udp/client.ts"] as const;
type Entry = typeof ENTRIES[number];
const CLIENTS = ["tcp/client.ts", "udp/client.ts"] as const;
const SERVERS = ["tcp/server.ts", "udp/server.ts"] as const;
const PACKAGE_VERSION: string = JSON.parse(fs.readFileSync(join(ROOT, "package.json"), "utf8")).version;

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = tempDir();
  dirs.push(dir);
  return dir;
}

/** The program name an entry point prints its messages under: `tcp/client.ts` → `tcp-client`. */
function progName(entry: Entry): string {
  return entry.replace(/\.ts$/, "").replace("/", "-");
}

/**
 * Asserts that `stderr` is exactly one non-empty line, starts with the
 * program's name, matches `phrase`, and carries no stack trace.
 */
function assertOneLine(stderr: string, prog: string, phrase: RegExp): string {
  assert.ok(!stderr.includes("    at "), `stack trace on stderr:\n${stderr}`);
  assert.ok(!/error: Uncaught/i.test(stderr), `uncaught error on stderr:\n${stderr}`);
  // Progress logs (the original's "[*] …" lines) also go to stderr; the error is the one other line.
  const text = stderr.split(/\r?\n/).filter((l) => !l.startsWith("[*] ")).join("\n").trim();
  assert.notEqual(text, "", "no error line on stderr");
  const lines = text.split(/\r?\n/);
  assert.equal(lines.length, 1, `expected one line on stderr, got ${lines.length}:\n${stderr}`);
  assert.ok(text.startsWith(`${prog}:`), `stderr does not start with '${prog}:': ${text}`);
  assert.match(text, phrase);
  return text;
}

/** A TCP port on 127.0.0.1 with nothing listening (bound, then released). */
function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Extra flags that keep a server from binding a public address or writing in the repo. */
function serverSafety(entry: Entry, args: string[]): string[] {
  if (!entry.includes("server")) return args;
  const extra: string[] = [];
  if (!args.some((a) => a.startsWith("--host"))) extra.push("--host", "127.0.0.1");
  if (!args.some((a) => a.startsWith("--port"))) extra.push("--port", "0");
  if (!args.some((a) => a.startsWith("--out"))) extra.push("--out", freshDir());
  return [...args, ...extra];
}

// A 20 MB file for the vanishing-peer tests, made once.
let bigFile: string | undefined;
function big(): string {
  bigFile ??= makeFile(freshDir(), "big.bin", 20 << 20);
  return bigFile;
}

// Whether chmod 000 actually blocks reads for this user (it does not for root).
function chmodBlocksReads(): boolean {
  const dir = freshDir();
  const probe = join(dir, "probe.bin");
  fs.writeFileSync(probe, "x");
  fs.chmodSync(probe, 0o000);
  try {
    fs.closeSync(fs.openSync(probe, "r"));
    return false;
  } catch {
    return true;
  } finally {
    fs.chmodSync(probe, 0o644);
  }
}
const UNREADABLE_SKIP: string | false = chmodBlocksReads()
  ? false
  : skipBecause("chmod 000 does not block reads here (running as root?): unreadable-file tests skipped");

/** Bad flag values: entry, arguments, and a phrase the message must contain. All exit 2. */
const BAD_FLAGS: Array<[Entry, string[], RegExp]> = [
  ...ENTRIES.flatMap((e): Array<[Entry, string[], RegExp]> => [
    [e, ["--port", "70000"], /--port must be \d-65535, got 70000/],
    [e, ["--port", "abc"], /--port must be a whole number.*abc/],
    [e, ["--buffer", "0"], /--buffer must be 1-\d+.*got 0/],
    [e, ["--nope"], /unknown option --nope/],
  ]),
  ["udp/client.ts", ["--classic", "--buffer", "65504"], /--buffer must be 1-65503.*65504/],
  ["udp/client.ts", ["--buffer", "65492"], /--buffer must be 1-65491.*65492/],
  ["udp/server.ts", ["--buffer", "70000"], /--buffer must be 1-65503.*70000/],
  ["tcp/client.ts", ["--timeout", "-1"], /--timeout/],
  ["udp/client.ts", ["--timeout", "-1"], /--timeout/],
  ["tcp/client.ts", ["--timeout=-1"], /--timeout must be a positive number/],
  ["udp/client.ts", ["--timeout=-1"], /--timeout must be a positive number/],
  ["tcp/server.ts", ["--idle-timeout", "0"], /--idle-timeout must be a positive number/],
  ["udp/server.ts", ["--idle-timeout", "0"], /--idle-timeout must be a positive number/],
  ["tcp/client.ts", ["--port"], /--port.*needs a value/],
  ["udp/client.ts", ["stray"], /unexpected argument 'stray'/],
];

for (const rt of RTS) {
  describe(`${rt.name}: local file errors`, () => {
    for (const entry of CLIENTS) {
      const prog = progName(entry);
      test(`${entry} with a missing file exits 3`, { timeout: 30000 }, async () => {
        const missing = join(freshDir(), "does-not-exist.jpeg");
        const res = await runEntry(rt, entry, ["--port", "9", "--file", missing]);
        assert.equal(res.code, 3, res.stderr);
        const line = assertOneLine(res.stderr, prog, /no such file or directory/);
        assert.ok(line.includes(missing), `message does not name the file: ${line}`);
      });

      test(`${entry} with a directory as --file exits 3`, { timeout: 30000 }, async () => {
        const dir = freshDir();
        const res = await runEntry(rt, entry, ["--port", "9", "--file", dir]);
        assert.equal(res.code, 3, res.stderr);
        const line = assertOneLine(res.stderr, prog, /not a regular file|is a directory/);
        assert.ok(line.includes(dir), `message does not name the folder: ${line}`);
      });

      test(
        `${entry} with an unreadable file exits 3`,
        { timeout: 30000, skip: UNREADABLE_SKIP },
        async () => {
          const file = join(freshDir(), "secret.jpeg");
          fs.writeFileSync(file, "not for you");
          fs.chmodSync(file, 0o000);
          try {
            const res = await runEntry(rt, entry, ["--port", "9", "--file", file]);
            assert.equal(res.code, 3, res.stderr);
            assertOneLine(res.stderr, prog, /permission denied/);
          } finally {
            fs.chmodSync(file, 0o644);
          }
        },
      );
    }
  });

  describe(`${rt.name}: network errors`, () => {
    test("tcp/client.ts to a port with nothing listening exits 4 (refused)", { timeout: 30000 }, async () => {
      const port = await freeTcpPort();
      const res = await runEntry(rt, "tcp/client.ts", ["--port", String(port), "--file", SAMPLE]);
      assert.equal(res.code, 4, res.stderr);
      const line = assertOneLine(res.stderr, "tcp-client", /refused/);
      assert.ok(line.includes(String(port)), `message does not name the port: ${line}`);
    });

    for (const first of RTS) {
      for (const entry of SERVERS) {
        test(
          `${entry} on a port a ${first.name} server holds exits 4 (in use)`,
          { timeout: 30000 },
          async () => {
            const srv = await startServer(first, entry, ["--out", freshDir(), "--idle-timeout", "1"]);
            try {
              const res = await runEntry(
                rt,
                entry,
                ["--host", "127.0.0.1", "--port", String(srv.port), "--out", freshDir(), "--json"],
                { timeoutMs: 15000 },
              );
              assert.equal(res.code, 4, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
              const line = assertOneLine(res.stderr, progName(entry), /in use/);
              assert.ok(line.includes(String(srv.port)), `message does not name the port: ${line}`);
              assert.equal(srv.child.exitCode, null, "the first server must keep running");
            } finally {
              await srv.stop();
            }
          },
        );
      }
    }
  });

  describe(`${rt.name}: bad flag values exit 2`, () => {
    for (const [entry, args, phrase] of BAD_FLAGS) {
      test(`${entry} ${args.join(" ")}`, { timeout: 30000 }, async () => {
        const res = await runEntry(rt, entry, serverSafety(entry, args), { timeoutMs: 15000 });
        assert.equal(res.code, 2, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        assertOneLine(res.stderr, progName(entry), phrase);
        assert.equal(res.stdout.trim(), "", "nothing should be printed on stdout");
      });
    }
  });

  describe(`${rt.name}: the peer vanishes mid-transfer`, () => {
    for (const classic of [false, true]) {
      const mode = classic ? "classic" : "framed";
      test(`tcp/client.ts (${mode}) exits 4 when the server drops the connection`, {
        timeout: 60000,
      }, async () => {
        const file = big();
        let received = 0;
        const sockets = new Set<net.Socket>();
        const server = net.createServer((sock) => {
          sockets.add(sock);
          sock.on("error", () => {});
          sock.on("data", (d) => {
            received += d.length;
            if (received >= 100_000 && !sock.destroyed) sock.destroy();
          });
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        const port = (server.address() as net.AddressInfo).port;
        try {
          const args = ["--port", String(port), "--file", file, "--timeout", "5"];
          if (classic) args.push("--classic");
          const res = await runEntry(rt, "tcp/client.ts", args, { timeoutMs: 40000 });
          assert.equal(res.code, 4, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
          assertOneLine(res.stderr, "tcp-client", /connection/);
          assert.ok(received >= 100_000, `the fake server read only ${received} bytes`);
        } finally {
          for (const s of sockets) s.destroy();
          await new Promise<void>((resolve) => server.close(() => resolve()));
        }
      });
    }

    test("tcp/server.ts survives a framed stream that stops in the middle", { timeout: 60000 }, async () => {
      const out = freshDir();
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out]);
      try {
        const header = encodeFramedHeader({ name: "partial.bin", size: 1 << 20 });
        const body = new Uint8Array(1000).fill(0x5a);
        await new Promise<void>((resolve, reject) => {
          const sock = net.connect(srv.port, "127.0.0.1", () => {
            sock.write(header);
            sock.write(body, () => {
              sock.destroy();
              resolve();
            });
          });
          sock.on("error", reject);
        });
        const failed = await srv.waitFor((e) => e.event === "failed");
        assert.match(String(failed.error), /1000 of 1048576/);
        assert.equal(srv.child.exitCode, null, "the server must keep running after a failed transfer");

        const res = await runEntry(rt, "tcp/client.ts", [
          "--port",
          String(srv.port),
          "--file",
          SAMPLE,
          "--json",
        ]);
        assert.equal(res.code, 0, res.stderr);
        const rec = await srv.waitFor((e) => e.event === "received");
        assert.equal(rec.complete, true);
        assert.equal(rec.path, join(out, "received_input.jpeg"));
        assert.equal(sha256File(join(out, "received_input.jpeg")), sha256File(SAMPLE));
        assert.equal(srv.events.filter((e) => e.event === "received").length, 1);
        // 1,000 bytes are below the 64 KiB worth keeping for --resume: nothing is left of the cut transfer.
        assert.deepEqual(listDir(out), ["received_input.jpeg"], "only the good file");
        assert.match(String(failed.error), /nothing saved/);
        assert.equal(srv.child.exitCode, null, "the server must still be running");
      } finally {
        await srv.stop();
      }
    });
  });

  describe(`${rt.name}: --help and --version`, () => {
    for (const entry of ENTRIES) {
      const prog = progName(entry);
      for (const flag of ["--help", "-h"]) {
        test(`${entry} ${flag} prints usage and exits 0`, { timeout: 30000 }, async () => {
          const res = await runEntry(rt, entry, [flag]);
          assert.equal(res.code, 0, res.stderr);
          assert.equal(res.stderr.trim(), "");
          assert.ok(res.stdout.startsWith(`Usage: ${prog} [options]`), res.stdout);
          assert.match(res.stdout, /--help/);
          assert.match(res.stdout, /Exit codes:/);
        });
      }
      for (const flag of ["--version", "-V"]) {
        test(`${entry} ${flag} prints the package version and exits 0`, { timeout: 30000 }, async () => {
          const res = await runEntry(rt, entry, [flag]);
          assert.equal(res.code, 0, res.stderr);
          assert.equal(res.stderr.trim(), "");
          const escaped = PACKAGE_VERSION.replace(/[.]/g, "\\.");
          assert.match(res.stdout.trim(), new RegExp(`^${prog} ${escaped} \\(${rt.name} \\S+\\)$`));
        });
      }
    }
  });
}

describe("deno: missing permissions", () => {
  const deno = runtimeNamed("deno");

  test("tcp/client.ts without --allow-net exits 5 and names the flag", { timeout: 30000 }, async () => {
    const port = await freeTcpPort();
    const res = await runEntry(deno, "tcp/client.ts", ["--port", String(port), "--file", SAMPLE], {
      permissions: [`--allow-read=${SAMPLE}`],
    });
    assert.equal(res.code, 5, res.stderr);
    assertOneLine(res.stderr, "tcp-client", new RegExp(`--allow-net=127\\.0\\.0\\.1:${port}\\b`));
  });

  test("tcp/server.ts without --allow-write for --out names --allow-write for that folder", {
    timeout: 60000,
  }, async () => {
    const out = freshDir();
    const permissions = ["--allow-net=127.0.0.1", `--allow-read=${out}`];
    /** The path in the first `--allow-write=PATH` of `text` must be `out` or a folder above it. */
    const assertNamesOutDir = (text: string) => {
      const match = /--allow-write=([^\s;,]+)/.exec(text);
      assert.ok(match, `no --allow-write=PATH in: ${text}`);
      const path = match[1].replace(/[.'"]+$/, "");
      assert.ok(
        out === path || out.startsWith(path.endsWith("/") ? path : `${path}/`),
        `the suggested flag --allow-write=${path} does not cover the output folder ${out}: ${text}`,
      );
    };
    let srv;
    try {
      srv = await startServer(deno, "tcp/server.ts", ["--out", out, "--once"], { permissions });
    } catch (error) {
      // Failing at start-up is fine, if it is a permission error naming the flag.
      const message = String((error as Error).message);
      assert.match(message, /server exited \(5\)/);
      assert.ok(!message.includes("    at "), `stack trace: ${message}`);
      assertNamesOutDir(message);
      return;
    }
    try {
      // The server started: a transfer must fail with a clear message, not a crash.
      const res = await runEntry(runtimeNamed("bun"), "tcp/client.ts", [
        "--port",
        String(srv.port),
        "--file",
        SAMPLE,
      ]);
      assert.equal(res.code, 1, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
      assertOneLine(res.stderr, "tcp-client", /--allow-write/);
      const failed = await srv.waitFor((e) => e.event === "failed");
      assert.match(String(failed.error), /permission denied by Deno/);
      assert.ok(!srv.stderr().includes("    at "), `stack trace: ${srv.stderr()}`);
      assert.equal(await srv.exited(), 0);
      assert.deepEqual(listDir(out), []);
      assertNamesOutDir(String(failed.error));
    } finally {
      await srv.stop();
    }
  });
});
