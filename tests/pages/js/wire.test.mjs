// The shared wire client (handlers/pages/lib/wire.js): its state machine, with
// a fake socket and virtual time.

import test from 'node:test';
import assert from 'node:assert/strict';

import {
  Wire, closeVerdict, backoffDelay, encodeFrame, decodeFrame, socketUrl, FATAL_CLOSE,
} from '../../../handlers/pages/lib/wire.js';
import { decode } from '../../../handlers/pages/lib/msgpack.js';
import { FakeTime, fakeSockets } from './fakes.mjs';

const WELCOME = { t: 'welcome', attempt: 'a1', state: 'ready', server_time: 5 };

function setup(opts = {}) {
  const time = new FakeTime();
  const sockets = fakeSockets();
  const events = [];
  let allowed = true;
  const wire = new Wire({
    url: () => 'ws://example.test/v1/exams/e/attempt',
    hello: () => ({ t: 'hello', token: 'tok', v: 1, client: 'test/1' }),
    canConnect: () => allowed,
    WebSocket: sockets.FakeSocket,
    setTimeout: time.setTimeout,
    clearTimeout: time.clearTimeout,
    setInterval: time.setInterval,
    clearInterval: time.clearInterval,
    now: time.now,
    mono: time.now,
    random: () => 0.5,
    on: {
      connecting: (e) => events.push(['connecting', e.reconnecting]),
      message: (m) => events.push(['message', m.t]),
      lost: (e) => events.push(['lost', e.code, e.verdict, e.retrying]),
      retry: (d) => events.push(['retry', d]),
      undecodable: () => events.push(['undecodable']),
    },
    ...opts,
  });
  return { wire, time, sockets, events, allow: (v) => { allowed = v; } };
}

function welcomed(t, msg = WELCOME) {
  t.wire.connect();
  const ws = t.sockets.last();
  ws.accept();
  ws.push(msg);
  return ws;
}

test('close codes: 4409 superseded, 4400/4401/4403/4404 fatal, anything else retried', () => {
  assert.equal(closeVerdict(4409), 'superseded');
  for (const code of [4400, 4401, 4403, 4404]) assert.equal(closeVerdict(code), 'fatal');
  for (const code of [1000, 1001, 1006, 1008, 1011, 1012, 1013, 4408]) assert.equal(closeVerdict(code), 'retry');
  assert.deepEqual(FATAL_CLOSE, [4400, 4401, 4403, 4404]);
  assert.equal(closeVerdict(4400, { fatal: [4401] }), 'retry');
});

test('backoff: full jitter below an exponential ceiling, capped', () => {
  const b = { baseMs: 500, capMs: 10000 };
  assert.equal(backoffDelay(0, b, () => 1), 500);
  assert.equal(backoffDelay(3, b, () => 1), 4000);
  assert.equal(backoffDelay(5, b, () => 1), 10000);
  assert.equal(backoffDelay(40, b, () => 1), 10000);
  assert.equal(backoffDelay(3, b, () => 0), 0);
  assert.equal(backoffDelay(3, b, () => 0.25), 1000);
});

test('frames: msgpack is binary, json is text, and both decode', () => {
  const msg = { t: 'answer', id: 3, q: 'q1', value: [1, 'a'] };
  const bin = encodeFrame(msg, 'msgpack');
  assert.ok(bin instanceof Uint8Array);
  assert.deepEqual(decode(bin), msg);
  assert.deepEqual(decodeFrame(bin), msg);
  const text = encodeFrame(msg, 'json');
  assert.equal(typeof text, 'string');
  assert.deepEqual(decodeFrame(text), msg);
  // a value MessagePack refuses falls back to JSON
  assert.equal(typeof encodeFrame({ t: 'x', when: new Date(0) }, 'msgpack'), 'string');
  assert.throws(() => decodeFrame('not json'));
  assert.equal(socketUrl('/v1/x', { protocol: 'https:', host: 'h:1' }), 'wss://h:1/v1/x');
  assert.equal(socketUrl('/v1/x', { protocol: 'http:', host: 'h' }), 'ws://h/v1/x');
});

test('connect, hello on open, welcome, then a burst of pings', () => {
  const t = setup();
  t.wire.connect();
  const ws = t.sockets.last();
  assert.equal(ws.url, 'ws://example.test/v1/exams/e/attempt');
  assert.equal(ws.binaryType, 'arraybuffer');
  assert.deepEqual(t.events, [['connecting', false]]);
  assert.equal(ws.sent.length, 0);
  ws.accept();
  assert.deepEqual(ws.frames(), [{ type: 'binary', msg: { t: 'hello', token: 'tok', v: 1, client: 'test/1' } }]);
  assert.equal(t.wire.helloAt, t.time.now());
  assert.equal(t.wire.welcomed, false);
  ws.push(WELCOME);
  assert.equal(t.wire.welcomed, true);
  assert.equal(t.wire.everWelcomed, true);
  assert.deepEqual(t.events.at(-1), ['message', 'welcome']);
  t.time.advance(1000);
  const pings = ws.messages().filter((m) => m.t === 'ping');
  assert.equal(pings.length, 3);
  assert.ok(pings.every((p) => typeof p.ct === 'number'));
});

test('json encoding sends text frames; binary replies are decoded too', () => {
  const t = setup({ encoding: 'json' });
  t.wire.connect();
  const ws = t.sockets.last();
  ws.accept();
  assert.equal(ws.frames()[0].type, 'text');
  ws.push(WELCOME, { binary: true });
  assert.equal(t.wire.welcomed, true);
  ws.pushRaw('{{{');
  ws.pushRaw(JSON.stringify([1, 2]));
  ws.pushRaw(JSON.stringify({ no: 't' }));
  assert.deepEqual(t.events.filter((e) => e[0] === 'undecodable'), [['undecodable']]);
  assert.equal(t.events.filter((e) => e[0] === 'message').length, 1);
});

test('no welcome within the connect timeout: lost (1006) and retried with backoff', () => {
  const t = setup({ connectTimeoutMs: 12000 });
  t.wire.connect();
  t.sockets.last().accept();
  t.time.advance(11999);
  assert.equal(t.events.some((e) => e[0] === 'lost'), false);
  t.time.advance(1);
  assert.deepEqual(t.events.slice(-2), [['retry', 250], ['lost', 1006, 'retry', true]]);
  assert.deepEqual(t.events.filter((e) => e[0] === 'lost'), [['lost', 1006, 'retry', true]]);
  assert.deepEqual(t.events.filter((e) => e[0] === 'retry'), [['retry', 250]]); // random 0.5 * 500
  assert.equal(t.sockets.last().closed.code, 1000);
  assert.equal(t.wire.retryPending, true);
  assert.equal(t.wire.retryAt, t.time.now() + 250);
  t.time.advance(250);
  assert.equal(t.sockets.made.length, 2);
  assert.deepEqual(t.events.at(-1), ['connecting', false]);
});

test('the backoff grows per failed attempt and resets after a welcome', () => {
  const t = setup({ random: () => 1, backoff: { baseMs: 500, capMs: 10000 } });
  t.wire.connect();
  const delays = [];
  for (let i = 0; i < 7; i++) {
    t.sockets.last().hangUp(1006);
    const d = t.events.filter((e) => e[0] === 'retry').at(-1)[1];
    delays.push(d);
    t.time.advance(d);
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 10000, 10000]);
  const ws = t.sockets.last();
  ws.accept();
  ws.push(WELCOME);
  assert.equal(t.wire.retries, 0);
  ws.hangUp(1012);
  assert.equal(t.events.filter((e) => e[0] === 'retry').at(-1)[1], 500);
  t.time.advance(500);
  assert.deepEqual(t.events.at(-1), ['connecting', true]);
});

test('superseded (4409) and fatal codes are not retried', () => {
  for (const [code, verdict] of [[4409, 'superseded'], [4401, 'fatal'], [4403, 'fatal'], [4404, 'fatal'], [4400, 'fatal']]) {
    const t = setup();
    welcomed(t).hangUp(code, 'why');
    assert.deepEqual(t.events.at(-1), ['lost', code, verdict, false]);
    assert.equal(t.wire.retryPending, false);
    assert.equal(t.wire.welcomed, false);
    t.time.advance(60000);
    assert.equal(t.sockets.made.length, 1);
    assert.equal(t.time.pending, 0, `timers left after ${code}`);
  }
});

test('canConnect() false: a retryable loss is not retried, connect() does nothing', () => {
  const t = setup();
  const ws = welcomed(t);
  t.allow(false);
  ws.hangUp(1006);
  assert.deepEqual(t.events.at(-1), ['lost', 1006, 'retry', false]);
  t.wire.connect();
  assert.equal(t.sockets.made.length, 1);
  t.allow(true);
  t.wire.reconnectNow();
  assert.equal(t.sockets.made.length, 2);
});

test('pong watchdog: silence after a periodic ping is a lost connection; any frame keeps it alive', () => {
  const t = setup({ pingEveryMs: 30000, pongTimeoutMs: 10000 });
  const ws = welcomed(t);
  t.time.advance(30000); // periodic ping
  t.time.advance(5000);
  ws.push({ t: 'pong', ct: 1, st: 2 });
  t.time.advance(5000);
  assert.equal(t.events.some((e) => e[0] === 'lost'), false);
  t.time.advance(20000); // the next periodic ping, then nothing comes back
  t.time.advance(9999);
  assert.equal(t.events.some((e) => e[0] === 'lost'), false);
  t.time.advance(1);
  assert.deepEqual(t.events.filter((e) => e[0] === 'lost'), [['lost', 1006, 'retry', true]]);
  assert.equal(ws.closed.code, 1000);
});

test('events of a replaced socket are ignored', () => {
  const t = setup();
  const old = welcomed(t);
  t.wire.connect(); // a new socket replaces it
  const count = t.events.length;
  old.hangUp(1006);
  old.push({ t: 'ack', id: 1 });
  assert.equal(t.events.length, count);
  assert.equal(old.onclose, null);
});

test('sending is paced by a token bucket, in order; pings are stamped when they leave', () => {
  const t = setup({ pace: { ratePerS: 10, burst: 3 }, pingBurst: [], pingEveryMs: 1e9 });
  const ws = welcomed(t);
  ws.sent.length = 0;
  for (let i = 1; i <= 6; i++) assert.equal(t.wire.send({ t: 'goto', id: i, index: i }), true);
  assert.deepEqual(ws.messages().map((m) => m.id), [1, 2, 3]);
  t.time.advance(100);
  assert.deepEqual(ws.messages().map((m) => m.id), [1, 2, 3, 4]);
  t.wire.send({ t: 'ping', ct: 0 });
  t.time.advance(1000);
  const out = ws.messages();
  assert.deepEqual(out.map((m) => m.t), ['goto', 'goto', 'goto', 'goto', 'goto', 'goto', 'ping']);
  assert.equal(out[6].ct, t.time.now() - 1000 + 300);
});

test('unpaced wire sends at once; nothing is sent without an open socket', () => {
  const t = setup({ pace: null });
  assert.equal(t.wire.send({ t: 'ping' }), false);
  const ws = welcomed(t);
  ws.sent.length = 0;
  for (let i = 0; i < 50; i++) t.wire.send({ t: 'x', id: i + 1 });
  assert.equal(ws.sent.length, 50);
  ws.hangUp(1006);
  assert.equal(t.wire.send({ t: 'x', id: 99 }), false);
  assert.equal(t.wire.sendNow({ t: 'x', id: 99 }), false);
});

test('a lost connection drops what was queued', () => {
  const t = setup({ pace: { ratePerS: 1, burst: 1 }, pingBurst: [] });
  const ws = welcomed(t);
  t.wire.send({ t: 'a', id: 1 });
  t.wire.send({ t: 'b', id: 2 });
  ws.hangUp(1006);
  assert.equal(t.wire.outq.length, 0);
  t.time.advance(500); // the retry
  const next = t.sockets.last();
  next.accept();
  t.time.advance(5000);
  assert.deepEqual(next.messages().map((m) => m.t), ['hello']);
});

test('stop() closes with a reason and leaves no timer; drop() is a loss', () => {
  const t = setup();
  const ws = welcomed(t);
  t.wire.stop('bye');
  assert.deepEqual(ws.closed, { code: 1000, reason: 'bye' });
  assert.equal(t.time.pending, 0);
  assert.equal(t.wire.active, false);
  const ws2 = welcomed(t);
  t.wire.drop();
  assert.equal(ws2.closed.code, 1000);
  assert.deepEqual(t.events.at(-1), ['lost', 1006, 'retry', true]);
  assert.equal(t.wire.active, true);
});

test('a socket that cannot be created counts as lost and is retried', () => {
  let fail = true;
  const sockets = fakeSockets();
  class Flaky extends sockets.FakeSocket {
    constructor(url) {
      if (fail) throw new Error('bad url');
      super(url);
    }
  }
  const t = setup({ WebSocket: Flaky });
  t.wire.connect();
  assert.deepEqual(t.events, [['retry', 250], ['lost', 1006, 'retry', true]]);
  fail = false;
  t.time.advance(250);
  assert.equal(sockets.made.length, 1);
});

test('a handler that drops the connection on welcome stops the pings from starting', () => {
  const t = setup({ on: {} });
  t.wire.on.message = (m) => { if (m.t === 'welcome') t.wire.stop(); };
  welcomed(t);
  assert.equal(t.time.pending, 0);
});
