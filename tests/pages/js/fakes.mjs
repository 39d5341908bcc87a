// Test doubles for the pages' modules under node: virtual time and a fake WebSocket.

import { encode, decode } from '../../../handlers/pages/lib/msgpack.js';

/** Virtual time: timers run only when advance() moves the clock past them. */
export class FakeTime {
  constructor(start = 1_000_000) {
    this.t = start;
    this.seq = 0;
    this.timers = new Map();
    this.now = () => this.t;
    this.setTimeout = (f, ms) => this.add(f, ms, null);
    this.setInterval = (f, ms) => this.add(f, ms, ms);
    this.clearTimeout = (id) => { this.timers.delete(id); };
    this.clearInterval = (id) => { this.timers.delete(id); };
  }

  add(f, ms, every) {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms || 0), f, every, id });
    return id;
  }

  /** Move the clock forward by `ms`, running every timer that falls due, in order. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const timer of this.timers.values()) {
        if (timer.at <= end && (next === null || timer.at < next.at || (timer.at === next.at && timer.id < next.id))) next = timer;
      }
      if (next === null) break;
      this.t = next.at;
      if (next.every === null) this.timers.delete(next.id);
      else next.at += Math.max(1, next.every);
      next.f();
    }
    this.t = end;
  }

  get pending() {
    return this.timers.size;
  }
}

/** A WebSocket class whose instances the test drives from the server's side. */
export function fakeSockets() {
  const made = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closed = null;
      this.binaryType = 'blob';
      made.push(this);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error('not open');
      this.sent.push(data);
    }

    close(code, reason) {
      this.readyState = 3;
      this.closed = { code, reason };
    }

    // ---- the server's side
    accept() {
      this.readyState = 1;
      if (this.onopen) this.onopen({});
    }

    push(msg, { binary = false } = {}) {
      if (this.onmessage) this.onmessage({ data: binary ? encode(msg) : JSON.stringify(msg) });
    }

    pushRaw(data) {
      if (this.onmessage) this.onmessage({ data });
    }

    hangUp(code, reason = '') {
      this.readyState = 3;
      if (this.onclose) this.onclose({ code, reason });
    }

    /** What the client sent, decoded, with the frame type. */
    frames() {
      return this.sent.map((d) => (typeof d === 'string' ? { type: 'text', msg: JSON.parse(d) } : { type: 'binary', msg: decode(d) }));
    }

    messages() {
      return this.frames().map((f) => f.msg);
    }
  }
  return { FakeSocket, made, last: () => made[made.length - 1] };
}

/** An in-memory Storage (getItem/setItem/removeItem). */
export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }

  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }

  setItem(k, v) { this.map.set(k, String(v)); }

  removeItem(k) { this.map.delete(k); }
}
