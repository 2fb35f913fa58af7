/**
 * An ordered list of unique entries kept in chunks (a flat B+-tree of one level): insert and delete
 * cost a binary search plus a splice inside one small chunk, and a seek by any monotone predicate is
 * two binary searches, so index walks start at the cursor and never sort.
 */

const LOAD = 512;

export interface Position {
  chunk: number;
  index: number;
}

export class SortedList<E> {
  private chunks: E[][] = [];
  private count = 0;

  constructor(private readonly compare: (a: E, b: E) => number) {}

  get size(): number {
    return this.count;
  }

  /** Replaces the content with `sorted` (already in order, no duplicates). */
  load(sorted: E[]): void {
    this.chunks = [];
    for (let i = 0; i < sorted.length; i += LOAD) this.chunks.push(sorted.slice(i, i + LOAD));
    this.count = sorted.length;
  }

  clear(): void {
    this.chunks = [];
    this.count = 0;
  }

  insert(entry: E): void {
    const chunks = this.chunks;
    if (chunks.length === 0) {
      chunks.push([entry]);
      this.count = 1;
      return;
    }
    let ci = this.chunkFor(entry);
    if (ci === chunks.length) ci--;
    const chunk = chunks[ci];
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compare(chunk[mid], entry) < 0) lo = mid + 1;
      else hi = mid;
    }
    chunk.splice(lo, 0, entry);
    this.count++;
    if (chunk.length > 2 * LOAD) chunks.splice(ci + 1, 0, chunk.splice(LOAD));
  }

  /** Removes the entry equal to `entry` (by the comparator); false when absent. */
  delete(entry: E): boolean {
    const ci = this.chunkFor(entry);
    if (ci === this.chunks.length) return false;
    const chunk = this.chunks[ci];
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compare(chunk[mid], entry) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo === chunk.length || this.compare(chunk[lo], entry) !== 0) return false;
    chunk.splice(lo, 1);
    this.count--;
    if (chunk.length === 0) this.chunks.splice(ci, 1);
    return true;
  }

  /** The first chunk whose last entry is >= entry (chunks.length when none). */
  private chunkFor(entry: E): number {
    const chunks = this.chunks;
    let lo = 0;
    let hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = chunks[mid];
      if (this.compare(c[c.length - 1], entry) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * The position of the first entry for which `atOrAfter` holds; `atOrAfter` must be false for a
   * prefix of the list and true for the rest.
   */
  lowerBound(atOrAfter: (e: E) => boolean): Position {
    const chunks = this.chunks;
    let lo = 0;
    let hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = chunks[mid];
      if (!atOrAfter(c[c.length - 1])) lo = mid + 1;
      else hi = mid;
    }
    if (lo === chunks.length) return { chunk: lo, index: 0 };
    const chunk = chunks[lo];
    let a = 0;
    let b = chunk.length;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if (!atOrAfter(chunk[mid])) a = mid + 1;
      else b = mid;
    }
    return { chunk: lo, index: a };
  }

  /** How many entries come before `position` (one pass over the chunk lengths, not the entries). */
  rank(position: Position): number {
    let n = 0;
    for (let c = 0; c < position.chunk && c < this.chunks.length; c++) n += this.chunks[c].length;
    return n + position.index;
  }

  /** Entries from `from` onwards (forward) or from just before `from` backwards. */
  *walk(from: Position, direction: 1 | -1): Generator<E> {
    const chunks = this.chunks;
    if (direction === 1) {
      let ci = from.chunk;
      let i = from.index;
      while (ci < chunks.length) {
        const chunk = chunks[ci];
        if (i < chunk.length) {
          yield chunk[i++];
          // A caller may mutate the list between yields; stop cleanly if our chunk disappeared.
          if (chunks[ci] !== chunk) return;
        } else {
          ci++;
          i = 0;
        }
      }
    } else {
      let ci = from.chunk;
      let i = from.index - 1;
      while (ci >= 0) {
        if (ci >= chunks.length) {
          ci = chunks.length - 1;
          i = ci >= 0 ? chunks[ci].length - 1 : -1;
          continue;
        }
        const chunk = chunks[ci];
        if (i >= 0) {
          yield chunk[i--];
          if (chunks[ci] !== chunk) return;
        } else {
          ci--;
          i = ci >= 0 ? chunks[ci].length - 1 : -1;
        }
      }
    }
  }

  *[Symbol.iterator](): Generator<E> {
    for (const chunk of this.chunks) yield* chunk;
  }
}
