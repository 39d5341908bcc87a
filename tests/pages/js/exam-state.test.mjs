// The exam page's pure state module (handlers/pages/exam/state.js): no DOM, no socket.

import test from 'node:test';
import assert from 'node:assert/strict';

import {
  createState, addRequest, takeReply, applyWelcome, applyAck, applyError, applyBatch, missingBatches,
  applyTime, applyState, applyFinal, connectionLost, remainingMs, dueWarnings, submitSummary,
  saveStatusOf, isLocked, isAnswered, sameValue, isFinal, isLinear, FETCH_COUNT,
} from '../../../handlers/pages/exam/state.js';

const EXAM = { id: 'net-101', title: 'Networking', duration_ms: 600_000, total: 3, navigation: 'free', show_result: true };

function welcome(over = {}) {
  return {
    t: 'welcome', attempt: 'A1', exam: EXAM, state: 'active', server_time: 1_000_000, deadline: 1_600_000,
    remaining_ms: 600_000, last_id: 0, answers: {}, flags: [], index: 0, ...over,
  };
}

const q = (index, id, type = 'single') => ({ index, id, type, prompt: `P${index}`, options: [{ id: 'a', text: 'A' }], points: 1 });

function active() {
  const S = createState({ now: () => 1_000_000 });
  applyWelcome(S, welcome());
  applyBatch(S, { t: 'batch', from: 0, questions: [q(0, 'q1'), q(1, 'q2', 'multiple'), q(2, 'q3', 'text')], total: 3 });
  return S;
}

test('value helpers', () => {
  assert.equal(isAnswered(null), false);
  assert.equal(isAnswered([]), false);
  assert.equal(isAnswered('  '), false);
  assert.equal(isAnswered(0), true);
  assert.equal(isAnswered(false), true);
  assert.equal(sameValue(['a', 'b'], ['a', 'b']), true);
  assert.equal(sameValue(['a'], ['b']), false);
  assert.equal(sameValue(1, 1), true);
});

test('welcome: the server state, overlaid by the journal; ids continue past everything used', () => {
  const S = createState({ now: () => 999_000 });
  const kept = {
    list: [
      { id: 4, message: { t: 'answer', id: 4, q: 'q1', value: 'old' } }, // already applied (<= last_id)
      { id: 6, message: { t: 'answer', id: 6, q: 'q2', value: ['a'] } },
      { id: 7, message: { t: 'flag', id: 7, q: 'q3', on: true } },
      { id: 8, message: { t: 'goto', id: 8, index: 2 } },
    ],
    last: 9,
  };
  const r = applyWelcome(S, welcome({ last_id: 5, answers: { q1: 'b' }, flags: ['q1'] }), kept);
  assert.deepEqual(r, { firstForAttempt: true, wasOffline: null, final: false, lost: false });
  assert.equal(S.welcomed, true);
  assert.equal(S.attempt, 'A1');
  assert.equal(S.total, 3);
  assert.equal(S.questions.length, 3);
  assert.equal(S.lastId, 5);
  assert.equal(S.ids.nextId, 10);
  assert.deepEqual([...S.answers], [['q1', 'b'], ['q2', ['a']]]);
  assert.deepEqual([...S.saved], [['q1', 'b']]);
  assert.deepEqual([...S.flags], ['q1', 'q3']);
  assert.equal(S.index, 2);
  assert.equal(S.state, 'active');
  assert.equal(S.deadline, 1_600_000);
  assert.equal(S.clock.offset, 1000); // seeded from server_time
  assert.deepEqual(S.pending.map((e) => e.id), [4, 6, 7, 8]);

  // a second welcome for the same attempt keeps the index the page shows
  S.index = 1;
  S.offlineSince = 123;
  const again = applyWelcome(S, welcome({ last_id: 8, index: 0 }), { list: [], last: 0 });
  assert.equal(again.firstForAttempt, false);
  assert.equal(again.wasOffline, 123);
  assert.equal(S.index, 1);
});

test('welcome on a final attempt is reported, not applied as the state', () => {
  const S = createState();
  const r = applyWelcome(S, welcome({ state: 'submitted' }));
  assert.equal(r.final, true);
  assert.equal(S.state, null);
  const T = createState();
  T.timeUp = true;
  applyWelcome(T, welcome({ state: 'active', remaining_ms: 5000 }));
  assert.equal(T.timeUp, false);
});

test('requests: persisted kinds are journaled even offline; the others need a connection', () => {
  const S = createState();
  assert.equal(addRequest(S, 'event', { kind: 'blur' }), null);
  const offline = addRequest(S, 'answer', { q: 'q1', value: 'a' });
  assert.deepEqual(offline, { id: 1, message: { t: 'answer', id: 1, q: 'q1', value: 'a' }, persist: true });
  assert.equal(S.ids.size, 0); // not sent: no reply awaited
  S.welcomed = true;
  const ev = addRequest(S, 'event', { kind: 'blur' });
  assert.equal(ev.persist, false);
  assert.equal(S.ids.size, 1);
  assert.deepEqual(S.pending.map((e) => e.id), [1]);
  assert.deepEqual(takeReply(S, 1), { t: 'answer', id: 1, q: 'q1', value: 'a' });
  assert.equal(S.pending.length, 0);
  assert.deepEqual(takeReply(S, 2), { t: 'event', id: 2, kind: 'blur' });
  assert.equal(takeReply(S, 3), undefined);
});

test('ack: an answer is saved (its error cleared unless a newer answer waits); start makes the attempt active', () => {
  const S = active();
  const a = addRequest(S, 'answer', { q: 'q1', value: 'a' });
  S.qError.set('q1', 'old problem');
  assert.equal(saveStatusOf(S, 'q1'), 'saving');
  assert.equal(applyAck(S, { t: 'ack', id: a.id }).t, 'answer');
  assert.equal(S.saved.get('q1'), 'a');
  assert.equal(S.qError.has('q1'), false);
  S.answers.set('q1', 'a');
  assert.equal(saveStatusOf(S, 'q1'), 'saved');
  assert.equal(S.lastId, a.id);
  assert.equal(applyAck(S, { t: 'ack', id: 999 }), undefined);
  assert.equal(S.lastId, 999);

  const R = createState();
  applyWelcome(R, welcome({ state: 'ready', deadline: null }));
  R.startSent = true;
  const s = addRequest(R, 'start');
  applyAck(R, { t: 'ack', id: s.id, deadline: 2_000_000 });
  assert.equal(R.state, 'active');
  assert.equal(R.deadline, 2_000_000);
  assert.equal(R.startSent, false);
});

test('error decisions', () => {
  const S = active();
  assert.deepEqual(applyError(S, { t: 'error', code: 'bad_frame' }), { kind: 'server' });
  assert.deepEqual(applyError(S, { t: 'error', id: 77, code: 'internal' }), { kind: 'none' });

  let r = addRequest(S, 'answer', { q: 'q1', value: 'a' });
  assert.deepEqual(applyError(S, { t: 'error', id: r.id, code: 'internal' }), { kind: 'retry-answer', q: 'q1', value: 'a' });

  r = addRequest(S, 'answer', { q: 'q1', value: 'b' });
  addRequest(S, 'answer', { q: 'q1', value: 'c' });
  assert.deepEqual(applyError(S, { t: 'error', id: r.id, code: 'bad_value' }), { kind: 'none' }); // a newer one waits

  const T = active();
  T.saved.set('q2', ['a']);
  T.answers.set('q2', ['x']);
  r = addRequest(T, 'answer', { q: 'q2', value: ['x'] });
  assert.deepEqual(applyError(T, { t: 'error', id: r.id, code: 'bad_value', message: 'no' }), { kind: 'answer-refused', q: 'q2', timeUp: false });
  assert.equal(T.qError.get('q2'), 'the server did not accept this answer');
  assert.deepEqual(T.answers.get('q2'), ['a']);
  assert.equal(saveStatusOf(T, 'q2'), 'error');
  r = addRequest(T, 'answer', { q: 'q3', value: 'x' });
  assert.deepEqual(applyError(T, { t: 'error', id: r.id, code: 'time_up' }), { kind: 'answer-refused', q: 'q3', timeUp: true });
  assert.equal(T.answers.get('q3'), null);
  r = addRequest(T, 'answer', { q: 'q1', value: 'a' });
  assert.deepEqual(applyError(T, { t: 'error', id: r.id, code: 'weird', message: 'why' }).kind, 'answer-refused');
  assert.equal(T.qError.get('q1'), 'why');

  r = addRequest(T, 'answer', { q: 'q1', value: 'a' });
  assert.deepEqual(applyError(T, { t: 'error', id: r.id, code: 'not_active' }), { kind: 'deferred', q: 'q1' });
  assert.equal(T.deferred.get('q1'), 'a');

  T.flags.add('q1');
  r = addRequest(T, 'flag', { q: 'q1', on: true });
  assert.deepEqual(applyError(T, { t: 'error', id: r.id, code: 'rate_limited' }), { kind: 'retry-flag', q: 'q1', on: true });
  r = addRequest(T, 'flag', { q: 'q1', on: true });
  assert.deepEqual(applyError(T, { t: 'error', id: r.id, code: 'navigation' }), { kind: 'flag-reverted', q: 'q1' });
  assert.equal(T.flags.has('q1'), false);

  T.submitting = true;
  r = addRequest(T, 'submit');
  assert.deepEqual(applyError(T, { t: 'error', id: r.id, code: 'time_up' }), { kind: 'submit', timeUp: true, text: null });
  assert.equal(T.submitting, false);
  r = addRequest(T, 'submit');
  assert.equal(applyError(T, { t: 'error', id: r.id, code: 'internal' }).text, 'The exam could not be submitted just now. Please try again.');
  r = addRequest(T, 'submit');
  assert.equal(applyError(T, { t: 'error', id: r.id, code: 'not_active' }).text, 'The exam was not submitted: the exam is not running.');

  r = addRequest(T, 'start');
  assert.deepEqual(applyError(T, { t: 'error', id: r.id, code: 'not_active' }), { kind: 'start', text: null });
  r = addRequest(T, 'start');
  assert.equal(applyError(T, { t: 'error', id: r.id, code: 'forbidden' }).text, 'The exam could not be started: not allowed.');

  T.fetching.add(0);
  r = addRequest(T, 'fetch', { from: 0, count: 3 });
  assert.deepEqual(applyError(T, { t: 'error', id: r.id, code: 'bad_request' }), { kind: 'none' });
  assert.equal(T.fetching.has(0), false);
});

test('batches: stored by index; the missing ones are fetched once per connection', () => {
  const S = createState();
  applyWelcome(S, welcome({ exam: { ...EXAM, total: 250 } }));
  assert.deepEqual(missingBatches(S), [{ from: 0, count: FETCH_COUNT }, { from: 100, count: 100 }, { from: 200, count: 50 }]);
  assert.deepEqual(missingBatches(S), []);
  const qs = [];
  for (let i = 0; i < 100; i++) qs.push(q(i, `q${i}`));
  assert.equal(applyBatch(S, { t: 'batch', from: 0, questions: [...qs, null, { index: 'x', id: 'bad' }], total: 250 }), true);
  assert.equal(S.byId.get('q5').index, 5);
  assert.equal(S.fetching.has(0), false);
  connectionLost(S, 0);
  assert.equal(S.welcomed, false);
  assert.deepEqual(missingBatches(S), []); // not connected
  S.welcomed = true;
  assert.deepEqual(missingBatches(S), [{ from: 100, count: 100 }, { from: 200, count: 50 }]);
  assert.equal(applyBatch(S, { t: 'batch' }), false);
  applyBatch(S, { t: 'batch', from: 200, questions: [], total: 240 });
  assert.equal(S.total, 240);
  assert.equal(S.questions.length, 240);
  const R = createState();
  applyWelcome(R, welcome({ state: 'ready' }));
  assert.deepEqual(missingBatches(R), []);
});

test('time: more time lifts the local time-up; warnings re-arm; a state change is passed on', () => {
  const S = active();
  S.timeUp = true;
  S.warned.add(60_000).add(300_000);
  const r = applyTime(S, { t: 'time', server_time: 1_000_000, deadline: 1_200_000, remaining_ms: 200_000, state: 'active' });
  assert.deepEqual(r, { moreTime: true, state: null });
  assert.equal(S.timeUp, false);
  assert.deepEqual([...S.warned], [300_000]);
  assert.equal(S.deadline, 1_200_000);
  const p = applyTime(S, { t: 'time', server_time: 1_000_000, deadline: 1_300_000, remaining_ms: 200_000, state: 'paused' });
  assert.deepEqual(p, { moreTime: false, state: 'paused' });
  assert.deepEqual(applyTime(S, { t: 'time', state: 'expired' }).state, null); // final states come as `state`
});

test('state changes, the end, and a lost connection', () => {
  const S = active();
  assert.deepEqual(applyState(S, 'paused'), { before: 'active', paused: true, resumed: false });
  assert.equal(isLocked(S), true);
  assert.deepEqual(applyState(S, 'active'), { before: 'paused', paused: false, resumed: true });
  assert.equal(isLocked(S), false);
  S.everWelcomed = true;
  addRequest(S, 'event', { kind: 'blur' });
  S.fetching.add(0);
  S.startSent = true;
  connectionLost(S, 42);
  assert.equal(S.offlineSince, 42);
  assert.equal(S.ids.size, 0);
  assert.equal(S.fetching.size, 0);
  assert.equal(S.startSent, false);
  connectionLost(S, 99);
  assert.equal(S.offlineSince, 42); // the first loss counts
  addRequest(S, 'answer', { q: 'q1', value: 'a' });
  S.deferred.set('q2', ['a']);
  S.submitting = true;
  assert.deepEqual(applyFinal(S, 'terminated', 'cheating'), { was: 'active' });
  assert.equal(isFinal(S), true);
  assert.equal(S.endReason, 'cheating');
  assert.equal(S.pending.length, 0);
  assert.equal(S.deferred.size, 0);
  assert.equal(S.submitting, false);
  assert.equal(isLocked(S), true);
});

test('remaining time, warnings, submit summary', () => {
  const S = active();
  assert.equal(remainingMs(S, 1_300_000), 300_000);
  assert.deepEqual(dueWarnings(S, 300_000), [300_000]);
  assert.deepEqual(dueWarnings(S, 299_000), []);
  assert.deepEqual(dueWarnings(S, 30_000), [60_000]);
  applyState(S, 'paused');
  S.frozenMs = 1234;
  assert.equal(remainingMs(S, 0), 1234);
  const R = createState();
  assert.equal(remainingMs(R, 0), null);
  applyWelcome(R, welcome({ state: 'ready' }));
  assert.equal(remainingMs(R, 0), 600_000);
  assert.equal(isLinear(R), false);

  const T = active();
  T.answers.set('q1', 'a');
  T.answers.set('q3', '   ');
  T.flags.add('q3');
  addRequest(T, 'answer', { q: 'q1', value: 'a' });
  assert.deepEqual(submitSummary(T), { answered: 1, unanswered: [1, 2], flagged: [2], saving: 1 });
});
