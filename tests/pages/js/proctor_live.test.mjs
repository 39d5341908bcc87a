// The proctor dashboard's connection (proctor/live.js) on the shared wire client, with fake
// views, a fake WebSocket and virtual time: what goes on the wire, and what the page is told.
// Run: node --test tests/pages/js/

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { FakeTime, fakeSockets } from './fakes.mjs';
import { createLive } from '../../../handlers/pages/proctor/live.js';
import { extendRequest, pauseAllRequest } from '../../../handlers/pages/proctor/actions.js';
import { createState } from '../../../handlers/pages/proctor/state.js';

function setup({ online = true } = {}) {
  const time = new FakeTime(1_800_000_000_000);
  const sockets = fakeSockets();
  const calls = [];
  const log = (name) => (...args) => calls.push([name, ...args]);
  const banners = new Proxy({}, { get: (_, name) => log(name) });
  const table = { examTotal: undefined, reset: log('table.reset'), load: log('table.load'), changed: log('table.changed'), flash: log('table.flash') };
  const feed = { add: log('feed.add'), clear: log('feed.clear') };
  const refused = [];
  const state = createState();
  const live = createLive({
    state, table, feed, banners,
    onTokenRefused: (short, text) => refused.push({ short, text }),
    env: {
      WebSocket: sockets.FakeSocket,
      setTimeout: time.setTimeout, clearTimeout: time.clearTimeout, setInterval: time.setInterval, clearInterval: time.clearInterval,
      now: time.now, mono: time.now, random: () => 0.5,
      location: { protocol: 'https:', host: 'exam.example' },
      navigator: { onLine: online },
    },
  });
  const named = (name) => calls.filter((c) => c[0] === name).map((c) => c.slice(1));
  return { time, sockets, calls, named, table, state, live, refused };
}

const WELCOME = { t: 'welcome', exam: { id: 'pg 1', title: 'Networking', total: 6, duration_ms: 600000, navigation: 'free', version: 1 } };

function goLive(t) {
  t.live.open('pg 1', 'tok.en');
  const ws = t.sockets.last();
  ws.accept();
  t.time.advance(100); // the welcome takes 100 ms to come back
  ws.push({ ...WELCOME, server_time: t.time.now() + 5000 });
  ws.push({ t: 'snapshot', attempts: [{ attempt: 'a1', name: 'Ada', user: 'u1', state: 'active', connected: true }] });
  return ws;
}

test('hello in a JSON text frame, welcome, snapshot: live', () => {
  const t = setup();
  const ws = goLive(t);
  assert.equal(ws.url, 'wss://exam.example/v1/exams/pg%201/proctor');
  const frames = ws.frames();
  assert.deepEqual(frames[0], { type: 'text', msg: { t: 'hello', token: 'tok.en', v: 1, client: 'examwire-proctor/1' } });
  assert.ok(frames.slice(1).every((f) => f.type === 'text'), 'JSON text frames only');
  assert.deepEqual(t.named('setConn').at(0), ['connecting', 'Connecting…']);
  assert.deepEqual(t.named('setConn').at(-1), ['live', 'Live']);
  assert.deepEqual(t.named('heading').at(0), ['pg 1', '']);
  assert.deepEqual(t.named('heading').at(-1), ['Networking', '6 questions · 10 min · free navigation · exam id pg 1']);
  assert.equal(t.table.examTotal, 6);
  assert.equal(t.state.rows.get('a1').name, 'Ada');
  assert.equal(t.named('table.load').length, 1);
  assert.equal(t.live.clock.offset, 5050, 'server time minus the local midpoint of hello and welcome');
  // a ping right after the welcome (the shared client's), answered faster: the clock follows the pong
  t.time.advance(1);
  const ping = ws.messages().find((m) => m.t === 'ping');
  assert.ok(ping && typeof ping.ct === 'number');
  ws.push({ t: 'pong', ct: ping.ct, st: ping.ct + 7000 }); // answered 1 ms after it left
  assert.equal(t.live.clock.offset, 6999.5); // st minus the midpoint of the 1 ms round trip
});

test('updates reach the state, the table and the feed', () => {
  const t = setup();
  const ws = goLive(t);
  ws.push({ t: 'update', attempt: 'a1', answered: 2 });
  ws.push({ t: 'update', attempt: 'a2', name: 'Bob', state: 'ready' });
  ws.push({ t: 'update', attempt: 'a1', events: 1, event: { kind: 'blur', at: 5 } });
  ws.push({ t: 'update' }); // no attempt: ignored
  ws.push({ t: 'something_new', x: 1 }); // unknown pushes are ignored
  assert.equal(t.state.rows.get('a1').answered, 2);
  assert.equal(t.state.rows.get('a2').name, 'Bob');
  assert.deepEqual(t.named('table.changed').map(([row]) => row.attempt), ['a1', 'a2', 'a1']);
  assert.deepEqual(t.named('feed.add').map(([row, ev]) => [row.attempt, ev.kind]), [['a1', 'blur']]);
  assert.deepEqual(t.named('table.flash').map(([row]) => row.attempt), ['a1']);
});

test('requests: sent only while live, ids per connection, answered in the status line', () => {
  const t = setup();
  t.live.open('pg1', 'tok');
  assert.equal(t.live.send(pauseAllRequest()), false);
  assert.deepEqual(t.named('setStatus').at(-1), ['error', 'Not connected: could not pause everyone. Wait until the status shows Live.']);
  const ws = goLive(t);
  assert.equal(t.live.send(extendRequest({ attempt: 'a1', name: 'Ada' }, 5)), true);
  assert.deepEqual(t.named('setStatus').at(-1), ['pending', 'Sending: extend Ada by 5 min…']);
  assert.deepEqual(ws.messages().filter((m) => m.t !== 'ping' && m.t !== 'hello'), [{ t: 'extend', attempt: 'a1', seconds: 300, id: 1 }]);
  ws.push({ t: 'ack', id: 1, attempt: 'a1', state: 'active' });
  assert.deepEqual(t.named('setStatus').at(-1), ['ok', 'Extended Ada by 5 min.']);
  t.live.send(pauseAllRequest());
  ws.push({ t: 'error', id: 2, code: 'rate_limited' });
  assert.deepEqual(t.named('setStatus').at(-1), ['error', 'Could not pause everyone: too many requests; wait a moment and try again [rate_limited].']);
  // a request in flight when the connection drops is reported, never resent
  t.live.send(pauseAllRequest());
  ws.hangUp(1006);
  assert.deepEqual(t.named('setStatus').at(-1), ['error', 'Connection lost before the server answered: pause everyone. Check the table before retrying.']);
  t.time.advance(16_000);
  const again = t.sockets.last();
  assert.notEqual(again, ws);
  again.accept();
  again.push({ ...WELCOME, server_time: t.time.now() });
  again.push({ t: 'snapshot', attempts: [] });
  t.live.send(pauseAllRequest());
  const sent = again.messages().filter((m) => m.t === 'pause');
  assert.deepEqual(sent, [{ t: 'pause', all: true, id: 1 }], 'ids start at 1 on the new connection, nothing resent');
});

test('a dropped connection is retried with backoff capped at 15 s', () => {
  const t = setup({ online: false });
  const ws = goLive(t);
  ws.hangUp(1012, 'restart');
  assert.deepEqual(t.named('setConn').at(-1), ['reconnecting', 'Offline, reconnecting']);
  assert.ok(t.live.retryAt() !== null);
  const delays = [];
  for (let i = 0; i < 8; i++) {
    const before = t.sockets.made.length;
    const wait = t.live.retryAt() - t.time.now();
    delays.push(wait);
    assert.ok(wait >= 0 && wait <= 15_000, `retry ${i} in ${wait} ms`);
    t.time.advance(wait);
    assert.equal(t.sockets.made.length, before + 1, `retry ${i}`);
    assert.deepEqual(t.named('setConn').at(-1), ['reconnecting', 'Reconnecting…']);
    t.sockets.last().hangUp(1006);
  }
  // full jitter (random() = 0.5 here): half of min(15 s, 0.5 s * 2^n)
  assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 7500, 7500, 7500]);
  t.live.close();
  const made = t.sockets.made.length;
  t.time.advance(60_000);
  assert.equal(t.sockets.made.length, made, 'closed: nothing retried');
  assert.equal(t.time.pending, 0);
});

test('no welcome in time, or no answer to a ping: the connection is lost and retried', () => {
  const t = setup();
  t.live.open('pg1', 'tok');
  const first = t.sockets.last();
  first.accept(); // opened, but no welcome
  t.time.advance(12_500);
  assert.deepEqual(t.named('setConn').find((c) => c[0] === 'reconnecting'), ['reconnecting', 'Reconnecting']);
  t.time.advance(15_000);
  const ws = t.sockets.last();
  assert.notEqual(ws, first);
  ws.accept();
  ws.push({ ...WELCOME, server_time: t.time.now() });
  ws.push({ t: 'snapshot', attempts: [] });
  assert.deepEqual(t.named('setConn').at(-1), ['live', 'Live']);
  t.time.advance(15_000); // the periodic ping goes out...
  assert.ok(ws.messages().filter((m) => m.t === 'ping').length >= 2);
  assert.deepEqual(t.named('setConn').at(-1), ['live', 'Live']);
  t.time.advance(10_001); // ...and nothing at all comes back within 10 s
  assert.deepEqual(t.named('setConn').at(-1), ['reconnecting', 'Reconnecting']);
  assert.equal(ws.closed.code, 1000);
  // "Retry now" (or the browser back online) connects at once
  const count = t.sockets.made.length;
  t.live.retryNow();
  assert.equal(t.sockets.made.length, count + 1);
  assert.equal(t.live.retryAt(), null);
  t.live.retryNow(); // nothing scheduled: nothing happens
  assert.equal(t.sockets.made.length, count + 1);
});

test('refusals are final: 4401 hands the token back, 4403/4404 show why', () => {
  for (const [code, reason, short, text] of [
    [4403, 'not yours', 'Refused (4403)', 'Not allowed: this token may not proctor this exam (close 4403: not yours). Choose another exam or sign out.'],
    [4404, 'no such exam', 'Refused (4404)', 'No such exam (close 4404). Choose another exam or sign out.'],
  ]) {
    const t = setup();
    t.live.open('pg1', 'tok');
    const ws = t.sockets.last();
    ws.accept();
    ws.hangUp(code, reason);
    assert.deepEqual(t.named('setConn').at(-1), ['error', short]);
    assert.deepEqual(t.named('showFatal').at(-1), [text]);
    t.time.advance(120_000);
    assert.equal(t.sockets.made.length, 1, `${code}: never retried`);
  }
  const t = setup();
  t.live.open('pg1', 'tok');
  t.sockets.last().accept();
  t.sockets.last().hangUp(4401, '');
  assert.deepEqual(t.refused, [{ short: 'Refused (4401)', text: 'Token refused: missing, malformed, expired or wrongly signed (close 4401). Paste a new token.' }]);
  t.time.advance(120_000);
  assert.equal(t.sockets.made.length, 1);
});

test('opening another exam starts from nothing', () => {
  const t = setup();
  goLive(t);
  assert.equal(t.state.rows.size, 1);
  t.live.open('other', 'tok');
  assert.equal(t.state.rows.size, 0);
  assert.equal(t.table.examTotal, undefined);
  assert.deepEqual(t.named('heading').at(-1), ['other', '']);
  assert.deepEqual(t.named('showView').at(-1), ['live']);
  assert.equal(t.sockets.made[0].closed.code, 1000);
  assert.equal(t.sockets.last().url, 'wss://exam.example/v1/exams/other/proctor');
});
