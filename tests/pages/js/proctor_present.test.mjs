// What the proctor dashboard shows (texts and classes) and what its actions send on the wire.
// Run: node --test tests/pages/js/

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { newRow } from '../../../handlers/pages/proctor/state.js';
import {
  emptyText, examHeading, feedEntry, leftCell, rowButtons, rowCells, shownText,
} from '../../../handlers/pages/proctor/present.js';
import {
  abandon, begin, checkReason, checkText, createRequests, extendDialogText, extendRequest, fatalCloseText,
  messageRequest, parseMinutes, pauseAllRequest, pauseAllText, pauseRequest, resumeAllRequest,
  resumeRequest, settleAck, settleError, terminateRequest,
} from '../../../handlers/pages/proctor/actions.js';

const NOW = 1_800_000_000_000;
const row = (fields) => ({ ...newRow('a1', NOW), user: 'u1', name: 'Ada', ...fields });

test('row cells: names, state badge, connection, progress and counters', () => {
  const c = rowCells(row({ state: 'active', connected: true, answered: 2, total: 6, flagged: 1, index: 2, events: 3 }), 9);
  assert.equal(c.name, 'Ada');
  assert.equal(c.user, 'u1');
  assert.equal(c.state, 'active');
  assert.equal(c.badgeCls, 'badge badge--active');
  assert.equal(c.extra, '');
  assert.deepEqual([c.dot, c.conn, c.connCls], ['●', 'yes', 'conn-cell is-yes']);
  assert.equal(c.answered, '2 / 6');
  assert.equal(c.pct, 33);
  assert.deepEqual([c.flagged, c.flagCls], ['1', 'cv flag-some']);
  assert.equal(c.question, '3');
  assert.deepEqual([c.events, c.eventsCls], ['3', 'cv events-some']);
  assert.deepEqual([c.final, c.lost], [false, false]);

  const ready = rowCells(row({ name: '', state: 'ready', total: null, index: 0 }), 5);
  assert.equal(ready.name, 'u1');
  assert.equal(ready.user, '', 'the user id is not repeated under itself');
  assert.equal(ready.state, 'not started');
  assert.equal(ready.answered, '0 / 5', 'the exam total when the row has none');
  assert.equal(ready.question, '—');
  assert.deepEqual([ready.dot, ready.conn, ready.lost], ['○', 'no', true]);
  assert.deepEqual([ready.flagCls, ready.eventsCls], ['cv', 'cv']);

  assert.equal(rowCells(row({ state: 'weird' }), 1).badgeCls, 'badge badge--unknown');
});

test('row cells: a finished attempt shows its score, percent and reason', () => {
  const c = rowCells(row({ state: 'terminated', score: 2.3333, percent: 38.8889, reason: 'Phone on the desk', index: 3 }), 6);
  assert.equal(c.extra, '2.33\u00a0points · 38.9\u00a0% · Phone on the desk');
  assert.equal(c.question, '—');
  assert.deepEqual([c.final, c.lost], [true, false]);
  assert.equal(rowCells(row({ state: 'expired', reason: 'expired', score: 1, percent: 100 }), 1).extra, '1\u00a0point · 100\u00a0%');
  assert.equal(rowCells(row({ state: 'paused', reason: 'bathroom' }), 1).extra, 'bathroom');
  assert.equal(rowCells(row({ state: 'active', reason: 'x', score: 3 }), 1).extra, '');
});

test('row buttons follow the state', () => {
  const active = rowButtons(row({ state: 'active' }));
  assert.deepEqual([active.pause.hidden, active.pause.disabled, active.resume.hidden], [false, false, true]);
  assert.equal(active.terminate.label, 'Terminate the attempt of Ada');
  assert.equal(active.extend.label, 'Extend time for Ada');
  const paused = rowButtons(row({ state: 'paused' }));
  assert.deepEqual([paused.pause.hidden, paused.resume.hidden, paused.resume.disabled], [true, false, false]);
  const ready = rowButtons(row({ state: 'ready' }));
  assert.deepEqual([ready.pause.disabled, ready.extend.disabled, ready.message.disabled], [true, false, false]);
  const done = rowButtons(row({ state: 'submitted' }));
  for (const b of ['extend', 'pause', 'message', 'terminate']) assert.equal(done[b].disabled, true, b);
});

test('time left: text and urgency', () => {
  assert.deepEqual(leftCell(row({ state: 'active', deadline: NOW + 600_000 }), NOW, 0), { text: '10:00', cls: 'cv left' });
  assert.deepEqual(leftCell(row({ state: 'active', deadline: NOW + 299_500 }), NOW, 0), { text: '05:00', cls: 'cv left is-low' });
  assert.deepEqual(leftCell(row({ state: 'active', deadline: NOW + 60_000 }), NOW, 0), { text: '01:00', cls: 'cv left is-critical' });
  assert.deepEqual(leftCell(row({ state: 'paused', remaining_ms: 3_723_000 }), NOW, 0), { text: '1:02:03', cls: 'cv left is-frozen' });
  assert.deepEqual(leftCell(row({ state: 'expired' }), NOW, 0), { text: '—', cls: 'cv left is-none' });
  assert.equal(examHeading({ duration_ms: 90 * 60000 }, 'x').meta, '1 h 30 min · exam id x');
});

test('feed entries: detail as JSON, truncated to 120 characters with the whole on hover', () => {
  const e = feedEntry(row({}), { kind: 'blur', detail: { away_ms: 4200, long: 'x'.repeat(300) }, at: NOW }, 0);
  assert.equal(e.who, 'Ada');
  assert.equal(e.kind, 'blur');
  assert.equal(e.alert, true);
  assert.equal(e.detail.length, 120);
  assert.ok(e.detail.endsWith('…') && e.detail.startsWith('{"away_ms":4200'));
  assert.ok(e.title.startsWith('{"away_ms":4200') && e.title.length > 120);
  assert.match(e.time, /^\d\d:\d\d:\d\d$/);
  assert.equal(e.iso, new Date(NOW).toISOString());
  const plain = feedEntry(row({}), { kind: 'focus' }, NOW + 5);
  assert.deepEqual([plain.at, plain.alert, plain.detail, plain.title], [NOW + 5, false, '', null]);
  assert.equal(feedEntry(row({}), { kind: 3 }, NOW).kind, '3');
  assert.equal(feedEntry(row({}), {}, NOW).kind, 'event');
  // the server lost acknowledged work of the attempt (docs/protocol.md, "Loss is detected, never silent")
  const lost = feedEntry(row({}), { kind: 'attempt_lost', detail: { lost: 'missing', acked: 4, clock: 'held' }, at: NOW, by: 'server' }, NOW);
  assert.equal(lost.alert, true);
  assert.ok(lost.detail.includes('"clock":"held"'));
});

test('heading and table footer texts', () => {
  assert.deepEqual(examHeading({ id: 'pg1', title: 'Networking', total: 6, duration_ms: 600000, navigation: 'free' }, 'pg1'),
    { title: 'Networking', meta: '6 questions · 10 min · free navigation · exam id pg1' });
  assert.deepEqual(examHeading(null, 'x1'), { title: 'x1', meta: 'exam id x1' });
  assert.equal(examHeading({ total: 1 }, 'x').meta, '1 question · exam id x');
  assert.equal(shownText(3, 3), '3 candidates');
  assert.equal(shownText(1, 1), '1 candidate');
  assert.equal(shownText(1, 3), 'Showing 1 of 3');
  assert.match(emptyText(0), /No candidates yet/);
  assert.match(emptyText(2), /No candidate matches/);
});

test('requests: the frames on the wire', () => {
  const one = { attempt: 'a1', name: 'Ada' };
  const reqs = createRequests();
  assert.deepEqual(begin(reqs, extendRequest(one, 10)), { t: 'extend', attempt: 'a1', seconds: 600, id: 1 });
  assert.deepEqual(begin(reqs, extendRequest({ all: true }, 3)), { t: 'extend', seconds: 180, all: true, id: 2 });
  assert.deepEqual(begin(reqs, pauseRequest(row({}))), { t: 'pause', attempt: 'a1', id: 3 });
  assert.deepEqual(begin(reqs, resumeRequest(row({}))), { t: 'resume', attempt: 'a1', id: 4 });
  assert.deepEqual(begin(reqs, terminateRequest(one, 'Phone')), { t: 'terminate', attempt: 'a1', reason: 'Phone', id: 5 });
  assert.deepEqual(begin(reqs, messageRequest(one, 'Hi')), { t: 'message', attempt: 'a1', text: 'Hi', id: 6 });
  assert.deepEqual(begin(reqs, pauseAllRequest()), { t: 'pause', all: true, id: 7 });
  assert.deepEqual(begin(reqs, resumeAllRequest()), { t: 'resume', all: true, id: 8 });
  assert.equal(reqs.size, 8);
  reqs.reset();
  assert.deepEqual(begin(reqs, pauseAllRequest()), { t: 'pause', all: true, id: 1 }, 'ids start again per connection');
});

test('requests: acks, errors and a lost connection in the status line', () => {
  const reqs = createRequests();
  const one = { attempt: 'a1', name: 'Ada' };
  begin(reqs, extendRequest(one, 10));
  begin(reqs, extendRequest({ all: true }, 3));
  begin(reqs, messageRequest(one, 'Hi'));
  begin(reqs, messageRequest(one, 'Hi'));
  begin(reqs, pauseAllRequest());
  assert.equal(settleAck(reqs, { t: 'ack', id: 1 }), 'Extended Ada by 10 min.');
  assert.equal(settleAck(reqs, { t: 'ack', id: 1 }), null, 'answered once');
  assert.equal(settleAck(reqs, { t: 'ack', id: 2, applied: 2, skipped: 1 }), 'Added 3 min to 2 attempts (1 skipped: not in a state that allows it).');
  assert.equal(settleAck(reqs, { id: 3, connected: false }), 'Message recorded, but Ada is not connected and will not see it.');
  assert.equal(settleAck(reqs, { id: 4, connected: true }), 'Message delivered to Ada.');
  assert.equal(settleError(reqs, { t: 'error', id: 5, code: 'not_active', message: 'final' }),
    'Could not pause everyone: the attempt is not in a state that allows this (final) [not_active].');
  assert.equal(settleError(reqs, { code: 'weird' }), 'Server error: weird [weird].');
  assert.equal(abandon(reqs), null);
  begin(reqs, pauseAllRequest());
  begin(reqs, terminateRequest(one, 'x'));
  assert.equal(abandon(reqs), 'Connection lost before the server answered: pause everyone; terminate Ada. Check the table before retrying.');
  assert.equal(reqs.size, 0);
  const bulk = createRequests();
  begin(bulk, resumeAllRequest());
  assert.equal(settleAck(bulk, { id: 1 }), 'Resumed every attempt it applies to.');
});

test('dialog input checks and texts', () => {
  assert.equal(parseMinutes(' 10 '), 10);
  for (const bad of ['', '0', '1441', '2.5', 'ten', '-3']) assert.equal(parseMinutes(bad), null, bad);
  assert.equal(parseMinutes('1440'), 1440);
  assert.equal(checkReason('  Phone  '), 'Phone');
  assert.equal(checkReason('   '), null);
  assert.equal(checkReason('x'.repeat(201)), null);
  assert.equal(checkText('x'.repeat(2000)).length, 2000);
  assert.equal(checkText('x'.repeat(2001)), null);
  assert.equal(extendDialogText('Ada (u1)', 0).text, 'Adds time to the clock of Ada (u1).');
  assert.match(extendDialogText(null, 2).text, /\(2 candidates now\)/);
  assert.equal(extendDialogText(null, 2).confirm, 'Extend everyone');
  assert.match(pauseAllText(2).text, /2 candidates active/);
});

test('refusals: said once, the server reason only when it adds something', () => {
  assert.deepEqual(fatalCloseText(4404, 'no such exam'), { short: 'Refused (4404)', text: 'No such exam (close 4404).' });
  assert.deepEqual(fatalCloseText(4403, 'token limited to other exams'),
    { short: 'Refused (4403)', text: 'Not allowed: this token may not proctor this exam (close 4403: token limited to other exams).' });
  assert.equal(fatalCloseText(1006, ''), null);
  assert.equal(fatalCloseText(4409, ''), null);
});
