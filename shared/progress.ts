/**
 * A one-line progress bar for a terminal: percent, rate and time left,
 * redrawn in place at most ten times a second, and only once a transfer has
 * run for a second (short transfers print nothing). Rendering is pure
 * ({@linkcode formatProgress}); the bar only decides when to write.
 *
 * @module
 */

/** Formats bytes per second as `12.3 MB/s` (10^6 bytes). */
export function formatRate(bytesPerSecond: number): string {
  const mb = bytesPerSecond / 1e6;
  return `${mb >= 100 ? mb.toFixed(0) : mb >= 10 ? mb.toFixed(1) : mb.toFixed(2)} MB/s`;
}

/** Formats seconds as `7s`, `2m05s` or `1h02m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * One progress line: `label [#######.......]  45.2%  12.3 MB/s  ETA 7s`.
 * With an unknown total, shows the bytes and the rate only.
 */
export function formatProgress(
  label: string,
  bytes: number,
  total: number | undefined,
  seconds: number,
  width = 24,
): string {
  const rate = seconds > 0 ? bytes / seconds : 0;
  if (total === undefined || total <= 0) {
    return `${label} ${(bytes / 1e6).toFixed(1)} MB  ${formatRate(rate)}`;
  }
  const fraction = Math.min(1, Math.max(0, bytes / total));
  const filled = Math.round(fraction * width);
  const bar = "#".repeat(filled) + ".".repeat(width - filled);
  const eta = rate > 0 ? (total - bytes) / rate : Infinity;
  return `${label} [${bar}] ${(fraction * 100).toFixed(1).padStart(5)}%  ${formatRate(rate)}  ETA ${
    formatDuration(eta)
  }`;
}

/** Where a bar writes (stderr) and how wide the terminal is. */
export interface ProgressSink {
  /** Writes raw text (no newline added). */
  write(text: string): void;
  /** Terminal width in columns, if known. */
  columns?: number;
}

/** Redraws a progress line in place on a terminal. */
export class ProgressBar {
  #sink: ProgressSink;
  #label: string;
  #started: number;
  #lastDraw = 0;
  #drawn = false;

  /** Starts a bar labelled `label` at time `now` (ms). */
  constructor(sink: ProgressSink, label: string, now: number) {
    this.#sink = sink;
    this.#label = label;
    this.#started = now;
  }

  /** Updates the bar; draws when a second has passed since the start and 100 ms since the last draw. */
  update(now: number, bytes: number, total?: number): void {
    if (now - this.#started < 1000 || now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    let line = formatProgress(this.#label, bytes, total, (now - this.#started) / 1000);
    const columns = this.#sink.columns ?? 80;
    if (line.length > columns - 1) line = line.slice(0, columns - 1);
    this.#sink.write(`\r${line}\x1b[K`);
    this.#drawn = true;
  }

  /** Clears the line if anything was drawn, so the next output starts clean. */
  finish(): void {
    if (this.#drawn) this.#sink.write("\r\x1b[K");
    this.#drawn = false;
  }
}
