/**
 * Test helpers: find the runtimes, start entry points as real processes,
 * wait for their JSON events, make files, hash them. Used under both
 * `deno test` and `bun test` (node:child_process works in both).
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes, randomInt } from "node:crypto";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeFramedHeader, parseFramedReply } from "../shared/protocol.ts";
import { decodeReliable, encodeReliable, MsgType, ReliableStatus } from "../shared/protocol_reliable.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** A runtime that can run entry points. */
export interface RuntimeInfo {
  /** `"deno"` or `"bun"`. */
  name: "deno" | "bun";
  /** Path of its executable. */
  bin: string;
}

function findBin(name: string): string | undefined {
  const local = join(ROOT, "node_modules", ".bin", name);
  if (fs.existsSync(local)) return local;
  const which = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  const found = which.stdout?.trim();
  return found ? found : undefined;
}

/** The runtimes found (from `node_modules/.bin`, else `PATH`). */
export function runtimes(): RuntimeInfo[] {
  const out: RuntimeInfo[] = [];
  for (const name of ["deno", "bun"] as const) {
    const bin = findBin(name);
    if (bin) out.push({ name, bin });
  }
  return out;
}

/** One runtime by name; throws when it is not installed (tests then fail, not skip). */
export function runtimeNamed(name: "deno" | "bun"): RuntimeInfo {
  const found = runtimes().find((r) => r.name === name);
  if (!found) throw new Error(`${name} is not installed: run npm ci`);
  return found;
}

/** Whether a command exists on PATH. */
export function hasCommand(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;
}

/** Prints why a test is skipped and returns the skip reason (for `{ skip }`). */
export function skipBecause(reason: string): string {
  console.log(`SKIP: ${reason}`);
  return reason;
}

/**
 * The command line that runs `script` (relative to the repo root) on `rt`.
 * On Deno, `permissions` replaces the default `--allow-all`.
 */
export function commandFor(
  rt: RuntimeInfo,
  script: string,
  args: string[],
  permissions?: string[],
): string[] {
  const path = join(ROOT, script);
  if (rt.name === "deno") {
    return [
      rt.bin,
      "run",
      "--no-prompt",
      ...(permissions ?? ["--allow-all"]),
      `--config=${join(ROOT, "deno.json")}`,
      path,
      ...args,
    ];
  }
  return [rt.bin, path, ...args];
}

/** The result of a finished process. */
export interface RunResult {
  /** Exit code (null when killed). */
  code: number | null;
  /** Everything written to stdout. */
  stdout: string;
  /** Everything written to stderr. */
  stderr: string;
}

/** Runs a command to completion, killing it after `timeoutMs`. */
export function run(
  cmd: string[],
  options: { timeoutMs?: number; cwd?: string; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), { cwd: options.cwd ?? ROOT, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => stdout += d.toString());
    child.stderr!.on("data", (d) => stderr += d.toString());
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`timed out after ${options.timeoutMs ?? 30000} ms: ${cmd.join(" ")}\n${stdout}\n${stderr}`),
      );
    }, options.timeoutMs ?? 30000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    else child.stdin!.end();
  });
}

/** Runs an entry point to completion. */
export function runEntry(
  rt: RuntimeInfo,
  script: string,
  args: string[],
  options: { timeoutMs?: number; cwd?: string; permissions?: string[] } = {},
): Promise<RunResult> {
  return run(commandFor(rt, script, args, options.permissions), options);
}

/** A server process started by {@linkcode startServer}. */
export interface ServerProcess {
  /** The port it bound. */
  port: number;
  /** The child process. */
  child: ChildProcess;
  /** JSON events printed so far. */
  events: Record<string, unknown>[];
  /** Raw stderr so far. */
  stderr(): string;
  /** Waits for an event matching `predicate`. */
  waitFor(
    predicate: (e: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Waits for the process to exit; resolves to its code. */
  exited(timeoutMs?: number): Promise<number | null>;
  /** Stops it with SIGTERM (then SIGKILL) and waits. */
  stop(): Promise<void>;
}

/**
 * Starts a server entry point with `--json --port 0 --host 127.0.0.1` (unless
 * given) and waits for its `listening` event.
 */
export async function startServer(
  rt: RuntimeInfo,
  script: string,
  args: string[],
  options: { permissions?: string[]; cmd?: string[] } = {},
): Promise<ServerProcess> {
  const full = [...args];
  if (!full.includes("--json")) full.push("--json");
  if (!full.includes("--port")) full.push("--port", "0");
  if (!full.includes("--host")) full.push("--host", "127.0.0.1");
  const cmd = options.cmd ?? commandFor(rt, script, full, options.permissions);
  const child = spawn(cmd[0], cmd.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const events: Record<string, unknown>[] = [];
  const listeners = new Set<() => void>();
  let stderr = "";
  let pending = "";
  let exitCode: number | null | undefined;
  const exitWaiters: Array<(code: number | null) => void> = [];
  child.stdout!.on("data", (d) => {
    pending += d.toString();
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line.startsWith("{")) {
        try {
          events.push(JSON.parse(line));
        } catch { /* not JSON */ }
      }
    }
    for (const l of [...listeners]) l();
  });
  child.stderr!.on("data", (d) => stderr += d.toString());
  child.on("exit", (code) => {
    exitCode = code;
    for (const w of exitWaiters.splice(0)) w(code);
    for (const l of [...listeners]) l();
  });
  const waitFor = (predicate: (e: Record<string, unknown>) => boolean, timeoutMs = 15000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = events.find(predicate);
        if (found) {
          cleanup();
          resolve(found);
        } else if (exitCode !== undefined) {
          cleanup();
          reject(new Error(`server exited (${exitCode}) before the event; stderr: ${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `no matching event within ${timeoutMs} ms; events: ${JSON.stringify(events)}; stderr: ${stderr}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });
  const exited = (timeoutMs = 15000) =>
    new Promise<number | null>((resolve, reject) => {
      if (exitCode !== undefined) return resolve(exitCode);
      const timer = setTimeout(
        () => reject(new Error(`server did not exit within ${timeoutMs} ms`)),
        timeoutMs,
      );
      exitWaiters.push((code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  const listening = await waitFor((e) => e.event === "listening", 20000);
  return {
    port: listening.port as number,
    child,
    events,
    stderr: () => stderr,
    waitFor,
    exited,
    async stop() {
      if (exitCode !== undefined) return;
      child.kill("SIGTERM");
      try {
        await exited(5000);
      } catch {
        child.kill("SIGKILL");
        await exited(5000);
      }
    },
  };
}

/** Creates a fresh temporary folder. */
export function tempDir(prefix = "imgxfer-test-"): string {
  return fs.mkdtempSync(join(tmpdir(), prefix));
}

/** Writes a file of `size` pseudo-random bytes in `dir`, returns its path. */
export function makeFile(dir: string, name: string, size: number): string {
  const path = join(dir, name);
  const fd = fs.openSync(path, "w");
  try {
    let left = size;
    while (left > 0) {
      const chunk = randomBytes(Math.min(left, 1 << 20));
      fs.writeSync(fd, chunk);
      left -= chunk.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  return path;
}

/** SHA-256 (hex) of a file, streamed. */
export function sha256File(path: string): string {
  const hash = createHash("sha256");
  const fd = fs.openSync(path, "r");
  const buf = new Uint8Array(1 << 20);
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

/** The files in `dir`, hidden ones included, sorted. */
export function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/** The sample image shipped in the repository. */
export const SAMPLE = join(ROOT, "input.jpeg");

/** Parses the last JSON line of a client's stdout. */
export function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split("\n").filter((l) => l.startsWith("{"));
  if (lines.length === 0) throw new Error(`no JSON line in: ${stdout}`);
  return JSON.parse(lines[lines.length - 1]);
}

// ---------------------------------------------------------------------------
// Helpers for the hardened-server tests (concurrency, ENOSPC, live fuzzing,
// symbolic links). Appended; nothing above depends on them.

/** Asserts that the server printed no stack trace and no uncaught error on its stderr. */
export function assertNoCrashOnStderr(srv: ServerProcess): void {
  const err = srv.stderr();
  assert.ok(!err.includes("    at "), `stack trace on the server's stderr:\n${err}`);
  assert.ok(!/Uncaught|Unhandled|panicked/i.test(err), `uncaught error on the server's stderr:\n${err}`);
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `everyMs` until it returns true; throws after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean,
  what: string,
  timeoutMs = 10000,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

/**
 * `size` deterministic pseudo-random bytes from a 32-bit `seed` (xorshift128):
 * the same seed gives the same bytes on every runtime, fast enough for MiBs.
 */
export function seededBytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  let y = 362436069;
  let z = 521288629;
  let w = (seed * 2654435761) >>> 0 || 88675123;
  const next = () => {
    const t = (x ^ (x << 11)) >>> 0;
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return w;
  };
  for (let i = 0; i < words.length; i++) words[i] = next();
  for (let i = words.length * 4; i < size; i++) out[i] = next() & 0xff;
  return out;
}

/** Writes a file of `size` seeded bytes in `dir` (see {@linkcode seededBytes}); returns its path. */
export function makeSeededFile(dir: string, name: string, size: number, seed: number): string {
  const path = join(dir, name);
  fs.writeFileSync(path, seededBytes(size, seed));
  return path;
}

/** SHA-256 (hex) of bytes in memory. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * A memory figure of a live process from `/proc/PID/status`, in KiB: `VmRSS`
 * (now) or `VmHWM` (peak resident set). `undefined` off Linux or once the
 * process is gone.
 */
export function procStatusKiB(pid: number, field: "VmRSS" | "VmHWM"): number | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function exeName(pid: number): string {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`).split("/").pop() ?? "";
  } catch {
    return "";
  }
}

function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command (which may hold spaces) in parentheses: state, ppid, …
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch { /* gone */ }
  }
  return out;
}

/**
 * The pid of the real runtime process behind `pid`: `pid` itself when its
 * executable is Deno or Bun, else the nearest descendant that is (for a
 * wrapper such as `sh -c`, `unshare` or an npm shim). Falls back to `pid`.
 */
export function runtimePid(pid: number): number {
  const isRuntime = (p: number) => /^(deno|bun)(\.exe)?$/.test(exeName(p));
  if (isRuntime(pid)) return pid;
  let frontier = [pid];
  for (let depth = 0; depth < 4 && frontier.length > 0; depth++) {
    const next = frontier.flatMap(childPids);
    const found = next.find(isRuntime);
    if (found !== undefined) return found;
    frontier = next;
  }
  return pid;
}

/** Formats KiB as MiB with one decimal, for `[measure]` lines. */
export function mib(kib: number | undefined): string {
  return kib === undefined ? "n/a" : `${(kib / 1024).toFixed(1)} MiB`;
}

/**
 * A small file system for out-of-space tests. `mount`: a tmpfs mounted on
 * `dir` (needs root; visible to everyone). `userns`: the server must run
 * through {@linkcode SmallFs.wrap}, which mounts the tmpfs inside a private
 * user and mount namespace (`unshare --user --map-root-user --mount`); the
 * folder's contents are then seen through `/proc/PID/root` of the server.
 */
export interface SmallFs {
  /** How the file system was made. */
  how: "mount" | "userns";
  /** The mount point (the server's `--out`). */
  dir: string;
  /** Size in bytes. */
  size: number;
  /** The command that runs `cmd` with the tmpfs mounted on `dir`. */
  wrap(cmd: string[]): string[];
  /** Where the test sees `dir`'s contents while the server `pid` runs. */
  view(pid: number): string;
  /** Unmounts (when mounted here) and removes the mount point. */
  cleanup(): void;
}

/**
 * Makes a `size`-byte tmpfs: as root by mounting one on a fresh folder,
 * else (or with `IMGXFER_TEST_TMPFS=userns`) inside a private mount
 * namespace of an unprivileged user namespace. Returns the reason instead
 * when neither works (for {@linkcode skipBecause}).
 */
export function smallFs(size: number): SmallFs | { reason: string } {
  if (process.platform !== "linux") return { reason: "tmpfs mounts need Linux" };
  const dir = tempDir("imgxfer-smallfs-");
  const opts = `size=${size},mode=0755`;
  const reasons: string[] = [];
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  if (process.env.IMGXFER_TEST_TMPFS !== "userns") {
    const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", opts, "tmpfs", dir], { encoding: "utf8" });
    if (mounted.status === 0) {
      return {
        how: "mount",
        dir,
        size,
        wrap: (cmd) => cmd,
        view: () => dir,
        cleanup() {
          const res = spawnSync("umount", [dir], { encoding: "utf8" });
          if (res.status !== 0) spawnSync("umount", ["-l", dir]);
          remove();
        },
      };
    }
    reasons.push(`mount -t tmpfs: ${(mounted.stderr || mounted.error?.message || "failed").trim()}`);
  }
  const script = 'mount -t tmpfs -o "$1" tmpfs "$2" && shift 2 && exec "$@"';
  const wrap = (cmd: string[]) => [
    "unshare",
    "--user",
    "--map-root-user",
    "--mount",
    "sh",
    "-c",
    script,
    "sh",
    opts,
    dir,
    ...cmd,
  ];
  const probe = spawnSync(wrap(["true"])[0], wrap(["true"]).slice(1), { encoding: "utf8" });
  if (probe.status === 0) {
    return {
      how: "userns",
      dir,
      size,
      wrap,
      view: (pid) => `/proc/${pid}/root${dir}`,
      cleanup: remove,
    };
  }
  reasons.push(
    `unshare --user --map-root-user --mount: ${(probe.stderr || probe.error?.message || "failed").trim()}`,
  );
  remove();
  return { reason: `cannot make a small file system (${reasons.join("; ")})` };
}

/**
 * Whether `name` is a resumable partial a server keeps on purpose after a cut
 * transfer (`.received_NAME.<24 hex>.resume.part`, or its `.json` sidecar),
 * as opposed to a temporary file that should have been removed. With `of`,
 * only partials of those final names (e.g. `received_photo.jpeg`).
 */
export function isResumePartial(name: string, of?: string[]): boolean {
  const match = /^\.(.+)\.[0-9a-f]{24}\.resume\.part(\.json)?$/.exec(name);
  return match !== null && (of === undefined || of.includes(match[1]));
}

/** Hidden files in `dir` that are not resumable partials (of `of`, when given): leftovers. */
export function leftoverTemps(dir: string, of?: string[]): string[] {
  return listDir(dir).filter((f) => f.startsWith(".") && !isResumePartial(f, of));
}

const liveServers = new Set<ServerProcess>();

/**
 * {@linkcode startServer}, remembered until it exits, so that
 * {@linkcode stopLiveServers} (in an `after` hook) stops a server that a
 * failed test left running, e.g. when starting a second server threw.
 */
export async function startServerTracked(
  rt: RuntimeInfo,
  script: string,
  args: string[],
  options: { permissions?: string[]; cmd?: string[] } = {},
): Promise<ServerProcess> {
  const srv = await startServer(rt, script, args, options);
  liveServers.add(srv);
  srv.child.once("exit", () => liveServers.delete(srv));
  return srv;
}

/** Stops every server started with {@linkcode startServerTracked} that is still running. */
export async function stopLiveServers(): Promise<void> {
  for (const srv of [...liveServers]) {
    try {
      await srv.stop();
    } catch {
      srv.child.kill("SIGKILL");
    }
    liveServers.delete(srv);
  }
}

/**
 * The temporary folders of one test file: `fresh()` makes one, `cleanup()`
 * (register it with `after`) removes them all.
 */
export class ScratchDirs {
  #prefix: string;
  #dirs: string[] = [];

  /** Folders will be named `<tmp>/<prefix>XXXXXX`. */
  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** A new empty folder. */
  fresh(prefix: string = this.#prefix): string {
    const dir = tempDir(prefix);
    this.#dirs.push(dir);
    return dir;
  }

  /** Removes every folder made so far. */
  cleanup(): void {
    for (const dir of this.#dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The runtime to run clients on against a server on `rt`: the other one when both are installed. */
export function otherThan(rt: RuntimeInfo): RuntimeInfo {
  return runtimes().find((r) => r.name !== rt.name) ?? rt;
}

/** A loopback TCP proxy in front of a server that records what clients send and may flip one byte. */
export interface TcpProxy {
  port: number;
  /** Everything clients sent, in order, as received (before any flip). */
  clientBytes(): Uint8Array;
  close(): Promise<void>;
}

/**
 * Starts a {@linkcode TcpProxy} to `127.0.0.1:target`; when `flipAt` is
 * given, the byte at that offset of the clients' stream is XORed with 1.
 */
export function startTcpProxy(target: number, flipAt?: number): Promise<TcpProxy> {
  const chunks: Uint8Array[] = [];
  let seen = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: target, host: "127.0.0.1", allowHalfOpen: true });
    sockets.add(client);
    sockets.add(upstream);
    let open = true; // upstream still takes data
    client.on("data", (d: Uint8Array) => {
      const bytes = new Uint8Array(d); // a copy
      chunks.push(bytes.slice());
      if (flipAt !== undefined && flipAt >= seen && flipAt < seen + bytes.length) {
        bytes[flipAt - seen] ^= 0x01;
      }
      seen += bytes.length;
      if (open) upstream.write(bytes);
    });
    client.on("end", () => open && upstream.end());
    client.on("error", () => upstream.destroy());
    upstream.on("data", (d: Uint8Array) => client.write(d));
    upstream.on("end", () => client.end());
    upstream.on("error", () => {
      open = false;
      client.end();
    });
    upstream.on("close", () => (open = false));
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        clientBytes: () => new Uint8Array(Buffer.concat(chunks)),
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

const sha256Bytes = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());

/** Sends `body` as a framed TCP transfer named `name`, by hand; resolves to the parsed reply. */
export function sendFramedByHand(port: number, name: string, body: Uint8Array) {
  return new Promise<ReturnType<typeof parseFramedReply>>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect(port, "127.0.0.1", () => {
      sock.write(encodeFramedHeader({ name, size: body.length }));
      sock.write(body);
      sock.end(sha256Bytes(body));
    });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error("no reply within 15 s"));
    }, 15000);
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(parseFramedReply(new Uint8Array(Buffer.concat(chunks))));
    });
  });
}

/**
 * Sends `body` over reliable UDP as `name`, by hand, in 1000-byte chunks:
 * HELLO until ACCEPT, then the chunks and FIN (all repeated every 200 ms)
 * until DONE or ABORT. Resolves to that message (or the refusing ACCEPT).
 */
export function sendReliableByHand(port: number, name: string, body: Uint8Array) {
  const session = randomInt(1, 0xffffffff);
  const chunkSize = 1000;
  const chunks = Math.ceil(body.length / chunkSize);
  const hello = encodeReliable({ type: MsgType.HELLO, session, chunkSize, size: body.length, name });
  const rest = [
    ...Array.from({ length: chunks }, (_, seq) =>
      encodeReliable({
        type: MsgType.DATA,
        session,
        seq,
        payload: body.subarray(seq * chunkSize, (seq + 1) * chunkSize),
      })),
    encodeReliable({ type: MsgType.FIN, session, chunks, size: body.length, digest: sha256Bytes(body) }),
  ];
  return new Promise<ReturnType<typeof decodeReliable>>((resolve, reject) => {
    const sock = dgram.createSocket("udp4");
    let accepted = false;
    const send = () => {
      for (const d of accepted ? rest : [hello]) sock.send(d, port, "127.0.0.1");
    };
    const retry = setInterval(send, 200);
    const timer = setTimeout(() => finish(new Error("no DONE within 15 s")), 15000);
    const finish = (result: Error | ReturnType<typeof decodeReliable>) => {
      clearInterval(retry);
      clearTimeout(timer);
      sock.close();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    sock.on("error", (e) => finish(e));
    sock.on("message", (bytes: Buffer) => {
      let msg;
      try {
        msg = decodeReliable(new Uint8Array(bytes));
      } catch {
        return;
      }
      if (msg.session !== session) return;
      if (msg.type === MsgType.ACCEPT) {
        if (msg.status !== ReliableStatus.OK) return finish(msg);
        if (!accepted) {
          accepted = true;
          send();
        }
      } else if (msg.type === MsgType.DONE || msg.type === MsgType.ABORT) {
        finish(msg);
      }
    });
    sock.bind(0, "127.0.0.1", send);
  });
}
