/**
 * The sender's rate controller and pacer, without I/O or clocks: every method
 * takes `now` in milliseconds.
 *
 * Pacing is a token bucket at `rate` bytes per second with a small burst, so
 * datagrams leave evenly instead of in window-sized bursts (Deno's UDP
 * receive buffer holds only ~24 datagrams of 4 KiB).
 *
 * The rate follows *monitor intervals* of at least one smoothed RTT and about
 * 10 ms of datagrams (32 to 256; 4 RTTs and 16 datagrams when slow). Per
 * interval the loss rate is compared with the *baseline* loss, the lowest of
 * the last 8 estimates (each pooling intervals up to 64 datagrams): loss that stays at the baseline whatever the rate is random
 * loss and is ignored; loss that rises above it by more than three standard
 * deviations (plus 2 points) is congestion, and the rate is cut in proportion
 * to the excess, at most to the delivery rate. The interval after a cut is
 * not judged (its datagrams left before the cut). A standing queue (even the
 * interval's smallest RTT well above the path's minimum) is congestion too:
 * the rate drops just under the delivery rate to drain it. So 30% random loss does not
 * drive the sender into a crawl, while an overflowing receiver buffer does
 * slow it down. Startup doubles the rate per interval until the first
 * congestion signal or until the delivery rate stops growing; after that the
 * rate grows by 6% per interval, 12% after two clean intervals, up to 48%
 * after eight, and never exceeds twice the best recent delivery rate
 * (corrected for random loss).
 *
 * @module
 */

/** Tuning for {@linkcode RateController}. */
export interface RateConfig {
  /** Starting rate, bytes per second. */
  initialRate: number;
  /** Lowest rate, bytes per second. */
  minRate: number;
  /** Highest rate, bytes per second. */
  maxRate: number;
  /** Largest burst the pacer allows, in bytes. */
  burstBytes: number;
  /** Typical datagram size, to size monitor intervals. */
  datagramBytes: number;
  /** Pace at exactly this rate (bytes per second) and never adapt; 0 adapts. */
  fixedRate: number;
}

/** Sensible defaults: start at 8 MB/s, never below 64 KB/s. */
export const DEFAULT_RATE_CONFIG: RateConfig = {
  initialRate: 8e6,
  minRate: 64e3,
  maxRate: 10e9,
  burstBytes: 64 * 1024,
  datagramBytes: 1412,
  fixedRate: 0,
};

const HISTORY = 8;
const MIN_SAMPLES = 256;
const MIN_SLOW_SAMPLES = 16;

/** Paces datagrams and adapts the rate to congestion but not to random loss. */
export class RateController {
  #config: RateConfig;
  #rate: number;
  #tokens: number;
  #blocked = false;
  #lastRefill: number;
  #startup = true;
  #intervalStart: number;
  #acked = 0;
  #lost = 0;
  #ackedBytes = 0;
  #history: number[] = [];
  #poolSamples = 0;
  #poolLost = 0;
  #delivered: number[] = [];
  #plateau = 0;
  #congestionEvents = 0;
  #cleanStreak = 0;
  #skipUntil = -Infinity;
  #minRtt = Infinity;
  #intervalMinRtt = Infinity;

  /** Creates a controller starting at `now`. */
  constructor(now: number, config: Partial<RateConfig> = {}) {
    this.#config = { ...DEFAULT_RATE_CONFIG, ...config };
    this.#rate = this.#config.fixedRate > 0 ? this.#config.fixedRate : this.#config.initialRate;
    this.#tokens = this.#config.burstBytes;
    this.#lastRefill = now;
    this.#intervalStart = now;
  }

  /** Current pacing rate, bytes per second. */
  get rate(): number {
    return this.#rate;
  }

  /** Whether the controller is still in startup. */
  get inStartup(): boolean {
    return this.#startup;
  }

  /** How many times the rate was cut for congestion. */
  get congestionEvents(): number {
    return this.#congestionEvents;
  }

  /** The baseline (random) loss rate currently assumed. */
  get baselineLoss(): number {
    return this.#history.length === 0 ? 0 : Math.min(...this.#history);
  }

  #refill(now: number): void {
    const elapsed = Math.max(0, now - this.#lastRefill);
    this.#lastRefill = now;
    this.#tokens = Math.min(this.#config.burstBytes, this.#tokens + (this.#rate * elapsed) / 1000);
  }

  /**
   * Bytes that must be available before sending resumes once the pacer has
   * blocked: up to 200 µs of data at the current rate (at most 16
   * datagrams, within the burst) instead of one datagram, so a fast sender
   * wakes once per quantum rather than once per datagram, while a slow one
   * still sends datagram by datagram. The rate is unchanged; only its
   * granularity is.
   */
  #need(bytes: number): number {
    const one = Math.min(bytes, this.#config.burstBytes);
    if (!this.#blocked) return one;
    const quantum = Math.min(16 * this.#config.datagramBytes, this.#config.burstBytes, this.#rate * 0.0002);
    return Math.max(one, quantum);
  }

  /** Whether `bytes` may be sent at `now`. */
  canSend(now: number, bytes: number): boolean {
    this.#refill(now);
    const ok = this.#tokens + 1e-6 >= this.#need(bytes);
    this.#blocked = !ok;
    return ok;
  }

  /** Records that `bytes` were sent at `now`. */
  onSent(now: number, bytes: number): void {
    this.#refill(now);
    this.#tokens -= bytes;
  }

  /** The earliest time `bytes` may be sent. */
  nextSendTime(now: number, bytes: number): number {
    this.#refill(now);
    const missing = this.#need(bytes) - this.#tokens;
    // A microsecond of slack so that canSend() is true at the returned time despite rounding.
    return missing <= 0 ? now : now + (missing * 1000) / this.#rate + 1e-3;
  }

  /**
   * Feeds acknowledgement results: `acked` datagrams (`ackedBytes` bytes)
   * newly acknowledged and `lost` newly declared lost. `srtt` in ms.
   */
  onFeedback(now: number, acked: number, ackedBytes: number, lost: number, srtt: number): void {
    if (this.#config.fixedRate > 0) return;
    if (now < this.#skipUntil) {
      this.#intervalStart = now;
      return;
    }
    this.#acked += acked;
    this.#ackedBytes += ackedBytes;
    this.#lost += lost;
    const elapsed = now - this.#intervalStart;
    const samples = this.#acked + this.#lost;
    const full = samples >= (this.#startup ? MIN_SLOW_SAMPLES * 2 : MIN_SAMPLES) &&
      elapsed >= Math.max(srtt, 0.5);
    const slow = samples >= MIN_SLOW_SAMPLES && elapsed >= Math.max(4 * srtt, 200);
    if (full || slow) this.#endInterval(now, elapsed, srtt);
  }

  #endInterval(now: number, elapsed: number, srtt: number): void {
    const samples = this.#acked + this.#lost;
    const loss = this.#lost / samples;
    const delivered = (this.#ackedBytes * 1000) / Math.max(elapsed, 0.001);
    const base = this.#history.length === 0 ? Math.min(loss, 0.3) : this.baselineLoss;
    const sigma = Math.sqrt(Math.max(base, 0.01) * (1 - base) / samples);
    const excess = loss - base;
    const congested = excess > 3 * sigma + 0.02;
    // A standing queue: even the interval's best RTT is well above the path's
    // minimum. Random loss never does this, so it is a congestion signal that
    // a lossy path cannot fake (and it catches large receive buffers filling).
    const queued = this.#intervalMinRtt !== Infinity && this.#intervalMinRtt > 1.5 * this.#minRtt + 2;
    this.#intervalMinRtt = Infinity;
    const { minRate, maxRate } = this.#config;
    const bestDelivered = Math.max(0, ...this.#delivered);
    // Startup ends when the delivery rate stops growing (BBR's full-pipe test):
    // doubling further only fills queues.
    if (this.#startup && bestDelivered > 0) {
      this.#plateau = delivered < 1.25 * bestDelivered ? this.#plateau + 1 : 0;
      if (this.#plateau >= 3) {
        this.#startup = false;
        const pipe = Math.max(bestDelivered, delivered) / Math.max(0.5, 1 - base);
        this.#rate = Math.max(minRate, this.#rate * 0.5, Math.min(this.#rate, pipe));
      }
    }
    if (congested) {
      this.#cleanStreak = 0;
      this.#congestionEvents++;
      const cut = Math.max(0.5, Math.min(0.9, 1 - excess));
      const floor = Math.max(minRate, delivered / Math.max(0.5, 1 - base));
      this.#rate = Math.max(minRate, Math.min(this.#rate * cut, Math.max(floor, this.#rate * 0.5)));
      this.#startup = false;
      this.#skipUntil = now + Math.max(srtt, 0.5);
    } else if (queued) {
      // Drain the queue: pace a little under what the path delivered.
      this.#cleanStreak = 0;
      this.#congestionEvents++;
      this.#rate = Math.max(minRate, this.#rate * 0.7, Math.min(this.#rate * 0.9, delivered * 0.9));
      this.#startup = false;
      this.#skipUntil = now + Math.max(srtt, 0.5);
    } else {
      // Growth speeds up the longer the path stays clean (6%, 12%, … up to
      // 48% per interval), so a cut caused by a transient does not cost long.
      this.#cleanStreak = Math.min(8, this.#cleanStreak + 1);
      const growth = this.#startup ? 2 : 1 + 0.06 * this.#cleanStreak;
      this.#rate = Math.min(maxRate, this.#rate * growth + 16 * 1024);
    }
    // Every well-sampled interval joins the history, congested or not: loss
    // that persists whatever the rate does becomes the baseline (random loss).
    // Short intervals are pooled until 64 datagrams make one estimate, so
    // slow senders get a baseline too (a 16-datagram interval alone is noise).
    this.#poolSamples += samples;
    this.#poolLost += this.#lost;
    if (this.#poolSamples >= 64) {
      this.#history.push(this.#poolLost / this.#poolSamples);
      if (this.#history.length > HISTORY) this.#history.shift();
      this.#poolSamples = 0;
      this.#poolLost = 0;
    }
    this.#delivered.push(delivered);
    if (this.#delivered.length > HISTORY) this.#delivered.shift();
    // Never pace far above what the path has recently delivered.
    const ceiling = 2 * Math.max(delivered, bestDelivered) / Math.max(0.5, 1 - base);
    if (this.#rate > ceiling) this.#rate = Math.max(minRate, ceiling, this.#config.initialRate / 4);
    this.#intervalStart = now;
    this.#acked = 0;
    this.#lost = 0;
    this.#ackedBytes = 0;
  }

  /** Feeds one RTT sample (ms), for the queueing-delay signal. */
  onRttSample(rtt: number): void {
    if (!(rtt >= 0)) return;
    if (rtt < this.#minRtt) this.#minRtt = rtt;
    if (rtt < this.#intervalMinRtt) this.#intervalMinRtt = rtt;
  }

  /** A retransmission timeout: halve the rate and leave startup. */
  onTimeout(): void {
    if (this.#config.fixedRate > 0) return;
    this.#cleanStreak = 0;
    this.#rate = Math.max(this.#config.minRate, this.#rate * 0.7);
    this.#startup = false;
    this.#congestionEvents++;
  }
}
