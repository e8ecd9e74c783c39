/**
 * A binary min-heap of items due at a time, ties broken by insertion order:
 * what the relay holds back and what the simulated network has in flight.
 *
 * @module
 */

/** Something due at a time (ms); `seq` orders items due at the same time. */
export interface Timed {
  /** When the item is due. */
  at: number;
  /** Insertion order, for ties. */
  seq: number;
}

/** A min-heap of {@linkcode Timed} items: earliest first, then first inserted. */
export class TimedQueue<T extends Timed> {
  #items: T[] = [];

  /** Number of items held. */
  get size(): number {
    return this.#items.length;
  }

  /** The earliest item, without removing it. */
  peek(): T | undefined {
    return this.#items[0];
  }

  static #before(a: Timed, b: Timed): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  /** Adds an item. */
  push(item: T): void {
    const items = this.#items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!TimedQueue.#before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  /** Removes and returns the earliest item. */
  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && TimedQueue.#before(items[l], items[m])) m = l;
        if (r < items.length && TimedQueue.#before(items[r], items[m])) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m], items[i]];
        i = m;
      }
    }
    return top;
  }

  /** Removes and returns every item, in no particular order. */
  drain(): T[] {
    return this.#items.splice(0);
  }
}
