/**
 * Framed TCP with `--digest xxh128`, on real sockets, servers on every
 * runtime found and clients on the other one: the sample image and a 3 MiB
 * file arrive whole, with the XXH3-128 that `xxhsum -H2` gives on both
 * sides; a byte flipped in transit is a MISMATCH and no file is saved; the
 * flag refuses to go with a key or `--classic`; a keyed server refuses a
 * keyless XXH3-128 client; a request asking for XXH3-128 under a key is
 * refused and the server keeps serving.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { encodeSessionRequest, SESSION_NONCE_SIZE, SessionFlags } from "../shared/protocol.ts";
import {
  lastJson,
  listDir,
  makeSeededFile,
  otherThan,
  runEntry,
  type RuntimeInfo,
  runtimes,
  SAMPLE,
  ScratchDirs,
  sha256File,
  startServer,
  startTcpProxy,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = runtimes();
/** `xxhsum -H2` (xxHash 0.8.1) of input.jpeg and of `makeSeededFile(…, 3 MiB + 5, 7)`. */
const SAMPLE_XXH128 = "805c80258b7db7f642b972d78568e98c";
const SEEDED_XXH128 = "3b79fc8baa13fa631536337a9bb021f2";
const SEEDED_SIZE = (3 << 20) + 5;

const scratch = new ScratchDirs("imgxfer-digest-");
after(() => scratch.cleanup());

/** Sends `bytes` on a fresh connection, half-closes, and returns what the server answered. */
function exchange(port: number, bytes: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    const sock = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => sock.end(bytes));
    sock.on("data", (d: Uint8Array) => chunks.push(d));
    sock.on("error", reject);
    sock.on("close", () => resolve(new Uint8Array(Buffer.concat(chunks))));
  });
}

for (const rt of RTS) {
  const client = otherThan(rt);
  describe(`${rt.name} server, ${client.name} client: --digest xxh128`, () => {
    test("the sample image and a 3 MiB file arrive whole, verified with XXH3-128 on both sides", {
      timeout: 60000,
    }, async () => {
      const out = scratch.fresh();
      const big = makeSeededFile(scratch.fresh(), "seeded.bin", SEEDED_SIZE, 7);
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out]);
      try {
        for (const [file, xxh, buffer] of [[SAMPLE, SAMPLE_XXH128, "4096"], [big, SEEDED_XXH128, "65536"]]) {
          const res = await runEntry(client, "tcp/client.ts", [
            ...[
              "--port",
              String(srv.port),
              "--file",
              file,
              "--buffer",
              buffer,
              "--digest",
              "xxh128",
              "--json",
            ],
          ]);
          assert.equal(res.code, 0, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
          const summary = lastJson(res.stdout);
          assert.equal(summary.status, "success");
          assert.equal(summary.verified, true);
          assert.equal(summary.xxh128, xxh);
          assert.equal(summary.sha256, undefined, "no SHA-256 was computed");
          const name = file === SAMPLE ? "received_input.jpeg" : "received_seeded.bin";
          const got = await srv.waitFor((e) => e.event === "received" && String(e.path).endsWith(name));
          assert.equal(got.xxh128, xxh);
          assert.equal(got.sha256, undefined);
          assert.equal(got.verified, true);
          assert.equal(sha256File(join(out, name)), sha256File(file));
        }
        // The human summary names the digest.
        const human = await runEntry(client, "tcp/client.ts", [
          ...["--port", String(srv.port), "--file", SAMPLE, "--digest", "xxh128"],
        ]);
        assert.equal(human.code, 0, human.stderr);
        assert.match(human.stdout, /Mode\s+: framed, XXH3-128 verified by the server/);
        assert.match(human.stderr + human.stdout, new RegExp(`XXH3-128 matches \\(${SAMPLE_XXH128}\\)`));
      } finally {
        await srv.stop();
      }
    });

    test("a byte flipped in transit is a MISMATCH naming XXH3-128; no file is saved", {
      timeout: 60000,
    }, async () => {
      const out = scratch.fresh();
      const big = makeSeededFile(scratch.fresh(), "seeded.bin", SEEDED_SIZE, 7);
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out]);
      // Past the request header and the handshake messages: inside the data.
      const proxy = await startTcpProxy(srv.port, 2_000_000);
      try {
        const res = await runEntry(client, "tcp/client.ts", [
          ...[
            "--port",
            String(proxy.port),
            "--file",
            big,
            "--buffer",
            "65536",
            "--digest",
            "xxh128",
            "--json",
          ],
        ]);
        assert.notEqual(res.code, 0, `the client must fail: ${res.stdout}`);
        const summary = lastJson(res.stdout);
        assert.equal(summary.status, "mismatch");
        assert.equal(summary.verified, false);
        assert.match(String(summary.response), /MISMATCH: XXH3-128 of the received bytes is [0-9a-f]{32},/);
        assert.match(res.stderr, /the server's XXH3-128 does not match the file/);
        const failed = await srv.waitFor((e) => e.event === "failed");
        assert.match(String(failed.error), /XXH3-128/);
        assert.deepEqual(
          listDir(out).filter((f) => f.startsWith("received_")),
          [],
          "no file presented as received",
        );
      } finally {
        await proxy.close();
        await srv.stop();
      }
    });

    test("--digest xxh128 with a key or with --classic is a usage error; a keyed server refuses it", {
      timeout: 60000,
    }, async () => {
      const out = scratch.fresh();
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--psk", "correct horse battery"]);
      try {
        const port = String(srv.port);
        for (const extra of [["--psk", "correct horse battery"], ["--classic"], ["--digest", "md5"]]) {
          const args = [
            "--port",
            port,
            "--file",
            SAMPLE,
            ...(extra[0] === "--digest" ? [] : ["--digest", "xxh128"]),
          ];
          const res = await runEntry(client, "tcp/client.ts", [...args, ...extra]);
          assert.equal(res.code, 2, `${extra.join(" ")}: ${res.stderr}`);
          assert.equal(res.stderr.trim().split("\n").length, 1, `one line: ${res.stderr}`);
          assert.doesNotMatch(res.stderr, /\n\s+at /, "no stack trace");
        }
        const keyless = await runEntry(client, "tcp/client.ts", [
          ...["--port", port, "--file", SAMPLE, "--digest", "xxh128", "--json"],
        ]);
        assert.notEqual(keyless.code, 0);
        assert.equal(lastJson(keyless.stdout).status, "refused");
        assert.match(String(lastJson(keyless.stdout).response), /requires a key/);
        assert.deepEqual(listDir(out), []);
      } finally {
        await srv.stop();
      }
    });

    test("a request asking for XXH3-128 under a key is refused; the server goes on serving", {
      timeout: 60000,
    }, async () => {
      const out = scratch.fresh();
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out]);
      try {
        const request = encodeSessionRequest({
          name: "x.bin",
          size: 4,
          flags: SessionFlags.KEY,
          clientNonce: new Uint8Array(SESSION_NONCE_SIZE),
        });
        request[20] = SessionFlags.KEY | SessionFlags.XXH128;
        await exchange(srv.port, request);
        const failed = await srv.waitFor((e) => e.event === "failed");
        assert.match(String(failed.error), /keyed session must use SHA-256/);
        const res = await runEntry(client, "tcp/client.ts", [
          ...["--port", String(srv.port), "--file", SAMPLE, "--digest", "xxh128", "--json"],
        ]);
        assert.equal(res.code, 0, res.stderr);
        assert.deepEqual(listDir(out), ["received_input.jpeg"]);
        assert.equal(fs.statSync(join(out, "received_input.jpeg")).size, fs.statSync(SAMPLE).size);
      } finally {
        await srv.stop();
      }
    });
  });
}
