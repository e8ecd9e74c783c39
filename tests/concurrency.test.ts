/**
 * Many clients at once ("hardened server"): 200 simultaneous transfers
 * against a TCP server and a UDP server running as child processes on each
 * runtime, clients in this process through the library:
 *
 * - 60 framed and 40 classic TCP senders to one TCP server, 70 reliable and
 *   30 classic UDP senders to one UDP server, all started before any
 *   finishes, files of seeded sizes from 0 bytes to 4 MiB;
 * - meanwhile a stalled TCP sender (framed header and 1000 bytes, then
 *   silence, dropped by `--idle-timeout 2`), a slow TCP sender (a few bytes
 *   every 200 ms, saved), a stalled reliable UDP session (HELLO and three
 *   chunks, then silence) and a slow reliable sender (`fixedRate`);
 * - afterwards every received file's SHA-256 equals its source's (classic
 *   files, which all get the same name, as a multiset of digests), no
 *   temporary file is left (only the stalled transfers may leave a
 *   resumable partial, kept on purpose for `--resume` where the server
 *   supports it), both servers are still up and serve one more
 *   transfer; classic UDP has no retransmission, so a classic transfer that
 *   lost datagrams is counted (and must be reported and saved as
 *   incomplete), not hidden;
 * - each server's peak RSS (VmHWM) is printed as `[measure]` and must stay
 *   under 1 GiB;
 * - `--max-clients 5` turns the sixth concurrent TCP sender and the sixth
 *   reliable UDP session away with a BUSY message (tests/limits.test.ts
 *   covers `--max-clients 1` for TCP only);
 * - the UDP server's `--max-clients` counts classic sessions too (it once
 *   did not: 300 classic senders got 300 sessions and open files).
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { sendFileReliable, sendFileTcp, sendFileUdp } from "../mod.ts";
import type { TransferSummary } from "../shared/metrics.ts";
import { encodeFramedHeader, FramedStatus, parseFramedReply } from "../shared/protocol.ts";
import { decodeReliable, encodeReliable, MsgType, ReliableStatus } from "../shared/protocol_reliable.ts";
import { seededRandom } from "../shared/rng.ts";
import {
  assertNoCrashOnStderr,
  delay,
  isResumePartial,
  leftoverTemps,
  listDir,
  makeSeededFile,
  mib,
  procStatusKiB,
  type RuntimeInfo,
  runtimePid,
  runtimes,
  SAMPLE,
  ScratchDirs,
  sha256File,
  sha256Hex,
  startServerTracked,
  stopLiveServers,
  waitUntil,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = runtimes();
const SEED = 0x1f2e3d4c;
const GIB = 1024 * 1024 * 1024;
const KIB = 1024;
const MIB = 1024 * 1024;

const scratch = new ScratchDirs("imgxfer-conc-");
after(stopLiveServers);
after(() => scratch.cleanup());

type Kind = "framed" | "classic-tcp" | "reliable" | "classic-udp";

interface Job {
  kind: Kind;
  index: number;
  path: string;
  size: number;
  sha256: string;
}

const COUNTS: Record<Kind, number> = { "framed": 60, "classic-tcp": 40, "reliable": 70, "classic-udp": 30 };

/**
 * The 200 source files, made once per process: fixed edge sizes first, then
 * seeded random sizes (mostly small, some up to 4 MiB for TCP and 2 MiB for
 * reliable UDP; classic UDP stays at 0-8 KiB so that, unpaced, it does not
 * overflow a receive buffer on loopback).
 */
let jobsCache: Job[] | undefined;
function jobs(): Job[] {
  if (jobsCache) return jobsCache;
  const src = scratch.fresh("imgxfer-conc-src-");
  const rand = seededRandom(SEED);
  const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const sizeFor = (kind: Kind, i: number): number => {
    switch (kind) {
      case "framed":
        return [0, 1, 4095, 4096, 65536, 65537][i] ??
          (rand() < 0.7 ? between(1, 256 * KIB) : between(256 * KIB, 4 * MIB));
      case "classic-tcp":
        // No 0-byte classic stream: an empty connection is about to stop being saved.
        return [1, 4096, MIB][i] ?? (rand() < 0.7 ? between(1, 256 * KIB) : between(256 * KIB, 4 * MIB));
      case "reliable":
        return [0, 1, 1399, 1400, 1401][i] ??
          (rand() < 0.8 ? between(1, 128 * KIB) : between(128 * KIB, 2 * MIB));
      case "classic-udp":
        return [0, 1, 1400][i] ?? between(1, 8 * KIB);
    }
  };
  const out: Job[] = [];
  let seed = SEED;
  for (const kind of Object.keys(COUNTS) as Kind[]) {
    for (let i = 0; i < COUNTS[kind]; i++) {
      const size = sizeFor(kind, i);
      const path = makeSeededFile(src, `${kind}-${String(i).padStart(3, "0")}.bin`, size, ++seed);
      out.push({ kind, index: i, path, size, sha256: sha256File(path) });
    }
  }
  jobsCache = out;
  return out;
}

/** A raw TCP connection to 127.0.0.1:`port` that collects what it receives. */
function connectRaw(
  port: number,
): Promise<{ sock: net.Socket; received: () => Buffer; closed: Promise<void>; isClosed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let isClosed = false;
    const closed = new Promise<void>((res) => sock.once("close", () => (isClosed = true, res())));
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("error", () => {/* seen through `closed` */});
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no connection to port ${port} within 10 s`));
    }, 10000);
    sock.once("connect", () => {
      clearTimeout(timer);
      resolve({ sock, received: () => Buffer.concat(chunks), closed, isClosed: () => isClosed });
    });
  });
}

function write(sock: net.Socket, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => sock.write(bytes, (e) => (e ? reject(e) : resolve())));
}

/** A UDP socket on 127.0.0.1 that queues what it receives. */
async function udpSocket(): Promise<{ sock: dgram.Socket; inbox: Buffer[]; port: number }> {
  const sock = dgram.createSocket("udp4");
  const inbox: Buffer[] = [];
  sock.on("message", (m: Buffer) => inbox.push(m));
  sock.on("error", () => {/* ignore */});
  await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", () => resolve()));
  return { sock, inbox, port: sock.address().port };
}

function sendUdp(sock: dgram.Socket, bytes: Uint8Array, port: number): Promise<void> {
  return new Promise((resolve, reject) =>
    sock.send(bytes, port, "127.0.0.1", (e) => (e ? reject(e) : resolve()))
  );
}

/** Opens a reliable session by hand (HELLO until ACCEPT); resolves to the ACCEPT's status and message. */
async function helloUntilAnswer(
  u: { sock: dgram.Socket; inbox: Buffer[] },
  port: number,
  session: number,
  name: string,
  size: number,
  chunkSize: number,
): Promise<{ status: number; message: string }> {
  const hello = encodeReliable({ type: MsgType.HELLO, session, name, size, chunkSize });
  for (let attempt = 0; attempt < 50; attempt++) {
    await sendUdp(u.sock, hello, port);
    const deadline = Date.now() + 200;
    while (Date.now() < deadline) {
      for (const m of u.inbox.splice(0)) {
        try {
          const msg = decodeReliable(new Uint8Array(m));
          if (msg.type === MsgType.ACCEPT && msg.session === session) {
            return { status: msg.status, message: msg.message };
          }
        } catch { /* not for us */ }
      }
      await delay(10);
    }
  }
  throw new Error(`no ACCEPT for session ${session} on port ${port}`);
}

interface Outcome {
  job: Job;
  invokedAt: number;
  startedAt?: number;
  finishedAt: number;
  summary?: TransferSummary;
  error?: string;
}

/** Runs one client through the library; never throws. */
async function runClient(job: Job, tcpPort: number, udpPort: number): Promise<Outcome> {
  const invokedAt = performance.now();
  let startedAt: number | undefined;
  const mark = () => startedAt ??= performance.now();
  try {
    let summary: TransferSummary;
    switch (job.kind) {
      case "framed":
      case "classic-tcp":
        summary = await sendFileTcp({
          host: "127.0.0.1",
          port: tcpPort,
          file: job.path,
          buffer: 65536,
          classic: job.kind === "classic-tcp",
          replyTimeoutMs: 120_000,
          onEvent: (e) => e.type === "connected" && mark(),
        });
        break;
      case "reliable":
        summary = await sendFileReliable({
          host: "127.0.0.1",
          port: udpPort,
          file: job.path,
          buffer: 1400,
          timeoutMs: 20_000,
          onEvent: (e) => e.type === "connected" && mark(),
        });
        break;
      case "classic-udp":
        summary = await sendFileUdp({
          host: "127.0.0.1",
          port: udpPort,
          file: job.path,
          buffer: 1400,
          timeoutMs: 20_000,
          onEvent: (e) => e.type === "preparing" && mark(),
        });
        break;
    }
    return { job, invokedAt, startedAt, finishedAt: performance.now(), summary };
  } catch (error) {
    return { job, invokedAt, startedAt, finishedAt: performance.now(), error: String(error) };
  }
}

function label(o: Outcome): string {
  return `${o.job.kind} #${o.job.index} (${o.job.size} bytes): ${
    o.error ?? `${o.summary?.status} ${JSON.stringify(o.summary?.response)}`
  }`;
}

/** Sorted digests of the files in `dir` whose names match `pattern`. */
function digestsOf(dir: string, pattern: RegExp): string[] {
  return listDir(dir).filter((f) => pattern.test(f)).map((f) => sha256File(join(dir, f))).sort();
}

for (const rt of RTS) {
  describe(`${rt.name} servers under load`, () => {
    test(
      "200 simultaneous clients (60 framed + 40 classic TCP, 70 reliable + 30 classic UDP) with a stalled and a slow " +
        "sender on each transport: every file intact, nothing left over, servers still up, peak RSS < 1 GiB",
      { timeout: 420_000 },
      async () => {
        const all = jobs();
        const tcpOut = scratch.fresh();
        const udpOut = scratch.fresh();
        const common = ["--idle-timeout", "2", "--max-clients", "400"];
        const tcp = await startServerTracked(rt, "tcp/server.ts", [
          "--out",
          tcpOut,
          ...common,
          "--buffer",
          "65536",
        ]);
        const udp = await startServerTracked(rt, "udp/server.ts", ["--out", udpOut, ...common]);
        const tcpPid = runtimePid(tcp.child.pid!);
        const udpPid = runtimePid(udp.child.pid!);
        const rssAtStart = { tcp: procStatusKiB(tcpPid, "VmRSS"), udp: procStatusKiB(udpPid, "VmRSS") };
        const stalledUdp = await udpSocket();
        let stalledTcp: Awaited<ReturnType<typeof connectRaw>> | undefined;
        try {
          // The stalled TCP sender: a framed header for 1 MiB, 1000 bytes, then nothing.
          stalledTcp = await connectRaw(tcp.port);
          await write(stalledTcp.sock, encodeFramedHeader({ name: "stalled.bin", size: MIB }));
          await write(stalledTcp.sock, new Uint8Array(1000));
          const stalledTcpFrom = `127.0.0.1:${stalledTcp.sock.localPort}`;

          // The stalled UDP sender: a session of 100 chunks, three of them sent, then nothing.
          const stalledSession = 0x5ea1ed00;
          const accept = await helloUntilAnswer(
            stalledUdp,
            udp.port,
            stalledSession,
            "stalled.bin",
            140_000,
            1400,
          );
          assert.equal(accept.status, ReliableStatus.OK, accept.message);
          for (let seq = 0; seq < 3; seq++) {
            const payload = new Uint8Array(1400).fill(seq);
            await sendUdp(
              stalledUdp.sock,
              encodeReliable({ type: MsgType.DATA, session: stalledSession, seq, payload }),
              udp.port,
            );
          }

          // The slow TCP sender: 3000 bytes in 150-byte pieces every 200 ms (under the 2 s idle timeout).
          const slowData = makeSeededFile(scratch.fresh(), "slow.bin", 3000, SEED + 7);
          const slowBytes = new Uint8Array(fs.readFileSync(slowData));
          const slowTcp = (async () => {
            const raw = await connectRaw(tcp.port);
            await write(raw.sock, encodeFramedHeader({ name: "slow.bin", size: slowBytes.length }));
            for (let off = 0; off < slowBytes.length; off += 150) {
              await write(raw.sock, slowBytes.subarray(off, off + 150));
              await delay(200);
            }
            await write(raw.sock, Buffer.from(sha256Hex(slowBytes), "hex"));
            raw.sock.end();
            await Promise.race([raw.closed, delay(60_000)]);
            raw.sock.destroy();
            return parseFramedReply(new Uint8Array(raw.received()));
          })();
          // The slow reliable UDP sender: 120 KB paced at 40 KB/s.
          const slowUdpFile = makeSeededFile(scratch.fresh(), "slowudp.bin", 120_000, SEED + 8);
          const slowUdp = sendFileReliable({
            host: "127.0.0.1",
            port: udp.port,
            file: slowUdpFile,
            buffer: 1400,
            fixedRate: 40_000,
            timeoutMs: 20_000,
          }).catch((e) => String(e));

          // The 200, all started in one synchronous loop: none can finish before the last has started.
          const t0 = performance.now();
          const pending = all.map((job) => runClient(job, tcp.port, udp.port));
          const outcomes = await Promise.all(pending);
          const seconds = (performance.now() - t0) / 1000;
          const lastInvoked = Math.max(...outcomes.map((o) => o.invokedAt));
          const firstFinished = Math.min(...outcomes.map((o) => o.finishedAt));
          assert.ok(lastInvoked < firstFinished, "a client finished before the last one started");
          const startedBeforeFirstFinish = outcomes.filter((o) =>
            (o.startedAt ?? Infinity) < firstFinished
          ).length;
          console.log(
            `[measure] ${rt.name} servers: 200 clients (${
              (all.reduce((n, j) => n + j.size, 0) / 1048576).toFixed(1)
            } MiB in all) done in ${seconds.toFixed(1)} s; ` +
              `${startedBeforeFirstFinish}/200 had connected (TCP, reliable) or begun sending (classic UDP) ` +
              `before the first one finished`,
          );

          const slowReply = await slowTcp;
          const slowUdpSummary = await slowUdp;

          // Every client's own verdict.
          const failures: string[] = [];
          const classicUdpIncomplete: Outcome[] = [];
          for (const o of outcomes) {
            const s = o.summary;
            if (o.job.kind === "classic-udp" && s?.status === "incomplete") {
              classicUdpIncomplete.push(o);
              continue;
            }
            const ok = s !== undefined && s.status === "success" &&
              (o.job.kind === "classic-tcp" || o.job.kind === "classic-udp" || s.verified === true);
            if (!ok) failures.push(label(o));
          }
          assert.deepEqual(failures, [], `clients that did not succeed:\n${failures.join("\n")}`);
          console.log(
            `[measure] ${rt.name} UDP server: classic UDP ${30 - classicUdpIncomplete.length}/30 complete, ` +
              `${classicUdpIncomplete.length} incomplete (datagrams lost on loopback; the classic format does not ` +
              `retransmit), each reported INCOMPLETE and saved under an incomplete name`,
          );
          for (const o of classicUdpIncomplete) {
            assert.match(String(o.summary?.response), /^INCOMPLETE/, label(o));
          }

          // The slow senders were saved, the stalled TCP one dropped by the idle timeout.
          assert.ok("value" in slowReply, "the slow TCP sender got no complete reply");
          assert.equal(slowReply.value.status, FramedStatus.OK, slowReply.value.message);
          assert.ok(typeof slowUdpSummary !== "string", `slow reliable sender: ${slowUdpSummary}`);
          assert.equal(slowUdpSummary.status, "success", JSON.stringify(slowUdpSummary));
          await waitUntil(
            () => stalledTcp!.isClosed(),
            "the server to drop the stalled TCP connection",
            15_000,
          );
          const dropped = await tcp.waitFor((e) => e.event === "failed" && e.from === stalledTcpFrom, 5000);
          // Nothing saved, or (resumable transfers) its bytes kept as a partial for --resume.
          assert.match(
            String(dropped.error),
            /no data for 2 s; (nothing saved|kept [\d,]+ bytes in '.*\.resume\.part' for --resume)/,
            JSON.stringify(dropped),
          );

          // End the stalled UDP session (it would linger 30 s): its temporary file must go.
          await sendUdp(
            stalledUdp.sock,
            encodeReliable({
              type: MsgType.ABORT,
              session: stalledSession,
              status: ReliableStatus.REFUSED,
              message: "test over",
            }),
            udp.port,
          );
          const stalledUdpFrom = `127.0.0.1:${stalledUdp.port}`;
          const aborted = await udp.waitFor((e) => e.event === "failed" && e.from === stalledUdpFrom, 10_000);
          assert.match(
            String(aborted.error),
            /aborted.*; (nothing saved|kept [\d,]+ bytes in .* for --resume)/,
            JSON.stringify(aborted),
          );

          // What the servers saved: exactly the sources, nothing else, no temporary files.
          const byKind = (kind: Kind) => outcomes.filter((o) => o.job.kind === kind);
          for (const o of byKind("framed")) {
            const saved = join(tcpOut, `received_${o.job.kind}-${String(o.job.index).padStart(3, "0")}.bin`);
            assert.equal(sha256File(saved), o.job.sha256, saved);
          }
          for (const o of byKind("reliable")) {
            const saved = join(
              udpOut,
              `received_${o.job.kind}-${String(o.job.index).padStart(3, "0")}_udp.bin`,
            );
            assert.equal(sha256File(saved), o.job.sha256, saved);
          }
          assert.deepEqual(
            digestsOf(tcpOut, /^received_input(_\d+)?\.jpeg$/),
            byKind("classic-tcp").map((o) => o.job.sha256).sort(),
            "classic TCP files differ from their sources",
          );
          const completeUdp = byKind("classic-udp").filter((o) => !classicUdpIncomplete.includes(o));
          assert.deepEqual(
            digestsOf(udpOut, /^received_input_udp(_\d+)?\.jpeg$/),
            completeUdp.map((o) => o.job.sha256).sort(),
            "complete classic UDP files differ from their sources",
          );
          assert.equal(
            listDir(udpOut).filter((f) => /^received_input_udp\.incomplete(_\d+)?\.jpeg$/.test(f)).length,
            classicUdpIncomplete.length,
            "every incomplete classic UDP transfer is saved as incomplete, and only those",
          );
          assert.equal(sha256File(join(tcpOut, "received_slow.bin")), sha256Hex(slowBytes));
          assert.equal(sha256File(join(udpOut, "received_slowudp_udp.bin")), sha256File(slowUdpFile));
          const visible = (dir: string) => listDir(dir).filter((f) => !f.startsWith("."));
          assert.equal(visible(tcpOut).length, 100 + 1, listDir(tcpOut).join(" "));
          assert.equal(visible(udpOut).length, 100 + 1, listDir(udpOut).join(" "));

          // Peak memory while serving them.
          const hwm = { tcp: procStatusKiB(tcpPid, "VmHWM"), udp: procStatusKiB(udpPid, "VmHWM") };
          console.log(
            `[measure] ${rt.name} TCP server (pid ${tcpPid}): RSS at start ${mib(rssAtStart.tcp)}, ` +
              `peak (VmHWM) with 100 TCP clients + stalled + slow: ${mib(hwm.tcp)}`,
          );
          console.log(
            `[measure] ${rt.name} UDP server (pid ${udpPid}): RSS at start ${mib(rssAtStart.udp)}, ` +
              `peak (VmHWM) with 100 UDP clients + stalled + slow: ${mib(hwm.udp)}`,
          );
          if (process.platform === "linux") {
            assert.ok(hwm.tcp !== undefined && hwm.udp !== undefined, "no /proc figures for the servers");
            assert.ok(hwm.tcp * 1024 < GIB, `TCP server peak RSS ${mib(hwm.tcp)}`);
            assert.ok(hwm.udp * 1024 < GIB, `UDP server peak RSS ${mib(hwm.udp)}`);
          }

          // Still up: one more transfer each.
          assert.equal(tcp.child.exitCode, null, "the TCP server exited");
          assert.equal(udp.child.exitCode, null, "the UDP server exited");
          const again = await sendFileTcp({ host: "127.0.0.1", port: tcp.port, file: SAMPLE, buffer: 65536 });
          assert.equal(again.status, "success", JSON.stringify(again));
          assert.equal(again.verified, true);
          const againUdp = await sendFileReliable({
            host: "127.0.0.1",
            port: udp.port,
            file: SAMPLE,
            buffer: 1400,
          });
          assert.equal(againUdp.status, "success", JSON.stringify(againUdp));
          assert.equal(sha256File(join(tcpOut, "received_input_40.jpeg")), sha256File(SAMPLE));
          const udpSample = completeUdp.length === 0
            ? "received_input_udp.jpeg"
            : `received_input_udp_${completeUdp.length}.jpeg`;
          assert.equal(sha256File(join(udpOut, udpSample)), sha256File(SAMPLE));
          // Only the stalled transfers may have left a resumable partial (kept on purpose for --resume).
          assert.deepEqual(leftoverTemps(tcpOut, ["received_stalled.bin"]), [], "temporary files left (TCP)");
          assert.deepEqual(
            leftoverTemps(udpOut, ["received_stalled_udp.bin"]),
            [],
            "temporary files left (UDP)",
          );
          const partials = [...listDir(tcpOut), ...listDir(udpOut)].filter((f) => isResumePartial(f));
          console.log(
            `[info] ${rt.name}: resumable partials kept for the stalled transfers: ${partials.length}`,
          );
          assertNoCrashOnStderr(tcp);
          assertNoCrashOnStderr(udp);
        } finally {
          stalledTcp?.sock.destroy();
          stalledUdp.sock.close();
          await tcp.stop();
          await udp.stop();
        }
      },
    );

    test("--max-clients 5: the sixth concurrent TCP sender and the sixth reliable UDP session get BUSY", {
      timeout: 60_000,
    }, async () => {
      const tcpOut = scratch.fresh();
      const udpOut = scratch.fresh();
      const tcp = await startServerTracked(rt, "tcp/server.ts", ["--out", tcpOut, "--max-clients", "5"]);
      const udp = await startServerTracked(rt, "udp/server.ts", ["--out", udpOut, "--max-clients", "5"]);
      const held: Array<Awaited<ReturnType<typeof connectRaw>>> = [];
      const u = await udpSocket();
      try {
        for (let i = 0; i < 5; i++) {
          const raw = await connectRaw(tcp.port);
          held.push(raw);
          await write(raw.sock, encodeFramedHeader({ name: `held${i}.bin`, size: 1000 }).subarray(0, 12));
          const from = `127.0.0.1:${raw.sock.localPort}`;
          await tcp.waitFor((e) => e.event === "connection" && e.from === from);
        }
        const busy = await sendFileTcp({ host: "127.0.0.1", port: tcp.port, file: SAMPLE, buffer: 65536 });
        assert.equal(busy.status, "refused", JSON.stringify(busy));
        assert.match(busy.response, /^BUSY: .*5 transfers/, busy.response);
        assert.ok(held.every((h) => !h.isClosed()), "a held connection was dropped by the refusal");

        for (let i = 0; i < 5; i++) {
          const r = await helloUntilAnswer(u, udp.port, 0x0b0b0000 + i, `held${i}.bin`, 100_000, 1400);
          assert.equal(r.status, ReliableStatus.OK, r.message);
        }
        const busyUdp = await sendFileReliable({
          host: "127.0.0.1",
          port: udp.port,
          file: SAMPLE,
          buffer: 1400,
        });
        assert.equal(busyUdp.status, "refused", JSON.stringify(busyUdp));
        assert.match(busyUdp.response, /BUSY/, busyUdp.response);

        // Freeing one slot lets the next sender in.
        const firstFrom = `127.0.0.1:${held[0].sock.localPort}`;
        held[0].sock.end();
        await held[0].closed;
        await tcp.waitFor((e) => e.event === "failed" && e.from === firstFrom);
        const ok = await sendFileTcp({ host: "127.0.0.1", port: tcp.port, file: SAMPLE, buffer: 65536 });
        assert.equal(ok.status, "success", JSON.stringify(ok));
        const abort = (i: number) =>
          sendUdp(
            u.sock,
            encodeReliable({
              type: MsgType.ABORT,
              session: 0x0b0b0000 + i,
              status: ReliableStatus.REFUSED,
              message: "x",
            }),
            udp.port,
          );
        await abort(0);
        await udp.waitFor((e) => e.event === "failed" && /aborted/.test(String(e.error)));
        const okUdp = await sendFileReliable({
          host: "127.0.0.1",
          port: udp.port,
          file: SAMPLE,
          buffer: 1400,
        });
        assert.equal(okUdp.status, "success", JSON.stringify(okUdp));
        for (let i = 1; i < 5; i++) await abort(i);
        await waitUntil(
          () =>
            udp.events.filter((e) => e.event === "failed" && /aborted/.test(String(e.error))).length === 5,
          "the held sessions to end",
        );
      } finally {
        for (const h of held) h.sock.destroy();
        u.sock.close();
        await tcp.stop();
        await udp.stop();
      }
      assert.deepEqual(listDir(tcpOut), ["received_input.jpeg"]);
      assert.deepEqual(listDir(udpOut), ["received_input_udp.jpeg"]);
    });

    test(
      "UDP --max-clients 5 counts classic sessions too: the sixth concurrent classic sender gets BUSY",
      {
        timeout: 60_000,
      },
      async () => {
        // udp-server --help: "--max-clients N  transfers served at once; more are refused (default 256)".
        // Only reliable sessions are counted: classic senders open unlimited sessions, each an open spool file.
        const out = scratch.fresh();
        const udp = await startServerTracked(rt, "udp/server.ts", [
          "--out",
          out,
          "--max-clients",
          "5",
          "--idle-timeout",
          "20",
        ]);
        const held = await Promise.all(Array.from({ length: 5 }, udpSocket));
        try {
          for (const h of held) {
            await sendUdp(h.sock, new Uint8Array([0, 0, 0, 0, 1, 2, 3]), udp.port); // packet 0, no end marker
            await udp.waitFor((e) => e.event === "connection" && e.from === `127.0.0.1:${h.port}`);
          }
          const small = makeSeededFile(scratch.fresh(), "sixth.bin", 3000, SEED + 9);
          const sixth = await sendFileUdp({ host: "127.0.0.1", port: udp.port, file: small, buffer: 1400 });
          const parts = listDir(out).filter((f) => f.endsWith(".part")).length;
          assert.ok(parts <= 5, `${parts} classic spool files open with --max-clients 5`);
          assert.notEqual(
            sixth.status,
            "success",
            "a sixth concurrent classic sender was served with --max-clients 5",
          );
          assert.match(sixth.response, /BUSY/, sixth.response);
        } finally {
          // End the held sessions (bare end markers), so the server stops without waiting for them.
          for (const h of held) {
            await sendUdp(h.sock, new Uint8Array([0xff, 0xff, 0xff, 0xff]), udp.port).catch(() => {});
          }
          await waitUntil(
            () => udp.events.filter((e) => e.event === "reply").length >= 6,
            "the held sessions to end",
          )
            .catch(() => {});
          for (const h of held) h.sock.close();
          await udp.stop();
        }
      },
    );
  });
}
