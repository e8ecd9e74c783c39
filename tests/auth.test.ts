/**
 * Pure unit tests for shared/auth.ts (key loading, proofs, session keys,
 * authenticators, replay guard) and the resumable side of
 * shared/files.ts's ReceivingFile. Runs under `deno test` and `bun test`.
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Authenticator,
  constantTimeEqual,
  handshakeProof,
  loadPsk,
  PSK_ENV,
  randomNonce,
  ReplayGuard,
  sessionKey,
  TAG_SIZE,
  verifyHandshakeProof,
} from "../shared/auth.ts";
import { CliError, ExitCode } from "../shared/errors.ts";
import { ReceivingFile, resumeId } from "../shared/files.ts";

const dir = fs.mkdtempSync(join(tmpdir(), "imgxfer-auth-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const utf8 = new TextEncoder();
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

describe("loadPsk", () => {
  const noEnv = () => undefined;
  test("none given: undefined", () => assert.equal(loadPsk({ env: noEnv }), undefined));
  test("--psk wins and is UTF-8", () => {
    assert.deepEqual(
      loadPsk({ psk: "correct horse", env: () => "other-secret" }),
      utf8.encode("correct horse"),
    );
  });
  test("environment variable when no flag", () => {
    assert.deepEqual(
      loadPsk({ env: (n) => (n === PSK_ENV ? "from-the-env" : undefined) }),
      utf8.encode("from-the-env"),
    );
  });
  test("key file: trailing newline (LF or CRLF) removed", () => {
    const path = join(dir, "key.txt");
    fs.writeFileSync(path, "file-secret-1\r\n");
    assert.deepEqual(loadPsk({ pskFile: path, env: noEnv }), utf8.encode("file-secret-1"));
  });
  test("both flags: usage error", () => {
    assert.throws(
      () => loadPsk({ psk: "abcdefghij", pskFile: "x", env: noEnv }),
      (e) => e instanceof CliError && e.exitCode === ExitCode.USAGE,
    );
  });
  test("short key: usage error naming the minimum", () => {
    assert.throws(() => loadPsk({ psk: "short", env: noEnv }), /at least 8/);
  });
  test("missing key file: file error, one line", () => {
    assert.throws(
      () => loadPsk({ pskFile: join(dir, "nope"), env: noEnv }),
      (e) =>
        e instanceof CliError && e.exitCode === ExitCode.FILE && /no such file/.test(e.message) &&
        !e.message.includes("\n"),
    );
  });
});

describe("Authenticator", () => {
  test("RFC 4231 test case 2, truncated to 128 bits", () => {
    const a = new Authenticator(utf8.encode("Jefe"));
    const tag = a.tag(utf8.encode("what do ya "), utf8.encode("want for nothing?"));
    assert.equal(tag.length, TAG_SIZE);
    assert.equal(hex(tag), "5bdcc146bf60754e6a042426089575c7");
  });
  test("matches createHmac for random keys and messages, and is reusable", () => {
    for (let i = 0; i < 20; i++) {
      const key = randomNonce();
      const a = new Authenticator(key);
      const msg = new Uint8Array(i * 97).map((_, j) => (j * 31 + i) & 0xff);
      const expect = new Uint8Array(createHmac("sha256", key).update(msg).digest()).subarray(0, 16);
      assert.deepEqual(a.tag(msg), expect);
      assert.deepEqual(a.tag(msg), expect, "second use of the same authenticator");
      assert.ok(a.verify(expect, msg));
    }
  });
  test("a flipped bit in message or tag fails", () => {
    const a = new Authenticator(randomNonce());
    const msg = utf8.encode("chunk 7 of the file");
    const tag = a.tag(msg);
    const bad = msg.slice();
    bad[3] ^= 1;
    assert.equal(a.verify(tag, bad), false);
    const badTag = tag.slice();
    badTag[15] ^= 0x80;
    assert.equal(a.verify(badTag, msg), false);
    assert.equal(a.verify(tag.subarray(0, 15), msg), false);
    assert.equal(new Authenticator(randomNonce()).verify(tag, msg), false, "another key");
  });
});

describe("handshake", () => {
  const psk = utf8.encode("a shared secret");
  const cn = randomNonce();
  const sn = randomNonce();
  const header = utf8.encode("header bytes");
  test("proofs verify for the right key, role, nonces and header only", () => {
    const proof = handshakeProof(psk, "client", cn, sn, header);
    assert.ok(verifyHandshakeProof(psk, "client", cn, sn, header, proof));
    assert.equal(verifyHandshakeProof(psk, "server", cn, sn, header, proof), false, "role");
    assert.equal(
      verifyHandshakeProof(utf8.encode("another secret"), "client", cn, sn, header, proof),
      false,
      "key",
    );
    assert.equal(
      verifyHandshakeProof(psk, "client", cn, randomNonce(), header, proof),
      false,
      "replay: new server nonce",
    );
    assert.equal(
      verifyHandshakeProof(psk, "client", cn, sn, utf8.encode("header bytez"), proof),
      false,
      "header",
    );
  });
  test("session keys differ per direction and per handshake", () => {
    const a = sessionKey(psk, cn, sn, "tcp client->server", header);
    const b = sessionKey(psk, cn, sn, "tcp server->client", header);
    const c = sessionKey(psk, cn, randomNonce(), "tcp client->server", header);
    assert.equal(a.length, 32);
    assert.equal(constantTimeEqual(a, b), false);
    assert.equal(constantTimeEqual(a, c), false);
    assert.deepEqual(sessionKey(psk, cn, sn, "tcp client->server", header), a, "deterministic");
  });
});

describe("ReplayGuard", () => {
  test("a nonce is accepted once within its time to live", () => {
    const g = new ReplayGuard(100, 1000);
    const n = randomNonce();
    assert.equal(g.check(n, 0), true);
    assert.equal(g.check(n, 500), false);
    assert.equal(g.check(n, 1500), true, "forgotten after the ttl");
  });
  test("bounded: never holds more than its capacity", () => {
    const g = new ReplayGuard(50, 1e9);
    for (let i = 0; i < 500; i++) assert.equal(g.check(randomNonce(), i), true);
    assert.ok(g.size <= 50, `size ${g.size}`);
  });
});

describe("resumable ReceivingFile", () => {
  test("reopens the same temporary file and keeps its bytes", () => {
    const id = resumeId(["tcp", "photo.jpeg", 10]);
    const first = new ReceivingFile(dir, "received_photo.jpeg", { resumeId: id });
    assert.equal(first.existingBytes, 0);
    first.append(utf8.encode("hello"));
    first.writeSidecar('{"held":5}');
    assert.equal(first.keep(), true);
    assert.ok(fs.existsSync(first.tempPath));
    const second = new ReceivingFile(dir, "received_photo.jpeg", { resumeId: id });
    assert.equal(second.tempPath, first.tempPath);
    assert.equal(second.existingBytes, 5);
    assert.equal(second.readSidecar(), '{"held":5}');
    second.resumeAt(5);
    second.append(utf8.encode("world"));
    const path = second.commit("received_photo.jpeg");
    assert.equal(fs.readFileSync(path, "utf8"), "helloworld");
    assert.equal(fs.existsSync(second.tempPath), false);
    assert.equal(fs.existsSync(second.sidecarPath), false, "sidecar removed on commit");
  });
  test("a symbolic link planted under the resume name is refused, its target untouched", () => {
    const id = resumeId(["tcp", "x.bin", 3]);
    const target = join(dir, "victim.txt");
    fs.writeFileSync(target, "precious");
    fs.symlinkSync(target, join(dir, `.received_x.bin.${id}.resume.part`));
    assert.throws(() => new ReceivingFile(dir, "received_x.bin", { resumeId: id }), /symbolic link/);
    assert.equal(fs.readFileSync(target, "utf8"), "precious");
  });
  test("a hard link planted under the resume name is refused", () => {
    const id = resumeId(["tcp", "y.bin", 3]);
    const target = join(dir, "victim2.txt");
    fs.writeFileSync(target, "precious");
    fs.linkSync(target, join(dir, `.received_y.bin.${id}.resume.part`));
    assert.throws(() => new ReceivingFile(dir, "received_y.bin", { resumeId: id }), /single link/);
    assert.equal(fs.readFileSync(target, "utf8"), "precious");
  });
  test("keep() on a non-resumable file deletes it", () => {
    const f = new ReceivingFile(dir, "received_z.bin");
    f.append(utf8.encode("partial"));
    assert.equal(f.keep(), false);
    assert.equal(fs.existsSync(f.tempPath), false);
  });
});
