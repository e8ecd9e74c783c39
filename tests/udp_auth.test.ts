/**
 * Reliable UDP under a pre-shared key, on real sockets and real processes,
 * for Deno and Bun: the right key delivers the file intact (key from
 * `--psk`, `--psk-file` or `IMGXFER_PSK`); a wrong key, a missing key, a key
 * on the client only and a classic client are refused with a clear message
 * and nothing at all (hidden files included) lands in `--out`; datagrams
 * carrying a live session's id, sent from another port or (under a key) from
 * the session's own address with a bad authenticator, do not disturb a
 * transfer. Plus the server driver's handshake state under a HELLO flood.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import { Authenticator } from "../shared/auth.ts";
import {
  encodeReliable,
  type HelloMsg,
  MsgType,
  RELIABLE_MAGIC,
  ReliableStatus,
} from "../shared/protocol_reliable.ts";
import { type DatagramConn, type NetAddr, runtime } from "../shared/runtime.ts";
import { ReliableSessions } from "../udp/reliable_serve.ts";
import {
  commandFor,
  lastJson,
  listDir,
  makeFile,
  run,
  type RuntimeInfo,
  runtimes,
  SAMPLE,
  ScratchDirs,
  sha256File,
  startServer,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = runtimes();
const KEY = "correct horse battery staple";
const scratch = new ScratchDirs("imgxfer-udp-auth-");
after(() => scratch.cleanup());
const freshDir = (): string => scratch.fresh();

/** Runs the UDP client against `port` with `args`; returns exit code and JSON summary. */
async function client(
  rt: RuntimeInfo,
  port: number,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; summary: Record<string, unknown>; stderr: string }> {
  const cmd = commandFor(rt, "udp/client.ts", ["--port", String(port), "--json", "--timeout", "5", ...args]);
  const withEnv = Object.keys(env).length > 0
    ? ["env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...cmd]
    : cmd;
  const res = await run(withEnv, { timeoutMs: 60_000 });
  return { code: res.code, summary: lastJson(res.stdout), stderr: res.stderr };
}

for (const rt of RTS) {
  describe(`${rt.name}: reliable UDP with a pre-shared key`, () => {
    test("the right key (server --psk-file, client --psk or IMGXFER_PSK): intact, verified", {
      timeout: 60_000,
    }, async () => {
      const out = freshDir();
      const keyFile = join(freshDir(), "key.txt");
      fs.writeFileSync(keyFile, `${KEY}\n`);
      const big = makeFile(freshDir(), "big.bin", 3 << 20);
      const srv = await startServer(rt, "udp/server.ts", ["--out", out, "--psk-file", keyFile]);
      try {
        const a = await client(rt, srv.port, ["--file", SAMPLE, "--psk", KEY]);
        assert.equal(a.code, 0, a.stderr);
        assert.equal(a.summary.status, "success");
        const b = await client(rt, srv.port, ["--file", big, "--buffer", "1400"], { IMGXFER_PSK: KEY });
        assert.equal(b.code, 0, b.stderr);
        assert.equal(b.summary.sha256, sha256File(big));
        await srv.waitFor((e) => e.event === "received" && String(e.path).endsWith("received_big_udp.bin"));
        assert.deepEqual(listDir(out), ["received_big_udp.bin", "received_input_udp.jpeg"]);
        assert.equal(sha256File(join(out, "received_big_udp.bin")), sha256File(big));
        assert.equal(sha256File(join(out, "received_input_udp.jpeg")), sha256File(SAMPLE));
      } finally {
        await srv.stop();
      }
    });

    test("wrong key, missing key, key on the client only, classic client: refused, nothing in --out", {
      timeout: 60_000,
    }, async () => {
      const keyed = freshDir();
      const keyless = freshDir();
      const srv = await startServer(rt, "udp/server.ts", ["--out", keyed, "--psk", KEY]);
      const open = await startServer(rt, "udp/server.ts", ["--out", keyless]);
      try {
        const wrong = await client(rt, srv.port, ["--file", SAMPLE, "--psk", "not the right key"]);
        assert.equal(wrong.code, 1);
        assert.equal(wrong.summary.status, "refused");
        assert.match(String(wrong.summary.response), /does not hold our key/);

        const missing = await client(rt, srv.port, ["--file", SAMPLE]);
        assert.equal(missing.code, 1);
        assert.equal(missing.summary.status, "refused");
        assert.match(
          String(missing.summary.response),
          /REFUSED: this server requires a key \(--psk, --psk-file or IMGXFER_PSK\)/,
        );

        const classic = await client(rt, srv.port, ["--file", SAMPLE, "--classic"]);
        assert.equal(classic.code, 1);
        assert.match(String(classic.summary.response), /requires a key/);

        const clientOnly = await client(rt, open.port, ["--file", SAMPLE, "--psk", KEY]);
        assert.equal(clientOnly.code, 1);
        assert.equal(clientOnly.summary.status, "refused");
        assert.match(String(clientOnly.summary.response), /this server has no key/);

        await srv.waitFor((e) => e.event === "failed" && /classic UDP cannot carry/.test(String(e.error)));
        // The wrong key never reaches AUTH (the client cannot verify our CHALLENGE): the server
        // still logs the handshake it left unanswered, once its 5 s are up.
        const unanswered = await srv.waitFor(
          (e) => e.event === "failed" && /key handshake\(s\) not completed/.test(String(e.error)),
          15_000,
        );
        assert.match(String(unanswered.from), /127\.0\.0\.1:\d+/);
        assert.deepEqual(listDir(keyed), [], "nothing at all may be written, hidden files included");
        assert.deepEqual(listDir(keyless), []);
        assert.ok(!srv.events.some((e) => e.event === "connection" || e.event === "received"));
      } finally {
        await srv.stop();
        await open.stop();
      }
    });

    for (const keyed of [false, true]) {
      test(`spoofed datagrams with a live session's id during a transfer${keyed ? " (keyed)" : ""}: intact`, {
        timeout: 60_000,
      }, async () => {
        const out = freshDir();
        const file = makeFile(freshDir(), "spoofed.bin", 4 << 20);
        const keyArgs = keyed ? ["--psk", KEY] : [];
        const srv = await startServer(rt, "udp/server.ts", ["--out", out, ...keyArgs]);
        const spy = await SpyRelay.open(srv.port);
        try {
          // 40 Mbit/s: the transfer takes about a second, so the forgeries land mid-transfer.
          const sent = client(rt, spy.port, ["--file", file, "--buffer", "1400", "--rate", "40", ...keyArgs]);
          const injected = spy.injectWhenFlowing(1400, keyed);
          const res = await sent;
          assert.ok(await injected > 0, "the forgeries were sent while the transfer ran");
          assert.equal(res.code, 0, `${res.stderr}\n${JSON.stringify(res.summary)}`);
          assert.equal(res.summary.status, "success");
          const received = await srv.waitFor((e) => e.event === "received");
          assert.equal(sha256File(join(out, "received_spoofed_udp.bin")), sha256File(file));
          assert.equal(received.sha256, sha256File(file));
          assert.ok(
            srv.events.some((e) => e.event === "ignored" && e.reason === "session of another address"),
            "datagrams from another port are ignored",
          );
          if (keyed) assert.ok(Number(received.forged) > 0, `forged count ${received.forged}`);
          assert.deepEqual(listDir(out), ["received_spoofed_udp.bin"]);
        } finally {
          spy.close();
          await srv.stop();
        }
      });
    }
  });
}

/**
 * A relay between a client and a server that learns the session id from the
 * HELLO and, once DATA flows, forges datagrams with that id: from a third
 * socket (another port) to the server, and, under a key, from the relay's
 * own upstream socket (the session's address, as the server sees it) to the
 * server and from its listening socket (the server's address, as the client
 * sees it) to the client, all with authenticators under a key nobody holds.
 */
class SpyRelay {
  readonly port: number;
  #listen: DatagramConn;
  #upstream: DatagramConn;
  #attacker: DatagramConn;
  #server: NetAddr;
  #client: NetAddr | undefined;
  #session: number | undefined;
  #data = 0;
  #flowing: Array<() => void> = [];
  #loops: Promise<void>[];

  private constructor(
    listen: DatagramConn,
    upstream: DatagramConn,
    attacker: DatagramConn,
    serverPort: number,
  ) {
    this.#listen = listen;
    this.#upstream = upstream;
    this.#attacker = attacker;
    this.port = listen.addr.port;
    this.#server = { transport: "udp", hostname: "127.0.0.1", port: serverPort };
    this.#loops = [this.#pump(listen, true), this.#pump(upstream, false)];
  }

  static async open(serverPort: number): Promise<SpyRelay> {
    const socket = () => runtime.listenDatagram({ hostname: "127.0.0.1", port: 0 });
    return new SpyRelay(await socket(), await socket(), await socket(), serverPort);
  }

  async #pump(from: DatagramConn, toServer: boolean): Promise<void> {
    for (;;) {
      let batch: Array<[Uint8Array, NetAddr]>;
      try {
        batch = await from.receiveBatch();
      } catch {
        return;
      }
      for (const [bytes, addr] of batch) {
        if (toServer) {
          this.#client = addr;
          if (bytes[0] === RELIABLE_MAGIC && bytes[1] === MsgType.HELLO) {
            this.#session = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, false);
          }
          if (bytes[0] === RELIABLE_MAGIC && bytes[1] === MsgType.DATA && ++this.#data === 50) {
            for (const wake of this.#flowing.splice(0)) wake();
          }
          await this.#upstream.send(bytes.slice(), this.#server).catch(() => {});
        } else if (this.#client) {
          await this.#listen.send(bytes.slice(), this.#client).catch(() => {});
        }
      }
    }
  }

  /** Waits until DATA flows, then sends the forgeries; resolves to how many were sent. */
  async injectWhenFlowing(chunkSize: number, keyed: boolean): Promise<number> {
    await new Promise<void>((resolve) => this.#flowing.push(resolve));
    const session = this.#session as number;
    const nobody = new Authenticator(randomBytes(32));
    const auth = keyed ? nobody : undefined;
    const toServer: Uint8Array[] = [];
    for (let seq = 0; seq < 200; seq++) {
      toServer.push(
        encodeReliable({ type: MsgType.DATA, session, seq, payload: randomBytes(chunkSize) }, auth),
      );
    }
    toServer.push(
      encodeReliable({ type: MsgType.FIN, session, chunks: 1, size: 1, digest: new Uint8Array(32) }, auth),
    );
    toServer.push(encodeReliable({ type: MsgType.ABORT, session, status: 3, message: "forged abort" }, auth));
    let sent = 0;
    for (const bytes of toServer) {
      await this.#attacker.send(bytes, this.#server);
      sent++;
      if (keyed) {
        await this.#upstream.send(bytes, this.#server);
        sent++;
      }
    }
    if (keyed && this.#client) {
      const toClient = [
        encodeReliable({ type: MsgType.ABORT, session, status: 3, message: "forged abort" }, nobody),
        encodeReliable({
          type: MsgType.ACK,
          session,
          cumulative: 0,
          window: 1,
          latest: 0xffffffff,
          ranges: [],
        }, nobody),
        encodeReliable({
          type: MsgType.DONE,
          session,
          status: ReliableStatus.OK,
          bytes: 1,
          digest: new Uint8Array(32),
          duplicates: 0,
          acks: 0,
          message: "forged",
        }, nobody),
      ];
      for (const bytes of toClient) {
        await this.#listen.send(bytes, this.#client);
        sent++;
      }
    }
    return sent;
  }

  close(): void {
    for (const socket of [this.#listen, this.#upstream, this.#attacker]) {
      try {
        socket.close();
      } catch { /* closed */ }
    }
    void Promise.all(this.#loops);
  }
}

describe("the server driver under a HELLO flood (in process)", () => {
  test("10,000 keyed HELLOs from many addresses: bounded handshake state, no session, no file, no slot used", () => {
    const out = freshDir();
    const key = new TextEncoder().encode(KEY);
    const sessions = new ReliableSessions(
      {
        outDir: out,
        maxBytes: 1 << 30,
        maxSessions: 2,
        idleTimeoutMs: 30_000,
        windowBytes: 1 << 20,
        psk: key,
      },
      () => {},
      () => {},
    );
    for (let i = 0; i < 10_000; i++) {
      const hello: HelloMsg = {
        type: MsgType.HELLO,
        session: i,
        chunkSize: 1400,
        size: 1000,
        name: "flood.bin",
        nonce: randomBytes(32),
      };
      const from: NetAddr = { transport: "udp", hostname: `10.1.${i >> 8 & 255}.${i & 255}`, port: 1000 + i };
      sessions.handle(i / 10, encodeReliable(hello), from);
      // An AUTH with a made-up proof for half of them.
      if (i % 2) {
        sessions.handle(
          i / 10,
          encodeReliable({ type: MsgType.AUTH, session: i, proof: randomBytes(32) }),
          from,
        );
      }
      assert.equal(sessions.takeOutgoing().length >= 1, true);
    }
    assert.ok(sessions.pendingHandshakes <= 1024, `${sessions.pendingHandshakes} pending`);
    assert.equal(sessions.size, 0);
    assert.equal(sessions.activeCount, 0);
    assert.deepEqual(listDir(out), []);
  });
});
