// The exam page's state and the rules that change it: pure functions over one
// plain object. No DOM, no sockets, no timers, no storage: the caller (session.js)
// feeds in server messages and what was kept on this device, and performs what
// the returned decisions ask for (send, render, announce).
//
// Exported API (names are stable; add, never rename):
//   FINAL, PERSISTED, ERROR_TEXT, FETCH_COUNT
//   (and, from time.js: WARN_AT_MS, setTime, applyTime, remainingMs, dueWarnings;
//    from replies.js: takeReply, applyAck, applyError;
//    from restore.js: savedRecord, helloEvidence, previousRecord, isLoss, owedOf, restoreDue,
//    restoreRequests, settleAck, settleRefusal)
//   createState({ now }) -> state          `now`: epoch ms (the clock's local time)
//   isFinal(S), isLinear(S), isLocked(S), isAnswered(value), sameValue(a, b), errorText(code, message)
//   pendingAnswerFor(S, qid), laterPending(S, t, qid, id), saveStatusOf(S, qid)
//   addRequest(S, t, fields) -> {id, message, persist} | null    the next id; persisted kinds join S.pending
//   applyWelcome(S, welcome, kept) -> {firstForAttempt, wasOffline, final, lost}
//                                                                kept: {list, last} of the journal, and
//                                                                `saved`, the saved record (restore.js)
//   applyBatch(S, batch) -> bool                                 questions were stored
//   missingBatches(S) -> [{from, count}]                         fetches to send (marked as asked)
//   applyState(S, state) -> {before, paused, resumed}
//   applyFinal(S, state, reason) -> {was}
//   connectionLost(S, now)                                       what a dropped connection forgets
//   submitSummary(S) -> {answered, unanswered: [i], flagged: [i], saving}

import { FINAL_STATES } from '../lib/protocol.js';
import { Clock } from '../lib/clock.js';
import { Requests } from '../lib/requests.js';
import { Bucket } from '../lib/bucket.js';
import { mergeJournal } from '../lib/journal.js';
import { setTime } from './time.js';
import { previousRecord, isLoss, owedOf } from './restore.js';

export { WARN_AT_MS, setTime, applyTime, remainingMs, dueWarnings } from './time.js';
export { takeReply, applyAck, applyError } from './replies.js';
export {
  savedRecord, helloEvidence, previousRecord, isLoss, owedOf, restoreDue, restoreRequests, settleAck, settleRefusal,
} from './restore.js';

export const FINAL = FINAL_STATES;
export const PERSISTED = new Set(['answer', 'flag', 'goto', 'submit']);
export const FETCH_COUNT = 100;
export const CLOCK_SAMPLES = 8;
// candidate events: the server allows 1/s with a burst of 10; stay below it
export const EVENT_RATE_PER_S = 1;
export const EVENT_BURST = 8;

export const ERROR_TEXT = {
  navigation: 'this question is closed',
  time_up: 'the time is up',
  not_active: 'the exam is not running',
  not_started: 'the exam has not started',
  bad_value: 'the server did not accept this answer',
  unknown_question: 'the server does not know this question',
  rate_limited: 'too many requests; trying again',
  internal: 'a server problem; trying again',
  bad_request: 'the server rejected the request',
  forbidden: 'not allowed',
};

export function createState({ now = () => Date.now() } = {}) {
  return {
    examId: null,
    token: null,
    // connection, as the page sees it
    welcomed: false,
    everWelcomed: false,
    superseded: false,
    fatal: false,
    offlineSince: null,
    eventBucket: new Bucket(EVENT_RATE_PER_S, EVENT_BURST, 0),
    clock: new Clock({ samples: CLOCK_SAMPLES, now }),
    // attempt
    attempt: null,
    exam: null,
    total: 0,
    state: null,
    endReason: null,
    deadline: null,
    frozenMs: null,
    lastId: 0,
    ids: new Requests(1), // request ids, and id -> message of requests sent and not yet answered
    pending: [], // [{id, message}] persisted requests without ack/error, in id order
    questions: [], // candidate index -> question
    byId: new Map(), // qid -> question
    fetching: new Set(), // batch starts asked for on this connection
    index: 0,
    answers: new Map(), // qid -> value shown (saved, overlaid by pending)
    saved: new Map(), // qid -> value the server has (welcome, then acks)
    flags: new Set(),
    // what the server acknowledged, kept until the attempt is final (restore.js)
    acked: 0, // the highest request id acknowledged
    ticket: null, // the newest ticket: the attempt's clock, signed by the server (sent back in hello)
    attemptUser: null, // the token's user when the attempt was welcomed
    savedFlags: new Set(), // flags the server has
    savedIndex: 0, // the position the server has
    restore: null, // {answers: Map, flags: Map, index, sent}: what the server lost and is owed, or null
    qError: new Map(), // qid -> why the last answer was refused
    typing: new Map(), // qid -> {timer, commit, value} debounced input not yet sent
    deferred: new Map(), // qid -> value typed while the exam was paused: sent when it resumes
    timeUp: false,
    submitting: false,
    result: null,
    warned: new Set(),
    startSent: false,
    // view bookkeeping
    wasFullscreen: false,
    rendered: null, // {index, qid} of the question in the DOM
    navIndex: null, // the question the navigator last scrolled to
    nextTarget: null,
  };
}

// ------------------------------------------------------------------ questions about the state
export const isFinal = (S) => FINAL.has(S.state);
export const isLinear = (S) => Boolean(S.exam && S.exam.navigation === 'linear');

export function isLocked(S) {
  // while what the server lost waits to be sent, nothing may overtake it (a linear exam would close it)
  const owed = S.restore !== null && !S.restore.sent;
  return S.state !== 'active' || S.timeUp || S.superseded || S.submitting || isFinal(S) || S.fatal || owed;
}

export function isAnswered(value) {
  if (value === null || value === undefined) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'string') return value.trim() !== '';
  return true;
}

export function sameValue(a, b) {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b;
}

export const errorText = (code, message) => ERROR_TEXT[code] || message || code;

export const pendingAnswerFor = (S, qid) => S.pending.some((e) => e.message.t === 'answer' && e.message.q === qid);
export const laterPending = (S, t, qid, id) => S.pending.some((e) => e.message.t === t && e.message.q === qid && e.id > id);

export function saveStatusOf(S, qid) {
  if (S.typing.has(qid) || S.deferred.has(qid) || pendingAnswerFor(S, qid)) return 'saving';
  if (S.restore && S.restore.answers.has(qid)) return 'saving';
  if (S.qError.has(qid)) return 'error';
  if (S.saved.has(qid) && isAnswered(S.answers.get(qid))) return 'saved';
  if (S.saved.has(qid)) return 'cleared';
  return 'none';
}

// ------------------------------------------------------------------ requests
/**
 * A request with the next id. Persisted kinds join S.pending (kept until
 * answered, sent now or after the next welcome); the others exist only while
 * connected (else null: no id is used).
 */
export function addRequest(S, t, fields = {}) {
  const persist = PERSISTED.has(t);
  if (!persist && !S.welcomed) return null;
  const id = S.ids.take();
  const message = { t, id, ...fields };
  if (persist) S.pending.push({ id, message });
  if (S.welcomed) S.ids.track(id, message);
  return { id, message, persist };
}

// ------------------------------------------------------------------ server messages
/** `kept`: {list, last} as read from the local journal for `welcome.attempt`. */
export function applyWelcome(S, w, kept = { list: [], last: 0 }) {
  const firstForAttempt = S.attempt !== w.attempt;
  const prev = previousRecord(S, w.attempt, kept.saved); // before this welcome replaces what the page knew
  S.welcomed = true;
  const wasOffline = S.offlineSince;
  S.offlineSince = null;

  S.attempt = w.attempt;
  S.exam = w.exam || {};
  S.total = Number(S.exam.total) || 0;
  S.lastId = Number(w.last_id) || 0;
  if (firstForAttempt) {
    S.questions = new Array(S.total).fill(undefined);
    S.byId.clear();
  }
  // merge what this browser kept for the attempt (another tab may have added to it)
  S.pending = mergeJournal(S.pending, kept.list);
  S.ids.atLeast(Math.max(S.lastId + 1, kept.last + 1, ...S.pending.map((e) => e.id + 1)));

  // the server's truth, overlaid by what it lost (owed, sent again) and what has not reached it yet
  const final = FINAL.has(w.state);
  const lost = !final && isLoss(w, prev);
  S.saved = new Map(Object.entries(w.answers || {}));
  S.savedFlags = new Set(Array.isArray(w.flags) ? w.flags : []);
  S.savedIndex = Number.isInteger(w.index) ? w.index : 0;
  S.acked = Math.max(prev.acked, Number.isSafeInteger(w.last_id) ? w.last_id : 0);
  S.ticket = final ? null : typeof w.ticket === 'string' && w.ticket ? w.ticket : prev.ticket;
  S.restore = !final && (lost || prev.restoring) ? owedOf(prev, w, isLinear(S)) : null;
  S.answers = new Map(S.saved);
  S.flags = new Set(S.savedFlags);
  let index = S.savedIndex;
  if (S.restore) {
    for (const [q, v] of S.restore.answers) S.answers.set(q, v);
    for (const [q, on] of S.restore.flags) if (on) S.flags.add(q); else S.flags.delete(q);
    if (S.restore.index !== null) index = S.restore.index;
  }
  for (const { id, message } of S.pending) {
    if (id <= S.lastId) continue;
    if (message.t === 'answer') S.answers.set(message.q, message.value);
    else if (message.t === 'flag') { if (message.on) S.flags.add(message.q); else S.flags.delete(message.q); }
    else if (message.t === 'goto') index = message.index;
    else if (message.t === 'submit') S.submitting = true;
  }
  for (const [qid, t] of S.typing) S.answers.set(qid, t.value);
  if (firstForAttempt) S.index = Math.min(Math.max(0, index), Math.max(0, S.total - 1));

  setTime(S, w.deadline, w.remaining_ms, w.server_time);
  if (!final) {
    S.state = w.state;
    if (w.state === 'active' && typeof w.remaining_ms === 'number' && w.remaining_ms > 0) S.timeUp = false;
  }
  return { firstForAttempt, wasOffline, final, lost };
}

export function applyBatch(S, m) {
  if (!Array.isArray(m.questions)) return false;
  if (typeof m.total === 'number' && m.total !== S.total) {
    S.total = m.total;
    S.questions.length = m.total;
  }
  for (const q of m.questions) {
    if (!q || !Number.isInteger(q.index) || typeof q.id !== 'string') continue;
    S.questions[q.index] = q;
    S.byId.set(q.id, q);
  }
  if (typeof m.from === 'number') S.fetching.delete(m.from);
  return true;
}

export function missingBatches(S) {
  const out = [];
  if (!S.welcomed || !(S.state === 'active' || S.state === 'paused')) return out;
  for (let from = 0; from < S.total; from += FETCH_COUNT) {
    if (S.fetching.has(from)) continue;
    const end = Math.min(S.total, from + FETCH_COUNT);
    let missing = false;
    for (let i = from; i < end; i++) if (!S.questions[i]) { missing = true; break; }
    if (!missing) continue;
    S.fetching.add(from);
    out.push({ from, count: end - from });
  }
  return out;
}

export function applyState(S, state) {
  const before = S.state;
  S.state = state;
  return {
    before,
    paused: state === 'paused' && before !== 'paused',
    resumed: state === 'active' && before === 'paused',
  };
}

export function applyFinal(S, state, reason) {
  const was = S.state;
  S.state = state;
  if (reason) S.endReason = reason;
  S.timeUp = false;
  S.submitting = false;
  S.typing.clear();
  S.deferred.clear();
  S.pending = [];
  S.restore = null;
  S.ticket = null;
  return { was };
}

export function connectionLost(S, now) {
  S.welcomed = false;
  S.fetching.clear();
  S.ids.drain();
  if (S.startSent) S.startSent = false;
  if (S.everWelcomed && S.offlineSince === null && S.state === 'active') S.offlineSince = now;
}

export function submitSummary(S) {
  const unanswered = [];
  const flagged = [];
  for (let i = 0; i < S.total; i++) {
    const q = S.questions[i];
    if (!q || !isAnswered(S.answers.get(q.id))) unanswered.push(i);
    if (q && S.flags.has(q.id)) flagged.push(i);
  }
  const saving = S.pending.filter((e) => e.message.t === 'answer').length;
  return { answered: S.total - unanswered.length, unanswered, flagged, saving };
}
