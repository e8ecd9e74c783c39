/**
 * The UDP server must never report success for a file with missing packets,
 * and never hang on a lost end marker. The datagrams are written by hand
 * here (node:dgram works in Deno and Bun), following the classic format:
 * a 4-byte big-endian signed sequence number and the payload; sequence -1 is
 * the end marker, optionally followed by a 16-byte trailer (tag `IXF1`, u32
 * packet count, u64 file size).
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import { join } from "node:path";
import {
  listDir,
  runEntry,
  type RuntimeInfo,
  runtimeNamed,
  SAMPLE,
  type ServerProcess,
  sha256File,
  startServer,
  tempDir,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = [runtimeNamed("deno"), runtimeNamed("bun")];
const COMPLETE_NAME = "received_input_udp.jpeg";
const INCOMPLETE_NAME = "received_input_udp.incomplete.jpeg";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

// ------------------------------------------------------------ wire format ----

/** A data datagram: big-endian signed sequence number, then the payload. */
function dataDatagram(seq: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setInt32(0, seq, false);
  out.set(payload, 4);
  return out;
}

/**
 * The end marker: `ff ff ff ff`, plus the trailer when given: tag `IXF1`,
 * packets (u32), chunk size (u32), bytes (u64). Written by hand, not with
 * the project's encoder, so the test pins the wire format.
 */
function endMarker(trailer?: { packets: number; chunk: number; bytes: number }): Uint8Array {
  const out = new Uint8Array(trailer ? 24 : 4);
  const view = new DataView(out.buffer);
  view.setInt32(0, -1, false);
  if (trailer) {
    out.set(new TextEncoder().encode("IXF1"), 4);
    view.setUint32(8, trailer.packets, false);
    view.setUint32(12, trailer.chunk, false);
    view.setBigUint64(16, BigInt(trailer.bytes), false);
  }
  return out;
}

/** `count` random payloads of `size` bytes, the last one `lastSize` bytes. */
function payloads(count: number, size: number, lastSize = size): Uint8Array[] {
  return Array.from(
    { length: count },
    (_, i) => new Uint8Array(randomBytes(i === count - 1 ? lastSize : size)),
  );
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function total(parts: Uint8Array[]): number {
  return parts.reduce((n, p) => n + p.length, 0);
}

// ----------------------------------------------------------------- sender ----

/** A UDP socket on 127.0.0.1 that sends datagrams in order and collects replies. */
class Sender {
  readonly replies: string[] = [];
  #socket: dgram.Socket;
  #waiters = new Set<() => void>();

  private constructor(socket: dgram.Socket) {
    this.#socket = socket;
    socket.on("message", (msg) => {
      this.replies.push(new TextDecoder().decode(msg).trim());
      for (const w of [...this.#waiters]) w();
    });
    socket.on("error", () => {});
  }

  static open(): Promise<Sender> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket("udp4");
      socket.once("error", reject);
      socket.bind(0, "127.0.0.1", () => {
        socket.off("error", reject);
        resolve(new Sender(socket));
      });
    });
  }

  /** Sends one datagram and waits until it has left. */
  send(port: number, datagram: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.send(datagram, port, "127.0.0.1", (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Sends `seqs` (indices into `parts`) in that order, then `marker` when given. */
  async sendAll(port: number, parts: Uint8Array[], seqs: number[], marker?: Uint8Array): Promise<void> {
    for (const seq of seqs) await this.send(port, dataDatagram(seq, parts[seq]));
    if (marker) await this.send(port, marker);
  }

  /** Waits for reply number `index` (0-based). */
  reply(index = 0, timeoutMs = 8000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.replies.length > index) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          resolve(this.replies[index]);
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(`no reply #${index} within ${timeoutMs} ms; replies: ${JSON.stringify(this.replies)}`),
        );
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

/** A UDP port on 127.0.0.1 with nothing bound (bound, then released). */
async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

// ------------------------------------------------------------------ setup ----

interface Fixture {
  srv: ServerProcess;
  out: string;
  sender: Sender;
}

/** Starts our UDP server on `rt` (idle timeout 1 s) and a sender; stops both afterwards. */
async function withServer(rt: RuntimeInfo, body: (f: Fixture) => Promise<void>): Promise<void> {
  const out = tempDir();
  dirs.push(out);
  const srv = await startServer(rt, "udp/server.ts", ["--out", out, "--idle-timeout", "1"]);
  const sender = await Sender.open();
  try {
    await body({ srv, out, sender });
    assert.equal(srv.child.exitCode, null, `the server must keep running; stderr: ${srv.stderr()}`);
    assert.ok(!srv.stderr().includes("    at "), `stack trace on the server's stderr: ${srv.stderr()}`);
  } finally {
    await sender.close();
    await srv.stop();
  }
}

/** The server's first `received` event (each test starts its own server). */
function received(srv: ServerProcess): Promise<Record<string, unknown>> {
  return srv.waitFor((e) => e.event === "received");
}

/** Asserts `bytes` is `parts` laid out at `size`-byte strides, with `missing` packets zero-filled. */
function assertLayout(bytes: Uint8Array, parts: Uint8Array[], stride: number, missing: number[]): void {
  for (let seq = 0; seq < parts.length; seq++) {
    const start = seq * stride;
    const expected = missing.includes(seq) ? new Uint8Array(parts[seq].length) : parts[seq];
    const actual = bytes.subarray(start, start + parts[seq].length);
    assert.ok(
      actual.length === expected.length && actual.every((b, i) => b === expected[i]),
      `packet ${seq} at offset ${start}: expected ${missing.includes(seq) ? "zeros" : "its payload"}`,
    );
  }
}

// ------------------------------------------------------------------ tests ----

for (const rt of RTS) {
  describe(`${rt.name} UDP server`, () => {
    test("a sequence with holes is INCOMPLETE and saved under an incomplete name", {
      timeout: 30000,
    }, async () => {
      await withServer(rt, async ({ srv, out, sender }) => {
        const parts = payloads(10, 1000, 500);
        const sent = [0, 1, 2, 4, 5, 6, 8, 9];
        await sender.sendAll(
          srv.port,
          parts,
          sent,
          endMarker({ packets: 10, chunk: parts[0].length, bytes: total(parts) }),
        );
        const reply = await sender.reply();
        assert.ok(reply.startsWith("INCOMPLETE"), reply);
        assert.match(reply, /missing 3, 7\b/);
        assert.match(reply, /8\/10 packets/);
        const rec = await received(srv);
        assert.equal(rec.complete, false);
        assert.match(String(rec.path), /incomplete/);
        assert.equal(rec.path, join(out, INCOMPLETE_NAME));
        assert.deepEqual(rec.packets, { received: 8, expected: 10, missing: "3, 7" });
        assert.ok(!fs.existsSync(join(out, COMPLETE_NAME)), `${COMPLETE_NAME} must not exist`);
        assert.deepEqual(listDir(out), [INCOMPLETE_NAME]);
        const replyEvent = await srv.waitFor((e) => e.event === "reply");
        assert.equal(replyEvent.text, reply);
      });
    });

    test("the incomplete file has zero-filled holes at the right offsets", { timeout: 30000 }, async () => {
      await withServer(rt, async ({ srv, out, sender }) => {
        const parts = payloads(12, 1200, 345);
        const missing = [0, 5, 6, 11];
        const sent = parts.map((_, i) => i).filter((i) => !missing.includes(i)).reverse();
        const size = total(parts);
        await sender.sendAll(
          srv.port,
          parts,
          sent,
          endMarker({ packets: 12, chunk: parts[0].length, bytes: size }),
        );
        const reply = await sender.reply();
        assert.ok(reply.startsWith("INCOMPLETE"), reply);
        assert.match(reply, /missing 0, 5-6, 11\b/);
        const rec = await received(srv);
        assert.equal(rec.complete, false);
        const bytes = new Uint8Array(fs.readFileSync(join(out, INCOMPLETE_NAME)));
        assert.equal(bytes.length, size, "the trailer gives the size: the file must have it");
        assert.equal(rec.bytes, size);
        assertLayout(bytes, parts, 1200, missing);
      });
    });

    test("holes keep their offsets when only the short last packet arrived", { timeout: 30000 }, async () => {
      // The trailer says 3 packets, 2500 bytes: packets are 1000 bytes, and
      // the 500-byte packet 2 belongs at offset 2000.
      await withServer(rt, async ({ srv, out, sender }) => {
        const parts = payloads(3, 1000, 500);
        await sender.sendAll(
          srv.port,
          parts,
          [2],
          endMarker({ packets: 3, chunk: parts[0].length, bytes: 2500 }),
        );
        const reply = await sender.reply();
        assert.ok(reply.startsWith("INCOMPLETE"), reply);
        assert.match(reply, /missing 0-1\b/);
        const rec = await received(srv);
        assert.equal(rec.complete, false);
        const bytes = new Uint8Array(fs.readFileSync(join(out, INCOMPLETE_NAME)));
        assert.equal(bytes.length, 2500, "the trailer gives the size: the file must have it");
        assertLayout(bytes, parts, 1000, [0, 1]);
      });
    });

    test("a lost last packet is INCOMPLETE when the marker has a trailer", { timeout: 30000 }, async () => {
      await withServer(rt, async ({ srv, out, sender }) => {
        const parts = payloads(10, 1000, 500);
        const size = total(parts);
        await sender.sendAll(
          srv.port,
          parts,
          [0, 1, 2, 3, 4, 5, 6, 7, 8],
          endMarker({ packets: 10, chunk: parts[0].length, bytes: size }),
        );
        const reply = await sender.reply();
        assert.ok(reply.startsWith("INCOMPLETE"), reply);
        assert.match(reply, /9\/10 packets/);
        assert.match(reply, /missing 9\b/);
        const rec = await received(srv);
        assert.equal(rec.complete, false);
        assert.match(String(rec.path), /incomplete/);
        assert.ok(!fs.existsSync(join(out, COMPLETE_NAME)));
        const bytes = new Uint8Array(fs.readFileSync(join(out, INCOMPLETE_NAME)));
        assert.equal(bytes.length, size);
        assertLayout(bytes, parts, 1000, [9]);
      });
    });

    test("a lost last packet with the bare 4-byte marker is not called complete", {
      timeout: 30000,
    }, async () => {
      // With the original's bare marker the server cannot count the packets
      // sent, but a full-size last packet means more may have followed: the
      // server must not claim success (udp/classic_assembler.ts).
      await withServer(rt, async ({ srv, out, sender }) => {
        const parts = payloads(10, 1000);
        await sender.sendAll(srv.port, parts, [0, 1, 2, 3, 4, 5, 6, 7, 8], endMarker());
        const reply = await sender.reply();
        assert.ok(reply.startsWith("INCOMPLETE"), reply);
        assert.match(reply, /full-size/);
        const rec = await received(srv);
        assert.equal(rec.complete, false);
        assert.match(String(rec.path), /incomplete/);
        assert.ok(!fs.existsSync(join(out, COMPLETE_NAME)));
      });
    });

    test("holes are detected with the bare marker too", { timeout: 30000 }, async () => {
      await withServer(rt, async ({ srv, out, sender }) => {
        const parts = payloads(10, 1000, 10);
        await sender.sendAll(srv.port, parts, [0, 1, 2, 4, 5, 6, 8, 9], endMarker());
        const reply = await sender.reply();
        assert.ok(reply.startsWith("INCOMPLETE"), reply);
        assert.match(reply, /missing 3, 7\b/);
        const rec = await received(srv);
        assert.equal(rec.complete, false);
        assert.ok(!fs.existsSync(join(out, COMPLETE_NAME)));
      });
    });

    test("a trailer whose byte count does not match is INCOMPLETE", { timeout: 30000 }, async () => {
      await withServer(rt, async ({ srv, out, sender }) => {
        const parts = payloads(4, 1000, 300);
        await sender.sendAll(
          srv.port,
          parts,
          [0, 1, 2, 3],
          endMarker({ packets: 4, chunk: parts[0].length, bytes: total(parts) + 1 }),
        );
        const reply = await sender.reply();
        assert.ok(reply.startsWith("INCOMPLETE"), reply);
        const rec = await received(srv);
        assert.equal(rec.complete, false);
        assert.ok(!fs.existsSync(join(out, COMPLETE_NAME)));
      });
    });

    test("no end marker: INCOMPLETE after the idle timeout, and the server keeps serving", {
      timeout: 60000,
    }, async () => {
      await withServer(rt, async ({ srv, out, sender }) => {
        const parts = payloads(5, 1000);
        const started = performance.now();
        await sender.sendAll(srv.port, parts, [0, 1, 2, 3, 4]);
        const reply = await sender.reply(0, 10000);
        const waited = performance.now() - started;
        assert.ok(reply.startsWith("INCOMPLETE"), reply);
        assert.match(reply, /end marker/);
        assert.ok(waited >= 900, `replied after ${waited.toFixed(0)} ms, before the 1 s idle timeout`);
        assert.ok(waited < 5000, `replied after ${waited.toFixed(0)} ms with --idle-timeout 1`);
        const rec = await received(srv);
        assert.equal(rec.complete, false);
        assert.match(String(rec.path), /incomplete/);
        assert.ok(fs.existsSync(String(rec.path)));
        assert.ok(!fs.existsSync(join(out, COMPLETE_NAME)));

        for (const client of RTS) {
          const res = await runEntry(client, "udp/client.ts", [
            "--port",
            String(srv.port),
            "--file",
            SAMPLE,
            "--timeout",
            "5",
            "--json",
          ]);
          assert.equal(res.code, 0, `${client.name} client: ${res.stderr}`);
        }
        const good = srv.events.filter((e) => e.event === "received" && e.complete === true);
        assert.equal(good.length, 2, JSON.stringify(srv.events));
        for (const e of good) assert.equal(sha256File(String(e.path)), sha256File(SAMPLE));
        assert.equal(sha256File(join(out, COMPLETE_NAME)), sha256File(SAMPLE));
      });
    });

    for (const trailer of [true, false]) {
      test(
        `duplicates and reordering still give SUCCESS and the right bytes (${
          trailer ? "trailer" : "bare marker"
        })`,
        { timeout: 30000 },
        async () => {
          await withServer(rt, async ({ srv, out, sender }) => {
            const parts = payloads(10, 1000, 777);
            const order = [7, 2, 9, 0, 2, 5, 1, 8, 8, 3, 6, 4, 0, 9];
            await sender.sendAll(
              srv.port,
              parts,
              order,
              endMarker(trailer ? { packets: 10, chunk: parts[0].length, bytes: total(parts) } : undefined),
            );
            const reply = await sender.reply();
            assert.equal(reply, "SUCCESS: File received via UDP");
            const rec = await received(srv);
            assert.equal(rec.complete, true);
            assert.equal(rec.path, join(out, COMPLETE_NAME));
            assert.deepEqual(new Uint8Array(fs.readFileSync(join(out, COMPLETE_NAME))), concat(parts));
            assert.deepEqual(listDir(out), [COMPLETE_NAME], "no .part leftovers");
            // A repeated marker (our reply was lost) gets the same reply again.
            await sender.send(srv.port, endMarker());
            assert.equal(await sender.reply(1), reply);
          });
        },
      );
    }

    test("a runt datagram and a negative sequence number are ignored", { timeout: 30000 }, async () => {
      await withServer(rt, async ({ srv, out, sender }) => {
        await sender.send(srv.port, new Uint8Array([0xff, 0xff]));
        const minusFive = new Uint8Array(104);
        new DataView(minusFive.buffer).setInt32(0, -5, false);
        await sender.send(srv.port, minusFive);
        const ignored = await srv.waitFor(
          (e) => e.event === "ignored" && /-5/.test(String(e.reason)),
        );
        assert.ok(ignored);
        assert.equal(srv.events.filter((e) => e.event === "ignored").length, 2, JSON.stringify(srv.events));
        assert.equal(srv.child.exitCode, null);
        // Still serving, the same sender included.
        const parts = payloads(3, 1000, 1);
        await sender.sendAll(
          srv.port,
          parts,
          [0, 1, 2],
          endMarker({ packets: 3, chunk: parts[0].length, bytes: total(parts) }),
        );
        assert.equal(await sender.reply(), "SUCCESS: File received via UDP");
        assert.deepEqual(new Uint8Array(fs.readFileSync(join(out, COMPLETE_NAME))), concat(parts));
      });
    });
  });

  describe(`${rt.name} UDP client`, () => {
    test("to a port where nothing listens exits 1 within --timeout, saying no reply", {
      timeout: 30000,
    }, async () => {
      const port = await freeUdpPort();
      const started = performance.now();
      const res = await runEntry(rt, "udp/client.ts", [
        "--port",
        String(port),
        "--file",
        SAMPLE,
        "--timeout",
        "1",
      ], {
        timeoutMs: 15000,
      });
      const elapsed = performance.now() - started;
      assert.equal(res.code, 1, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
      // Progress logs ("[*] …") go to stderr too; the error itself is one line.
      const text = res.stderr.split("\n").filter((l) => !l.startsWith("[*] ")).join("\n").trim();
      assert.equal(text.split("\n").length, 1, `one error line on stderr: ${res.stderr}`);
      assert.ok(!res.stderr.includes("    at "), res.stderr);
      assert.match(text, /no reply/);
      assert.ok(elapsed < 6000, `took ${elapsed.toFixed(0)} ms with --timeout 1`);
    });
  });
}
