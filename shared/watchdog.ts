/**
 * An idle timer: calls back once when nothing called `touch()` for `ms`.
 *
 * @module
 */

/** Fires `onIdle` once after `ms` without a {@linkcode IdleWatchdog.touch}. */
export class IdleWatchdog {
  #ms: number;
  #last: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onIdle: () => void;

  /** Starts watching; `ms` ≤ 0 or infinite disables the watchdog. */
  constructor(ms: number, onIdle: () => void) {
    this.#ms = ms;
    this.#onIdle = onIdle;
    this.#last = performance.now();
    if (ms > 0 && Number.isFinite(ms)) this.#arm(ms);
  }

  #arm(delay: number): void {
    this.#timer = setTimeout(() => {
      const idle = performance.now() - this.#last;
      if (idle >= this.#ms) {
        this.#timer = undefined;
        this.#onIdle();
      } else {
        this.#arm(this.#ms - idle);
      }
    }, Math.max(1, delay));
  }

  /** Records activity now. */
  touch(): void {
    this.#last = performance.now();
  }

  /** Stops the watchdog for good. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
