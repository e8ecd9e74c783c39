/**
 * Writes stay inside `--out` even when someone plants symbolic links there
 * ("hardened server"), on every runtime, TCP and UDP:
 *
 * - a link named like the final name (`received_photo.jpeg` → a file
 *   outside `--out`, or a dangling link → a path outside) is not followed:
 *   the target is unchanged (or still absent), the link is still there, and
 *   the file is saved as `received_photo_1.jpeg`; the same for the fixed
 *   classic names (`received_input.jpeg`, `received_input_udp.jpeg`,
 *   `received_input_udp.incomplete.jpeg`);
 * - a link to a directory outside, named like what a hostile sent name would
 *   produce if the server kept path separators (`received_evil` → outside,
 *   sender's name `evil/payload.txt` or `../…/evil/payload.txt`): the file
 *   lands in `--out` under its base name, the outside directory stays empty;
 * - temporary names: decoy links named like temporary files
 *   (`.received_photo.jpeg.*.part`) are left alone; and a link planted at
 *   the exact temporary name the server is about to use is not written
 *   through (the transfer fails cleanly or uses another name). The name is
 *   learned from two identical fresh servers (Deno with `--seed`, which
 *   makes `crypto.randomUUID()` repeatable; a resumable partial's name is
 *   stable anyway); when the two differ (random names on Bun, which has no
 *   seed) the case is skipped with the reason printed.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { sendFileReliable, sendFileTcp, sendFileUdp } from "../mod.ts";
import { encodeClassicData, encodeClassicEnd, encodeFramedHeader } from "../shared/protocol.ts";
import { encodeReliable, MsgType, ReliableStatus } from "../shared/protocol_reliable.ts";
import {
  assertNoCrashOnStderr,
  delay,
  leftoverTemps,
  listDir,
  makeSeededFile,
  type RuntimeInfo,
  runtimes,
  ScratchDirs,
  sendFramedByHand,
  sendReliableByHand,
  sha256File,
  skipBecause,
  startServerTracked,
  stopLiveServers,
  waitUntil,
} from "./helpers.ts";

const RTS: RuntimeInfo[] = runtimes();

const scratch = new ScratchDirs("imgxfer-symlink-");
after(stopLiveServers);
after(() => scratch.cleanup());

/**
 * `base/out` is the server's `--out`; `base/outside` holds the link targets:
 * files with known contents and an empty directory.
 */
interface Layout {
  base: string;
  out: string;
  outside: string;
  src: string;
}

function layout(): Layout {
  const base = scratch.fresh();
  const out = join(base, "out");
  const outside = join(base, "outside");
  const src = join(base, "src");
  for (const d of [out, outside, src]) fs.mkdirSync(d);
  return { base, out, outside, src };
}

/** Plants a file outside with known contents and a link to it in `out`; returns the target's path. */
function plantFileLink(l: Layout, linkName: string, targetName: string): string {
  const target = join(l.outside, targetName);
  fs.writeFileSync(target, `original contents of ${targetName}\n`);
  fs.symlinkSync(target, join(l.out, linkName));
  return target;
}

/** Everything under `dir` (links as links), with contents' digests: what "unchanged" means here. */
function snapshot(dir: string): string[] {
  const entries: string[] = [];
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      const path = join(d, name);
      const st = fs.lstatSync(path);
      if (st.isSymbolicLink()) entries.push(`${path} -> ${fs.readlinkSync(path)}`);
      else if (st.isDirectory()) {
        entries.push(`${path}/`);
        walk(path);
      } else entries.push(`${path} ${createHash("sha256").update(fs.readFileSync(path)).digest("hex")}`);
    }
  };
  walk(dir);
  return entries;
}

/** Asserts `path` is still a symbolic link to `target`. */
function assertStillLink(path: string, target: string): void {
  assert.ok(fs.lstatSync(path).isSymbolicLink(), `${path} is no longer a symbolic link`);
  assert.equal(fs.readlinkSync(path), target);
}

/** Sends an incomplete classic UDP transfer by hand: packets 0 and 2 of 3 and the end marker, until a reply. */
async function sendClassicWithHole(port: number, chunk: number): Promise<string> {
  const sock = dgram.createSocket("udp4");
  const replies: string[] = [];
  sock.on("message", (m: Buffer) => replies.push(m.toString()));
  await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", () => resolve()));
  try {
    const payload = new Uint8Array(chunk).fill(7);
    // One at a time: unawaited sends may leave in another order (Deno), and the marker must come last.
    const sendNow = (bytes: Uint8Array) =>
      new Promise<void>((resolve) => sock.send(bytes, port, "127.0.0.1", () => resolve()));
    for (const seq of [0, 2]) await sendNow(encodeClassicData(seq, payload));
    const end = encodeClassicEnd({ packets: 3, chunk, bytes: 3 * chunk });
    for (let i = 0; i < 50 && replies.length === 0; i++) {
      await sendNow(end);
      await delay(200);
    }
    if (replies.length === 0) throw new Error("no reply to the classic end marker within 10 s");
    return replies[0];
  } finally {
    sock.close();
  }
}

for (const rt of RTS) {
  describe(`${rt.name}: symbolic links planted in --out`, () => {
    test(
      "TCP: links under the final names (framed received_photo.jpeg, classic received_input.jpeg, a dangling one) are not followed; files saved as _1",
      {
        timeout: 60_000,
      },
      async () => {
        const l = layout();
        const photoTarget = plantFileLink(l, "received_photo.jpeg", "target.jpeg");
        const classicTarget = plantFileLink(l, "received_input.jpeg", "classic-target.jpeg");
        const ghost = join(l.outside, "ghost.bin"); // does not exist; must not be created
        fs.symlinkSync(ghost, join(l.out, "received_ghost.bin"));
        const outsideBefore = snapshot(l.outside);
        const photo = makeSeededFile(l.src, "photo.jpeg", 70_000, 1);
        const classic = makeSeededFile(l.src, "classic.bin", 50_000, 2);
        const ghostSrc = makeSeededFile(l.src, "ghost.bin", 3000, 3);
        const srv = await startServerTracked(rt, "tcp/server.ts", ["--out", l.out]);
        try {
          for (const [file, isClassic] of [[photo, false], [classic, true], [ghostSrc, false]] as const) {
            const s = await sendFileTcp({
              host: "127.0.0.1",
              port: srv.port,
              file,
              buffer: 65536,
              classic: isClassic,
            });
            assert.equal(s.status, "success", JSON.stringify(s));
          }
          assert.deepEqual(snapshot(l.outside), outsideBefore, "something outside --out changed");
          assert.ok(!fs.existsSync(ghost), "the dangling link's target was created");
          assertStillLink(join(l.out, "received_photo.jpeg"), photoTarget);
          assertStillLink(join(l.out, "received_input.jpeg"), classicTarget);
          assertStillLink(join(l.out, "received_ghost.bin"), ghost);
          assert.equal(sha256File(join(l.out, "received_photo_1.jpeg")), sha256File(photo));
          assert.equal(sha256File(join(l.out, "received_input_1.jpeg")), sha256File(classic));
          assert.equal(sha256File(join(l.out, "received_ghost_1.bin")), sha256File(ghostSrc));
          assert.deepEqual(listDir(l.out), [
            "received_ghost.bin",
            "received_ghost_1.bin",
            "received_input.jpeg",
            "received_input_1.jpeg",
            "received_photo.jpeg",
            "received_photo_1.jpeg",
          ]);
          assertNoCrashOnStderr(srv);
        } finally {
          await srv.stop();
        }
      },
    );

    test(
      "UDP: links under the final names (reliable received_photo_udp.jpeg, classic received_input_udp.jpeg and .incomplete) are not followed; files saved as _1",
      {
        timeout: 60_000,
      },
      async () => {
        const l = layout();
        const reliableTarget = plantFileLink(l, "received_photo_udp.jpeg", "udp-target.jpeg");
        const classicTarget = plantFileLink(l, "received_input_udp.jpeg", "classic-udp-target.jpeg");
        const incompleteTarget = plantFileLink(
          l,
          "received_input_udp.incomplete.jpeg",
          "incomplete-target.jpeg",
        );
        const outsideBefore = snapshot(l.outside);
        const photo = makeSeededFile(l.src, "photo.jpeg", 70_000, 4);
        const classic = makeSeededFile(l.src, "classic.bin", 5000, 5);
        const srv = await startServerTracked(rt, "udp/server.ts", ["--out", l.out, "--idle-timeout", "2"]);
        try {
          const r = await sendFileReliable({ host: "127.0.0.1", port: srv.port, file: photo, buffer: 1400 });
          assert.equal(r.status, "success", JSON.stringify(r));
          const c = await sendFileUdp({ host: "127.0.0.1", port: srv.port, file: classic, buffer: 1400 });
          assert.equal(c.status, "success", JSON.stringify(c));
          const reply = await sendClassicWithHole(srv.port, 1000);
          assert.match(reply, /^INCOMPLETE: 2\/3 packets, missing 1/, reply);
          await srv.waitFor((e) => e.event === "received" && e.complete === false);

          assert.deepEqual(snapshot(l.outside), outsideBefore, "something outside --out changed");
          assertStillLink(join(l.out, "received_photo_udp.jpeg"), reliableTarget);
          assertStillLink(join(l.out, "received_input_udp.jpeg"), classicTarget);
          assertStillLink(join(l.out, "received_input_udp.incomplete.jpeg"), incompleteTarget);
          assert.equal(sha256File(join(l.out, "received_photo_udp_1.jpeg")), sha256File(photo));
          assert.equal(sha256File(join(l.out, "received_input_udp_1.jpeg")), sha256File(classic));
          const incomplete = fs.readFileSync(join(l.out, "received_input_udp.incomplete_1.jpeg"));
          assert.equal(incomplete.length, 3000);
          assert.deepEqual(
            [incomplete[0], incomplete[1000], incomplete[2000]],
            [7, 0, 7],
            "zero-filled hole expected",
          );
          assert.equal(listDir(l.out).length, 6, listDir(l.out).join(" "));
          assertNoCrashOnStderr(srv);
        } finally {
          await srv.stop();
        }
      },
    );

    test(
      "hostile names through a link to an outside directory (received_evil -> outside): TCP framed and UDP reliable land in --out",
      {
        timeout: 60_000,
      },
      async () => {
        const l = layout();
        const evilDir = join(l.outside, "evil-dir");
        fs.mkdirSync(evilDir);
        // What `evil/…` names would open if the server kept separators: received_evil/…
        fs.symlinkSync(evilDir, join(l.out, "received_evil"));
        // And a link named like the base name the server keeps, pointing at the directory.
        fs.symlinkSync(evilDir, join(l.out, "received_payload.txt"));
        const outsideBefore = snapshot(l.outside);
        const body = new TextEncoder().encode("hostile payload\n");
        const names = ["evil/payload.txt", "../out/received_evil/payload.txt", "evil\\payload.txt"];
        const tcp = await startServerTracked(rt, "tcp/server.ts", ["--out", l.out]);
        const udp = await startServerTracked(rt, "udp/server.ts", ["--out", l.out]);
        try {
          for (const name of names) {
            const reply = await sendFramedByHand(tcp.port, name, body);
            assert.ok("value" in reply, `no complete reply for ${name}`);
            assert.equal(reply.value.status, 0, `${name}: ${reply.value.message}`);
            const done = await sendReliableByHand(udp.port, name, body);
            assert.equal(done.type, MsgType.DONE, `${name}: ${JSON.stringify(done)}`);
            assert.equal(
              (done as { status: number }).status,
              ReliableStatus.OK,
              `${name}: ${JSON.stringify(done)}`,
            );
          }
          assert.deepEqual(snapshot(l.outside), outsideBefore, "something outside --out changed");
          assert.deepEqual(fs.readdirSync(evilDir), [], "a file landed in the outside directory");
          assertStillLink(join(l.out, "received_evil"), evilDir);
          assertStillLink(join(l.out, "received_payload.txt"), evilDir);
          const saved = listDir(l.out).filter((f) => !["received_evil", "received_payload.txt"].includes(f));
          assert.deepEqual(saved, [
            "received_payload_1.txt",
            "received_payload_2.txt",
            "received_payload_3.txt",
            "received_payload_udp.txt",
            "received_payload_udp_1.txt",
            "received_payload_udp_2.txt",
          ]);
          for (const f of saved) {
            assert.equal(fs.readFileSync(join(l.out, f), "utf8"), "hostile payload\n", f);
          }
          assertNoCrashOnStderr(tcp);
          assertNoCrashOnStderr(udp);
        } finally {
          await tcp.stop();
          await udp.stop();
        }
      },
    );

    test("temporary names: decoy links named like .part files are left alone (TCP and UDP)", {
      timeout: 60_000,
    }, async () => {
      const l = layout();
      const decoys = [
        ".received_photo.jpeg.part",
        ".received_photo.jpeg.00000000-0000.part",
        ".received_photo_udp.jpeg.ffffffff-ffff.part",
        ".received_input.jpeg.12345678-9abc.part",
        ".received_input_udp.jpeg.part",
      ];
      const targets = decoys.map((d, i) => plantFileLink(l, d, `decoy-${i}.txt`));
      const outsideBefore = snapshot(l.outside);
      const photo = makeSeededFile(l.src, "photo.jpeg", 30_000, 6);
      const tcp = await startServerTracked(rt, "tcp/server.ts", ["--out", l.out]);
      const udp = await startServerTracked(rt, "udp/server.ts", ["--out", l.out]);
      try {
        for (const classic of [false, true]) {
          const s = await sendFileTcp({
            host: "127.0.0.1",
            port: tcp.port,
            file: photo,
            buffer: 65536,
            classic,
          });
          assert.equal(s.status, "success", JSON.stringify(s));
        }
        const r = await sendFileReliable({ host: "127.0.0.1", port: udp.port, file: photo, buffer: 1400 });
        assert.equal(r.status, "success", JSON.stringify(r));
        const c = await sendFileUdp({ host: "127.0.0.1", port: udp.port, file: photo, buffer: 1400 });
        assert.equal(c.status, "success", JSON.stringify(c));
        assert.deepEqual(snapshot(l.outside), outsideBefore, "something outside --out changed");
        decoys.forEach((d, i) => assertStillLink(join(l.out, d), targets[i]));
        const saved = listDir(l.out).filter((f) => !f.startsWith("."));
        assert.deepEqual(saved, [
          "received_input.jpeg",
          "received_input_udp.jpeg",
          "received_photo.jpeg",
          "received_photo_udp.jpeg",
        ]);
        for (const f of saved) assert.equal(sha256File(join(l.out, f)), sha256File(photo), f);
        assert.equal(listDir(l.out).length, saved.length + decoys.length, listDir(l.out).join(" "));
      } finally {
        await tcp.stop();
        await udp.stop();
      }
    });

    for (const transport of ["tcp", "udp"] as const) {
      test(
        `${transport.toUpperCase()}: a link planted at the exact temporary name the server will use (learned from ` +
          `identical fresh servers; Deno with --seed) is not written through`,
        { timeout: 60_000 },
        async (t) => {
          const script = transport === "tcp" ? "tcp/server.ts" : "udp/server.ts";
          // Deno's --seed makes crypto.randomUUID() repeatable; Bun has no such switch.
          const permissions = rt.name === "deno" ? ["--allow-all", "--seed=20261125"] : undefined;
          const body = makeSeededFile(scratch.fresh(), "photo.jpeg", 20_000, 7);
          const bytes = new Uint8Array(fs.readFileSync(body));

          /** Opens the transfer (framed header and 1000 bytes, or HELLO and one chunk) and leaves it in progress. */
          const begin = async (port: number): Promise<() => void> => {
            if (transport === "tcp") {
              const sock = net.connect(port, "127.0.0.1");
              sock.on("error", () => {});
              await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
              sock.write(encodeFramedHeader({ name: "photo.jpeg", size: bytes.length }));
              sock.write(bytes.subarray(0, 1000));
              return () => sock.destroy();
            }
            const sock = dgram.createSocket("udp4");
            sock.on("error", () => {});
            await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", () => resolve()));
            const session = 0x7e57;
            sock.send(
              encodeReliable({
                type: MsgType.HELLO,
                session,
                name: "photo.jpeg",
                size: bytes.length,
                chunkSize: 1000,
              }),
              port,
              "127.0.0.1",
            );
            return () => {
              sock.send(
                encodeReliable({
                  type: MsgType.ABORT,
                  session,
                  status: ReliableStatus.REFUSED,
                  message: "learned",
                }),
                port,
                "127.0.0.1",
                () => sock.close(),
              );
            };
          };

          // 1. Learn the temporary name a fresh server picks for its first transfer, twice.
          const learn = async (): Promise<string> => {
            const learnOut = scratch.fresh();
            const learner = await startServerTracked(rt, script, ["--out", learnOut], { permissions });
            try {
              const end = await begin(learner.port);
              await waitUntil(() => listDir(learnOut).some((f) => f.endsWith(".part")), "the temporary file");
              end();
              return listDir(learnOut).find((f) => f.endsWith(".part"))!;
            } finally {
              await learner.stop();
            }
          };
          const tempName = await learn();
          const again = await learn();
          if (again !== tempName) {
            const reason = skipBecause(
              `${rt.name} ${transport}: the temporary name is random ('${tempName}', then '${again}'), so a link ` +
                `cannot be planted at it in advance`,
            );
            (t as { skip?: (reason: string) => void }).skip?.(reason);
            return;
          }

          /** Sends the whole file by hand; whether the server confirmed it. */
          const sendWhole = async (port: number): Promise<boolean> => {
            if (transport === "tcp") {
              const reply = await sendFramedByHand(port, "photo.jpeg", bytes);
              return "value" in reply && reply.value.status === 0;
            }
            const answer = await sendReliableByHand(port, "photo.jpeg", bytes);
            return answer.type === MsgType.DONE && answer.status === ReliableStatus.OK;
          };
          const finalName = transport === "tcp" ? "received_photo.jpeg" : "received_photo_udp.jpeg";

          // 2. The same server, same seed, same first transfer, with a link planted at that name:
          //    once to a file outside (must stay unchanged), once dangling (its target must not appear).
          for (const dangling of [false, true]) {
            const l = layout();
            const target = join(l.outside, "temp-target.jpeg");
            if (dangling) fs.symlinkSync(target, join(l.out, tempName));
            else plantFileLink(l, tempName, "temp-target.jpeg");
            const outsideBefore = snapshot(l.outside);
            const srv = await startServerTracked(rt, script, ["--out", l.out], { permissions });
            try {
              const firstOk = await sendWhole(srv.port);
              assert.deepEqual(snapshot(l.outside), outsideBefore, "the planted link was written through");
              assertStillLink(join(l.out, tempName), target);
              if (firstOk) assert.equal(sha256File(join(l.out, finalName)), sha256File(body));
              else assert.ok(!fs.existsSync(join(l.out, finalName)), "a failed transfer left a final file");
              // The next transfer: saved intact, or (a stable resumable name still occupied by the link)
              // refused again; never written through the link.
              const secondOk = await sendWhole(srv.port);
              assert.deepEqual(snapshot(l.outside), outsideBefore, "the planted link was written through");
              assertStillLink(join(l.out, tempName), target);
              const saved = listDir(l.out).filter((f) => !f.startsWith("."));
              assert.equal(saved.length, Number(firstOk) + Number(secondOk), listDir(l.out).join(" "));
              for (const f of saved) assert.equal(sha256File(join(l.out, f)), sha256File(body), f);
              assert.deepEqual(
                leftoverTemps(l.out).filter((f) => f !== tempName),
                [],
                "temporary files left",
              );
              assert.ok(!dangling || !fs.existsSync(target), "the dangling link's target was created");
              console.log(
                `[info] ${rt.name} ${transport}: a ${
                  dangling ? "dangling " : ""
                }link at the temporary name ` +
                  `'${tempName}': first transfer ${
                    firstOk ? "saved under another temporary name" : "refused"
                  }, second ${secondOk ? "saved" : "refused"}`,
              );
              assertNoCrashOnStderr(srv);
            } finally {
              await srv.stop();
            }
          }
        },
      );
    }
  });
}
