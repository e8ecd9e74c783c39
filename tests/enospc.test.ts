/**
 * A full disk ("hardened server"): the servers save into a 2 MiB tmpfs and
 * are sent a 4 MiB file. For TCP framed, TCP classic, UDP reliable and UDP
 * classic, on every runtime:
 *
 * - the client (a real process) exits non-zero and its one-line error says
 *   the server cannot store the file (no space left on device);
 * - the server logs a `failed` event naming the cause, and never a
 *   `received` one for it: nothing is claimed complete;
 * - no final file and no temporary file is left on the small file system;
 * - the server stays up: a small file sent afterwards is saved intact.
 *
 * The tmpfs is mounted directly when running as root, else inside a private
 * user and mount namespace (`unshare --user --map-root-user --mount`) that
 * the server runs in; when neither works the tests are skipped with the
 * reason printed. `IMGXFER_TEST_TMPFS=userns` forces the namespace way.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import {
  assertNoCrashOnStderr,
  commandFor,
  listDir,
  makeSeededFile,
  runEntry,
  type RuntimeInfo,
  runtimes,
  type ServerProcess,
  sha256File,
  skipBecause,
  type SmallFs,
  smallFs,
  startServerTracked,
  stopLiveServers,
  tempDir,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = runtimes();
const FS_BYTES = 2 * 1024 * 1024;
const BIG = 4 * 1024 * 1024;
const SMALL = 100 * 1000;

const cleanups: Array<() => void> = [];
after(stopLiveServers);
after(() => {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch { /* best effort */ }
  }
});

// Find out once whether a small file system can be made here.
const probe = smallFs(FS_BYTES);
const skip: string | false = "reason" in probe ? skipBecause(probe.reason) : false;
if (!("reason" in probe)) {
  console.log(
    `[info] small file systems: ${probe.how === "mount" ? "tmpfs mounts" : "tmpfs in a user namespace"}`,
  );
  probe.cleanup();
}

function sources(): { big: string; small: string } {
  const dir = tempDir("imgxfer-enospc-src-");
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return {
    big: makeSeededFile(dir, "big.bin", BIG, 4242),
    small: makeSeededFile(dir, "small.bin", SMALL, 4343),
  };
}

/** A fresh 2 MiB file system (removed after the tests). */
function freshSmallFs(): SmallFs {
  const made = smallFs(FS_BYTES);
  if ("reason" in made) throw new Error(made.reason);
  cleanups.push(() => made.cleanup());
  return made;
}

/** Starts `script` on `rt` with `--out` on the small file system; returns the server and where to look. */
async function serverOnSmallFs(
  rt: RuntimeInfo,
  script: string,
  extra: string[] = [],
): Promise<{ srv: ServerProcess; out: () => string }> {
  const small = freshSmallFs();
  const args = ["--out", small.dir, "--json", "--port", "0", "--host", "127.0.0.1", ...extra];
  const srv = await startServerTracked(rt, script, args, { cmd: small.wrap(commandFor(rt, script, args)) });
  const pid = srv.child.pid!;
  return { srv, out: () => small.view(pid) };
}

/** The client's one error line: `PROG: …` on stderr, no stack trace. */
function errorLine(stderr: string, prog: string): string {
  assert.ok(!stderr.includes("    at "), `stack trace on the client's stderr:\n${stderr}`);
  const lines = stderr.trim().split(/\r?\n/).filter((l) => l.startsWith(`${prog}: `));
  assert.equal(lines.length, 1, `expected one '${prog}: …' line on stderr:\n${stderr}`);
  return lines[0];
}

const CANNOT_STORE = /server cannot store the file: no space left on device/;

function assertNothingLeft(dir: string, allowed: string[]): void {
  assert.deepEqual(listDir(dir), [...allowed].sort(), "only the files saved intact may be there");
}

function assertServerClean(srv: ServerProcess): void {
  assertNoCrashOnStderr(srv);
  assert.equal(srv.child.exitCode, null, "the server exited");
}

/**
 * After a failed transfer: the same server still stores a small file sent
 * with `clientArgs` (as `saved`), and nothing else is left in `--out`.
 */
async function assertStillServes(
  rt: RuntimeInfo,
  srv: ServerProcess,
  dir: string,
  client: "tcp/client.ts" | "udp/client.ts",
  clientArgs: string[],
  small: string,
  saved: string,
): Promise<void> {
  const ok = await runEntry(rt, client, ["--port", String(srv.port), "--file", small, ...clientArgs], {
    timeoutMs: 30_000,
  });
  assert.equal(ok.code, 0, `stdout: ${ok.stdout}\nstderr: ${ok.stderr}`);
  await srv.waitFor((e) => e.event === "received");
  assertNothingLeft(dir, [saved]);
  assert.equal(sha256File(join(dir, saved)), sha256File(small));
  assertServerClean(srv);
}

for (const rt of RTS) {
  describe(`${rt.name}: full disk`, () => {
    test(
      "TCP framed: 4 MiB into 2 MiB gives the client 'server cannot store the file', nothing saved, server up",
      {
        skip,
        timeout: 90_000,
      },
      async () => {
        const { big, small } = sources();
        const { srv, out } = await serverOnSmallFs(rt, "tcp/server.ts");
        try {
          const res = await runEntry(rt, "tcp/client.ts", ["--port", String(srv.port), "--file", big], {
            timeoutMs: 60_000,
          });
          assert.equal(res.code, 1, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
          assert.match(errorLine(res.stderr, "tcp-client"), CANNOT_STORE, res.stderr);
          assert.match(res.stdout, /Status\s*: error/, res.stdout);
          assert.match(res.stdout, /Confirmed\s*: 0 of 4194304 bytes/, res.stdout);

          const failed = await srv.waitFor((e) => e.event === "failed");
          assert.match(
            String(failed.error),
            /no space left on device; nothing saved/,
            JSON.stringify(failed),
          );
          const reply = await srv.waitFor((e) => e.event === "reply");
          assert.match(String(reply.text), CANNOT_STORE, JSON.stringify(reply));
          assert.ok(!srv.events.some((e) => e.event === "received"), JSON.stringify(srv.events));
          assertNothingLeft(out(), []);

          await assertStillServes(rt, srv, out(), "tcp/client.ts", ["--json"], small, "received_small.bin");
        } finally {
          await srv.stop();
        }
      },
    );

    test(
      "TCP classic: 4 MiB into 2 MiB gives the client a clear error (exit 1), not an unconfirmed success",
      {
        skip,
        timeout: 90_000,
      },
      async () => {
        const { big, small } = sources();
        const { srv, out } = await serverOnSmallFs(rt, "tcp/server.ts");
        try {
          const args = ["--port", String(srv.port), "--file", big, "--classic"];
          const res = await runEntry(rt, "tcp/client.ts", args, { timeoutMs: 60_000 });
          const failed = await srv.waitFor((e) => e.event === "failed");
          assert.match(
            String(failed.error),
            /no space left on device; nothing saved/,
            JSON.stringify(failed),
          );
          assert.ok(!srv.events.some((e) => e.event === "received"), JSON.stringify(srv.events));
          assertNothingLeft(out(), []);
          // The sender must learn that its file was not stored.
          assert.notEqual(
            res.code,
            0,
            `a file the server could not store ended with exit 0:\n${res.stdout}\n${res.stderr}`,
          );
          assert.doesNotMatch(res.stdout, /Status\s*: (success|unconfirmed)/, res.stdout);
          assert.match(errorLine(res.stderr, "tcp-client"), CANNOT_STORE, res.stderr);

          await assertStillServes(
            rt,
            srv,
            out(),
            "tcp/client.ts",
            ["--classic"],
            small,
            "received_input.jpeg",
          );
        } finally {
          await srv.stop();
        }
      },
    );

    test(
      "UDP reliable and classic: 4 MiB into 2 MiB gives the client 'server cannot store the file', nothing saved",
      {
        skip,
        timeout: 120_000,
      },
      async () => {
        const { big, small } = sources();
        const { srv, out } = await serverOnSmallFs(rt, "udp/server.ts", ["--idle-timeout", "2"]);
        try {
          const base = ["--port", String(srv.port)];
          const res = await runEntry(rt, "udp/client.ts", [...base, "--file", big], { timeoutMs: 60_000 });
          assert.equal(res.code, 1, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
          assert.match(errorLine(res.stderr, "udp-client"), CANNOT_STORE, res.stderr);
          assert.match(res.stdout, /Status\s*: error/, res.stdout);
          const failed = await srv.waitFor((e) => e.event === "failed");
          assert.match(
            String(failed.error),
            /no space left on device; nothing saved/,
            JSON.stringify(failed),
          );
          assertNothingLeft(out(), []);

          // Classic: no retransmission, so the client may also see lost datagrams; the reply must still say why.
          const classic = await runEntry(rt, "udp/client.ts", [...base, "--file", big, "--classic"], {
            timeoutMs: 60_000,
          });
          assert.equal(classic.code, 1, `stdout: ${classic.stdout}\nstderr: ${classic.stderr}`);
          assert.match(errorLine(classic.stderr, "udp-client"), CANNOT_STORE, classic.stderr);
          await srv.waitFor((e) => e.event === "failed" && e !== failed);
          assert.ok(!srv.events.some((e) => e.event === "received"), JSON.stringify(srv.events));
          assertNothingLeft(out(), []);

          await assertStillServes(
            rt,
            srv,
            out(),
            "udp/client.ts",
            ["--json"],
            small,
            "received_small_udp.bin",
          );
        } finally {
          await srv.stop();
        }
      },
    );
  });
}
