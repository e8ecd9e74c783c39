/**
 * A network impairment model, without I/O: given a datagram and the time, it
 * says when (and how many times, and in what state) the datagram arrives.
 * The relay (`udp/relay.ts`) runs it with real timers; the tests' simulated
 * network runs it with virtual time. Randomness comes from a seeded
 * generator, so a run replays exactly.
 *
 * Impairments, applied in this order: random loss, or bursty loss
 * (Gilbert–Elliott: a good and a bad state); a rate limit with a bounded
 * queue (tail drop); delay and jitter; reordering (a datagram held back for
 * an extra delay so later ones overtake it); duplication; corruption (one
 * random bit flipped).
 *
 * @module
 */

/** What to do to datagrams in one direction. */
export interface ImpairmentConfig {
  /** Probability that a datagram is dropped (in the good state, with bursts). */
  loss: number;
  /** Bursty loss: probability to enter the bad state per datagram (0: off). */
  burstEnter: number;
  /** Bursty loss: probability to leave the bad state per datagram. */
  burstExit: number;
  /** Bursty loss: drop probability in the bad state. */
  burstLoss: number;
  /** Probability that a datagram is duplicated. */
  dup: number;
  /** Probability that a datagram is held back so later ones overtake it. */
  reorder: number;
  /** Extra hold-back for reordered datagrams, ms. */
  reorderMs: number;
  /** Fixed one-way delay, ms. */
  delayMs: number;
  /** Uniform random extra delay in [0, jitter), ms. */
  jitterMs: number;
  /** Bandwidth limit in Mbit/s (0: unlimited). */
  rateMbit: number;
  /** Largest queue behind the rate limit, bytes; beyond it datagrams are dropped. */
  queueBytes: number;
  /** Probability that one random bit of a datagram is flipped. */
  corrupt: number;
}

/** No impairment at all. */
export const NO_IMPAIRMENT: ImpairmentConfig = {
  loss: 0,
  burstEnter: 0,
  burstExit: 0.5,
  burstLoss: 0.5,
  dup: 0,
  reorder: 0,
  reorderMs: 2,
  delayMs: 0,
  jitterMs: 0,
  rateMbit: 0,
  queueBytes: 256 * 1024,
  corrupt: 0,
};

/** A datagram's fate: deliver `bytes` at time `at` (ms). */
export interface Delivery {
  /** Delivery time, ms. */
  at: number;
  /** The datagram (a copy when corrupted). */
  bytes: Uint8Array;
}

/** Counters of what the impairment did. */
export interface ImpairmentCounters {
  /** Datagrams offered. */
  in: number;
  /** Datagrams delivered (duplicates included). */
  out: number;
  /** Dropped by random or burst loss. */
  lost: number;
  /** Dropped by the rate limiter's full queue. */
  queueDrops: number;
  /** Extra copies made. */
  duplicated: number;
  /** Held back for reordering. */
  reordered: number;
  /** Bit-flipped. */
  corrupted: number;
}

/** Applies an {@linkcode ImpairmentConfig} to datagrams, deterministically for a given random source. */
export class Impairment {
  /** The impairment applied (defaults filled in). */
  readonly config: ImpairmentConfig;
  /** What it did so far. */
  readonly counters: ImpairmentCounters = {
    in: 0,
    out: 0,
    lost: 0,
    queueDrops: 0,
    duplicated: 0,
    reordered: 0,
    corrupted: 0,
  };
  #random: () => number;
  #bad = false;
  #linkFree = 0;

  /** Creates an impairment with `config` (missing fields: none) and a random source. */
  constructor(config: Partial<ImpairmentConfig>, random: () => number) {
    this.config = { ...NO_IMPAIRMENT, ...config };
    this.#random = random;
  }

  /** Decides the fate of `bytes` offered at `now`: zero, one or two deliveries. */
  process(now: number, bytes: Uint8Array): Delivery[] {
    const c = this.config;
    const random = this.#random;
    this.counters.in++;
    if (c.burstEnter > 0) {
      if (this.#bad) {
        if (random() < c.burstExit) this.#bad = false;
      } else if (random() < c.burstEnter) {
        this.#bad = true;
      }
    }
    const lossP = this.#bad ? c.burstLoss : c.loss;
    if (lossP > 0 && random() < lossP) {
      this.counters.lost++;
      return [];
    }
    let at = now;
    if (c.rateMbit > 0) {
      const serialise = (bytes.length * 8) / (c.rateMbit * 1000); // ms
      const start = Math.max(now, this.#linkFree);
      const queuedBytes = ((start - now) * c.rateMbit * 1000) / 8;
      if (queuedBytes > c.queueBytes) {
        this.counters.queueDrops++;
        return [];
      }
      this.#linkFree = start + serialise;
      at = this.#linkFree;
    }
    at += c.delayMs + (c.jitterMs > 0 ? random() * c.jitterMs : 0);
    if (c.reorder > 0 && random() < c.reorder) {
      this.counters.reordered++;
      at += c.reorderMs * (0.5 + random());
    }
    let out = bytes;
    if (c.corrupt > 0 && random() < c.corrupt && bytes.length > 0) {
      out = bytes.slice();
      const i = Math.floor(random() * out.length);
      out[i] ^= 1 << Math.floor(random() * 8);
      this.counters.corrupted++;
    }
    const deliveries: Delivery[] = [{ at, bytes: out }];
    if (c.dup > 0 && random() < c.dup) {
      this.counters.duplicated++;
      deliveries.push({ at: at + random() * Math.max(0.1, c.jitterMs), bytes: out });
    }
    this.counters.out += deliveries.length;
    return deliveries;
  }
}
