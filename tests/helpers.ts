/**
 * Test helpers: find the runtimes, start entry points as real processes,
 * wait for their JSON events, make files, hash them. Used under both
 * `deno test` and `bun test` (node:child_process works in both).
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

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
