// The pages' WebSocket client for the Examwire protocol (docs/protocol.md).
// ES module, no DOM: the socket class, timers and clocks can be passed in (tests
// use fakes).
//
// One Wire keeps one connection alive:
//   connect -> open -> `hello` (sent at once, unpaced) -> `welcome` -> pings.
//   A `welcome` that does not come within `connectTimeoutMs` counts as a lost
//   connection. After a welcome, pings go out at `pingBurst` (ms after the
//   welcome, for a quick clock estimate) and then every `pingEveryMs`; if
//   nothing at all arrives within `pongTimeoutMs` of a periodic ping, the
//   connection is dead even if the socket does not know it yet (lost, 1006).
//   Outgoing frames are paced by a token bucket (`pace`) below the server's
//   per-connection budget (20/s, burst 40); `ping` frames get their `ct` when
//   they actually leave.
//   A closed or lost connection is classified by its close code (closeVerdict):
//   'superseded' (4409: a newer connection took the attempt over), 'fatal'
//   (4400, 4401, 4403, 4404: reconnecting cannot help) or 'retry'; a retry is
//   scheduled with exponential backoff and full jitter (backoffDelay) when
//   `canConnect()` allows it.
//   Frames: MessagePack binary frames (`encoding: 'msgpack'`, falling back to
//   JSON for a value MessagePack cannot carry) or JSON text frames ('json'). The
//   server answers in the frame type of `hello`; both are decoded on receipt.
//
// Exported API (names are stable; add, never rename):
//   SUPERSEDED_CLOSE = 4409, FATAL_CLOSE = [4400, 4401, 4403, 4404], OPEN = 1
//   closeVerdict(code, { fatal, superseded }) -> 'retry' | 'superseded' | 'fatal'
//   backoffDelay(retries, { baseMs, capMs }, random) -> ms      full jitter below min(cap, base * 2^retries)
//   socketUrl(path, loc = location) -> 'ws(s)://host' + path
//   encodeFrame(msg, encoding) -> Uint8Array | string
//   decodeFrame(data) -> message           throws on a frame that does not decode
//   isMessage(m) -> bool                   an object with a string `t`
//   new Wire(options), options:
//     url: () => string                    where to connect (called on every attempt)
//     hello: () => message                 the `hello` to send once open
//     canConnect: () => bool               false: do not (re)connect now (default: always)
//     encoding: 'msgpack' | 'json'         default 'msgpack'; may be changed before connect()
//     backoff: { baseMs: 500, capMs: 10000 }
//     connectTimeoutMs: 12000, pingEveryMs: 30000, pingBurst: [0, 400, 900], pongTimeoutMs: 10000
//     pace: { ratePerS: 15, burst: 30 } | null (null: unpaced)
//     fatal: [...FATAL_CLOSE], superseded: [SUPERSEDED_CLOSE]
//     on: {                                every callback optional
//       connecting({ reconnecting }),      a socket is being opened (reconnecting: a welcome was seen before)
//       message(m),                        every valid message, `welcome` included (the Wire has
//                                          already marked itself welcomed; pings start after it)
//       lost({ code, reason, verdict, retrying }),   the connection is gone (retrying: a retry is scheduled)
//       retry(delayMs),                    a reconnect is scheduled
//       undecodable(err) }                 a frame that does not decode (default: console.warn)
//     WebSocket, setTimeout, clearTimeout, setInterval, clearInterval,
//     now (epoch ms, default Date.now), mono (monotonic ms, default performance.now), random
//   wire.connect()            (re)connect now, keeping the backoff count (no-op unless canConnect())
//   wire.reconnectNow()       reset the backoff, then connect()
//   wire.stop(reason)         close and forget the socket and every timer; nothing is retried
//   wire.drop(code = 1006)    treat the connection as lost now (for example the browser went offline)
//   wire.send(m) -> bool      queue `m` (paced); false when there is no open socket (the queue is dropped)
//   wire.sendNow(m) -> bool   send at once, unpaced
//   wire.startPings(), wire.stopPings()
//   state: wire.welcomed, wire.everWelcomed, wire.open (socket open), wire.active (socket or retry pending),
//          wire.retryPending, wire.retryAt (epoch ms), wire.retries, wire.lastRx (epoch ms of the last frame),
//          wire.helloAt (epoch ms the hello left), wire.encoding, wire.ws

import { encode as packMsg, decode as unpackMsg } from './msgpack.js';
import { Bucket } from './bucket.js';

export const OPEN = 1;
export const SUPERSEDED_CLOSE = 4409;
export const FATAL_CLOSE = [4400, 4401, 4403, 4404];

export function closeVerdict(code, { fatal = FATAL_CLOSE, superseded = [SUPERSEDED_CLOSE] } = {}) {
  if (superseded.includes(code)) return 'superseded';
  if (fatal.includes(code)) return 'fatal';
  return 'retry';
}

export function backoffDelay(retries, { baseMs = 500, capMs = 10000 } = {}, random = Math.random) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(retries, 16));
  return random() * ceiling;
}

export function socketUrl(path, loc = globalThis.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}${path}`;
}

export function encodeFrame(msg, encoding) {
  if (encoding === 'msgpack') {
    try { return packMsg(msg); } catch { /* not representable: JSON below */ }
  }
  return JSON.stringify(msg);
}

export function decodeFrame(data) {
  return typeof data === 'string' ? JSON.parse(data) : unpackMsg(data);
}

export const isMessage = (m) => Boolean(m) && typeof m === 'object' && typeof m.t === 'string';

const MAX_RETRIES = 20;

export class Wire {
  constructor(options) {
    const o = { ...options };
    const g = globalThis;
    this.url = o.url;
    this.hello = o.hello;
    this.canConnect = o.canConnect || (() => true);
    this.encoding = o.encoding || 'msgpack';
    this.backoff = { baseMs: 500, capMs: 10000, ...(o.backoff || {}) };
    this.connectTimeoutMs = o.connectTimeoutMs ?? 12000;
    this.pingEveryMs = o.pingEveryMs ?? 30000;
    this.pingBurst = o.pingBurst ?? [0, 400, 900];
    this.pongTimeoutMs = o.pongTimeoutMs ?? 10000;
    this.fatal = o.fatal || FATAL_CLOSE;
    this.superseded = o.superseded || [SUPERSEDED_CLOSE];
    this.on = o.on || {};
    this.WebSocket = o.WebSocket || g.WebSocket;
    this.timers = {
      setTimeout: o.setTimeout || ((f, ms) => g.setTimeout(f, ms)),
      clearTimeout: o.clearTimeout || ((t) => g.clearTimeout(t)),
      setInterval: o.setInterval || ((f, ms) => g.setInterval(f, ms)),
      clearInterval: o.clearInterval || ((t) => g.clearInterval(t)),
    };
    this.now = o.now || (() => Date.now());
    this.mono = o.mono || (() => g.performance.now());
    this.random = o.random || Math.random;
    const pace = o.pace === undefined ? { ratePerS: 15, burst: 30 } : o.pace;
    this.bucket = pace ? new Bucket(pace.ratePerS, pace.burst, this.mono()) : null;

    this.ws = null;
    this.gen = 0;
    this.welcomed = false;
    this.everWelcomed = false;
    this.retries = 0;
    this.retryTimer = null;
    this.retryAt = 0;
    this.connectTimer = null;
    this.pingTimers = [];
    this.pingInterval = null;
    this.pongTimer = null;
    this.pumpTimer = null;
    this.outq = [];
    this.lastRx = 0;
    this.helloAt = 0;
  }

  get open() {
    return this.ws !== null && this.ws.readyState === OPEN;
  }

  get retryPending() {
    return this.retryTimer !== null;
  }

  get active() {
    return this.ws !== null || this.retryTimer !== null;
  }

  connect() {
    this._clearRetry();
    if (!this.canConnect()) return;
    this._forget();
    const gen = ++this.gen;
    let ws;
    try {
      ws = new this.WebSocket(this.url());
    } catch {
      this._lost(1006, '');
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.welcomed = false;
    this.outq = [];
    if (this.bucket) this.bucket.reset(this.mono());
    this._call('connecting', { reconnecting: this.everWelcomed });
    this._clear('connectTimer');
    this.connectTimer = this.timers.setTimeout(() => {
      if (gen === this.gen && !this.welcomed) this._lost(1006, '');
    }, this.connectTimeoutMs);
    ws.onopen = () => {
      if (gen !== this.gen) return;
      this.helloAt = this.now();
      this.sendNow(this.hello());
    };
    ws.onmessage = (ev) => {
      if (gen !== this.gen) return;
      this.lastRx = this.now();
      let msg;
      try {
        msg = decodeFrame(ev.data);
      } catch (err) {
        if (this.on.undecodable) this.on.undecodable(err);
        else console.warn('examwire: undecodable frame', err);
        return;
      }
      if (!isMessage(msg)) return;
      const welcome = msg.t === 'welcome';
      if (welcome) {
        this._clear('connectTimer');
        this.welcomed = true;
        this.everWelcomed = true;
        this.retries = 0;
      }
      this._call('message', msg);
      if (welcome && gen === this.gen && this.welcomed) this.startPings();
    };
    ws.onclose = (ev) => {
      if (gen !== this.gen) return;
      this._lost(ev.code, ev.reason);
    };
    ws.onerror = () => { /* a close event follows */ };
  }

  reconnectNow() {
    this.retries = 0;
    this.connect();
  }

  stop(reason) {
    this._clearRetry();
    this._teardown(reason);
  }

  drop(code = 1006) {
    this._lost(code, '');
  }

  sendNow(msg) {
    if (!this.open) return false;
    try {
      this.ws.send(encodeFrame(msg, this.encoding));
      return true;
    } catch {
      return false;
    }
  }

  send(msg) {
    if (!this.bucket) {
      if (msg.t === 'ping') msg.ct = this.now();
      return this.sendNow(msg);
    }
    this.outq.push(msg);
    this._pump();
    return this.open;
  }

  startPings() {
    this.stopPings();
    for (const delay of this.pingBurst) this.pingTimers.push(this.timers.setTimeout(() => this._ping(false), delay));
    this.pingInterval = this.timers.setInterval(() => this._ping(true), this.pingEveryMs);
  }

  stopPings() {
    for (const t of this.pingTimers) this.timers.clearTimeout(t);
    this.pingTimers = [];
    if (this.pingInterval !== null) this.timers.clearInterval(this.pingInterval);
    this.pingInterval = null;
    this._clear('pongTimer');
  }

  // ---------------------------------------------------------------- internals
  _call(name, arg) {
    const f = this.on[name];
    if (f) f(arg);
  }

  _clear(name) {
    if (this[name] !== null) this.timers.clearTimeout(this[name]);
    this[name] = null;
  }

  _clearRetry() {
    this._clear('retryTimer');
  }

  _ping(watch) {
    if (!this.welcomed) return;
    const sentAt = this.now();
    this.send({ t: 'ping', ct: sentAt });
    if (watch) {
      this._clear('pongTimer');
      this.pongTimer = this.timers.setTimeout(() => {
        this.pongTimer = null;
        // nothing at all came back: the connection is dead even if the socket does not know yet
        if (this.welcomed && this.lastRx < sentAt) this._lost(1006, '');
      }, this.pongTimeoutMs);
    }
  }

  /** Send queued frames in order, paced below the server's per-connection budget. */
  _pump() {
    if (this.pumpTimer !== null) return;
    this.bucket.refill(this.mono());
    while (this.outq.length > 0 && this.bucket.tokens >= 1) {
      if (!this.open) {
        this.outq = [];
        return;
      }
      const msg = this.outq.shift();
      if (msg.t === 'ping') msg.ct = this.now();
      this.sendNow(msg);
      this.bucket.tokens -= 1;
    }
    if (this.outq.length > 0) {
      this.pumpTimer = this.timers.setTimeout(() => {
        this.pumpTimer = null;
        this._pump();
      }, Math.max(this.bucket.waitMs(), 10));
    }
  }

  /** Forget the current socket without waiting for a close handshake. */
  _forget(reason) {
    const ws = this.ws;
    this.ws = null;
    this.gen++;
    this.welcomed = false;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        if (reason === undefined) ws.close(1000);
        else ws.close(1000, reason);
      } catch { /* already closed */ }
    }
  }

  _teardown(reason) {
    this._forget(reason);
    this._clear('connectTimer');
    this.stopPings();
    this._clear('pumpTimer');
    this.outq = [];
  }

  _lost(code, reason) {
    this._teardown();
    const verdict = closeVerdict(code, { fatal: this.fatal, superseded: this.superseded });
    let retrying = false;
    if (verdict === 'retry' && this.canConnect()) {
      this._schedule();
      retrying = true;
    }
    this._call('lost', { code, reason: reason || '', verdict, retrying });
  }

  _schedule() {
    this._clearRetry();
    const delay = backoffDelay(this.retries, this.backoff, this.random);
    this.retries = Math.min(this.retries + 1, MAX_RETRIES);
    this.retryAt = this.now() + delay;
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
    this._call('retry', delay);
  }
}
