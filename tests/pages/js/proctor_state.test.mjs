// The proctor dashboard's pure state module: snapshot, updates, sort, filter, counts, selection.
// Run: node --test tests/pages/js/

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  applySnapshot, applyUpdate, ariaSort, countIn, counts, createState, displayName, leftMs, matches,
  orderRows, select, setFilterState, setFilterText, targetName, toggleSort,
} from '../../../handlers/pages/proctor/state.js';

const NOW = 1_800_000_000_000;

function row(attempt, fields = {}) {
  return {
    attempt, user: `u-${attempt}`, name: `Name ${attempt}`, state: 'active', connected: true, answered: 0, total: 6,
    flagged: 0, index: 0, deadline: NOW + 600_000, remaining_ms: 600_000, events: 0, reason: null, score: null,
    percent: null, ...fields,
  };
}

function loaded(rows) {
  const state = createState();
  applySnapshot(state, rows, NOW);
  return state;
}

const ids = (rows) => rows.map((r) => r.attempt);

test('a snapshot replaces every row and skips entries without an attempt id', () => {
  const state = loaded([row('a'), row('b')]);
  assert.deepEqual([...state.rows.keys()], ['a', 'b']);
  const rows = applySnapshot(state, [row('c'), null, { name: 'no id' }, row(7)], NOW + 1);
  assert.deepEqual(ids(rows), ['c', '7']);
  assert.deepEqual([...state.rows.keys()], ['c', '7']);
  assert.equal(state.rows.get('c').seenAt, NOW + 1);
  assert.equal(applySnapshot(state, undefined, NOW).length, 0);
  assert.equal(state.rows.size, 0);
});

test('only the known fields of a row are kept', () => {
  const state = loaded([{ ...row('a'), t: 'x', html: '<b>', seenAt: 5 }]);
  const a = state.rows.get('a');
  assert.equal(a.html, undefined);
  assert.equal(a.t, undefined);
  assert.equal(a.seenAt, NOW);
  assert.equal(a.name, 'Name a');
});

test('an update merges only the fields it carries (coalesced updates keep the others)', () => {
  const state = loaded([row('a', { answered: 1, flagged: 2 })]);
  const a = state.rows.get('a');
  const out = applyUpdate(state, { t: 'update', attempt: 'a', answered: 3 }, NOW + 500);
  assert.equal(out.row, a);
  assert.equal(out.created, false);
  assert.equal(out.event, null);
  assert.equal(a.answered, 3);
  assert.equal(a.flagged, 2);
  assert.equal(a.seenAt, NOW, 'no clock field: seenAt unchanged');
  // the latest values win, in the order received
  applyUpdate(state, { attempt: 'a', answered: 4, state: 'paused', remaining_ms: 123_000 }, NOW + 900);
  applyUpdate(state, { attempt: 'a', answered: 5 }, NOW + 1000);
  assert.equal(a.answered, 5);
  assert.equal(a.state, 'paused');
  assert.equal(a.remaining_ms, 123_000);
  assert.equal(a.seenAt, NOW + 900);
  // a null clears a field
  applyUpdate(state, { attempt: 'a', deadline: null }, NOW + 1100);
  assert.equal(a.deadline, null);
});

test('an update for an unknown attempt adds a row with defaults; one without an id is ignored', () => {
  const state = loaded([]);
  const out = applyUpdate(state, { attempt: 42, name: 'New', connected: true }, NOW);
  assert.equal(out.created, true);
  assert.equal(out.row.attempt, '42');
  assert.equal(out.row.state, 'ready');
  assert.equal(out.row.answered, 0);
  assert.equal(out.row.connected, true);
  assert.equal(state.rows.get('42'), out.row);
  assert.equal(applyUpdate(state, { name: 'x' }, NOW), null);
  assert.equal(applyUpdate(state, { attempt: { a: 1 } }, NOW), null);
  assert.equal(applyUpdate(state, null, NOW), null);
  assert.equal(state.rows.size, 1);
});

test('events: the count comes from the update, else each event counts one', () => {
  const state = loaded([row('a', { events: 2 })]);
  const ev = { kind: 'blur', detail: { away_ms: 10 }, at: NOW };
  const out = applyUpdate(state, { attempt: 'a', events: 7, event: ev }, NOW);
  assert.equal(out.event, ev);
  assert.equal(out.row.events, 7);
  applyUpdate(state, { attempt: 'a', event: { kind: 'copy' } }, NOW);
  assert.equal(out.row.events, 8);
  applyUpdate(state, { attempt: 'a', event: 'not an object' }, NOW);
  assert.equal(out.row.events, 8);
});

test('names: the display name falls back to the user id, then a placeholder', () => {
  assert.equal(displayName({ name: 'Ada', user: 'u1' }), 'Ada');
  assert.equal(displayName({ name: '  ', user: 'u1' }), 'u1');
  assert.equal(displayName({ name: null, user: '' }), 'Unnamed candidate');
  assert.equal(targetName({ name: 'Ada', user: 'u1' }), 'Ada (u1)');
  assert.equal(targetName({ name: '', user: 'u1' }), 'u1');
});

test('time left: from the deadline and clock offset while active, frozen otherwise, none once final', () => {
  const offset = 2000; // the server clock is 2 s ahead
  assert.equal(leftMs(row('a', { deadline: NOW + 60_000 }), NOW, offset), 58_000);
  assert.equal(leftMs(row('a', { deadline: NOW - 5 }), NOW, 0), 0);
  assert.equal(leftMs({ ...row('a', { deadline: null, remaining_ms: 30_000 }), seenAt: NOW - 10_000 }, NOW, 0), 20_000);
  assert.equal(leftMs(row('a', { state: 'paused', remaining_ms: 90_000 }), NOW + 50_000, 0), 90_000);
  assert.equal(leftMs(row('a', { state: 'ready', remaining_ms: null }), NOW, 0), null);
  assert.equal(leftMs(row('a', { state: 'submitted' }), NOW, 0), null);
  assert.equal(leftMs(row('a', { deadline: null, remaining_ms: null }), NOW, 0), null);
});

test('filter by state and by text (name, user id or attempt id, any case)', () => {
  const state = loaded([
    row('a', { name: 'Amy Adams', user: 'u-amy' }),
    row('b', { name: 'Bob Ross', user: 'u-bob', state: 'ready' }),
    row('c', { name: 'Cy', state: 'paused', connected: false }),
    row('d', { name: 'Di', state: 'submitted', connected: false }),
    row('e', { name: 'Ed', state: 'expired' }),
    row('f', { name: 'Flo', connected: false }),
  ]);
  const shown = () => ids(orderRows(state, NOW, 0));
  assert.deepEqual(shown(), ['a', 'b', 'c', 'd', 'e', 'f']);
  for (const [filter, want] of [['active', ['a', 'f']], ['paused', ['c']], ['ready', ['b']], ['finished', ['d', 'e']],
    ['disconnected', ['c', 'f']], ['all', ['a', 'b', 'c', 'd', 'e', 'f']]]) {
    setFilterState(state, filter);
    assert.deepEqual(shown(), want, filter);
  }
  setFilterText(state, '  BOB ');
  assert.equal(state.filter.text, 'bob');
  assert.deepEqual(shown(), ['b']);
  setFilterText(state, 'u-amy');
  assert.deepEqual(shown(), ['a']);
  setFilterText(state, 'f');
  assert.deepEqual(shown(), ['f'], 'the attempt id matches too');
  assert.equal(matches(row('x', { name: 'X' }), { state: 'active', text: 'zzz' }), false);
});

test('sort by name (collated, numeric), ties by attempt id; a second click reverses', () => {
  const state = loaded([
    row('z', { name: 'Zed Shaw' }), row('a2', { name: 'amy adams' }), row('b', { name: 'Bob Ross' }),
    row('n10', { name: 'Cand 10' }), row('n9', { name: 'Cand 9' }), row('a1', { name: 'Amy Adams' }),
  ]);
  assert.deepEqual(ids(orderRows(state, NOW, 0)), ['a1', 'a2', 'b', 'n9', 'n10', 'z']);
  assert.equal(ariaSort(state.sort, 'name'), 'ascending');
  toggleSort(state, 'name');
  assert.equal(ariaSort(state.sort, 'name'), 'descending');
  assert.equal(ariaSort(state.sort, 'state'), 'none');
  assert.deepEqual(ids(orderRows(state, NOW, 0)), ['z', 'n10', 'n9', 'b', 'a2', 'a1']);
  // a renamed candidate moves
  applyUpdate(state, { attempt: 'z', name: 'Aaron' }, NOW);
  toggleSort(state, 'name');
  assert.deepEqual(ids(orderRows(state, NOW, 0)).slice(0, 2), ['z', 'a1']);
});

test('sort by the other columns, ties by name', () => {
  const state = loaded([
    row('a', { name: 'A', state: 'ready', connected: true, answered: 1, total: 2, flagged: 3, index: 4, events: 1, deadline: null, remaining_ms: 600_000 }),
    row('b', { name: 'B', state: 'active', connected: false, answered: 1, total: 4, flagged: 0, index: 1, events: 5, deadline: NOW + 60_000 }),
    row('c', { name: 'C', state: 'submitted', connected: false, answered: 6, total: 6, flagged: 1, index: 5, events: 0 }),
    row('d', { name: 'D', state: 'paused', connected: true, answered: 0, total: 6, flagged: 0, index: 2, events: 5, remaining_ms: 30_000 }),
  ]);
  const by = (key) => {
    state.sort = { key: 'name', dir: 1 };
    toggleSort(state, key);
    assert.deepEqual(state.sort, key === 'name' ? { key, dir: -1 } : { key, dir: 1 });
    return ids(orderRows(state, NOW, 0));
  };
  assert.deepEqual(by('state'), ['b', 'd', 'a', 'c']);
  assert.deepEqual(by('connected'), ['a', 'd', 'b', 'c']);
  assert.deepEqual(by('answered'), ['d', 'b', 'a', 'c']);
  assert.deepEqual(by('flagged'), ['b', 'd', 'c', 'a']);
  assert.deepEqual(by('question'), ['a', 'c', 'b', 'd'], 'not started and finished sort first, then by question');
  assert.deepEqual(by('left'), ['d', 'b', 'a', 'c'], 'finished (no time) sorts last');
  assert.deepEqual(by('events'), ['c', 'a', 'b', 'd']);
  toggleSort(state, 'events');
  assert.deepEqual(ids(orderRows(state, NOW, 0)), ['d', 'b', 'a', 'c'], 'descending: ties by name reversed too');
});

test('sort by time left follows the clock and the offset', () => {
  const state = loaded([
    row('a', { name: 'A', deadline: NOW + 100_000 }),
    row('b', { name: 'B', deadline: null, remaining_ms: 50_000 }),
  ]);
  toggleSort(state, 'left');
  assert.deepEqual(ids(orderRows(state, NOW, 0)), ['b', 'a']);
  // 60 s later by the server clock: a has 40 s, b (counting from when it was seen) has none
  assert.deepEqual(ids(orderRows(state, NOW, 60_000)), ['a', 'b']);
});

test('counts and selection', () => {
  const state = loaded([
    row('a'), row('b', { state: 'paused', connected: false }), row('c', { state: 'ready' }),
    row('d', { state: 'terminated', connected: false }), row('e', { state: 'expired' }),
  ]);
  assert.deepEqual(counts(state), { total: 5, active: 1, paused: 1, ready: 1, connected: 3, finished: 2 });
  assert.equal(countIn(state, ['ready', 'active', 'paused']), 3);
  assert.equal(countIn(state, new Set(['paused'])), 1);
  assert.deepEqual(select(state, state.rows.get('a')), { attempt: 'a', name: 'Name a' });
  assert.deepEqual(state.target, { attempt: 'a', name: 'Name a' });
  assert.deepEqual(select(state, null), { all: true });
});
