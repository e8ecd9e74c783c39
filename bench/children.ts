/**
 * Child processes for the benchmarks: each started as the leader of its own
 * process group (so a `/usr/bin/time` wrapper and its command stop
 * together), killed after a timeout, with its output captured; plus waits
 * with deadlines and /proc reads.
 *
 * @module
 */

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { runtime } from "../shared/runtime.ts";
import { which } from "./common.ts";
import { ROOT } from "./procs.ts";

/** How a child process ended. */
export interface Ended {
  code: number | null;
  signal: string | null;
  /** Wall seconds from spawn to exit. */
  seconds: number;
  /** `performance.now()` at exit. */
  exitAt: number;
  timedOut: boolean;
  error?: string;
}

/** A running child process (the leader of its own process group). */
export interface Child {
  label: string;
  pid: number | undefined;
  /** `performance.now()` just before spawning. */
  startedAt: number;
  /** stdout (when piped) and stderr as they arrive (kept to the last 4 MiB each). */
  out: { stdout: string; stderr: string };
  ended: Promise<Ended>;
  exited: boolean;
  stop(): Promise<Ended>;
}

const MAX_CAPTURE = 4 << 20;

/** Where a child's stdin comes from / stdout goes: a pipe (stdout), /dev/null (stdin), or an open fd. */
export interface Stdio {
  stdin?: number;
  stdout?: number;
}

/**
 * The child processes one benchmark started, so they can all be stopped
 * when it ends or is interrupted.
 */
export class Children {
  #live = new Set<Child>();

  /**
   * Starts `cmd` as the leader of a new process group; after `timeoutMs` sends
   * SIGTERM to the group (its PID), then SIGKILL 3 s later.
   */
  start(label: string, cmd: string[], timeoutMs: number, stdio: Stdio = {}): Child {
    const child = startProcess(label, cmd, timeoutMs, stdio, (proc) => this.#live.delete(proc));
    this.#live.add(child);
    return child;
  }

  /** Stops every child still running and waits for them. */
  async stopAll(): Promise<void> {
    await Promise.allSettled([...this.#live].map((c) => c.stop()));
  }

  /**
   * A /proc file's text ("" if unreadable). Bun reads it directly; Deno grants
   * /proc only with --allow-all, so there it is read with `cat`.
   */
  async readProc(path: string): Promise<string> {
    if (this.#procDirect !== false) {
      try {
        const text = fs.readFileSync(path, "utf8");
        this.#procDirect = true;
        return text;
      } catch (error) {
        if ((error as { code?: string }).code === "ENOENT") return "";
        this.#procDirect = false;
      }
    }
    const child = this.start(`cat ${path}`, ["cat", path], 5000);
    const ended = await child.ended;
    return ended.code === 0 ? child.out.stdout : "";
  }

  /**
   * Whether a TCP socket listens on 127.0.0.1:`port` (or any address), from
   * /proc/net/tcp; `undefined` when that cannot be read.
   */
  async listeningOn(port: number): Promise<boolean | undefined> {
    const text = await this.readProc("/proc/net/tcp");
    if (text === "") return undefined;
    const hex = port.toString(16).toUpperCase().padStart(4, "0");
    return text.split("\n").some((line) => {
      const f = line.trim().split(/\s+/);
      return (f[1] === `0100007F:${hex}` || f[1] === `00000000:${hex}`) && f[3] === "0A";
    });
  }

  /** The first line a program prints for `args` (e.g. `--version`), stdout or stderr. */
  async versionOf(exe: string, args: string[]): Promise<string> {
    const child = this.start(`${exe} version`, [exe, ...args], 15000);
    await child.ended;
    return (child.out.stdout + child.out.stderr).trim().split("\n")[0] ?? "";
  }

  /** The machine a benchmark runs on: CPUs and their model, kernel, load average now, and this runtime. */
  async machine(): Promise<
    { cpus: number; cpuModel: string; kernel: string; loadavgAtStart: string; benchRuntime: string }
  > {
    return {
      cpus: navigator.hardwareConcurrency,
      cpuModel: /model name\s*:\s*(.+)/.exec(await this.readProc("/proc/cpuinfo"))?.[1]?.trim() ?? "unknown",
      kernel: (await this.readProc("/proc/sys/kernel/osrelease")).trim() || "unknown",
      loadavgAtStart: (await this.readProc("/proc/loadavg")).trim().split(" ").slice(0, 3).join(" "),
      benchRuntime: `${runtime.name} ${runtime.version}`,
    };
  }

  /** Which code was measured: the commit, and the tracked files with uncommitted changes. */
  async measuredCode(): Promise<{ commit: string; uncommitted: string[] }> {
    const git = this.start("git", ["git", "-C", ROOT, "status", "--porcelain", "--branch", "-uno"], 10000);
    const head = this.start("git", ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], 10000);
    const [gitEnded, headEnded] = await Promise.all([git.ended, head.ended]);
    return {
      commit: headEnded.code === 0 ? head.out.stdout.trim() : "unknown (no git repository)",
      uncommitted: gitEnded.code === 0
        ? git.out.stdout.split("\n").slice(1).map((l) => l.slice(3).trim()).filter((l) => l !== "")
        : [],
    };
  }

  /** Whether /proc is read directly (cheap enough to poll often) rather than through `cat`. */
  get readsProcDirectly(): boolean {
    return this.#procDirect === true;
  }

  #procDirect: boolean | undefined;
}

function startProcess(
  label: string,
  cmd: string[],
  timeoutMs: number,
  stdio: Stdio,
  onExit: (child: Child) => void,
): Child {
  const startedAt = performance.now();
  const child = spawn(cmd[0], cmd.slice(1), {
    stdio: [stdio.stdin ?? "ignore", stdio.stdout ?? "pipe", "pipe"],
    detached: true,
  });
  let timedOut = false;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const signalGroup = (sig: "SIGTERM" | "SIGKILL") => {
    if (child.pid === undefined || proc.exited) return;
    try {
      process.kill(-child.pid, sig); // the group: a /usr/bin/time wrapper and its command
    } catch {
      try {
        process.kill(child.pid, sig);
      } catch { /* already gone */ }
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup("SIGTERM");
    killTimer = setTimeout(() => signalGroup("SIGKILL"), 3000);
  }, timeoutMs);
  const append = (key: "stdout" | "stderr", d: unknown) => {
    let text = proc.out[key] + String(d);
    if (text.length > MAX_CAPTURE) text = text.slice(text.length - MAX_CAPTURE);
    proc.out[key] = text;
  };
  child.stdout?.on("data", (d) => append("stdout", d));
  child.stderr?.on("data", (d) => append("stderr", d));
  const proc: Child = {
    label,
    pid: child.pid,
    startedAt,
    out: { stdout: "", stderr: "" },
    exited: false,
    ended: new Promise<Ended>((resolveEnded) => {
      let exitAt = 0;
      let spawnError: string | undefined;
      const finish = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        if (killTimer !== undefined) clearTimeout(killTimer);
        if (proc.exited) return;
        proc.exited = true;
        onExit(proc);
        exitAt ||= performance.now();
        resolveEnded({
          code,
          signal,
          seconds: (exitAt - startedAt) / 1000,
          exitAt,
          timedOut,
          error: spawnError,
        });
      };
      child.on("error", (error) => {
        spawnError = String((error as Error).message ?? error);
        exitAt ||= performance.now();
        // A process that never started emits no "close".
        if (child.pid === undefined) finish(null, null);
      });
      child.on("exit", () => exitAt ||= performance.now());
      child.on("close", (code, signal) => finish(code, signal));
    }),
    stop: async () => {
      if (!proc.exited) {
        signalGroup("SIGTERM");
        const hard = setTimeout(() => signalGroup("SIGKILL"), 3000);
        const ended = await proc.ended;
        clearTimeout(hard);
        return ended;
      }
      return await proc.ended;
    },
  };
  return proc;
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<unknown> => new Promise((r) => setTimeout(r, ms));

/** Waits until `test` holds, the child exits, or `ms` pass; true if `test` held. */
export async function waitUntil(
  child: Child,
  test: () => boolean | Promise<boolean>,
  ms: number,
  stepMs = 10,
): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!await test()) {
    if (child.exited || performance.now() > deadline) return await test();
    await sleep(stepMs);
  }
  return true;
}

/** Waits for a child's exit for at most `ms`; undefined if it is still running. */
export async function exitWithin(child: Child, ms: number): Promise<Ended | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    child.ended,
    new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms)),
  ]);
  clearTimeout(timer);
  return result;
}

/** A runtime that runs our entry points. */
export interface BenchRuntime {
  name: "deno" | "bun";
  exe: string;
  version: string;
}

/**
 * Finds the runtime `name`: this process's own, else node_modules/.bin, else
 * PATH; a string says why it is missing.
 */
export async function findRuntime(children: Children, name: "deno" | "bun"): Promise<BenchRuntime | string> {
  if (runtime.name === name) return { name, exe: process.execPath, version: runtime.version };
  const local = join(ROOT, "node_modules", ".bin", name);
  const exe = fs.existsSync(local) ? local : which(name);
  if (!exe) return `${name} not found (node_modules/.bin or PATH)`;
  const line = await children.versionOf(exe, ["--version"]);
  const version = /(\d+\.\d+\.\d+)/.exec(line)?.[1] ?? line;
  return { name, exe, version };
}
