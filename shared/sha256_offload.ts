/**
 * SHA-256 of a stream, computed on a worker thread so hashing overlaps the
 * socket and file I/O of the thread that moves the bytes.
 *
 * The bytes travel through a ring buffer in a `SharedArrayBuffer`: the
 * producer copies each chunk in (a `memcpy`, about 0.05 s per GiB) and
 * advances a head counter; the worker hashes what lies between its tail and
 * the head and advances the tail. Both wait with `Atomics.wait` (no
 * messages, no structured clones: a `postMessage` per chunk was measured at
 * 0.37-0.40 s per GiB, close to the 0.5 s of hashing inline).
 *
 * The worker's code is a few lines of plain JavaScript started from a
 * `Blob` URL, so it needs no file-read permission on Deno and no extra
 * entry point in a `bun build --compile` binary. When a worker cannot start,
 * {@linkcode streamSha256} falls back to hashing inline.
 *
 * @module
 */

import { type ContentHash, sha256Hash } from "./digest.ts";

/** A running digest (SHA-256, or another {@linkcode ContentHash} inline) over bytes given in order. */
export interface StreamHash {
  /** Adds `data` (which the caller may reuse as soon as this returns). */
  update(data: Uint8Array): void;
  /** The digest of everything added; the hash cannot be used afterwards. */
  digest(): Promise<Uint8Array>;
  /** Releases the worker (if any) without a digest. Safe to call twice. */
  close(): void;
  /** Whether the hashing runs on a worker thread. */
  readonly offloaded: boolean;
  /**
   * The digest of the bytes added so far, without ending the hash (inline
   * hashes only: `undefined` on a worker thread).
   */
  running?(): Uint8Array;
}

/** Control words in the shared ring. */
const HEAD = 0;
const TAIL = 1;
const DONE = 2;
const CONTROL_WORDS = 4;
/** Most bytes the worker hashes in one `update`, so the tail moves often. */
const WORKER_STEP = 1 << 20;

/**
 * The worker: waits for the head to move, hashes the new bytes (in the ring's
 * two contiguous parts when they wrap), moves the tail; at DONE it hashes
 * the rest and posts the digest. Plain JavaScript, run from a Blob URL.
 */
const WORKER_SOURCE = `
import { createHash } from "node:crypto";
self.onmessage = (event) => {
  const { control, ring, modulus } = event.data;
  const ctl = new Int32Array(control);
  const bytes = new Uint8Array(ring);
  const size = bytes.length;
  const hash = createHash("sha256");
  let tail = Atomics.load(ctl, ${TAIL});
  for (;;) {
    const head = Atomics.load(ctl, ${HEAD});
    if (head === tail) {
      if (Atomics.load(ctl, ${DONE}) === 1 && Atomics.load(ctl, ${HEAD}) === tail) break;
      Atomics.wait(ctl, ${HEAD}, tail, 50);
      continue;
    }
    const at = tail % size;
    const n = Math.min((head - tail + modulus) % modulus, size - at, ${WORKER_STEP});
    hash.update(bytes.subarray(at, at + n));
    tail = (tail + n) % modulus;
    Atomics.store(ctl, ${TAIL}, tail);
    Atomics.notify(ctl, ${TAIL});
  }
  self.postMessage(new Uint8Array(hash.digest()));
};
self.postMessage("ready");
`;

/**
 * Counters run modulo a multiple of the ring size below 2³¹, so `head − tail`
 * stays correct across wrap-around.
 */
function advance(counter: number, n: number, modulus: number): number {
  return (counter + n) % modulus;
}

/** A {@linkcode StreamHash} whose hashing runs on a worker thread. */
export class OffloadedSha256 implements StreamHash {
  readonly offloaded = true;
  #worker: Worker;
  #control: Int32Array;
  #ring: Uint8Array;
  #modulus: number;
  #head = 0;
  #result: Promise<Uint8Array>;
  #closed = false;

  private constructor(worker: Worker, control: Int32Array, ring: Uint8Array, result: Promise<Uint8Array>) {
    this.#worker = worker;
    this.#control = control;
    this.#ring = ring;
    this.#modulus = Math.floor(0x40000000 / ring.length) * ring.length;
    this.#result = result;
  }

  /**
   * Starts a worker with a ring of `ringBytes` (a power of two up to 64 MiB).
   * Rejects when workers are unavailable or do not start within `startMs`.
   */
  static async start(ringBytes = 8 << 20, startMs = 2000): Promise<OffloadedSha256> {
    const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
    let worker: Worker;
    try {
      worker = new Worker(url, { type: "module" });
    } catch (error) {
      URL.revokeObjectURL(url);
      throw error;
    }
    const control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
    const ring = new Uint8Array(new SharedArrayBuffer(ringBytes));
    let timer: ReturnType<typeof setTimeout> | undefined;
    let resolveDigest!: (d: Uint8Array) => void;
    let rejectDigest!: (e: unknown) => void;
    const result = new Promise<Uint8Array>((resolve, reject) => {
      resolveDigest = resolve;
      rejectDigest = reject;
    });
    result.catch(() => {}); // observed later by digest(), if ever
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error("hash worker did not start")), startMs);
        worker.onmessage = (event: MessageEvent) => {
          if (event.data === "ready") return resolve();
          resolveDigest(event.data as Uint8Array);
        };
        worker.onerror = (event: ErrorEvent) => {
          event.preventDefault?.();
          const error = new Error(`hash worker failed: ${event.message}`);
          reject(error);
          rejectDigest(error);
        };
      });
    } catch (error) {
      worker.terminate();
      throw error;
    } finally {
      clearTimeout(timer);
      URL.revokeObjectURL(url); // only once the worker has loaded it (Bun loads it asynchronously)
    }
    const hasher = new OffloadedSha256(worker, control, ring, result);
    worker.postMessage({ control: control.buffer, ring: ring.buffer, modulus: hasher.#modulus });
    return hasher;
  }

  /** Copies `data` into the ring; waits (blocking) only while the ring is full. */
  update(data: Uint8Array): void {
    if (this.#closed) throw new Error("hash already finished");
    const size = this.#ring.length;
    let offset = 0;
    while (offset < data.length) {
      const tail = Atomics.load(this.#control, TAIL);
      const used = (this.#head - tail + this.#modulus) % this.#modulus;
      const free = size - used;
      if (free === 0) {
        Atomics.wait(this.#control, TAIL, tail, 100);
        continue;
      }
      const at = this.#head % size;
      const n = Math.min(data.length - offset, free, size - at);
      this.#ring.set(data.subarray(offset, offset + n), at);
      offset += n;
      this.#head = advance(this.#head, n, this.#modulus);
      Atomics.store(this.#control, HEAD, this.#head);
      Atomics.notify(this.#control, HEAD);
    }
  }

  /** Waits for the worker to hash everything and returns the digest. */
  async digest(): Promise<Uint8Array> {
    if (this.#closed) throw new Error("hash already finished");
    Atomics.store(this.#control, DONE, 1);
    Atomics.notify(this.#control, HEAD);
    try {
      return await this.#result;
    } finally {
      this.close();
    }
  }

  /** Stops the worker. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.terminate();
  }
}

/** A {@linkcode StreamHash} hashing on the calling thread, with any {@linkcode ContentHash}. */
export class InlineHash implements StreamHash {
  readonly offloaded = false;
  #hash: ContentHash | undefined;

  /** Starts a new SHA-256, or continues `state` (another algorithm, or after a resumed prefix). */
  constructor(state?: ContentHash) {
    this.#hash = state ?? sha256Hash();
  }

  /** Adds `data`. */
  update(data: Uint8Array): void {
    if (!this.#hash) throw new Error("hash already finished");
    this.#hash.update(data);
  }

  /** The digest of the bytes added so far; the hash goes on. */
  running(): Uint8Array {
    if (!this.#hash) throw new Error("hash already finished");
    return this.#hash.peek();
  }

  /** The digest. */
  digest(): Promise<Uint8Array> {
    if (!this.#hash) return Promise.reject(new Error("hash already finished"));
    const digest = this.#hash.digest();
    this.#hash = undefined;
    return Promise.resolve(digest);
  }

  /** Drops the state. */
  close(): void {
    this.#hash = undefined;
  }
}

/**
 * Below this many bytes a worker costs more to start (≈ 8 ms on Bun,
 * ≈ 40 ms on Deno) than hashing inline saves (2 GB/s ≈ 16 ms for 32 MiB).
 */
export const OFFLOAD_THRESHOLD: number = 32 << 20;

/**
 * Hands out {@linkcode StreamHash}es, on worker threads while fewer than
 * `maxWorkers` are busy and the stream is large enough, inline otherwise. A
 * server owns one, so many concurrent transfers never start more workers
 * than there are cores to run them.
 */
export class Sha256Offloader {
  #maxWorkers: number;
  #busy = 0;

  /** Allows up to `maxWorkers` hashing threads at once (0: always inline). */
  constructor(maxWorkers: number) {
    this.#maxWorkers = maxWorkers;
  }

  /** Hashing threads in use. */
  get busy(): number {
    return this.#busy;
  }

  /**
   * A hash for `remainingBytes` more bytes, going on from `state` (a fresh
   * SHA-256 when absent). A state that already covers bytes (a resumed
   * prefix) or is of another algorithm than SHA-256 stays inline (a
   * midstate cannot move to another thread); so does a hash whose
   * `running()` digest is `needed` (authenticated records tag it). A fresh
   * SHA-256 state may be replaced by a worker's.
   */
  async start(
    remainingBytes: number,
    state?: ContentHash,
    needed: { running?: boolean } = {},
  ): Promise<StreamHash> {
    const continued = state !== undefined && (state.bytes > 0 || state.algorithm !== "sha256");
    if (
      continued || needed.running || remainingBytes < OFFLOAD_THRESHOLD ||
      this.#busy >= this.#maxWorkers ||
      typeof Worker !== "function"
    ) {
      return new InlineHash(state);
    }
    this.#busy++;
    let hasher: OffloadedSha256;
    try {
      hasher = await OffloadedSha256.start();
    } catch {
      this.#busy--;
      return new InlineHash();
    }
    let released = false;
    const release = () => {
      if (!released) this.#busy--;
      released = true;
    };
    return {
      offloaded: true,
      update: (data) => hasher.update(data),
      digest: () => hasher.digest().finally(release),
      close: () => {
        hasher.close();
        release();
      },
    };
  }
}

/**
 * How many hashing threads to allow by default: none on machines with fewer
 * than 4 cores. Measured on this project's 2-core VM (1 GiB framed TCP on
 * loopback, output in /dev/shm, A/B runs): sender and receiver already keep
 * both cores busy, so moving SHA-256 to a worker gained nothing (Bun 709-810
 * vs 715-775 MB/s) or lost (Deno 683-775 vs 780-1001 MB/s); a worker only
 * pays where a core is idle.
 */
export function defaultHashWorkers(cores: number): number {
  return cores >= 4 ? Math.max(1, Math.floor((cores - 2) / 2)) : 0;
}

/**
 * A SHA-256 for a stream of `expectedBytes`: on a worker thread when the
 * stream is large enough and a worker starts, inline otherwise.
 */
export async function streamSha256(expectedBytes: number): Promise<StreamHash> {
  return await new Sha256Offloader(1).start(expectedBytes);
}
