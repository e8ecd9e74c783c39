/**
 * Helpers over a {@linkcode Conn}: write everything, read through a reusable
 * buffer, and close without losing the reply to a TCP reset.
 *
 * @module
 */

import type { Conn } from "./runtime.ts";

/** Writes all of `data`, looping over partial writes. Never overlaps writes. */
export async function writeAll(conn: Conn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await conn.write(data.subarray(offset));
}

/**
 * Reads from a connection through one reusable buffer. Bytes handed out are
 * views into that buffer, valid until the next call.
 */
export class BufferedReader {
  #conn: Conn;
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;
  #total = 0;

  #maxCapacity: number;

  /**
   * Wraps `conn` with a buffer of `capacity` bytes that may grow up to
   * `maxCapacity`: once the stream has filled the first buffer (a large
   * transfer), or when a {@linkcode peek} needs more. A server can so start
   * every connection small (a port scan or a tiny file never costs a big
   * buffer) and still read a large transfer in big blocks.
   */
  constructor(conn: Conn, capacity: number, maxCapacity: number = capacity) {
    this.#conn = conn;
    this.#buffer = new Uint8Array(capacity);
    this.#maxCapacity = Math.max(capacity, maxCapacity);
  }

  /** Grows the buffer to `capacity` bytes, keeping what is buffered (views handed out before are invalid). */
  #grow(capacity: number): void {
    if (capacity <= this.#buffer.length) return;
    const bigger = new Uint8Array(capacity);
    bigger.set(this.#buffer.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    this.#buffer = bigger;
  }

  /** Bytes buffered and not yet taken. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Whether the peer has closed its side and everything buffered has been taken. */
  get done(): boolean {
    return this.#eof && this.buffered === 0;
  }

  /** Total bytes read from the connection so far. */
  get totalRead(): number {
    return this.#total;
  }

  /** Reads once from the connection into free space; returns false at EOF. */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#total >= this.#buffer.length) this.#grow(this.#maxCapacity); // a large stream
    if (this.#start > 0 && (this.#end === this.#buffer.length || this.#start === this.#end)) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === this.#buffer.length) throw new RangeError("BufferedReader: buffer full");
    const n = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    this.#total += n;
    return true;
  }

  /**
   * Ensures at least `n` bytes are buffered (fewer only at EOF) and returns a
   * view of everything buffered, without taking it.
   */
  async peek(n: number): Promise<Uint8Array> {
    if (n > this.#buffer.length && n <= this.#maxCapacity) this.#grow(n);
    if (n > this.#buffer.length) {
      throw new RangeError(`cannot peek ${n} bytes with a ${this.#buffer.length}-byte buffer`);
    }
    while (this.buffered < n) {
      if (this.#end === this.#buffer.length && this.#start > 0) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      if (!await this.#fill()) break;
    }
    return this.#buffer.subarray(this.#start, this.#end);
  }

  /** Marks `n` buffered bytes as taken. */
  skip(n: number): void {
    if (n > this.buffered) throw new RangeError("skip beyond buffered data");
    this.#start += n;
  }

  /**
   * Returns the next chunk of at most `max` bytes (a view, valid until the
   * next call), reading from the connection when nothing is buffered, or
   * `null` at EOF.
   */
  async chunk(max: number): Promise<Uint8Array | null> {
    if (this.buffered === 0) {
      this.#start = 0;
      this.#end = 0;
      if (!await this.#fill()) return null;
    }
    const n = Math.min(max, this.buffered);
    const view = this.#buffer.subarray(this.#start, this.#start + n);
    this.#start += n;
    return view;
  }
}

/**
 * Half-closes, drains what the peer still sends for up to `ms` (so the kernel
 * does not answer unread data with a reset that destroys our reply), then
 * closes.
 */
export async function lingerClose(conn: Conn, ms = 2000, maxBytes = 64 << 20): Promise<void> {
  try {
    await conn.closeWrite();
  } catch { /* peer already gone */ }
  const sink = new Uint8Array(64 * 1024);
  let drained = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  const drain = (async () => {
    try {
      while (drained < maxBytes) {
        const n = await conn.read(sink);
        if (n === null) return;
        drained += n;
      }
    } catch { /* reset or closed */ }
  })();
  await Promise.race([drain, deadline]);
  clearTimeout(timer);
  try {
    conn.close();
  } catch { /* already closed */ }
  await drain.catch(() => {});
}
