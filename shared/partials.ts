/**
 * Housekeeping of resumable partial files: an interrupted framed TCP or
 * reliable UDP transfer leaves `.<final name>.<24 hex>.resume.part` (and, for
 * UDP, a `.json` sidecar) in the output folder for `--resume`. Servers delete
 * the ones nobody resumed within `--keep-partials` days, when they start and
 * every hour.
 *
 * @module
 */

import * as fs from "node:fs";
import { join } from "node:path";

/** Names of resumable partials and their sidecars, as {@linkcode ReceivingFile} makes them. */
export const PARTIAL_NAME: RegExp = /^\..+\.[0-9a-f]{24}\.resume\.part(\.json)?$/;
/**
 * Fewest bytes an interrupted transfer must hold for its partial to be kept
 * for `--resume`: sending less again costs nothing worth a file, and port
 * probes, fuzzers and stalled handshakes then leave nothing behind.
 */
export const MIN_RESUME_BYTES: number = 64 * 1024;
/** A day in milliseconds. */
export const DAY_MS = 86_400_000;
/** Default age after which partials are deleted: 7 days. */
export const DEFAULT_KEEP_PARTIALS_MS: number = 7 * DAY_MS;
/** How often a running server looks for old partials. */
export const PRUNE_INTERVAL_MS: number = 3600_000;

/**
 * Deletes the partials (and sidecars) in `dir` last modified more than
 * `maxAgeMs` before `now`. Only regular files whose names match
 * {@linkcode PARTIAL_NAME} are touched; links and anything else are left
 * alone. Returns the names deleted. Never throws: a folder that cannot be
 * listed or a file that cannot be removed is skipped.
 */
export function prunePartials(dir: string, maxAgeMs: number, now: number = Date.now()): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!PARTIAL_NAME.test(name)) continue;
    const path = join(dir, name);
    try {
      const stat = fs.lstatSync(path);
      if (!stat.isFile() || now - stat.mtimeMs <= maxAgeMs) continue;
      fs.unlinkSync(path);
      removed.push(name);
    } catch { /* gone or not removable: leave it */ }
  }
  return removed;
}

/**
 * Prunes `dir` now and every {@linkcode PRUNE_INTERVAL_MS}, calling
 * `onPruned` with the names deleted (when any). Returns a function that stops
 * the timer.
 */
export function keepPartialsPruned(
  dir: string,
  maxAgeMs: number,
  onPruned: (names: string[]) => void,
): () => void {
  const run = () => {
    const names = prunePartials(dir, maxAgeMs);
    if (names.length > 0) onPruned(names);
  };
  run();
  const timer = setInterval(run, PRUNE_INTERVAL_MS);
  return () => clearInterval(timer);
}
