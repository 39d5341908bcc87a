// The exam page's rules for the server's answers to requests (`ack`, `error`).
// Pure functions over the state object of state.js: no DOM, no timers, no
// storage; applyError returns a decision the caller carries out.
//
// Exported API (also re-exported by state.js):
//   takeReply(S, id) -> message | undefined          the request an ack/error answers (forgotten)
//   applyAck(S, ack) -> message | undefined          the acked request, its effect applied (and what
//                                                    the server acknowledged updated: restore.js)
//   applyError(S, error) -> decision {kind, ...}     see below

import { errorText, isFinal, laterPending, isLinear } from './state.js';
import { settleAck, settleRefusal } from './restore.js';

export function takeReply(S, id) {
  const message = S.ids.settle(id) || S.pending.find((e) => e.id === id)?.message;
  const i = S.pending.findIndex((e) => e.id === id);
  if (i >= 0) S.pending.splice(i, 1);
  return message;
}

export function applyAck(S, m) {
  const id = m.id;
  const message = takeReply(S, id);
  if (typeof id === 'number' && id > S.lastId) S.lastId = id;
  if (Number.isSafeInteger(id) && id > S.acked && !isFinal(S)) S.acked = id;
  if (!message) return undefined;
  settleAck(S, message);
  if (message.t === 'answer') {
    S.saved.set(message.q, message.value);
    if (!laterPending(S, 'answer', message.q, id)) S.qError.delete(message.q);
  } else if (message.t === 'flag') {
    if (message.on) S.savedFlags.add(message.q); else S.savedFlags.delete(message.q);
  } else if (message.t === 'goto') {
    S.savedIndex = isLinear(S) ? Math.max(S.savedIndex, message.index) : message.index;
  } else if (message.t === 'start') {
    S.startSent = false;
    if (typeof m.deadline === 'number') S.deadline = m.deadline;
    if (S.state === 'ready') S.state = 'active';
  }
  return message;
}

/**
 * What a refusal means. Decisions:
 *   {kind: 'server'}                          an error about no request (logged)
 *   {kind: 'none'}                            nothing to do (unknown id, superseded by a later request, fetch, goto, event)
 *   {kind: 'retry-answer', q, value}          nothing was applied: try again later with a fresh id
 *   {kind: 'deferred', q}                     paused under it: sent again on resume
 *   {kind: 'answer-refused', q, timeUp}       shown as not saved; the saved value is back
 *   {kind: 'retry-flag', q, on}
 *   {kind: 'flag-reverted', q}
 *   {kind: 'submit', timeUp, text}            text: why it was not submitted (null with timeUp)
 *   {kind: 'start', text}                     text: why it did not start (null when already running)
 */
export function applyError(S, m) {
  const id = m.id;
  if (typeof id !== 'number') return { kind: 'server' };
  const message = takeReply(S, id);
  if (!message) return { kind: 'none' };
  const code = m.code;
  const retry = code === 'internal' || code === 'rate_limited';
  switch (message.t) {
    case 'answer': {
      const q = message.q;
      if (laterPending(S, 'answer', q, id)) return { kind: 'none' }; // a newer answer is on its way
      if (retry && !isFinal(S)) return { kind: 'retry-answer', q, value: message.value };
      if (code === 'not_active' && !isFinal(S) && !S.timeUp) {
        S.deferred.set(q, message.value);
        return { kind: 'deferred', q };
      }
      settleRefusal(S, message);
      S.qError.set(q, errorText(code, m.message));
      S.answers.set(q, S.saved.has(q) ? S.saved.get(q) : null);
      return { kind: 'answer-refused', q, timeUp: code === 'time_up' };
    }
    case 'flag':
      if (laterPending(S, 'flag', message.q, id)) return { kind: 'none' };
      if (retry) return { kind: 'retry-flag', q: message.q, on: message.on };
      settleRefusal(S, message);
      if (message.on) S.flags.delete(message.q); else S.flags.add(message.q);
      return { kind: 'flag-reverted', q: message.q };
    case 'submit':
      S.submitting = false;
      if (code === 'time_up') return { kind: 'submit', timeUp: true, text: null };
      if (retry) return { kind: 'submit', timeUp: false, text: 'The exam could not be submitted just now. Please try again.' };
      return { kind: 'submit', timeUp: false, text: `The exam was not submitted: ${errorText(code, m.message)}.` };
    case 'start':
      S.startSent = false;
      return { kind: 'start', text: code !== 'not_active' ? `The exam could not be started: ${errorText(code, m.message)}.` : null };
    case 'fetch':
      S.fetching.delete(message.from);
      return { kind: 'none' };
    case 'goto':
      if (!retry) settleRefusal(S, message);
      return { kind: 'none' };
    default:
      return { kind: 'none' }; // event: nothing to undo (events refused as rate_limited are dropped)
  }
}
