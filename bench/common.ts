/**
 * Small helpers shared by the benchmarks (bench/tcp.ts, bench/udp.ts):
 * output formatting, medians and ratios, flag parsing, PATH lookup.
 *
 * @module
 */

import * as fs from "node:fs";
import { delimiter, join } from "node:path";
import { randomFillSync } from "node:crypto";
import { usageError } from "../shared/errors.ts";
import { sha256 } from "./procs.ts";

/** tail (shared by the benchmarks). */
export function tail(text: string, n = 300): string {
  const t = text.trim().replace(/\s+/g, " ");
  return t.length > n ? `…${t.slice(t.length - n)}` : t;
}

/** jsonLines (shared by the benchmarks). */
export function jsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line));
    } catch { /* partial line */ }
  }
  return out;
}

/** An executable found on PATH or in extra folders, or undefined. */
export function which(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), ...extraDirs].filter((d) => d !== "");
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      // (fs.accessSync would need --allow-sys on Deno.)
      const stat = fs.statSync(path);
      if (stat.isFile() && (stat.mode & 0o111) !== 0) return path;
    } catch { /* not here */ }
  }
  return undefined;
}

/** median (shared by the benchmarks). */
export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Empties `dir` (making it if needed); the folder itself stays (it may be a mount point). */
export function emptyDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const name of fs.readdirSync(dir)) fs.rmSync(join(dir, name), { recursive: true, force: true });
}

/** The part of a timed run every benchmark summarizes. */
export interface TimedRun {
  /** Whether the run delivered the file intact. */
  ok: boolean;
  /** Wall seconds (null when the run failed). */
  seconds: number | null;
  /** Bytes / seconds / 10^6 (null when the run failed). */
  mbPerS: number | null;
}

/** Median and spread of a row's successful runs. */
export interface RunSummary {
  /** Successful runs. */
  ok: number;
  /** All runs. */
  runs: number;
  /** Median MB/s of the successful runs. */
  medianMBps: number | null;
  /** Lowest MB/s. */
  minMBps: number | null;
  /** Highest MB/s. */
  maxMBps: number | null;
  /** Median seconds. */
  medianSeconds: number | null;
  /** Lowest seconds. */
  minSeconds: number | null;
  /** Highest seconds. */
  maxSeconds: number | null;
}

/** The {@linkcode RunSummary} of `runs` (only the successful ones count). */
export function summarizeRuns(runs: TimedRun[]): RunSummary {
  const good = runs.filter((r) => r.ok && r.mbPerS !== null && r.seconds !== null);
  const mbps = good.map((r) => r.mbPerS as number);
  const secs = good.map((r) => r.seconds as number);
  return {
    ok: good.length,
    runs: runs.length,
    medianMBps: median(mbps),
    minMBps: mbps.length ? Math.min(...mbps) : null,
    maxMBps: mbps.length ? Math.max(...mbps) : null,
    medianSeconds: median(secs),
    minSeconds: secs.length ? Math.min(...secs) : null,
    maxSeconds: secs.length ? Math.max(...secs) : null,
  };
}

/** fmtMB (shared by the benchmarks). */
export function fmtMB(x: number | null | undefined): string {
  if (x === null || x === undefined) return "-";
  return x >= 100 ? x.toFixed(1) : x >= 10 ? x.toFixed(2) : x.toFixed(3);
}

/** fmtRatio (shared by the benchmarks). */
export function fmtRatio(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "-" : `${x.toFixed(2)}×`;
}

/** ratio (shared by the benchmarks). */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;
}

/** list (shared by the benchmarks). */
export function list(value: string, flag: string): string[] {
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "" && s !== "none").map((s) => {
    if (/\s/.test(s)) throw usageError(`--${flag}: bad item '${s}'`);
    return s;
  });
}

/** whole (shared by the benchmarks). */
export function whole(value: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < min || Number(value) > max) {
    throw usageError(`--${flag} must be a whole number from ${min} to ${max}, got '${value}'`);
  }
  return Number(value);
}

/** progress (shared by the benchmarks). */
export function progress(text: string): void {
  console.log(`  ${text}`);
}

/**
 * Makes (or reuses, when one of the right size exists) a random file of `mib`
 * MiB named `<prefix>-<mib>MiB.bin` in `dir`, readable by all (atftpd reads it
 * as nobody); returns its path, size and SHA-256.
 */
export function randomTestFile(
  dir: string,
  prefix: string,
  mib: number,
): { path: string; bytes: number; sha256: string; reused: boolean } {
  const bytes = mib * 1024 * 1024;
  const path = join(dir, `${prefix}-${mib}MiB.bin`);
  let reused = false;
  try {
    reused = fs.statSync(path).size === bytes;
  } catch { /* missing */ }
  if (!reused) {
    const part = `${path}.part`;
    const fd = fs.openSync(part, "w", 0o644);
    try {
      const chunk = new Uint8Array(1 << 20);
      for (let left = bytes; left > 0; left -= chunk.length) {
        randomFillSync(chunk);
        fs.writeSync(fd, chunk, 0, Math.min(left, chunk.length));
      }
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(part, path);
  }
  fs.chmodSync(path, 0o644);
  return { path, bytes, sha256: sha256(path), reused };
}

/** `x` rounded to `digits` decimals, as a number (for JSON reports). */
export const round = (x: number, digits: number): number => Number(x.toFixed(digits));

/** A plain text table: first row is the header; a shorter row's last cell spans the rest. */
export function table(rows: string[][], rightAligned: Set<number>): string {
  const n = rows[0].length;
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.filter((r) => r.length === n || i < r.length - 1).map((r) => (r[i] ?? "").length))
  );
  const line = (r: string[]) =>
    r.map((c, i) =>
      r.length < n && i === r.length - 1
        ? c
        : rightAligned.has(i)
        ? c.padStart(widths[i])
        : c.padEnd(widths[i])
    ).join("  ").trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(rows[0]), rule, ...rows.slice(1).map(line)].join("\n");
}
