/**
 * Pre-shared-key authentication on framed TCP (and the server's hardening
 * around it), on real sockets, servers on every runtime found and clients
 * on the other one: the right key delivers the file; a wrong or missing key
 * is refused on both sides with nothing written; a replayed handshake and a
 * tampered record are refused; classic streams are refused by a keyed
 * server; a connection that sends nothing saves nothing. Also pure unit
 * tests of the session messages in shared/protocol.ts (round trips, and
 * random or mutated bytes that may only raise ProtocolError).
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { Authenticator } from "../shared/auth.ts";
import {
  ACCEPT_SIZE,
  CHALLENGE_SIZE,
  encodeAccept,
  encodeChallenge,
  encodeFramedHeader,
  encodeFramedReply,
  encodeProof,
  encodeSessionRequest,
  encodeStart,
  FRAME_TYPE_ACCEPT,
  FRAME_TYPE_CHALLENGE,
  FRAME_TYPE_REQUEST,
  FRAMED_SESSION_VERSION,
  FramedStatus,
  MAX_RECORD_PAYLOAD,
  parseFramedHeader,
  parseFramedRequest,
  parseProof,
  parseRecordHeader,
  parseServerMessage,
  parseStart,
  PROOF_MESSAGE_SIZE,
  ProtocolError,
  recordTagPrefix,
  type ServerSessionMessage,
  SESSION_REQUEST_FIXED_SIZE,
  SessionFlags,
  START_SIZE,
  trailerTagPrefix,
  writeRecordHeader,
} from "../shared/protocol.ts";
import { seededRandom } from "../shared/rng.ts";
import {
  commandFor,
  lastJson,
  listDir,
  makeFile,
  otherThan,
  run,
  runEntry,
  type RuntimeInfo,
  runtimes,
  SAMPLE,
  ScratchDirs,
  type ServerProcess,
  sha256File,
  sleep,
  startServer,
  startTcpProxy,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = runtimes();
const KEY = "correct horse battery staple";
const OTHER_KEY = "incorrect donkey battery";
import { KEY_REQUIRED } from "../shared/auth.ts";

const scratch = new ScratchDirs("imgxfer-auth-");
after(() => scratch.cleanup());
const freshDir = (): string => scratch.fresh();

const nonce = (fill: number) => new Uint8Array(32).fill(fill);
const digestOf = (fill: number) => new Uint8Array(32).fill(fill);

// ------------------------------------------------------ session messages ----

describe("session messages (shared/protocol.ts)", () => {
  test("a session request round-trips for every flag combination, unicode names, sizes 0 and 2^53-1", () => {
    const { KEY, RESUME, XXH128 } = SessionFlags;
    for (const flags of [0, KEY, RESUME, KEY | RESUME, XXH128, XXH128 | RESUME]) {
      for (
        const [name, size] of [["input.jpeg", 61306], ["日本語 🎉.jpg", 0], [
          "z",
          Number.MAX_SAFE_INTEGER,
        ]] as const
      ) {
        const bytes = encodeSessionRequest({ name, size, flags, clientNonce: nonce(7) });
        assert.equal(bytes[8], FRAMED_SESSION_VERSION);
        assert.equal(bytes[9], FRAME_TYPE_REQUEST);
        const r = parseFramedRequest(bytes);
        assert.ok("value" in r);
        assert.equal(r.consumed, bytes.length);
        assert.equal(r.consumed, SESSION_REQUEST_FIXED_SIZE + new TextEncoder().encode(name).length);
        assert.deepEqual(r.value, { version: 2, name, size, flags, clientNonce: nonce(7) });
      }
    }
  });

  test("a version-1 header parses as a request without flags, exactly as parseFramedHeader reads it", () => {
    const bytes = encodeFramedHeader({ name: "input.jpeg", size: 61306 });
    const r = parseFramedRequest(bytes);
    const v1 = parseFramedHeader(bytes);
    assert.ok("value" in r && "value" in v1);
    assert.deepEqual(r.value, { ...v1.value, flags: 0 });
    assert.equal(r.consumed, v1.consumed);
  });

  test("every cut of a request asks for more bytes, never throws", () => {
    const bytes = encodeSessionRequest({ name: "photo.png", size: 5, flags: 3, clientNonce: nonce(1) });
    for (let n = 0; n < bytes.length; n++) {
      const r = parseFramedRequest(bytes.subarray(0, n));
      assert.ok("need" in r, `cut at ${n}`);
      assert.ok(r.need > n && r.need <= bytes.length, `cut at ${n}: need ${r.need}`);
    }
  });

  test("malformed requests raise ProtocolError; the encoder refuses bad fields", () => {
    const good = encodeSessionRequest({ name: "a.bin", size: 5, flags: 1, clientNonce: nonce(1) });
    const unknownFlag = good.slice();
    unknownFlag[20] = 0x08;
    assert.throws(() => parseFramedRequest(unknownFlag), ProtocolError);
    const noName = good.slice();
    noName[10] = 0;
    noName[11] = 0;
    assert.throws(() => parseFramedRequest(noName), ProtocolError);
    const wrongType = good.slice();
    wrongType[9] = 0x05;
    assert.throws(() => parseFramedRequest(wrongType), ProtocolError);
    const huge = good.slice();
    huge.fill(0xff, 12, 20);
    assert.throws(() => parseFramedRequest(huge), ProtocolError);
    assert.throws(
      () => encodeSessionRequest({ name: "a", size: 1, flags: 8, clientNonce: nonce(1) }),
      RangeError,
    );
    assert.throws(
      () => encodeSessionRequest({ name: "", size: 1, flags: 1, clientNonce: nonce(1) }),
      RangeError,
    );
    assert.throws(
      () => encodeSessionRequest({ name: "a", size: 1, flags: 1, clientNonce: new Uint8Array(31) }),
      RangeError,
    );
  });

  test("challenge, accept and reply come back out of parseServerMessage", () => {
    const challenge = encodeChallenge({ serverNonce: nonce(2), proof: digestOf(3) });
    assert.equal(challenge.length, CHALLENGE_SIZE);
    assert.equal(challenge[9], FRAME_TYPE_CHALLENGE);
    const c = parseServerMessage(challenge);
    assert.ok("value" in c);
    assert.deepEqual(c.value, { type: "challenge", serverNonce: nonce(2), proof: digestOf(3) });

    const accept = encodeAccept({ bytes: 52428800, digest: digestOf(9) });
    assert.equal(accept.length, ACCEPT_SIZE);
    assert.equal(accept[9], FRAME_TYPE_ACCEPT);
    const a = parseServerMessage(accept);
    assert.ok("value" in a && a.value.type === "accept");
    assert.deepEqual(a.value.offer, { bytes: 52428800, digest: digestOf(9) });
    assert.deepEqual(a.value.tag, new Uint8Array(16), "unsealed: zero tag");

    const reply = encodeFramedReply({
      status: FramedStatus.REFUSED,
      bytes: 0,
      digest: digestOf(0),
      message: "no",
    });
    const r = parseServerMessage(reply);
    assert.ok("value" in r && r.value.type === "reply");
    assert.equal(r.value.reply.message, "no");
    assert.equal(r.consumed, reply.length);

    // A request is not something a server sends.
    assert.throws(
      () => parseServerMessage(encodeSessionRequest({ name: "a", size: 1, flags: 1, clientNonce: nonce(1) })),
      ProtocolError,
    );
  });

  test("proof and start round-trip; sealed messages verify, and any changed byte breaks the tag", () => {
    const p = parseProof(encodeProof(digestOf(4)));
    assert.ok("value" in p);
    assert.deepEqual(p.value, digestOf(4));
    assert.equal(p.consumed, PROOF_MESSAGE_SIZE);

    const auth = new Authenticator(new Uint8Array(32).fill(5));
    const start = encodeStart(123456789, (b) => auth.tag(b));
    assert.equal(start.length, START_SIZE);
    const s = parseStart(start);
    assert.ok("value" in s);
    assert.equal(s.value.offset, 123456789);
    assert.ok(auth.verify(s.value.tag, s.value.signed));

    const accept = encodeAccept({ bytes: 7, digest: digestOf(1) }, (b) => auth.tag(b));
    for (let i = 0; i < accept.length; i++) {
      const changed = accept.slice();
      changed[i] ^= 0x01;
      let parsed: ServerSessionMessage | undefined;
      try {
        const r = parseServerMessage(changed);
        if ("value" in r) parsed = r.value;
      } catch (error) {
        assert.ok(error instanceof ProtocolError);
        continue;
      }
      assert.ok(parsed?.type === "accept", `byte ${i}`);
      assert.equal(auth.verify(parsed.tag, parsed.signed), false, `changing byte ${i} kept the tag valid`);
    }
  });

  test("record lengths: 1 to 1 MiB within the file; 0, more, and past the end are ProtocolErrors", () => {
    const header = new Uint8Array(4);
    for (const length of [1, 4096, MAX_RECORD_PAYLOAD]) {
      writeRecordHeader(header, length);
      assert.deepEqual(parseRecordHeader(header, MAX_RECORD_PAYLOAD), { value: length, consumed: 4 });
    }
    assert.deepEqual(parseRecordHeader(header.subarray(0, 3), 10), { need: 4 });
    writeRecordHeader(header, 100);
    assert.throws(() => parseRecordHeader(header, 99), ProtocolError);
    assert.throws(() => parseRecordHeader(new Uint8Array(4), 10), ProtocolError);
    assert.throws(() => parseRecordHeader(new Uint8Array([0, 0x10, 0, 1]), 1 << 30), ProtocolError);
    assert.throws(() => writeRecordHeader(header, 0), RangeError);
    assert.throws(() => writeRecordHeader(header, MAX_RECORD_PAYLOAD + 1), RangeError);
  });

  test("tag prefixes bind kind, index, length and size", () => {
    assert.deepEqual(
      Array.from(recordTagPrefix(258, 0x10000)),
      [1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 1, 0, 0],
    );
    assert.deepEqual(
      Array.from(trailerTagPrefix(3, 61306)),
      [2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0xef, 0x7a],
    );
  });

  test("seeded fuzz: random and mutated bytes give a value, a need, or a ProtocolError, nothing else", () => {
    const rand = seededRandom(0x5e55);
    const int = (n: number) => Math.floor(rand() * n);
    const bytesOf = (n: number) => Uint8Array.from({ length: n }, () => int(256));
    const auth = new Authenticator(new Uint8Array(32).fill(1));
    const seeds = [
      encodeSessionRequest({ name: "input.jpeg", size: 61306, flags: 3, clientNonce: nonce(1) }),
      encodeSessionRequest({ name: "é", size: 0, flags: 0, clientNonce: nonce(2) }),
      encodeChallenge({ serverNonce: nonce(3), proof: digestOf(4) }),
      encodeProof(digestOf(5)),
      encodeAccept({ bytes: 99, digest: digestOf(6) }, (b) => auth.tag(b)),
      encodeStart(42, (b) => auth.tag(b)),
      encodeFramedReply({ status: 0, bytes: 1, digest: digestOf(7), message: "SUCCESS: File received" }),
    ];
    const mutate = (input: Uint8Array): Uint8Array => {
      let out = input.slice();
      for (let round = 1 + int(4); round > 0; round--) {
        const kind = int(5);
        if (kind === 0 && out.length > 0) out[int(out.length)] ^= 1 << int(8);
        else if (kind === 1 && out.length > 0) out[int(out.length)] = [0, 1, 2, 3, 5, 6, 0x7f, 0xff][int(8)];
        else if (kind === 2) out = out.slice(0, int(out.length + 1));
        else if (kind === 3) out = Uint8Array.from([...out, ...bytesOf(int(40))]);
        else if (out.length > 21) out.set(bytesOf(8), [8, 10, 12, 20][int(4)] % (out.length - 8));
      }
      return out;
    };
    const parsers: Array<[string, (b: Uint8Array) => { need: number } | { consumed: number }]> = [
      ["parseFramedRequest", parseFramedRequest],
      ["parseServerMessage", parseServerMessage],
      ["parseProof", parseProof],
      ["parseStart", parseStart],
      ["parseRecordHeader", (b) => parseRecordHeader(b, 1 << 20)],
    ];
    let values = 0;
    for (let i = 0; i < 20000; i++) {
      const input = i % 5 === 0 ? bytesOf(int(120)) : mutate(seeds[int(seeds.length)]);
      for (const [name, parse] of parsers) {
        try {
          const r = parse(input);
          if ("need" in r) assert.ok(r.need > input.length, `${name}: need ${r.need} <= ${input.length}`);
          else {
            values++;
            assert.ok(r.consumed <= input.length, `${name}: consumed ${r.consumed} > ${input.length}`);
          }
        } catch (error) {
          assert.ok(error instanceof ProtocolError, `${name} threw ${(error as Error)?.name}: ${error}`);
        }
      }
    }
    assert.ok(values > 1000, `too few inputs decoded (${values}): the mutations are too destructive`);
  });
});

/** Sends `bytes` on a new connection, half-closes, and returns everything the server sent back. */
function exchange(port: number, bytes: Uint8Array, timeoutMs = 10000): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    const sock = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => sock.end(bytes));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no end of the server's answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("data", (d: Uint8Array) => chunks.push(new Uint8Array(d)));
    sock.on("error", () => {/* a reset after the reply: what arrived counts */});
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(new Uint8Array(Buffer.concat(chunks)));
    });
  });
}

/** The framed reply among what a server sent (after any challenge). */
function replyIn(bytes: Uint8Array): { status: number; message: string } {
  let at = 0;
  while (at < bytes.length) {
    const r = parseServerMessage(bytes.subarray(at));
    assert.ok("value" in r, `incomplete server message in ${bytes.length} bytes`);
    if (r.value.type === "reply") return r.value.reply;
    at += r.consumed;
  }
  throw new Error(`no reply among ${bytes.length} bytes`);
}

/**
 * A server that does not hold the key and tries to pass anyway: a challenge
 * with a made-up proof, an unsealed accept, and at the end a success reply
 * with the right digest (which it happens to know) and a made-up tag.
 */
async function startImpostor(size: number, sha256: string): Promise<{
  port: number;
  received(): number;
  started(): boolean;
  close(): Promise<void>;
}> {
  let received = 0;
  let started = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    let pending = new Uint8Array(0);
    let stage = 0;
    sock.on("error", () => {});
    sock.on("data", (d: Uint8Array) => {
      received += d.length;
      pending = new Uint8Array(Buffer.concat([pending, d]));
      if (stage === 0) {
        const r = parseFramedRequest(pending);
        if ("need" in r) return;
        pending = pending.subarray(r.consumed);
        stage = 1;
        sock.write(encodeChallenge({ serverNonce: randomBytes(32), proof: randomBytes(32) }));
      }
      if (stage === 1 && pending.length >= PROOF_MESSAGE_SIZE) {
        pending = pending.subarray(PROOF_MESSAGE_SIZE);
        stage = 2;
        sock.write(encodeAccept({ bytes: 0, digest: new Uint8Array(32) }));
      }
      if (stage === 2 && pending.length > 0) started = true; // a start message: the client went on
    });
    sock.on("end", () => {
      const digest = new Uint8Array(Buffer.from(sha256, "hex"));
      const reply = encodeFramedReply({
        status: FramedStatus.OK,
        bytes: size,
        digest,
        message: "SUCCESS: File received",
      });
      sock.end(Buffer.concat([reply, randomBytes(16)]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => received,
    started: () => started,
    close: () =>
      new Promise<void>((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      }),
  };
}

/** Files a transfer left in `dir` besides `expected`, hidden ones included. */
function assertOnly(dir: string, expected: string[]): void {
  assert.deepEqual(listDir(dir), [...expected].sort(), `files in ${dir}`);
}

function keyedServer(rt: RuntimeInfo, out: string, extra: string[] = []): Promise<ServerProcess> {
  return startServer(rt, "tcp/server.ts", ["--out", out, "--psk", KEY, ...extra]);
}

// --------------------------------------------------------------- end to end ----

for (const rt of RTS) {
  const client = otherThan(rt);
  describe(`${rt.name} server, ${client.name} client: pre-shared key`, () => {
    test("the right key (--psk-file, IMGXFER_PSK) delivers files intact and authenticated", {
      timeout: 90000,
    }, async () => {
      const out = freshDir();
      const src = freshDir();
      const big = makeFile(src, "big.bin", 3 * MAX_RECORD_PAYLOAD + 12345);
      const keyFile = join(src, "key.txt");
      fs.writeFileSync(keyFile, `${KEY}\n`);
      const srv = await keyedServer(rt, out);
      try {
        const base = ["--port", String(srv.port), "--json"];
        const a = await runEntry(client, "tcp/client.ts", [...base, "--file", SAMPLE, "--psk-file", keyFile]);
        assert.equal(a.code, 0, `stdout: ${a.stdout}\nstderr: ${a.stderr}`);
        const sa = lastJson(a.stdout);
        assert.equal(sa.status, "success");
        assert.equal(sa.verified, true);
        assert.equal(sa.authenticated, true);

        const cmd = commandFor(client, "tcp/client.ts", [...base, "--file", big]);
        const b = await run(["env", `IMGXFER_PSK=${KEY}`, ...cmd], { timeoutMs: 60000 });
        assert.equal(b.code, 0, `stdout: ${b.stdout}\nstderr: ${b.stderr}`);
        const sb = lastJson(b.stdout);
        assert.equal(sb.status, "success");
        assert.equal(sb.authenticated, true);
        assert.equal(sb.chunks, 4, "records of up to 1 MiB");

        await srv.waitFor((e) => e.event === "received" && e.path === join(out, "received_big.bin"));
        assertOnly(out, ["received_big.bin", "received_input.jpeg"]);
        assert.equal(sha256File(join(out, "received_input.jpeg")), sha256File(SAMPLE));
        assert.equal(sha256File(join(out, "received_big.bin")), sha256File(big));
      } finally {
        await srv.stop();
      }
    });

    test(
      "without a key or --resume, the client sends version 1 byte for byte",
      { timeout: 60000 },
      async () => {
        const out = freshDir();
        const srv = await startServer(rt, "tcp/server.ts", ["--out", out]);
        const proxy = await startTcpProxy(srv.port);
        try {
          const res = await runEntry(client, "tcp/client.ts", [
            "--port",
            String(proxy.port),
            "--file",
            SAMPLE,
          ]);
          assert.equal(res.code, 0, res.stderr);
          const sample = new Uint8Array(fs.readFileSync(SAMPLE));
          const expected = Buffer.concat([
            encodeFramedHeader({ name: "input.jpeg", size: sample.length }),
            sample,
            Buffer.from(sha256File(SAMPLE), "hex"),
          ]);
          assert.ok(
            Buffer.from(proxy.clientBytes()).equals(expected),
            "the stream is not version 1 as before",
          );
        } finally {
          await proxy.close();
          await srv.stop();
        }
      },
    );

    test("a wrong key is refused on both sides and nothing is written", { timeout: 60000 }, async () => {
      const out = freshDir();
      const srv = await keyedServer(rt, out);
      try {
        const res = await runEntry(client, "tcp/client.ts", [
          ...["--port", String(srv.port), "--file", SAMPLE, "--psk", OTHER_KEY, "--json"],
        ]);
        assert.equal(res.code, 1, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        assert.match(res.stderr, /^tcp-client: refused: wrong key/m);
        const s = lastJson(res.stdout);
        assert.equal(s.status, "refused");
        assert.equal(s.confirmedBytes, 0);
        assert.equal(s.authenticated, false);
        const failed = await srv.waitFor((e) => e.event === "failed");
        assert.match(String(failed.error), /wrong key.*nothing saved/);
        assert.ok(!srv.events.some((e) => e.event === "received"));
        assertOnly(out, []);
      } finally {
        await srv.stop();
      }
    });

    test("a client without a key is refused by a keyed server (framed, --resume, classic)", {
      timeout: 90000,
    }, async () => {
      const out = freshDir();
      const srv = await keyedServer(rt, out);
      try {
        const base = ["--port", String(srv.port), "--file", SAMPLE, "--json"];
        for (const extra of [[], ["--resume"]]) {
          const res = await runEntry(client, "tcp/client.ts", [...base, ...extra]);
          assert.equal(res.code, 1, `${extra}: stdout: ${res.stdout}\nstderr: ${res.stderr}`);
          const s = lastJson(res.stdout);
          assert.equal(s.status, "refused");
          assert.equal(s.response, KEY_REQUIRED);
          assert.match(res.stderr, /tcp-client: refused: this server requires a key/);
        }
        const classic = await runEntry(client, "tcp/client.ts", [...base, "--classic"]);
        assert.equal(classic.code, 1, `stdout: ${classic.stdout}\nstderr: ${classic.stderr}`);
        const cs = lastJson(classic.stdout);
        assert.equal(cs.status, "error");
        assert.match(String(cs.response), /^REFUSED: .*requires a key.*classic/);

        // A raw stream that happens to start like nothing framed: refused with a text reply too.
        const answer = await exchange(srv.port, new Uint8Array(randomBytes(5000)));
        assert.match(new TextDecoder().decode(answer), /^REFUSED: .*classic raw TCP streams cannot carry/);

        await srv.waitFor(() => srv.events.filter((e) => e.event === "failed").length === 4);
        for (const f of srv.events.filter((e) => e.event === "failed")) {
          assert.match(String(f.error), /requires a key.*nothing saved/, JSON.stringify(f));
        }
        assertOnly(out, []);
      } finally {
        await srv.stop();
      }
    });

    test("a keyed client does not send to a server without a key", { timeout: 60000 }, async () => {
      const out = freshDir();
      const srv = await startServer(rt, "tcp/server.ts", ["--out", out]);
      try {
        for (const extra of [[], ["--resume"]]) {
          const res = await runEntry(client, "tcp/client.ts", [
            ...["--port", String(srv.port), "--file", SAMPLE, "--psk", KEY, "--json", ...extra],
          ]);
          assert.equal(res.code, 1, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
          const s = lastJson(res.stdout);
          assert.equal(s.status, "refused");
          assert.equal(s.chunks, 0);
          assert.match(String(s.response), /this server has no key/);
          assert.match(res.stderr, /tcp-client: refused: this server has no key/);
        }
        await srv.waitFor(() => srv.events.filter((e) => e.event === "failed").length === 2);
        for (const f of srv.events.filter((e) => e.event === "failed")) {
          assert.match(String(f.error), /no key.*nothing saved/);
          assert.ok(Number(f.bytes) < 1000, `the server read ${f.bytes} bytes: the file was sent`);
        }
        assertOnly(out, []);
      } finally {
        await srv.stop();
      }
    });

    test("a replayed handshake is refused (same server: nonce seen; restarted server: proof fails)", {
      timeout: 90000,
    }, async () => {
      const out = freshDir();
      let srv = await keyedServer(rt, out);
      const proxy = await startTcpProxy(srv.port);
      try {
        const res = await runEntry(client, "tcp/client.ts", [
          ...["--port", String(proxy.port), "--file", SAMPLE, "--psk", KEY, "--json"],
        ]);
        assert.equal(res.code, 0, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        await srv.waitFor((e) => e.event === "received");
        const recorded = proxy.clientBytes();
        assert.ok(recorded.length > 61306, `recorded only ${recorded.length} bytes`);

        const again = replyIn(await exchange(srv.port, recorded));
        assert.equal(again.status, FramedStatus.REFUSED);
        assert.match(again.message, /replayed/);
        await srv.waitFor((e) => e.event === "failed" && /replayed/.test(String(e.error)));

        await srv.stop();
        srv = await keyedServer(rt, out);
        const later = replyIn(await exchange(srv.port, recorded));
        assert.equal(later.status, FramedStatus.REFUSED);
        assert.match(later.message, /wrong key/);
        await srv.waitFor((e) => e.event === "failed" && /wrong key/.test(String(e.error)));
        assert.ok(!srv.events.some((e) => e.event === "received"));
        assertOnly(out, ["received_input.jpeg"]);
      } finally {
        await proxy.close();
        await srv.stop();
      }
    });

    test("a record altered in transit is refused; nothing after the last good record is written", {
      timeout: 90000,
    }, async () => {
      const out = freshDir();
      const src = freshDir();
      const size = 6 * MAX_RECORD_PAYLOAD;
      const file = makeFile(src, "tamper.bin", size);
      const flipAt = 3 * MAX_RECORD_PAYLOAD + 123; // of the client's stream: inside the third record's payload
      const srv = await keyedServer(rt, out);
      const proxy = await startTcpProxy(srv.port, flipAt);
      try {
        const res = await runEntry(client, "tcp/client.ts", [
          ...["--port", String(proxy.port), "--file", file, "--psk", KEY, "--json"],
        ], { timeoutMs: 60000 });
        assert.equal(res.code, 1, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        const s = lastJson(res.stdout);
        assert.equal(s.status, "refused", res.stdout);
        assert.match(String(s.response), /record \d+ .*failed authentication/);
        const failed = await srv.waitFor((e) => e.event === "failed");
        assert.match(String(failed.error), /failed authentication/);
        assert.ok(!srv.events.some((e) => e.event === "received"));

        // No final file; at most a partial of verified records, all before the flipped byte.
        const files = listDir(out);
        assert.ok(files.every((f) => f.startsWith(".") && f.endsWith(".resume.part")), files.join(", "));
        const source = fs.readFileSync(file);
        for (const f of files) {
          const kept = fs.readFileSync(join(out, f));
          assert.ok(kept.length <= flipAt, `the partial holds ${kept.length} bytes, past the altered byte`);
          assert.ok(kept.equals(source.subarray(0, kept.length)), "the partial is not the file's beginning");
        }
      } finally {
        await proxy.close();
        await srv.stop();
      }
    });
  });

  describe(`${rt.name} client: a server without the key`, () => {
    test("cannot pass for the real one: the client refuses before sending a byte of the file", {
      timeout: 60000,
    }, async () => {
      const impostor = await startImpostor(61306, sha256File(SAMPLE));
      try {
        const res = await runEntry(rt, "tcp/client.ts", [
          ...["--port", String(impostor.port), "--file", SAMPLE, "--psk", KEY, "--json"],
        ]);
        assert.equal(res.code, 1, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        const s = lastJson(res.stdout);
        assert.equal(s.status, "refused");
        assert.equal(s.verified, false);
        assert.equal(s.authenticated, false);
        assert.match(res.stderr, /tcp-client: refused: wrong key/);
        await sleep(200);
        assert.equal(impostor.started(), false, `the client sent its data: ${impostor.received()} bytes`);
      } finally {
        await impostor.close();
      }
    });
  });

  describe(`${rt.name}: a connection that sends nothing`, () => {
    test(
      "saves nothing, is logged as empty, and does not end a --once server",
      { timeout: 60000 },
      async () => {
        const out = freshDir();
        const srv = await startServer(rt, "tcp/server.ts", ["--out", out, "--once"]);
        try {
          assert.equal((await exchange(srv.port, new Uint8Array(0))).length, 0);
          const failed = await srv.waitFor((e) => e.event === "failed");
          assert.match(String(failed.error), /empty connection.*nothing saved/);
          await sleep(300);
          assertOnly(out, []);
          assert.equal(srv.child.exitCode, null, "a port probe must not use up --once");

          const res = await runEntry(client, "tcp/client.ts", ["--port", String(srv.port), "--file", SAMPLE]);
          assert.equal(res.code, 0, res.stderr);
          assert.equal(await srv.exited(), 0);
          assertOnly(out, ["received_input.jpeg"]);
        } finally {
          await srv.stop();
        }
      },
    );
  });
}
