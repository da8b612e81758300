// SPDX-License-Identifier: Apache-2.0
// The durations of one operator type over a run, for its count, total and percentiles: kept
// exactly (8 bytes a run) until the stats accumulator's bound on exact values is reached, then as
// a sketch whose percentiles are within SKETCH_ACCURACY of the true value (DDSketch's log-spaced
// buckets), so that a run of any length keeps its statistics in bounded memory.

/** Relative accuracy of a sketch's percentiles. */
export const SKETCH_ACCURACY = 0.001;
const GAMMA = (1 + SKETCH_ACCURACY) / (1 - SKETCH_ACCURACY);
const LOG_GAMMA = Math.log(GAMMA);

export class DurationSeries {
  private exact = new Float64Array(64);
  private used = 0;
  /** bucket index -> count, once sketched; bucket 0 also holds zero durations */
  private buckets: Map<number, number> | null = null;
  count = 0;
  total = 0;

  push(ns: number): void {
    this.count++;
    this.total += ns;
    if (this.buckets) {
      this.bucketAdd(ns);
      return;
    }
    if (this.used === this.exact.length) {
      const grown = new Float64Array(this.exact.length * 2);
      grown.set(this.exact);
      this.exact = grown;
    }
    this.exact[this.used++] = ns;
  }

  /** Values kept exactly. */
  get exactCount(): number {
    return this.buckets ? 0 : this.used;
  }

  /** Whether the percentiles are a sketch's. */
  get sketched(): boolean {
    return this.buckets !== null;
  }

  /** From now on, a sketch (the exact values move into it). */
  sketch(): void {
    if (this.buckets) return;
    this.buckets = new Map();
    for (let i = 0; i < this.used; i++) this.bucketAdd(this.exact[i]!);
    this.exact = new Float64Array(0);
    this.used = 0;
  }

  private bucketAdd(ns: number): void {
    const key = ns <= 1 ? 0 : Math.ceil(Math.log(ns) / LOG_GAMMA);
    this.buckets!.set(key, (this.buckets!.get(key) ?? 0) + 1);
  }

  /** Nearest-rank percentile: the value at rank ceil(p/100 * n) of the sorted values (0 if none). */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    if (!this.buckets) {
      const sorted = this.exact.slice(0, this.used).sort();
      return sorted[Math.min(rank, this.used) - 1]!;
    }
    let seen = 0;
    const keys = [...this.buckets.keys()].sort((a, b) => a - b);
    for (const key of keys) {
      seen += this.buckets.get(key)!;
      if (seen >= rank) return key === 0 ? 0 : Math.round((2 * GAMMA ** key) / (GAMMA + 1));
    }
    return 0;
  }
}
