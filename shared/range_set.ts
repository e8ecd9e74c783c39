/**
 * A set of non-negative integers stored as sorted, disjoint, inclusive
 * ranges. Memory grows with the number of gaps, not with the count, so
 * tracking the sequence numbers of an in-order transfer costs one range.
 *
 * @module
 */

/** A set of integers kept as sorted inclusive ranges. */
export class RangeSet {
  #starts: number[] = [];
  #ends: number[] = [];
  #size = 0;

  /** Number of integers in the set. */
  get size(): number {
    return this.#size;
  }

  /** Number of ranges (gaps + 1 when non-empty). */
  get rangeCount(): number {
    return this.#starts.length;
  }

  /** The largest member, or −1 when empty. */
  get max(): number {
    return this.#ends.length === 0 ? -1 : this.#ends[this.#ends.length - 1];
  }

  /** Index of the last range whose start is ≤ `n`, or −1. */
  #floor(n: number): number {
    let lo = 0;
    let hi = this.#starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.#starts[mid] <= n) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /** Whether `n` is in the set. */
  has(n: number): boolean {
    const i = this.#floor(n);
    return i >= 0 && n <= this.#ends[i];
  }

  /** Adds `n`; returns false when it was already present. */
  add(n: number): boolean {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`RangeSet holds non-negative integers, got ${n}`);
    const last = this.#ends.length - 1;
    // Fast path: in-order arrival extends the last range.
    if (last >= 0 && n === this.#ends[last] + 1) {
      this.#ends[last] = n;
      this.#size++;
      return true;
    }
    const i = this.#floor(n);
    if (i >= 0 && n <= this.#ends[i]) return false;
    const joinsLeft = i >= 0 && this.#ends[i] === n - 1;
    const joinsRight = i + 1 < this.#starts.length && this.#starts[i + 1] === n + 1;
    if (joinsLeft && joinsRight) {
      this.#ends[i] = this.#ends[i + 1];
      this.#starts.splice(i + 1, 1);
      this.#ends.splice(i + 1, 1);
    } else if (joinsLeft) {
      this.#ends[i] = n;
    } else if (joinsRight) {
      this.#starts[i + 1] = n;
    } else {
      this.#starts.splice(i + 1, 0, n);
      this.#ends.splice(i + 1, 0, n);
    }
    this.#size++;
    return true;
  }

  /** The length of the run starting at 0: every integer below it is present. */
  prefixEnd(): number {
    return this.#starts.length > 0 && this.#starts[0] === 0 ? this.#ends[0] + 1 : 0;
  }

  /** Up to `limit` ranges entirely above `n`, as half-open `[start, end)` pairs. */
  rangesAbove(n: number, limit: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < this.#starts.length && out.length < limit; i++) {
      if (this.#ends[i] < n) continue;
      out.push([Math.max(this.#starts[i], n), this.#ends[i] + 1]);
    }
    return out;
  }

  /** The range containing `n` as a half-open `[start, end)` pair, or `undefined`. */
  rangeOf(n: number): [number, number] | undefined {
    const i = this.#floor(n);
    return i >= 0 && n <= this.#ends[i] ? [this.#starts[i], this.#ends[i] + 1] : undefined;
  }

  /**
   * Adds every integer of `[start, end)` and returns the parts that were not
   * present before, as half-open ranges, ascending. Cost: the number of
   * ranges touched, not the number of integers.
   */
  addRange(start: number, end: number): Array<[number, number]> {
    const added: Array<[number, number]> = [];
    if (end <= start) return added;
    // Walk the gaps of [start, end) and add each one.
    let cursor = start;
    while (cursor < end) {
      const i = this.#floor(cursor);
      if (i >= 0 && cursor <= this.#ends[i]) {
        cursor = this.#ends[i] + 1;
        continue;
      }
      const nextStart = i + 1 < this.#starts.length ? this.#starts[i + 1] : Infinity;
      const gapEnd = Math.min(end, nextStart);
      added.push([cursor, gapEnd]);
      this.#insert(cursor, gapEnd - 1, i);
      cursor = gapEnd;
    }
    return added;
  }

  /** Inserts the absent run [a, b] after range index `i` (the floor of `a`), merging neighbours. */
  #insert(a: number, b: number, i: number): void {
    const joinsLeft = i >= 0 && this.#ends[i] === a - 1;
    const joinsRight = i + 1 < this.#starts.length && this.#starts[i + 1] === b + 1;
    if (joinsLeft && joinsRight) {
      this.#ends[i] = this.#ends[i + 1];
      this.#starts.splice(i + 1, 1);
      this.#ends.splice(i + 1, 1);
    } else if (joinsLeft) {
      this.#ends[i] = b;
    } else if (joinsRight) {
      this.#starts[i + 1] = a;
    } else {
      this.#starts.splice(i + 1, 0, a);
      this.#ends.splice(i + 1, 0, b);
    }
    this.#size += b - a + 1;
  }

  /** Removes every integer below `n` (they are no longer needed). */
  dropBelow(n: number): void {
    let k = 0;
    while (k < this.#starts.length && this.#ends[k] < n) {
      this.#size -= this.#ends[k] - this.#starts[k] + 1;
      k++;
    }
    if (k > 0) {
      this.#starts.splice(0, k);
      this.#ends.splice(0, k);
    }
    if (this.#starts.length > 0 && this.#starts[0] < n) {
      this.#size -= n - this.#starts[0];
      this.#starts[0] = n;
    }
  }

  /** The ranges, in order, as `[start, end]` pairs. */
  ranges(): Array<[number, number]> {
    return this.#starts.map((s, i) => [s, this.#ends[i]]);
  }

  /** The integers of `[0, limit)` that are missing, as inclusive ranges. */
  gaps(limit: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let next = 0;
    for (let i = 0; i < this.#starts.length && next < limit; i++) {
      if (this.#starts[i] > next) out.push([next, Math.min(this.#starts[i], limit) - 1]);
      next = Math.max(next, this.#ends[i] + 1);
    }
    if (next < limit) out.push([next, limit - 1]);
    return out;
  }
}
