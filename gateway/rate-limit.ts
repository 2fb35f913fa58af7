/**
 * Requests per client per window, counted in this gateway process (several gateway instances each
 * allow the full rate). A fixed window per key; expired keys are swept so memory follows live clients.
 */
export interface RateDecision {
  allowed: boolean;
  remaining: number;
  /** Seconds until this key's window resets. */
  retryAfter: number;
}

interface Window {
  count: number;
  resetAt: number;
}

export class FixedWindowLimiter {
  private readonly windows = new Map<string, Window>();
  private nextSweep: number;

  constructor(
    readonly limit: number,
    readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {
    this.nextSweep = now() + windowMs;
  }

  hit(key: string): RateDecision {
    const now = this.now();
    if (now >= this.nextSweep) this.sweep(now);
    let w = this.windows.get(key);
    if (!w || now >= w.resetAt) {
      w = { count: 0, resetAt: now + this.windowMs };
      this.windows.set(key, w);
    }
    w.count++;
    return {
      allowed: w.count <= this.limit,
      remaining: Math.max(0, this.limit - w.count),
      retryAfter: Math.max(1, Math.ceil((w.resetAt - now) / 1000)),
    };
  }

  get trackedKeys(): number {
    return this.windows.size;
  }

  private sweep(now: number): void {
    for (const [key, w] of this.windows) if (now >= w.resetAt) this.windows.delete(key);
    this.nextSweep = now + this.windowMs;
  }
}
