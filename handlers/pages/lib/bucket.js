// A token bucket: at most `burst` at once, refilled at `ratePerS`.
// ES module, no DOM. Time is passed in (a monotonic clock in ms), so tests need no timers.
//
// Exported API (names are stable; add, never rename):
//   new Bucket(ratePerS, burst, at = 0)    starts full
//   bucket.tokens
//   bucket.refill(now)                     add what accrued since the last refill
//   bucket.take(now) -> bool               refill, then spend one token if there is one
//   bucket.waitMs() -> ms                  how long until one token is there (after a refill)
//   bucket.reset(now)                      full again

export class Bucket {
  constructor(ratePerS, burst, at = 0) {
    this.rate = ratePerS;
    this.burst = burst;
    this.tokens = burst;
    this.at = at;
  }

  refill(now) {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000);
    this.at = now;
  }

  take(now) {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  waitMs() {
    return Math.ceil(((1 - this.tokens) * 1000) / this.rate);
  }

  reset(now) {
    this.tokens = this.burst;
    this.at = now;
  }
}
