/**
 * Round-trip time estimation and the retransmission timeout, after RFC 6298:
 * SRTT and RTTVAR smoothing (α = 1/8, β = 1/4), RTO = SRTT + 4·RTTVAR within
 * bounds, doubled on each timeout (backoff) until a new sample arrives.
 * Callers apply Karn's rule: no samples from retransmitted chunks.
 *
 * @module
 */

/** Bounds for the retransmission timeout, in ms. */
export interface RttConfig {
  /** RTO before the first sample. */
  initialRto: number;
  /** Lowest RTO. */
  minRto: number;
  /** Highest RTO (also the backoff cap). */
  maxRto: number;
}

/** Defaults suited to LANs and loopback; RFC 6298's 1 s minimum is for the Internet of 2011. */
export const DEFAULT_RTT_CONFIG: RttConfig = { initialRto: 250, minRto: 40, maxRto: 1000 };

/** RFC 6298 estimator. All times in milliseconds. */
export class RttEstimator {
  #config: RttConfig;
  #srtt: number | undefined;
  #rttvar = 0;
  #minRtt = Infinity;
  #latest = 0;
  #backoff = 1;
  #samples = 0;

  /** Creates an estimator with `config` bounds. */
  constructor(config: Partial<RttConfig> = {}) {
    this.#config = { ...DEFAULT_RTT_CONFIG, ...config };
  }

  /** Smoothed RTT, or the initial RTO before any sample. */
  get srtt(): number {
    return this.#srtt ?? this.#config.initialRto;
  }

  /** Smallest sample seen. */
  get minRtt(): number {
    return this.#minRtt;
  }

  /** Latest sample. */
  get latest(): number {
    return this.#latest;
  }

  /** Number of samples taken. */
  get samples(): number {
    return this.#samples;
  }

  /** The current retransmission timeout, with backoff. */
  get rto(): number {
    const { initialRto, minRto, maxRto } = this.#config;
    const base = this.#srtt === undefined ? initialRto : this.#srtt + Math.max(1, 4 * this.#rttvar);
    return Math.min(maxRto, Math.max(minRto, base) * this.#backoff);
  }

  /** Adds a sample (ms). Resets the backoff. */
  sample(rtt: number): void {
    if (!(rtt >= 0) || !Number.isFinite(rtt)) return;
    this.#samples++;
    this.#latest = rtt;
    this.#minRtt = Math.min(this.#minRtt, rtt);
    if (this.#srtt === undefined) {
      this.#srtt = rtt;
      this.#rttvar = rtt / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rtt);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rtt;
    }
    this.#backoff = 1;
  }

  /** A timeout fired: double the RTO (up to the maximum). */
  backOff(): void {
    if (this.rto < this.#config.maxRto) this.#backoff *= 2;
  }
}
