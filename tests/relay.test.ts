/**
 * The impairment relay (`udp/relay.ts`), run as a real process on Deno and
 * Bun between node:dgram clients and a node:dgram echo or sink target made
 * here. Timings are checked loosely (lower bounds the relay guarantees, and
 * generous upper bounds); every wait is bounded and every process and
 * socket is closed in `finally`.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as dgram from "node:dgram";
import {
  commandFor,
  run,
  type RuntimeInfo,
  runtimeNamed,
  type ServerProcess,
  startServer,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = [runtimeNamed("deno"), runtimeNamed("bun")];
const RELAY = "udp/relay.ts";
/** What `deno task relay` grants: the relay must work with no more. */
const DENO_PERMISSIONS = ["--allow-net=127.0.0.1"];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------- sockets ----

/** A datagram as a test socket received it. */
interface Got {
  data: Buffer;
  port: number;
  at: number;
}

/** A node:dgram socket on 127.0.0.1 that records what it receives (and echoes, if asked). */
interface Peer {
  port: number;
  got: Got[];
  send(data: Uint8Array, port: number): Promise<void>;
  close(): void;
}

function openPeer(echo = false): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    const got: Got[] = [];
    let closed = false;
    socket.on("message", (data, rinfo) => {
      got.push({ data: Buffer.from(data), port: rinfo.port, at: performance.now() });
      if (echo && !closed) socket.send(data, rinfo.port, rinfo.address);
    });
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      resolve({
        port: socket.address().port,
        got,
        send: (data, port) =>
          new Promise((done, fail) => socket.send(data, port, "127.0.0.1", (e) => e ? fail(e) : done())),
        close() {
          if (closed) return;
          closed = true;
          try {
            socket.close();
          } catch { /* already closed */ }
        },
      });
    });
  });
}

/** Sends each payload to `port`, pausing now and then so no socket buffer overflows on the way. */
async function sendAll(
  peer: Peer,
  port: number,
  payloads: Uint8Array[],
  everyMs?: number,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < payloads.length; i++) {
    times.push(performance.now());
    await peer.send(payloads[i], port);
    if (everyMs !== undefined) await sleep(everyMs);
    else if (i % 10 === 9) await sleep(2);
  }
  return times;
}

/** Waits until `done()` holds, or until `count()` has not changed for `quietMs`, at most `maxMs`. */
async function settle(count: () => number, done: () => boolean, quietMs = 400, maxMs = 10000): Promise<void> {
  const deadline = performance.now() + maxMs;
  let last = count();
  let since = performance.now();
  while (!done() && performance.now() < deadline) {
    await sleep(20);
    const now = count();
    if (now !== last) {
      last = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) {
      return;
    }
  }
}

const text = (s: string) => new TextEncoder().encode(s);

// --------------------------------------------------------------- relay ----

/** Starts the relay towards `targetPort` with `--listen 127.0.0.1:0 --json` and `args`. */
function startRelay(rt: RuntimeInfo, targetPort: number, args: string[] = []): Promise<ServerProcess> {
  const full = ["--listen", "127.0.0.1:0", "--target", `127.0.0.1:${targetPort}`, "--json", ...args];
  return startServer(rt, RELAY, [], {
    cmd: commandFor(rt, RELAY, full, rt.name === "deno" ? DENO_PERMISSIONS : undefined),
  });
}

interface Counters {
  in: number;
  out: number;
  lost: number;
  queueDrops: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  overflow: number;
  sendErrors: number;
  unsent: number;
}

interface Report {
  event: "stopped";
  reason: string;
  seconds: number;
  seed: number;
  clients: number;
  clientsRefused: number;
  ignored: number;
  forward: Counters;
  backward: Counters;
}

/** Stops the relay with SIGTERM; returns its exit code and its `stopped` report. */
async function stopRelay(relay: ServerProcess): Promise<{ code: number | null; report: Report }> {
  // Not child.kill(): after it, Deno's node:child_process reports the signal
  // instead of the exit code the relay chose.
  process.kill(relay.child.pid!, "SIGTERM");
  let code: number | null;
  try {
    code = await relay.exited(10000);
  } catch (error) {
    relay.child.kill("SIGKILL");
    throw error;
  }
  const report = relay.events.find((e) => e.event === "stopped") as Report | undefined;
  assert.ok(report, `no "stopped" event; events: ${JSON.stringify(relay.events)}; stderr: ${relay.stderr()}`);
  return { code, report };
}

/** Every datagram is accounted for: received = dropped + sent + failed + still held. */
function assertBalanced(c: Counters, label: string): void {
  assert.equal(
    c.in - c.lost - c.queueDrops + c.duplicated,
    c.out + c.overflow + c.sendErrors + c.unsent,
    `${label} counters do not add up: ${JSON.stringify(c)}`,
  );
}

/** Runs `body` with fresh peers and a relay, closing them all afterwards. */
async function withRelay(
  rt: RuntimeInfo,
  options: { echo: boolean; args?: string[]; clients?: number },
  body: (relay: ServerProcess, target: Peer, clients: Peer[]) => Promise<void>,
): Promise<void> {
  const target = await openPeer(options.echo);
  const clients: Peer[] = [];
  let relay: ServerProcess | undefined;
  try {
    for (let i = 0; i < (options.clients ?? 1); i++) clients.push(await openPeer());
    relay = await startRelay(rt, target.port, options.args);
    await body(relay, target, clients);
  } finally {
    if (relay) await relay.stop();
    for (const c of clients) c.close();
    target.close();
  }
}

/** Asserts stderr is one line from the relay, with no stack trace. */
function assertOneLine(stderr: string, phrase: RegExp): void {
  const lines = stderr.trim().split(/\r?\n/);
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${stderr}`);
  assert.ok(!stderr.includes("    at "), `stack trace on stderr:\n${stderr}`);
  assert.match(lines[0], /^udp-relay: error: /);
  assert.match(lines[0], phrase);
}

// --------------------------------------------------------------- tests ----

for (const rt of RTS) {
  describe(`${rt.name}: UDP impairment relay`, () => {
    test("no impairment: all datagrams arrive, and echoes go back to the right client", {
      timeout: 30000,
    }, async () => {
      const n = 200;
      await withRelay(rt, { echo: true, clients: 2 }, async (relay, target, [a, b]) => {
        const payloads = (tag: string) => Array.from({ length: n }, (_, i) => text(`${tag}:${i}`));
        await Promise.all([sendAll(a, relay.port, payloads("A")), sendAll(b, relay.port, payloads("B"))]);
        await settle(() => a.got.length + b.got.length, () => a.got.length >= n && b.got.length >= n);
        const texts = (p: Peer) => p.got.map((g) => g.data.toString());
        assert.deepEqual(texts(a).sort(), payloads("A").map((p) => new TextDecoder().decode(p)).sort());
        assert.deepEqual(texts(b).sort(), payloads("B").map((p) => new TextDecoder().decode(p)).sort());
        assert.ok(a.got.every((g) => g.port === relay.port), "replies to A did not come from the relay port");
        assert.ok(b.got.every((g) => g.port === relay.port), "replies to B did not come from the relay port");
        // The target saw one relay address per client, neither the listening one.
        assert.equal(target.got.length, 2 * n);
        const portOf = (tag: string) =>
          new Set(target.got.filter((g) => g.data.toString().startsWith(tag)).map((g) => g.port));
        const [pa, pb] = [portOf("A:"), portOf("B:")];
        assert.equal(pa.size, 1);
        assert.equal(pb.size, 1);
        assert.notDeepEqual([...pa], [...pb]);
        assert.ok(!pa.has(relay.port) && !pb.has(relay.port));
        const { code, report } = await stopRelay(relay);
        assert.equal(code, 0, relay.stderr());
        assert.equal(report.clients, 2);
        for (const dir of [report.forward, report.backward]) {
          assert.equal(dir.in, 2 * n);
          assert.equal(dir.out, 2 * n);
          assert.equal(dir.lost + dir.duplicated + dir.corrupted + dir.reordered + dir.overflow, 0);
        }
      });
    });

    test("--loss 0.3 --seed 1 loses about 30% each way, and the counters match what arrived", {
      timeout: 30000,
    }, async () => {
      const n = 400;
      await withRelay(
        rt,
        { echo: true, args: ["--loss", "0.3", "--seed", "1"] },
        async (relay, target, [client]) => {
          const payloads = Array.from({ length: n }, (_, i) => text(`p${i}`));
          await sendAll(client, relay.port, payloads);
          await settle(() => client.got.length + target.got.length, () => false);
          const atTarget = target.got.length;
          const back = client.got.length;
          const lostForward = n - atTarget;
          assert.ok(
            lostForward >= 0.18 * n && lostForward <= 0.42 * n,
            `lost ${lostForward} of ${n} forward`,
          );
          const lostBackward = atTarget - back;
          assert.ok(
            lostBackward >= 0.15 * atTarget && lostBackward <= 0.45 * atTarget,
            `lost ${lostBackward} of ${atTarget} backward`,
          );
          const { code, report } = await stopRelay(relay);
          assert.equal(code, 0, relay.stderr());
          assert.equal(report.seed, 1);
          assert.deepEqual(
            [report.forward.in, report.forward.lost, report.forward.out],
            [n, lostForward, atTarget],
          );
          assert.deepEqual(
            [report.backward.in, report.backward.lost, report.backward.out],
            [atTarget, lostBackward, back],
          );
          assertBalanced(report.forward, "forward");
          assertBalanced(report.backward, "backward");
        },
      );
    });

    test("the same --seed drops the same datagrams", { timeout: 30000 }, async () => {
      const n = 150;
      const survivors: string[][] = [];
      for (let round = 0; round < 2; round++) {
        await withRelay(
          rt,
          { echo: false, args: ["--loss", "50%", "--seed", "42"] },
          async (relay, target, [c]) => {
            await sendAll(c, relay.port, Array.from({ length: n }, (_, i) => text(`s${i}`)));
            await settle(() => target.got.length, () => false, 300);
            survivors.push(target.got.map((g) => g.data.toString()));
          },
        );
      }
      assert.ok(survivors[0].length > 0 && survivors[0].length < n);
      assert.deepEqual(survivors[1], survivors[0]);
    });

    test("--dup 1 delivers every datagram twice", { timeout: 30000 }, async () => {
      const n = 100;
      await withRelay(rt, { echo: false, args: ["--dup", "1"] }, async (relay, target, [client]) => {
        await sendAll(client, relay.port, Array.from({ length: n }, (_, i) => text(`d${i}`)));
        await settle(() => target.got.length, () => target.got.length >= 2 * n);
        assert.equal(target.got.length, 2 * n);
        const counts = new Map<string, number>();
        for (const g of target.got) counts.set(g.data.toString(), (counts.get(g.data.toString()) ?? 0) + 1);
        assert.equal(counts.size, n);
        assert.ok([...counts.values()].every((c) => c === 2), "some datagram did not arrive exactly twice");
        const { code, report } = await stopRelay(relay);
        assert.equal(code, 0, relay.stderr());
        assert.deepEqual([report.forward.in, report.forward.duplicated, report.forward.out], [n, n, 2 * n]);
      });
    });

    test("--corrupt 1 flips one bit of every datagram", { timeout: 30000 }, async () => {
      const n = 100;
      await withRelay(rt, { echo: false, args: ["--corrupt", "100%"] }, async (relay, target, [client]) => {
        const payloads = Array.from({ length: n }, () => new Uint8Array(randomBytes(32)));
        await sendAll(client, relay.port, payloads);
        await settle(() => target.got.length, () => target.got.length >= n);
        assert.equal(target.got.length, n);
        // Without delay the order is kept, so the i-th arrival is the i-th datagram.
        for (let i = 0; i < n; i++) {
          const got = target.got[i].data;
          assert.equal(got.length, 32);
          let bits = 0;
          for (let j = 0; j < 32; j++) {
            for (let x = got[j] ^ payloads[i][j]; x; x &= x - 1) bits++;
          }
          assert.equal(bits, 1, `datagram ${i} differs in ${bits} bits`);
        }
        const { code, report } = await stopRelay(relay);
        assert.equal(code, 0, relay.stderr());
        assert.equal(report.forward.corrupted, n);
      });
    });

    test("--delay 50 delays each way, keeping the order", { timeout: 30000 }, async () => {
      const n = 20;
      await withRelay(rt, { echo: true, args: ["--delay", "50"] }, async (relay, _target, [client]) => {
        const sent = await sendAll(client, relay.port, Array.from({ length: n }, (_, i) => text(`${i}`)), 10);
        await settle(() => client.got.length, () => client.got.length >= n, 1000);
        assert.equal(client.got.length, n);
        assert.deepEqual(client.got.map((g) => Number(g.data.toString())), [...Array(n).keys()]);
        for (const g of client.got) {
          const rtt = g.at - sent[Number(g.data.toString())];
          // 50 ms each way is a floor the relay guarantees; the ceiling is only a sanity bound.
          assert.ok(rtt >= 95 && rtt < 5000, `round trip ${rtt.toFixed(1)} ms`);
        }
        const { code } = await stopRelay(relay);
        assert.equal(code, 0, relay.stderr());
      });
    });

    test("SIGTERM prints the counters as one JSON object and exits 0", { timeout: 30000 }, async () => {
      await withRelay(rt, { echo: true }, async (relay, _target, [client]) => {
        await sendAll(client, relay.port, [text("one"), text("two"), text("three")]);
        await settle(() => client.got.length, () => client.got.length >= 3);
        const { code, report } = await stopRelay(relay);
        assert.equal(code, 0, relay.stderr());
        assert.equal(relay.stderr(), "");
        assert.equal(report.reason, "SIGTERM");
        assert.equal(report.clients, 1);
        for (const key of ["forward", "backward"] as const) {
          for (const field of ["in", "out", "lost", "queueDrops", "duplicated", "reordered", "corrupted"]) {
            assert.equal(typeof report[key][field as keyof Counters], "number", `${key}.${field}`);
          }
        }
        assert.equal(report.forward.in, 3);
        assert.equal(report.backward.out, 3);
      });
    });

    test("--duration stops by itself and prints the counters table", { timeout: 30000 }, async () => {
      const res = await run(
        commandFor(
          rt,
          RELAY,
          ["--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--duration", "0.5", "--loss", "10%"],
          rt.name === "deno" ? DENO_PERMISSIONS : undefined,
        ),
        { timeoutMs: 15000 },
      );
      assert.equal(res.code, 0, res.stderr);
      // Logs on stderr, results (the counters) on stdout.
      assert.match(res.stderr, /^\[\*\] Relay listening on 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:9$/m);
      assert.doesNotMatch(res.stdout, /Relay listening/);
      assert.match(res.stdout, /=== Relay Counters ===/);
      assert.match(res.stdout, /^in +0 +0$/m);
      assert.match(res.stdout, /^clients: 0$/m);
    });

    test("bad flags exit 2 with one line on stderr", { timeout: 60000 }, async () => {
      const cases: Array<[string[], RegExp]> = [
        [["--loss", "1.5"], /--loss must be a probability/],
        [["--dup", "150%"], /--dup must be a probability/],
        [["--delay=-5"], /--delay must be a number/],
        [["--listen", "nowhere"], /--listen must be HOST:PORT/],
        [["--target", "127.0.0.1:0"], /--target port must be 1-65535/],
        [["--duration", "0"], /--duration must be a positive number/],
        [["--nope"], /unknown option --nope/],
      ];
      for (const [args, phrase] of cases) {
        const res = await run(
          commandFor(rt, RELAY, args, rt.name === "deno" ? DENO_PERMISSIONS : undefined),
          {
            timeoutMs: 15000,
          },
        );
        assert.equal(res.code, 2, `${args.join(" ")}: ${res.stderr}`);
        assertOneLine(res.stderr, phrase);
      }
    });

    test("a port in use exits 4 with one line on stderr", { timeout: 30000 }, async () => {
      const holder = await openPeer();
      try {
        const res = await run(
          commandFor(
            rt,
            RELAY,
            ["--listen", `127.0.0.1:${holder.port}`, "--target", "127.0.0.1:9"],
            rt.name === "deno" ? DENO_PERMISSIONS : undefined,
          ),
          { timeoutMs: 15000 },
        );
        assert.equal(res.code, 4, res.stderr);
        assertOneLine(res.stderr, new RegExp(`127\\.0\\.0\\.1:${holder.port}.*in use`));
      } finally {
        holder.close();
      }
    });
  });
}
