// What the server acknowledged, kept on this device until the attempt is final,
// and sent again when the server has lost it (docs/protocol.md, "Loss is
// detected, never silent"). Pure functions over the state object of state.js:
// no DOM, no socket, no storage (the caller reads and writes lib/journal.js's
// saved record).
//
// The rule: the page keeps the highest request id acknowledged (`acked`), the
// newest ticket (the attempt's clock, signed by the server), and the answers,
// flags and position the server acknowledged. `hello` carries `acked` and the
// ticket. A `welcome` with `lost: true` (or a `last_id` below `acked`) means
// the server lost some of it: whatever the server lacks is owed (S.restore),
// shown as being saved, and sent again as new requests (fresh ids, normal
// rules) once the attempt runs: in question order, so that a linear exam
// accepts them, skipping a question with a newer request of its own still
// waiting; then a linear exam's position. An owed item is settled by its
// ack, by the server's refusal, or by the candidate's newer change.
//
// Exported API (also re-exported by state.js):
//   savedRecord(S) -> record                         what to keep (lib/journal.js's saved record)
//   helloEvidence(record) -> {acked?, ticket?}       the optional hello fields (none when nothing was acked)
//   previousRecord(S, attempt, stored) -> record     what this device knew of `attempt` (memory or storage)
//   isLoss(welcome, record) -> bool                  the server says it lost acknowledged work, or shows it
//   owedOf(record, welcome, linear) -> owed | null   {answers: Map, flags: Map, index, sent}: what the server lacks
//   restoreDue(S) -> bool
//   restoreRequests(S) -> [[t, fields]]              what to send now, in order (owed items marked sent)
//   settleAck(S, message) -> bool                    an ack settles what it carried; true: nothing is owed any more
//   settleRefusal(S, message)                        a refusal settles it too (the server said no)

import { EMPTY_SAVED } from '../lib/journal.js';
import { pendingAnswerFor, sameValue } from './state.js';

const isObject = (v) => Boolean(v) && typeof v === 'object' && !Array.isArray(v);

/** The flags owed state implies: the acknowledged ones, changed by what is owed. */
function owedFlags(S) {
  const flags = new Set(S.savedFlags);
  if (S.restore) for (const [q, on] of S.restore.flags) if (on) flags.add(q); else flags.delete(q);
  return flags;
}

export function savedRecord(S) {
  const answers = Object.fromEntries(S.saved);
  if (S.restore) for (const [q, v] of S.restore.answers) answers[q] = v;
  return {
    acked: S.acked,
    ticket: S.ticket,
    answers,
    flags: [...owedFlags(S)],
    index: S.restore && S.restore.index !== null ? S.restore.index : S.savedIndex,
    restoring: S.restore !== null,
  };
}

export function helloEvidence(record) {
  const out = {};
  if (record && Number.isSafeInteger(record.acked) && record.acked > 0) out.acked = record.acked;
  if (record && typeof record.ticket === 'string' && record.ticket) out.ticket = record.ticket;
  return out;
}

export function previousRecord(S, attempt, stored = EMPTY_SAVED) {
  const kept = stored || EMPTY_SAVED;
  if (S.attempt !== attempt) return kept;
  const memory = savedRecord(S);
  // another tab of this browser may have gone further; else this page's own memory (storage may be off)
  return kept.acked > memory.acked ? kept : memory;
}

export function isLoss(w, record) {
  if (w.lost === true) return true;
  return Number.isSafeInteger(w.last_id) && w.last_id < (record ? record.acked : 0);
}

export function owedOf(record, w, linear) {
  const server = isObject(w.answers) ? w.answers : {};
  const answers = new Map();
  for (const [q, v] of Object.entries(isObject(record.answers) ? record.answers : {})) {
    const has = Object.prototype.hasOwnProperty.call(server, q) ? server[q] : null;
    if (!sameValue(has ?? null, v ?? null)) answers.set(q, v ?? null);
  }
  const mine = new Set(Array.isArray(record.flags) ? record.flags : []);
  const theirs = new Set(Array.isArray(w.flags) ? w.flags : []);
  const flags = new Map();
  for (const q of mine) if (!theirs.has(q)) flags.set(q, true);
  for (const q of theirs) if (!mine.has(q)) flags.set(q, false);
  const at = Number.isInteger(w.index) ? w.index : 0;
  const index = linear && Number.isSafeInteger(record.index) && record.index > at ? record.index : null;
  if (answers.size === 0 && flags.size === 0 && index === null) return null;
  return { answers, flags, index, sent: false };
}

/** A linear exam's requests must go in question order: wait until every owed question's position is known. */
function positionsKnown(S) {
  const r = S.restore;
  const known = (q) => S.byId.has(q);
  if ([...r.answers.keys()].every(known) && [...r.flags.keys()].every(known)) return true;
  return S.fetching.size === 0 && S.questions.length > 0 && S.questions.every(Boolean); // all loaded: unknown ones last
}

export function restoreDue(S) {
  if (!S.restore || S.restore.sent || !S.welcomed || S.superseded || S.timeUp || S.state !== 'active') return false;
  return !(S.exam && S.exam.navigation === 'linear') || positionsKnown(S);
}

const pendingOf = (S, t, q) => S.pending.some((e) => e.message.t === t && (q === undefined || e.message.q === q));

function finishIfSettled(S) {
  const r = S.restore;
  if (r && r.sent && r.answers.size === 0 && r.flags.size === 0 && r.index === null) {
    S.restore = null;
    return true;
  }
  return false;
}

export function restoreRequests(S) {
  if (!restoreDue(S)) return [];
  const r = S.restore;
  const pos = (q) => (S.byId.has(q) ? S.byId.get(q).index : Number.MAX_SAFE_INTEGER);
  const qids = [...new Set([...r.answers.keys(), ...r.flags.keys()])];
  qids.sort((a, b) => pos(a) - pos(b));
  const out = [];
  for (const q of qids) {
    if (r.answers.has(q)) {
      const v = r.answers.get(q);
      if (pendingAnswerFor(S, q) || (S.saved.has(q) && sameValue(S.saved.get(q), v))) r.answers.delete(q);
      else out.push(['answer', { q, value: v }]);
    }
    if (r.flags.has(q)) {
      const on = r.flags.get(q);
      if (pendingOf(S, 'flag', q) || S.savedFlags.has(q) === on) r.flags.delete(q);
      else out.push(['flag', { q, on }]);
    }
  }
  if (r.index !== null) {
    if (pendingOf(S, 'goto') || r.index <= S.savedIndex) r.index = null;
    else out.push(['goto', { index: r.index }]);
  }
  r.sent = true;
  finishIfSettled(S);
  return out;
}

export function settleAck(S, message) {
  const r = S.restore;
  if (!r || !message) return false;
  if (message.t === 'answer') r.answers.delete(message.q);
  else if (message.t === 'flag') r.flags.delete(message.q);
  else if (message.t === 'goto' && r.index !== null && message.index >= r.index) r.index = null;
  return finishIfSettled(S);
}

export function settleRefusal(S, message) {
  const r = S.restore;
  if (!r || !message) return;
  if (message.t === 'answer') r.answers.delete(message.q);
  else if (message.t === 'flag') r.flags.delete(message.q);
  else if (message.t === 'goto') r.index = null;
  finishIfSettled(S);
}
