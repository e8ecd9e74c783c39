/**
 * Helpers for the demos and benchmarks: run entry points as child processes
 * on the current runtime (with narrow Deno permissions), wait for their
 * output, find free ports, hash files.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CliError, ExitCode } from "../shared/errors.ts";
import { runtime } from "../shared/runtime.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** A running child process and what it printed. */
export interface Proc {
  stdout: string;
  stderr: string;
  code: Promise<number | null>;
  kill(): void;
}

/**
 * The command that runs an entry point with the runtime executable `exe`
 * (`name` says which): with `permissions` and the project's config on Deno.
 */
export function entryCommand(
  rt: { name: "deno" | "bun"; exe: string },
  script: string,
  args: string[],
  permissions: string[],
): string[] {
  const path = join(ROOT, script);
  if (rt.name === "deno") {
    return [
      rt.exe,
      "run",
      "--no-prompt",
      ...permissions,
      `--config=${join(ROOT, "deno.json")}`,
      path,
      ...args,
    ];
  }
  return [rt.exe, path, ...args];
}

/** The command that runs an entry point on this runtime, with Deno permissions when on Deno. */
export function command(script: string, args: string[], permissions: string[]): string[] {
  return entryCommand({ name: runtime.name, exe: process.execPath }, script, args, permissions);
}

/** Starts a command. */
export function start(cmd: string[]): Proc {
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  const proc: Proc = {
    stdout: "",
    stderr: "",
    code: new Promise((resolve) => child.on("close", (code) => resolve(code))),
    kill: () => child.kill("SIGTERM"),
  };
  child.stdout.on("data", (d) => proc.stdout += d.toString());
  child.stderr.on("data", (d) => proc.stderr += d.toString());
  return proc;
}

/** Waits until the process printed `text` on stdout. */
export async function waitFor(proc: Proc, text: string, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!proc.stdout.includes(text)) {
    if (performance.now() > deadline) {
      proc.kill();
      throw new CliError(
        `demo: a server did not start: ${proc.stderr.trim() || proc.stdout.trim()}`,
        ExitCode.INTERNAL,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A free TCP port on 127.0.0.1 (also used for UDP: the demo's ports are short-lived). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** SHA-256 (hex) of a file. */
export function sha256(path: string): string {
  const hash = createHash("sha256");
  const fd = fs.openSync(path, "r");
  const buf = new Uint8Array(1 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}
