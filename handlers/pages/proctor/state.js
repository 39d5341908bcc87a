// The proctor dashboard's state: the attempts of one exam as plain data.
//
// Pure: no DOM, no sockets, no timers, no clock reads (the time is always an
// argument: `now` is the browser's Date.now(), `offset` the server clock minus
// the browser's). The functions update the state object they are given in
// place (a dashboard of thousands of rows cannot copy them on every update)
// and return what changed, so the views know what to repaint.
//
// API
//   createState() -> state                     { rows: Map<id, row>, sort, filter, target, ranks, namesDirty }
//   applySnapshot(state, attempts, now) -> rows  replaces every row (a `snapshot`'s `attempts`)
//   clearRows(state)
//   applyUpdate(state, message, now) -> { row, created, event } | null
//                                              merges an `update`: only the fields it carries
//   displayName(row), targetName(row)          how a candidate is named on screen
//   leftMs(row, now, offset) -> ms | null      time left (null once final)
//   matches(row, filter), setFilterText(state, raw), setFilterState(state, value)
//   toggleSort(state, key), ariaSort(sort, key)
//   orderRows(state, now, offset) -> rows      the rows shown, filtered and sorted
//   counts(state) -> { total, active, paused, ready, connected, finished }
//   countIn(state, states) -> n
//   select(state, row | null) -> target       the dialog's target: { attempt, name } or { all: true }

export const FINAL = new Set(['submitted', 'expired', 'terminated']);
export const IN_PROGRESS = new Set(['ready', 'active', 'paused']);
export const STATE_RANK = { active: 0, paused: 1, ready: 2, submitted: 3, expired: 4, terminated: 5 };
export const STATE_LABEL = { ready: 'not started', active: 'active', paused: 'paused', submitted: 'submitted', expired: 'expired', terminated: 'terminated' };
/** The fields of a row the server may send (snapshot rows and updates); anything else is ignored. */
export const ROW_FIELDS = ['user', 'name', 'state', 'connected', 'answered', 'total', 'flagged', 'index', 'deadline', 'remaining_ms', 'events', 'reason', 'score', 'percent'];

const has = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

/** A finite number, else `dflt`. */
export const num = (v, dflt = 0) => (typeof v === 'number' && Number.isFinite(v) ? v : dflt);

const collator = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true });

export function createState() {
  return {
    rows: new Map(), // attempt id -> row
    sort: { key: 'name', dir: 1 },
    filter: { text: '', state: 'all' },
    target: null, // the attempt (or everyone) an open dialog acts on
    ranks: new Map(), // attempt id -> position by name
    namesDirty: false,
  };
}

/** A row as the dashboard keeps it before the server said anything about it. */
export function newRow(id, now) {
  return {
    attempt: id, user: '', name: '', state: 'ready', connected: false, answered: 0, total: 0, flagged: 0,
    index: null, deadline: null, remaining_ms: null, events: 0, reason: null, score: null, percent: null,
    seenAt: now, // when the clock fields last came (a deadline-less countdown ticks from here)
  };
}

const validId = (id) => typeof id === 'string' || typeof id === 'number';

/** Copy the known fields `src` carries onto `row`. Returns true when a name changed (the name order must be redone). */
export function applyFields(row, src, now) {
  for (const key of ROW_FIELDS) {
    if (has(src, key)) row[key] = src[key];
  }
  if (has(src, 'remaining_ms') || has(src, 'deadline')) row.seenAt = now;
  return 'name' in src || 'user' in src;
}

/** No rows at all (another exam, sign-out). */
export function clearRows(state) {
  state.rows.clear();
  state.ranks.clear();
  state.namesDirty = false;
}

/** Replace every row with the snapshot's. Entries without an attempt id are skipped. */
export function applySnapshot(state, attempts, now) {
  clearRows(state);
  const list = Array.isArray(attempts) ? attempts : [];
  for (const src of list) {
    if (!src || !validId(src.attempt)) continue;
    const row = newRow(String(src.attempt), now);
    applyFields(row, src, now);
    state.rows.set(row.attempt, row);
  }
  state.namesDirty = true;
  return [...state.rows.values()];
}

/**
 * Merge one `update`: the server sends only the fields that changed (coalesced,
 * the latest values), and every candidate event in an update of its own. An
 * attempt not seen before gets a row. Returns null for an update without an
 * attempt id, else the row, whether it is new and the event (or null).
 */
export function applyUpdate(state, message, now) {
  if (!message || !validId(message.attempt)) return null;
  const id = String(message.attempt);
  let row = state.rows.get(id);
  const created = !row;
  if (created) {
    row = newRow(id, now);
    state.rows.set(id, row);
    state.namesDirty = true;
  }
  if (applyFields(row, message, now)) state.namesDirty = true;
  let event = null;
  if (message.event && typeof message.event === 'object') {
    event = message.event;
    if (typeof message.events !== 'number') row.events = num(row.events) + 1;
  }
  return { row, created, event };
}

export function displayName(row) {
  if (typeof row.name === 'string' && row.name.trim()) return row.name;
  if (typeof row.user === 'string' && row.user) return row.user;
  return 'Unnamed candidate';
}

/** The name with the user id after it when that says more: "Ada Lovelace (cand-1)". */
export function targetName(row) {
  const name = displayName(row);
  const user = typeof row.user === 'string' && row.user && row.user !== name ? ` (${row.user})` : '';
  return `${name}${user}`;
}

export function leftMs(row, now, offset) {
  if (FINAL.has(row.state)) return null;
  if (row.state === 'active') {
    if (typeof row.deadline === 'number') return Math.max(0, row.deadline - (now + offset));
    if (typeof row.remaining_ms === 'number') return Math.max(0, row.remaining_ms - (now - row.seenAt));
    return null;
  }
  return typeof row.remaining_ms === 'number' ? Math.max(0, row.remaining_ms) : null;
}

// ------------------------------------------------------------------ filter
export function matches(row, filter) {
  switch (filter.state) {
    case 'all': break;
    case 'finished': if (!FINAL.has(row.state)) return false; break;
    case 'disconnected': if (row.connected === true || FINAL.has(row.state)) return false; break;
    default: if (row.state !== filter.state) return false;
  }
  if (filter.text) {
    const hay = `${typeof row.name === 'string' ? row.name : ''}\n${typeof row.user === 'string' ? row.user : ''}\n${row.attempt}`.toLowerCase();
    if (!hay.includes(filter.text)) return false;
  }
  return true;
}

export function setFilterText(state, raw) {
  state.filter.text = String(raw).trim().toLowerCase();
}

export function setFilterState(state, value) {
  state.filter.state = value;
}

// ------------------------------------------------------------------ sort
export function sortValue(row, key, now, offset) {
  switch (key) {
    case 'state': return STATE_RANK[row.state] ?? 9;
    case 'connected': return row.connected === true ? 0 : 1;
    case 'answered': {
      const total = num(row.total);
      return total > 0 ? num(row.answered) / total : num(row.answered);
    }
    case 'flagged': return num(row.flagged);
    case 'question': return typeof row.index === 'number' && IN_PROGRESS.has(row.state) && row.state !== 'ready' ? row.index : -1;
    case 'left': {
      const ms = leftMs(row, now, offset);
      return ms === null ? Number.MAX_SAFE_INTEGER : ms;
    }
    case 'events': return num(row.events);
    default: return 0;
  }
}

/** Same key again: the other direction; another key: ascending by it. */
export function toggleSort(state, key) {
  if (state.sort.key === key) state.sort = { key, dir: -state.sort.dir };
  else state.sort = { key, dir: 1 };
  return state.sort;
}

/** The `aria-sort` of column `key` under `sort`. */
export function ariaSort(sort, key) {
  if (sort.key !== key) return 'none';
  return sort.dir === 1 ? 'ascending' : 'descending';
}

/** Rank every row by name once (collation is slow), so sorting compares numbers only. */
function rankNames(state) {
  const all = [...state.rows.values()].map((row) => ({ id: row.attempt, name: displayName(row) }));
  all.sort((a, b) => collator.compare(a.name, b.name) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  state.ranks.clear();
  all.forEach((x, i) => state.ranks.set(x.id, i));
  state.namesDirty = false;
}

/** The rows the filter lets through, in the current sort order (ties by name). */
export function orderRows(state, now, offset) {
  if (state.namesDirty) rankNames(state);
  const rank = (row) => state.ranks.get(row.attempt) ?? 0;
  const list = [];
  for (const row of state.rows.values()) if (matches(row, state.filter)) list.push(row);
  const { key, dir } = state.sort;
  if (key === 'name') return list.sort((a, b) => (rank(a) - rank(b)) * dir);
  const keyed = list.map((row) => ({ row, v: sortValue(row, key, now, offset), r: rank(row) }));
  keyed.sort((a, b) => ((a.v < b.v ? -1 : a.v > b.v ? 1 : 0) || a.r - b.r) * dir);
  return keyed.map((x) => x.row);
}

// ------------------------------------------------------------------ counts and selection
export function counts(state) {
  const c = { total: state.rows.size, active: 0, paused: 0, ready: 0, connected: 0, finished: 0 };
  for (const row of state.rows.values()) {
    const s = row.state;
    if (s === 'active') c.active++;
    else if (s === 'paused') c.paused++;
    else if (s === 'ready') c.ready++;
    else if (FINAL.has(s)) c.finished++;
    if (row.connected === true) c.connected++;
  }
  return c;
}

/** How many rows are in one of `states` (a Set or an array). */
export function countIn(state, states) {
  const set = states instanceof Set ? states : new Set(states);
  let n = 0;
  for (const row of state.rows.values()) if (set.has(row.state)) n++;
  return n;
}

/** Point the dialogs at one row (`{ attempt, name }`, the name as of now) or at everyone (`null`). */
export function select(state, row) {
  state.target = row ? { attempt: row.attempt, name: displayName(row) } : { all: true };
  return state.target;
}
