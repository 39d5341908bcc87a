// The shared library's small modules: clock, request ids, journal, bucket,
// storage, token and formatting (handlers/pages/lib).

import test from 'node:test';
import assert from 'node:assert/strict';

import { Clock } from '../../../handlers/pages/lib/clock.js';
import { Requests } from '../../../handlers/pages/lib/requests.js';
import {
  readJournal, writeJournal, writeLastId, clearJournal, mergeJournal, pendingKey, lastIdKey, isEntry,
} from '../../../handlers/pages/lib/journal.js';
import { Bucket } from '../../../handlers/pages/lib/bucket.js';
import { storeGet, storeSet, examTokenKey, PROCTOR_TOKEN_KEY, PROCTOR_EXAM_KEY, ENCODING_KEY } from '../../../handlers/pages/lib/storage.js';
import { claimsOf, whoOf, readFragment, clearFragment } from '../../../handlers/pages/lib/token.js';
import {
  fmtNum, fmtPoints, fmtClock, fmtDuration, fmtDurationShort, plural, truncate, detailText, repeats, pad2, clockTime,
} from '../../../handlers/pages/lib/format.js';
import { isExamId } from '../../../handlers/pages/lib/protocol.js';
import { MemoryStorage } from './fakes.mjs';

test('clock: the sample with the lowest round trip sets the offset', () => {
  let now = 10_000;
  const clock = new Clock({ samples: 3, now: () => now });
  assert.equal(clock.offset, 0);
  clock.seed(15_000);
  assert.equal(clock.offset, 5000);
  assert.equal(clock.serverNow(), 15_000);
  // a pong: sent at 9_900 (local), server stamped 14_960, received at 10_000: rtt 100, offset 14_960 - 9_950
  assert.equal(clock.pong({ ct: 9_900, st: 14_960 }), true);
  assert.equal(clock.offset, 5010);
  clock.seed(99_999); // ignored once there is a sample
  assert.equal(clock.offset, 5010);
  now = 20_000;
  assert.equal(clock.pong({ ct: 19_990, st: 25_000 }), true); // rtt 10 wins
  assert.equal(clock.offset, 5005);
  assert.equal(clock.pong({ ct: 19_000, st: 0 }), true); // rtt 1000: kept, not used
  assert.equal(clock.offset, 5005);
  assert.equal(clock.pong({ ct: now - 60_001, st: 2 }), false); // rtt over a minute
  assert.equal(clock.pong({ ct: 20_001, st: 2 }), false); // from the future
  assert.equal(clock.pong({ ct: 'x', st: 2 }), false);
  assert.equal(clock.sample(5, Infinity), false);
  // only the newest `samples` count
  clock.sample(50, 1); clock.sample(50, 2); clock.sample(60, 3);
  assert.equal(clock.offset, 1);
  assert.equal(clock.samples.length, 3);
  clock.reset();
  assert.equal(clock.samples.length, 0);
  assert.equal(clock.exchange(19_900, 30_000), true); // hello sent at 19_900, welcome's server time 30_000
  assert.equal(clock.offset, 30_000 - 19_950);
  clock.reset();
  assert.equal(clock.exchange(0, 20_500), true);
  assert.equal(clock.offset, 500);
});

test('requests: growing ids, tracked until settled, drained on loss', () => {
  const r = new Requests();
  assert.equal(r.take(), 1);
  assert.equal(r.take(), 2);
  r.atLeast(10);
  r.atLeast(3);
  assert.equal(r.take(), 10);
  r.track(10, { what: 'x' });
  r.track(11, { what: 'y' });
  assert.equal(r.size, 2);
  assert.deepEqual(r.peek(10), { what: 'x' });
  assert.deepEqual(r.settle(10), { what: 'x' });
  assert.equal(r.settle(10), undefined);
  r.track(12, { what: 'z' });
  assert.deepEqual(r.drain(), [{ what: 'y' }, { what: 'z' }]);
  assert.equal(r.size, 0);
  r.reset();
  assert.equal(r.take(), 1);
});

test('journal: kept per attempt, malformed entries dropped, merged in id order', () => {
  const store = new MemoryStorage();
  assert.deepEqual(readJournal(store, 'A'), { list: [], last: 0 });
  const list = [{ id: 3, message: { t: 'answer', id: 3, q: 'q1', value: 'a' } }];
  writeJournal(store, 'A', list, 4);
  assert.equal(store.getItem(pendingKey('A')), JSON.stringify(list));
  assert.equal(store.getItem(lastIdKey('A')), '4');
  assert.deepEqual(readJournal(store, 'A'), { list, last: 4 });
  assert.deepEqual(readJournal(store, 'B'), { list: [], last: 0 });
  writeLastId(store, 'A', 9);
  assert.equal(readJournal(store, 'A').last, 9);
  store.setItem(pendingKey('A'), JSON.stringify([...list, { id: 5, message: { t: 'flag', id: 6 } }, null, { id: -1, message: { t: 'x', id: -1 } }]));
  assert.deepEqual(readJournal(store, 'A').list, list);
  store.setItem(pendingKey('A'), '{not json');
  store.setItem(lastIdKey('A'), 'NaN');
  assert.deepEqual(readJournal(store, 'A'), { list: [], last: 0 });
  clearJournal(store, 'A');
  assert.equal(store.getItem(pendingKey('A')), null);
  assert.equal(store.getItem(lastIdKey('A')), null);
  assert.equal(isEntry({ id: 1, message: { t: 'goto', id: 1 } }), true);
  assert.equal(isEntry({ id: 1.5, message: { t: 'goto', id: 1.5 } }), false);
  const e = (id) => ({ id, message: { t: 'goto', id } });
  assert.deepEqual(mergeJournal([e(5), e(2)], [e(2), e(7), e(1)]).map((x) => x.id), [1, 2, 5, 7]);
  // no storage at all: nothing kept, nothing thrown
  writeJournal(null, 'A', list, 4);
  assert.deepEqual(readJournal(null, 'A'), { list: [], last: 0 });
});

test('bucket: a burst, then the refill rate', () => {
  const b = new Bucket(10, 3, 0);
  assert.equal(b.take(0), true);
  assert.equal(b.take(0), true);
  assert.equal(b.take(0), true);
  assert.equal(b.take(0), false);
  assert.equal(b.waitMs(), 100);
  assert.equal(b.take(100), true);
  assert.equal(b.take(10_000), true);
  assert.equal(b.tokens, 2); // refilled to the burst, one spent
  b.reset(10_000);
  assert.equal(b.tokens, 3);
});

test('storage: never throws, one name per key', () => {
  const store = new MemoryStorage();
  storeSet(store, 'k', 'v');
  assert.equal(storeGet(store, 'k'), 'v');
  storeSet(store, 'k', null);
  assert.equal(storeGet(store, 'k'), null);
  const broken = { getItem() { throw new Error('denied'); }, setItem() { throw new Error('full'); }, removeItem() { throw new Error('x'); } };
  assert.equal(storeGet(broken, 'k'), null);
  storeSet(broken, 'k', 'v');
  storeSet(broken, 'k', undefined);
  assert.equal(storeGet(null, 'k'), null);
  assert.equal(examTokenKey('net-101'), 'examwire.exam.token:net-101');
  assert.equal(PROCTOR_TOKEN_KEY, 'examwire.proctor.token');
  assert.equal(PROCTOR_EXAM_KEY, 'examwire.proctor.exam');
  assert.equal(ENCODING_KEY, 'examwire.encoding');
});

test('token: claims for display, the fragment read and cleared', () => {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const token = `${b64({ alg: 'HS256' })}.${b64({ sub: 'u1', name: 'Zoë Ångström', role: 'candidate' })}.sig`;
  assert.deepEqual(claimsOf(token), { sub: 'u1', name: 'Zoë Ångström', role: 'candidate' });
  assert.deepEqual(claimsOf('garbage'), {});
  assert.deepEqual(claimsOf(`x.${b64(7)}.y`), {});
  assert.equal(whoOf({ name: ' Ada ', sub: 'u' }), ' Ada ');
  assert.equal(whoOf({ name: '  ', sub: 'u7' }), 'User u7');
  assert.equal(whoOf({}), '');
  assert.equal(readFragment({ hash: '' }), null);
  assert.equal(readFragment({ hash: '#' }), null);
  const params = readFragment({ hash: '#token=abc&exam=e1' });
  assert.equal(params.get('token'), 'abc');
  assert.equal(params.get('exam'), 'e1');
  const calls = [];
  clearFragment({ pathname: '/exam/e1', search: '?x=1' }, { state: 's', replaceState: (...a) => calls.push(a) });
  assert.deepEqual(calls, [['s', '', '/exam/e1?x=1']]);
});

test('format: numbers, points, clocks, durations', () => {
  assert.equal(fmtNum(2.3333), '2.33');
  assert.equal(fmtNum(7), '7');
  assert.equal(fmtNum(2.5), '2.5');
  assert.equal(fmtNum(-0.001), '0');
  assert.equal(fmtNum(66.6666, 1), '66.7');
  assert.equal(fmtNum(NaN), 'NaN');
  assert.equal(fmtPoints(1), '1\u00a0point');
  assert.equal(fmtPoints(2.5), '2.5\u00a0points');
  assert.equal(pad2(7), '07');
  assert.equal(fmtClock(0), '00:00');
  assert.equal(fmtClock(-5), '00:00');
  assert.equal(fmtClock(1), '00:01');
  assert.equal(fmtClock(247_000), '04:07');
  assert.equal(fmtClock(3_723_000), '1:02:03');
  assert.match(clockTime(Date.now()), /^\d\d:\d\d:\d\d$/);
  assert.equal(fmtDuration(45_000), '45 seconds');
  assert.equal(fmtDuration(1000), '1 second');
  assert.equal(fmtDuration(60_000), '1 minute');
  assert.equal(fmtDuration(30 * 60_000), '30 minutes');
  assert.equal(fmtDuration(90 * 60_000), '1 hour 30 minutes');
  assert.equal(fmtDuration(120 * 60_000), '2 hours');
  assert.equal(fmtDuration('x'), '');
  assert.equal(fmtDurationShort(30 * 60_000), '30 min');
  assert.equal(fmtDurationShort(90 * 60_000), '1 h 30 min');
  assert.equal(fmtDurationShort(60 * 60_000), '1 h');
  assert.equal(plural(1, 'answer', 'answers'), '1 answer');
  assert.equal(plural(0, 'answer', 'answers'), '0 answers');
  assert.equal(truncate('abcdef', 4), 'abc…');
  assert.equal(truncate('abc', 4), 'abc');
  assert.equal(detailText(null), '');
  assert.equal(detailText({ a: 1 }), '{"a":1}');
  assert.equal(detailText(() => 1), '');
  assert.equal(repeats('No such exam', 'no such exam'), true);
  assert.equal(repeats('No such exam', 'exam was deleted'), false);
});

test('exam ids: the server\'s rule (engine/ids.py), dot segments and trailing newlines refused', () => {
  for (const ok of ['a', 'demo', 'Final_2026.v1-b', '...', '.a', 'x'.repeat(64)]) assert.equal(isExamId(ok), true, ok);
  for (const bad of ['', '.', '..', 'a b', 'a/b', 'a\n', 'x'.repeat(65), 'é', '{a}', null, 5]) {
    assert.equal(isExamId(bad), false, String(bad));
  }
});
