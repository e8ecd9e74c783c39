/**
 * Resuming framed TCP transfers, on real sockets, servers on every runtime
 * found and clients on the other one: a client killed (SIGKILL) mid-transfer
 * leaves a partial that `--resume` continues (with and without a key, and a
 * partial made under one key is not offered under another); a changed source
 * restarts from 0; nothing on the server sends everything; a server stopped
 * (SIGTERM) mid-transfer keeps its partial for the restarted server; a
 * second transfer of the same file while one is running does not touch the
 * first one's partial. Slow transfers go through a throttling proxy so that
 * a kill lands mid-transfer.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import { basename, join } from "node:path";
import { resumeId } from "../shared/files.ts";
import { encodeFramedHeader } from "../shared/protocol.ts";
import {
  commandFor,
  lastJson,
  listDir,
  makeFile,
  otherThan,
  ROOT,
  runEntry,
  type RuntimeInfo,
  runtimes,
  ScratchDirs,
  type ServerProcess,
  sha256File,
  startServer,
  waitUntil,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = runtimes();
const KEY = "correct horse battery staple";
const OTHER_KEY = "incorrect donkey battery";
const BIG = 64 << 20;
/** The partial size at which a slow transfer is interrupted. */
const CUT_AT = 8 << 20;

const scratch = new ScratchDirs("imgxfer-resume-");
const live = new Set<ChildProcess>();
after(() => {
  for (const child of live) child.kill("SIGKILL");
  scratch.cleanup();
});

/** The resumable partial files in `dir`. */
function partials(dir: string): string[] {
  return listDir(dir).filter((f) => f.endsWith(".resume.part"));
}

/** Size of the one partial in `dir` (0 when there is none). */
function partialSize(dir: string): number {
  const [part] = partials(dir);
  try {
    return part ? fs.statSync(join(dir, part)).size : 0;
  } catch {
    return 0; // renamed or removed meanwhile
  }
}

/** Whether the partial in `dir` holds exactly the first bytes of `source`. */
function partialIsPrefixOf(dir: string, source: string): boolean {
  const [part] = partials(dir);
  const kept = fs.readFileSync(join(dir, part));
  return kept.length > 0 && kept.equals(fs.readFileSync(source).subarray(0, kept.length));
}

/** The byte count of the server's "kept N bytes … for --resume" failure. */
async function keptBytes(srv: ServerProcess): Promise<number> {
  const failed = await srv.waitFor((e) => e.event === "failed" && /kept [\d,]+ bytes/.test(String(e.error)));
  const match = /kept ([\d,]+) bytes in '([^']+)' for --resume/.exec(String(failed.error));
  assert.ok(match, String(failed.error));
  assert.ok(match[2].endsWith(".resume.part"), match[2]);
  return Number(match[1].replaceAll(",", ""));
}

/** A loopback proxy that forwards client bytes at about `bytesPerMs` (and server bytes as they come). */
interface Proxy {
  port: number;
  close(): Promise<void>;
}

function startSlowProxy(target: number, bytesPerMs = 16 * 1024): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: target, host: "127.0.0.1", allowHalfOpen: true });
    sockets.add(client);
    sockets.add(upstream);
    client.on("data", (d: Uint8Array) => {
      upstream.write(d);
      client.pause();
      setTimeout(() => client.resume(), Math.ceil(d.length / bytesPerMs));
    });
    client.on("end", () => upstream.end());
    client.on("error", () => upstream.destroy());
    client.on("close", () => upstream.end());
    upstream.on("data", (d: Uint8Array) => client.write(d));
    upstream.on("end", () => client.end());
    upstream.on("error", () => client.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/** A client process started in the background. */
interface Background {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
}

function startClient(rt: RuntimeInfo, args: string[]): Background {
  const cmd = commandFor(rt, "tcp/client.ts", args);
  const child = spawn(cmd[0], cmd.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let output = "";
  child.stdout!.on("data", (d) => output += d.toString());
  child.stderr!.on("data", (d) => output += d.toString());
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      live.delete(child);
      resolve(code);
    })
  );
  return { child, exited, output: () => output };
}

/**
 * Starts sending `file` through a slow proxy and returns once the server's
 * partial holds at least {@linkcode CUT_AT} bytes.
 */
async function slowTransfer(
  client: RuntimeInfo,
  srv: ServerProcess,
  out: string,
  file: string,
  extra: string[] = [],
): Promise<{ proxy: Proxy; sender: Background }> {
  const proxy = await startSlowProxy(srv.port);
  const sender = startClient(client, ["--port", String(proxy.port), "--file", file, "--json", ...extra]);
  await waitUntil(
    () => partialSize(out) >= CUT_AT || sender.child.exitCode !== null,
    "a partial of 8 MiB",
    20_000,
  );
  assert.equal(sender.child.exitCode, null, `the slow transfer ended early: ${sender.output()}`);
  return { proxy, sender };
}

/** Sends `file` directly with `--resume` (and `extra`); returns the JSON summary. */
async function resume(
  client: RuntimeInfo,
  port: number,
  file: string,
  extra: string[] = [],
): Promise<Record<string, unknown>> {
  const res = await runEntry(client, "tcp/client.ts", [
    ...["--port", String(port), "--file", file, "--resume", "--json", ...extra],
  ], { timeoutMs: 60000 });
  assert.equal(res.code, 0, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
  const summary = lastJson(res.stdout);
  assert.equal(summary.status, "success");
  assert.equal(summary.verified, true);
  return summary;
}

/**
 * Leaves a partial of `size`-byte file `name` holding `bytes` on the server,
 * the way a lost connection does: a version-1 stream cut short.
 */
async function leavePartial(
  srv: ServerProcess,
  name: string,
  size: number,
  bytes: Uint8Array,
): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const sock = net.connect(srv.port, "127.0.0.1", () => {
      sock.write(encodeFramedHeader({ name, size }));
      sock.write(bytes, () => {
        sock.destroy();
        resolve();
      });
    });
    sock.on("error", reject);
  });
  return await keptBytes(srv);
}

for (const rt of RTS) {
  const client = otherThan(rt);
  describe(`${rt.name} server, ${client.name} client: --resume`, () => {
    const variants = [
      { label: "without a key", key: [] as string[], digest: [] as string[] },
      { label: "with a key", key: ["--psk", KEY], digest: [] },
      { label: "with --digest xxh128", key: [], digest: ["--digest", "xxh128"] },
    ];
    for (const { label, key, digest } of variants) {
      const keyed = key.length > 0;
      test(`${label}: a client killed mid-transfer, then --resume, sends only the rest`, {
        timeout: 120000,
      }, async () => {
        const out = scratch.fresh();
        const file = makeFile(scratch.fresh(), "big.bin", BIG);
        let srv = await startServer(rt, "tcp/server.ts", ["--out", out, ...key]);
        const { proxy, sender } = await slowTransfer(client, srv, out, file, [...key, ...digest]);
        try {
          sender.child.kill("SIGKILL");
          await sender.exited;
          const kept = await keptBytes(srv);
          assert.ok(kept >= CUT_AT && kept < BIG, `kept ${kept} bytes`);
          assert.equal(partialSize(out), kept);
          assert.ok(partialIsPrefixOf(out, file), "the partial is not the file's beginning");

          if (keyed) {
            // A server with another key does not offer that partial.
            await srv.stop();
            srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--psk", OTHER_KEY]);
            const other = await resume(client, srv.port, file, ["--psk", OTHER_KEY]);
            assert.equal(other.resumedBytes, 0);
            assert.equal(sha256File(join(out, "received_big.bin")), sha256File(file));
            fs.rmSync(join(out, "received_big.bin"));
            await srv.stop();
            srv = await startServer(rt, "tcp/server.ts", ["--out", out, ...key]);
          }
          const summary = await resume(client, srv.port, file, [...key, ...digest]);
          // The server's offer of its partial was checked with the session's digest.
          assert.equal(summary.resumedBytes, kept);
          if (digest.length) assert.match(String(summary.xxh128), /^[0-9a-f]{32}$/);
          if (keyed) assert.equal(summary.authenticated, true);
          assert.deepEqual(listDir(out), ["received_big.bin"], "the partial must be gone");
          assert.equal(sha256File(join(out, "received_big.bin")), sha256File(file));
        } finally {
          await proxy.close();
          await srv.stop();
        }
      });
    }

    test("--resume after the source changed restarts from 0; with nothing on the server it sends all", {
      timeout: 90000,
    }, async () => {
      const out = scratch.fresh();
      const src = scratch.fresh();
      const size = 3 << 20;
      const file = makeFile(src, "data.bin", size);
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out]);
      try {
        // Nothing held yet: everything is sent.
        const first = await resume(client, srv.port, file);
        assert.equal(first.resumedBytes, 0);
        assert.equal(sha256File(join(out, "received_data.bin")), sha256File(file));

        // The server holds the start of another file of the same name and size.
        const other = new Uint8Array(1 << 20).fill(0x5a);
        const kept = await leavePartial(srv, "data.bin", size, other);
        assert.equal(kept, other.length);
        const res = await runEntry(client, "tcp/client.ts", [
          ...["--port", String(srv.port), "--file", file, "--resume"],
        ], { timeoutMs: 60000 });
        assert.equal(res.code, 0, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        assert.match(res.stderr, /different file under this name: sending from the start/);
        assert.match(res.stdout, /Resumed\s+: skipped 0 bytes already on the server/);
        assert.equal(sha256File(join(out, "received_data_1.bin")), sha256File(file));
        assert.deepEqual(listDir(out), ["received_data.bin", "received_data_1.bin"]);
      } finally {
        await srv.stop();
      }
    });

    test("without --resume a transfer starts over, and the partial it replaces is gone", {
      timeout: 60000,
    }, async () => {
      const out = scratch.fresh();
      const file = makeFile(scratch.fresh(), "again.bin", 2 << 20);
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out]);
      try {
        await leavePartial(srv, "again.bin", 2 << 20, fs.readFileSync(file).subarray(0, 1 << 20));
        const res = await runEntry(client, "tcp/client.ts", [
          ...["--port", String(srv.port), "--file", file, "--json"],
        ]);
        assert.equal(res.code, 0, res.stderr);
        const summary = lastJson(res.stdout);
        assert.equal(summary.resumedBytes, undefined);
        assert.equal(summary.confirmedBytes, 2 << 20);
        assert.deepEqual(listDir(out), ["received_again.bin"]);
        assert.equal(sha256File(join(out, "received_again.bin")), sha256File(file));
      } finally {
        await srv.stop();
      }
    });

    test("a server stopped by SIGTERM mid-transfer keeps the partial; the restarted one resumes it", {
      timeout: 120000,
    }, async () => {
      const out = scratch.fresh();
      const file = makeFile(scratch.fresh(), "big.bin", BIG);
      const args = ["--out", out, "--psk", KEY, "--shutdown-grace", "0.5"];
      let srv = await startServer(rt, "tcp/server.ts", args);
      const { proxy, sender } = await slowTransfer(client, srv, out, file, ["--psk", KEY]);
      try {
        process.kill(srv.child.pid!, "SIGTERM");
        assert.equal(await srv.exited(10000), 0, srv.stderr());
        const kept = await keptBytes(srv);
        assert.ok(kept >= CUT_AT && kept < BIG, `kept ${kept} bytes`);
        assert.equal(partialSize(out), kept);
        assert.ok(partialIsPrefixOf(out, file), "the partial is not the file's beginning");
        sender.child.kill("SIGKILL");
        await sender.exited;

        srv = await startServer(rt, "tcp/server.ts", args);
        const res = await runEntry(client, "tcp/client.ts", [
          ...["--port", String(srv.port), "--file", file, "--resume", "--psk", KEY],
        ], { timeoutMs: 60000 });
        assert.equal(res.code, 0, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        const grouped = kept.toLocaleString("en-US");
        assert.ok(
          res.stdout.includes(`Resumed     : skipped ${grouped} bytes already on the server`),
          res.stdout,
        );
        assert.match(res.stderr, new RegExp(`Resuming: the server already holds the first ${grouped} bytes`));
        assert.deepEqual(listDir(out), ["received_big.bin"]);
        assert.equal(sha256File(join(out, "received_big.bin")), sha256File(file));
      } finally {
        await proxy.close();
        await srv.stop();
      }
    });

    test("a link planted at a partial's name is not followed: the transfer goes to a plain temporary file", {
      timeout: 60000,
    }, async () => {
      const out = scratch.fresh();
      const outside = scratch.fresh();
      const size = 100_000;
      const file = makeFile(scratch.fresh(), "linked.bin", size);
      const target = join(outside, "target.bin");
      fs.writeFileSync(target, "untouched");
      const partial = join(out, `.received_linked.bin.${resumeId(["tcp", "linked.bin", size])}.resume.part`);
      fs.symlinkSync(target, partial);
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out]);
      try {
        const summary = await resume(client, srv.port, file);
        assert.equal(summary.resumedBytes, 0);
        assert.equal(sha256File(join(out, "received_linked.bin")), sha256File(file));
        assert.equal(fs.readFileSync(target, "utf8"), "untouched");
        assert.ok(fs.lstatSync(partial).isSymbolicLink());
        assert.deepEqual(listDir(out), [basename(partial), "received_linked.bin"]);
      } finally {
        await srv.stop();
      }
    });

    test("a second transfer of the same file while one runs leaves the first one's partial alone", {
      timeout: 120000,
    }, async () => {
      const out = scratch.fresh();
      const file = makeFile(scratch.fresh(), "big.bin", BIG);
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out]);
      const { proxy, sender } = await slowTransfer(client, srv, out, file);
      try {
        const second = await runEntry(client, "tcp/client.ts", [
          ...["--port", String(srv.port), "--file", file, "--json"],
        ], { timeoutMs: 60000 });
        assert.equal(second.code, 0, second.stderr);
        assert.equal(sha256File(join(out, "received_big.bin")), sha256File(file));

        sender.child.kill("SIGKILL");
        await sender.exited;
        const kept = await keptBytes(srv);
        assert.equal(partialSize(out), kept);
        assert.ok(partialIsPrefixOf(out, file), "the partial is not the file's beginning");

        const summary = await resume(client, srv.port, file);
        assert.equal(summary.resumedBytes, kept);
        assert.deepEqual(listDir(out), ["received_big.bin", "received_big_1.bin"]);
        assert.equal(sha256File(join(out, "received_big_1.bin")), sha256File(file));
      } finally {
        await proxy.close();
        await srv.stop();
      }
    });
  });
}
