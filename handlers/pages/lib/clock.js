// The server's clock as seen from the page: an offset estimated from ping/pong.
// ES module, no DOM. The server clock is the only clock; the page's own clock
// only measures how long ago a sample was taken.
//
// Exported API (names are stable; add, never rename):
//   new Clock({ samples = 8, now = Date.now })
//   clock.offset                        server time minus local time, ms (0 until known)
//   clock.samples                       [{rtt, offset}], newest last, at most `samples`
//   clock.serverNow() -> ms             local time plus the offset
//   clock.sample(rtt, offset) -> bool   add one measurement; the lowest round trip wins
//   clock.pong(m) -> bool               a `pong {ct, st}` answered now
//   clock.exchange(sentAt, serverTime) -> bool   a reply carrying the server time to a frame sent at `sentAt`
//   clock.seed(serverTime)              a first guess from a server time, while there is no sample
//   clock.reset()                       forget the samples (the offset stays until the next one)

export const MAX_RTT_MS = 60000;

export class Clock {
  constructor({ samples = 8, now = () => Date.now() } = {}) {
    this.max = samples;
    this.now = now;
    this.samples = [];
    this.offset = 0;
  }

  serverNow() {
    return this.now() + this.offset;
  }

  sample(rtt, offset) {
    if (!(rtt >= 0) || rtt > MAX_RTT_MS || !Number.isFinite(offset)) return false;
    this.samples.push({ rtt, offset });
    if (this.samples.length > this.max) this.samples.shift();
    let best = this.samples[0];
    for (const s of this.samples) if (s.rtt < best.rtt) best = s;
    this.offset = best.offset;
    return true;
  }

  pong(m) {
    if (!m || typeof m.ct !== 'number' || typeof m.st !== 'number') return false;
    const now = this.now();
    return this.sample(now - m.ct, m.st - (m.ct + now) / 2);
  }

  exchange(sentAt, serverTime) {
    if (typeof serverTime !== 'number') return false;
    const now = this.now();
    if (sentAt) return this.sample(now - sentAt, serverTime - (sentAt + now) / 2);
    return this.sample(0, serverTime - now);
  }

  seed(serverTime) {
    if (!this.samples.length && typeof serverTime === 'number') this.offset = serverTime - this.now();
  }

  reset() {
    this.samples = [];
  }
}
