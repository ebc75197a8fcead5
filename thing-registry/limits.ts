/**
 * Rate limits per bare JID: a token bucket per (operation, JID), and a counter of failed claims
 * that locks a JID out of claiming for a while, so a KEY cannot be guessed by trying.
 * References: XEP-0347 §6.3 (hijacking in the window before the claim), §6.5 (a long KEY makes
 * guessing impractical: only if guesses are few), §6.6 (tag spam); the spec digest §6.2
 * "rate-limit per bare JID".
 *
 * Memory is bounded: idle entries are swept, and when a map is full the oldest entry goes.
 */

interface Bucket {
  tokens: number;
  last: number;
}

export class KeyedRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  /** `perMinute` requests per minute on average, bursts of up to `burst` (default perMinute). */
  constructor(
    private readonly perMinute: number,
    private readonly burst: number = perMinute,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes a token for `key`; returns 0 if allowed, else the seconds to wait. */
  take(key: string): number {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.last) / 60_000) * this.perMinute);
      b.last = t;
      this.buckets.delete(key); // re-insert: the map stays ordered by last use
    } else {
      b = { tokens: this.burst, last: t };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / this.perMinute) * 60);
  }

  /** Forgets buckets that have refilled completely (nothing to remember about them). */
  sweep(): void {
    const t = this.now();
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((t - b.last) / 60_000) * this.perMinute >= this.burst) this.buckets.delete(key);
    }
  }
}

interface Failures {
  count: number;
  since: number;
}

/** Counts failures per key in a fixed window; at `max` the key is blocked until the window ends. */
export class FailureCounter {
  private readonly entries = new Map<string, Failures>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until `key` may try again, or 0. */
  blockedFor(key: string): number {
    const e = this.current(key);
    if (!e || e.count < this.max) return 0;
    return Math.ceil((e.since + this.windowMs - this.now()) / 1000);
  }

  fail(key: string): void {
    const e = this.current(key);
    if (e) {
      e.count++;
      return;
    }
    if (this.entries.size >= this.maxKeys) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { count: 1, since: this.now() });
  }

  sweep(): void {
    const t = this.now();
    for (const [key, e] of this.entries) if (t - e.since >= this.windowMs) this.entries.delete(key);
  }

  private current(key: string): Failures | undefined {
    const e = this.entries.get(key);
    if (e && this.now() - e.since >= this.windowMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }
}
