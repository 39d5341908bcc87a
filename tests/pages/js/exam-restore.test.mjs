// What the server acknowledged, kept on the device, and sent again when the server lost it
// (handlers/pages/exam/restore.js with state.js, and lib/journal.js's saved record):
// docs/protocol.md, "Loss is detected, never silent".

import test from 'node:test';
import assert from 'node:assert/strict';

import {
  createState, addRequest, applyWelcome, applyAck, applyError, applyBatch, applyTime, applyState, applyFinal,
  saveStatusOf, isLocked, savedRecord, helloEvidence, previousRecord, isLoss, owedOf, restoreDue, restoreRequests,
} from '../../../handlers/pages/exam/state.js';
import {
  savedKey, attemptKey, EMPTY_SAVED, readSaved, writeSaved, clearSaved, readAttemptOf, writeAttemptOf,
} from '../../../handlers/pages/lib/journal.js';
import { MemoryStorage } from './fakes.mjs';

const FREE = { id: 'net-101', title: 'Networking', duration_ms: 600_000, total: 3, navigation: 'free', show_result: true };
const LINEAR = { ...FREE, navigation: 'linear' };

function welcome(over = {}) {
  return {
    t: 'welcome', attempt: 'A1', exam: FREE, state: 'active', server_time: 1_000_000, deadline: 1_600_000,
    remaining_ms: 600_000, last_id: 0, answers: {}, flags: [], index: 0, ticket: 't1.first', ...over,
  };
}

const q = (index, id, type = 'single') => ({ index, id, type, prompt: `P${index}`, options: [{ id: 'a', text: 'A' }], points: 1 });
// the candidate's order: q3 first, then q1, then q2 (a shuffled exam)
const BATCH = { t: 'batch', from: 0, questions: [q(0, 'q3'), q(1, 'q1'), q(2, 'q2')], total: 3 };

/** A page that answered q1 and q3 and flagged q2, every request acknowledged (ids 2..4 after start 1). */
function worked(exam = FREE) {
  const S = createState({ now: () => 1_000_000 });
  applyWelcome(S, welcome({ exam, last_id: 1 }));
  applyBatch(S, BATCH);
  for (const [t, f] of [['answer', { q: 'q3', value: 'c' }], ['answer', { q: 'q1', value: 'a' }], ['flag', { q: 'q2', on: true }],
    ['goto', { index: 2 }]]) {
    const r = addRequest(S, t, f);
    applyAck(S, { t: 'ack', id: r.id });
  }
  return S;
}

test('journal: the saved record and the attempt of a user, kept and read back; malformed is nothing', () => {
  const store = new MemoryStorage();
  assert.deepEqual(readSaved(store, 'A1'), EMPTY_SAVED);
  const record = { acked: 5, ticket: 't1.x', answers: { q1: 'a', q2: null }, flags: ['q3'], index: 2, restoring: true };
  writeSaved(store, 'A1', record);
  assert.equal(store.getItem(savedKey('A1')), JSON.stringify(record));
  assert.deepEqual(readSaved(store, 'A1'), record);
  store.setItem(savedKey('A1'), JSON.stringify({ acked: -3, ticket: 7, answers: [1], flags: 'q1', index: 1.5, restoring: 'yes' }));
  assert.deepEqual(readSaved(store, 'A1'), EMPTY_SAVED);
  store.setItem(savedKey('A1'), '{not json');
  assert.deepEqual(readSaved(store, 'A1'), EMPTY_SAVED);
  clearSaved(store, 'A1');
  assert.equal(store.getItem(savedKey('A1')), null);

  assert.equal(readAttemptOf(store, 'net-101', 'u1'), null);
  writeAttemptOf(store, 'net-101', 'u1', 'A1');
  assert.equal(store.getItem(attemptKey('net-101', 'u1')), 'A1');
  assert.equal(readAttemptOf(store, 'net-101', 'u1'), 'A1');
  assert.equal(readAttemptOf(store, 'net-101', 'u2'), null);
  writeAttemptOf(store, 'net-101', 'u1', null);
  assert.equal(readAttemptOf(store, 'net-101', 'u1'), null);
  writeSaved(null, 'A1', record); // no storage: nothing kept, nothing thrown
  assert.deepEqual(readSaved(null, 'A1'), EMPTY_SAVED);
});

test('hello evidence: only what was acknowledged, nothing for a client that never was', () => {
  assert.deepEqual(helloEvidence(EMPTY_SAVED), {});
  assert.deepEqual(helloEvidence(null), {});
  assert.deepEqual(helloEvidence({ acked: 0, ticket: 't1.x' }), { ticket: 't1.x' });
  assert.deepEqual(helloEvidence({ acked: 9, ticket: null }), { acked: 9 });
  assert.deepEqual(helloEvidence({ acked: 9, ticket: 't1.x' }), { acked: 9, ticket: 't1.x' });
});

test('what was acknowledged: acks, flags, position and the newest ticket are kept', () => {
  const S = worked();
  assert.equal(S.acked, 5);
  assert.equal(S.ticket, 't1.first');
  applyTime(S, { t: 'time', server_time: 1_000_100, deadline: 1_600_000, remaining_ms: 599_900, state: 'active', ticket: 't1.newer' });
  assert.equal(S.ticket, 't1.newer');
  applyTime(S, { t: 'time', server_time: 1_000_200, deadline: 1_600_000, remaining_ms: 599_800, state: 'active' });
  assert.equal(S.ticket, 't1.newer'); // a server without tickets changes nothing
  assert.deepEqual(savedRecord(S), {
    acked: 5, ticket: 't1.newer', answers: { q3: 'c', q1: 'a' }, flags: ['q2'], index: 2, restoring: false,
  });
  // unacknowledged work is not in it; a refused request consumed no id
  const r = addRequest(S, 'answer', { q: 'q2', value: 'a' });
  assert.equal(savedRecord(S).answers.q2, undefined);
  applyError(S, { t: 'error', id: r.id, code: 'bad_value' });
  assert.equal(S.acked, 5);
  assert.equal(previousRecord(S, 'A1', EMPTY_SAVED).acked, 5);
  assert.equal(previousRecord(S, 'A1', { ...EMPTY_SAVED, acked: 9 }).acked, 9); // another tab went further
  assert.equal(previousRecord(S, 'B2', EMPTY_SAVED), EMPTY_SAVED); // another attempt: what storage says
});

test('loss: a welcome that says so (or shows it) owes everything the server lacks, shown as saving', () => {
  assert.equal(isLoss({ lost: true, last_id: 9 }, { acked: 5 }), true);
  assert.equal(isLoss({ last_id: 4 }, { acked: 5 }), true);
  assert.equal(isLoss({ last_id: 5 }, { acked: 5 }), false);
  assert.equal(isLoss({}, EMPTY_SAVED), false);

  const S = worked();
  S.welcomed = false; // the connection dropped; the server came back without the attempt
  const r = applyWelcome(S, welcome({ last_id: 5, lost: true, ticket: 't1.again' }));
  assert.equal(r.lost, true);
  assert.equal(S.ticket, 't1.again');
  assert.deepEqual([...S.restore.answers], [['q3', 'c'], ['q1', 'a']]);
  assert.deepEqual([...S.restore.flags], [['q2', true]]);
  assert.equal(S.restore.index, null); // a free exam: the position is the page's own
  assert.deepEqual([...S.answers], [['q3', 'c'], ['q1', 'a']]); // the candidate still sees them
  assert.ok(S.flags.has('q2'));
  assert.equal(saveStatusOf(S, 'q1'), 'saving');
  assert.equal(isLocked(S), true); // nothing may overtake them
  // what storage keeps meanwhile is still everything owed (a free exam's position is the server's)
  assert.deepEqual(savedRecord(S), {
    acked: 5, ticket: 't1.again', answers: { q3: 'c', q1: 'a' }, flags: ['q2'], index: 0, restoring: true,
  });

  // sent at once (a free exam, running), in question order; then nothing more to send
  assert.equal(restoreDue(S), true);
  const sent = restoreRequests(S);
  assert.deepEqual(sent, [['answer', { q: 'q3', value: 'c' }], ['answer', { q: 'q1', value: 'a' }], ['flag', { q: 'q2', on: true }]]);
  assert.equal(isLocked(S), false);
  assert.deepEqual(restoreRequests(S), []);
  const ids = sent.map(([t, f]) => addRequest(S, t, f).id);
  assert.ok(ids.every((id) => id > 5)); // fresh ids: the acknowledged ones stay used
  applyAck(S, { t: 'ack', id: ids[0] });
  applyAck(S, { t: 'ack', id: ids[1] });
  assert.notEqual(S.restore, null);
  applyAck(S, { t: 'ack', id: ids[2] });
  assert.equal(S.restore, null); // settled
  assert.equal(saveStatusOf(S, 'q1'), 'saved');
  assert.equal(savedRecord(S).restoring, false);
});

test('loss: a newer change of the candidate wins; what the server still has is not sent; a cleared answer is cleared again', () => {
  const S = worked();
  const clear = addRequest(S, 'answer', { q: 'q3', value: null });
  applyAck(S, { t: 'ack', id: clear.id }); // acknowledged: q3 cleared
  const newer = addRequest(S, 'answer', { q: 'q1', value: 'b' }); // not acknowledged when the connection dropped
  S.welcomed = false;
  // a failover kept an older copy: q3 still answered, q1 as it was, no flag, ids up to 4
  applyWelcome(S, welcome({ last_id: 6, lost: true, answers: { q3: 'c', q1: 'a' }, flags: [] }));
  assert.deepEqual([...S.restore.answers], [['q3', null]]);
  assert.deepEqual(S.pending.map((e) => e.id), [newer.id]); // resent by the journal, with its own id
  assert.deepEqual(restoreRequests(S), [['answer', { q: 'q3', value: null }], ['flag', { q: 'q2', on: true }]]);
});

test('loss in a linear exam: sent once every position is known, in question order, then the position', () => {
  const S = worked(LINEAR);
  const fresh = createState({ now: () => 2_000_000 }); // a reload: only storage remains
  const stored = savedRecord(S);
  const r = applyWelcome(fresh, welcome({ exam: LINEAR, last_id: 5, lost: true }), { list: [], last: 5, saved: stored });
  assert.equal(r.lost, true);
  assert.equal(fresh.restore.index, 2);
  assert.equal(fresh.index, 2);
  fresh.fetching.add(0);
  assert.equal(restoreDue(fresh), false); // positions unknown yet
  assert.deepEqual(restoreRequests(fresh), []);
  applyBatch(fresh, BATCH);
  assert.equal(restoreDue(fresh), true);
  assert.deepEqual(restoreRequests(fresh), [
    ['answer', { q: 'q3', value: 'c' }], ['answer', { q: 'q1', value: 'a' }], ['flag', { q: 'q2', on: true }], ['goto', { index: 2 }],
  ]);
});

test('held: nothing is sent while the attempt is paused; it goes when a proctor resumes it', () => {
  const S = worked();
  S.welcomed = false;
  applyWelcome(S, welcome({ state: 'paused', last_id: 5, lost: true, deadline: null }));
  assert.equal(restoreDue(S), false);
  assert.deepEqual(restoreRequests(S), []);
  applyState(S, 'active');
  assert.equal(restoreRequests(S).length, 3);
});

test('a reload in the middle of a restore goes on with what is still owed', () => {
  const S = worked();
  S.welcomed = false;
  applyWelcome(S, welcome({ last_id: 5, lost: true }));
  const sent = restoreRequests(S).map(([t, f]) => addRequest(S, t, f));
  applyAck(S, { t: 'ack', id: sent[0].id }); // q3 is back; q1 and the flag were not acknowledged yet
  const stored = savedRecord(S);
  assert.equal(stored.restoring, true);
  assert.deepEqual(stored.answers, { q3: 'c', q1: 'a' });

  const page = createState({ now: () => 2_000_000 });
  const pending = S.pending.map((e) => ({ id: e.id, message: e.message }));
  const r = applyWelcome(page, welcome({ last_id: sent[0].id, answers: { q3: 'c' } }), { list: pending, last: sent[2].id, saved: stored });
  assert.equal(r.lost, false); // the server has the attempt now...
  assert.notEqual(page.restore, null); // ...but not yet all that was owed
  applyBatch(page, BATCH);
  assert.deepEqual(restoreRequests(page), []); // q1 and the flag are in the journal already, resent with their ids
  applyAck(page, { t: 'ack', id: sent[1].id });
  applyAck(page, { t: 'ack', id: sent[2].id });
  assert.equal(page.restore, null);
});

test('a refusal settles what was owed (the engine decides: nothing bypasses the deadline)', () => {
  const S = worked();
  S.welcomed = false;
  applyWelcome(S, welcome({ last_id: 5, lost: true }));
  const sent = restoreRequests(S).map(([t, f]) => addRequest(S, t, f));
  for (const r of sent) applyError(S, { t: 'error', id: r.id, code: 'time_up' });
  assert.equal(S.restore, null);
  assert.equal(S.answers.get('q1'), null); // shown as not saved
});

test('no loss, nothing owed; a final attempt keeps nothing', () => {
  const S = worked();
  S.welcomed = false;
  applyWelcome(S, welcome({ last_id: 5, answers: { q3: 'c', q1: 'a' }, flags: ['q2'], index: 2 }));
  assert.equal(S.restore, null);
  assert.equal(owedOf(savedRecord(S), welcome({ last_id: 5, answers: { q3: 'c', q1: 'a' }, flags: ['q2'] }), false), null);
  S.welcomed = false;
  const r = applyWelcome(S, welcome({ state: 'submitted', last_id: 7, lost: true }));
  assert.equal(r.final, true);
  assert.equal(r.lost, false);
  assert.equal(S.restore, null);
  assert.equal(S.ticket, null);
  applyFinal(S, 'submitted', 'submitted');
  assert.equal(S.restore, null);
});
