/**
 * A latency histogram with logarithmic buckets (1 % wide, 1 µs to ~100 s): constant memory,
 * cheap to record into on the hot path, mergeable across worker threads (plain arrays).
 */
const RATIO = Math.log(1.01);
const BUCKETS = 1900;

export class Histogram {
  readonly counts: number[];
  total = 0;

  constructor(counts?: readonly number[]) {
    this.counts = counts ? [...counts] : new Array<number>(BUCKETS).fill(0);
    for (const c of this.counts) this.total += c;
  }

  record(us: number): void {
    const i = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(us) / RATIO));
    this.counts[i]!++;
    this.total++;
  }

  merge(other: { readonly counts: readonly number[] }): void {
    for (let i = 0; i < BUCKETS; i++) {
      const c = other.counts[i] ?? 0;
      this.counts[i]! += c;
      this.total += c;
    }
  }

  /** The value (µs) below which `p` (0..1) of the samples fall; NaN when empty. */
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(p * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.exp((i + 0.5) * RATIO);
    }
    return Number.POSITIVE_INFINITY;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
  }
}
