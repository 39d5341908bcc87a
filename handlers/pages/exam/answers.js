// What the candidate does to the attempt: answers (debounced while typing,
// deferred while paused), moving between questions, the local time-up, and the
// events reported to the proctor.
//
// Exported API: setAnswer(q, value), debounce(q, ms, value, commit), cancelTyping(),
//   cancelTypingFor(qid), flushTyping(), sendDeferred(), sendDeferredSoon(), markTimeUp(),
//   goTo(i, {confirmed}), reportEvent(kind)

import { S } from './app.js';
import { el, announce } from './dom.js';
import { isFinal, isLinear, isLocked, sameValue } from './state.js';
import { request } from './session.js';
import { renderAll } from './chrome.js';
import { renderQuestion, renderSaveState } from './question.js';
import { closeDialogs, openNextDialog } from './dialogs.js';

export function setAnswer(q, value) {
  if (S.state === 'paused' && !S.timeUp && !S.superseded && !S.submitting) {
    S.answers.set(q.id, value);
    S.deferred.set(q.id, value);
    renderSaveState(q.id);
    return;
  }
  if (isLocked(S)) return;
  const current = S.answers.has(q.id) ? S.answers.get(q.id) : null;
  if (sameValue(current, value) && !S.qError.has(q.id)) {
    renderSaveState(q.id);
    return;
  }
  S.answers.set(q.id, value);
  S.qError.delete(q.id);
  request('answer', { q: q.id, value });
  renderSaveState(q.id);
}

export function cancelTyping() {
  for (const t of S.typing.values()) clearTimeout(t.timer);
  S.typing.clear();
}

export function cancelTypingFor(qid) {
  const t = S.typing.get(qid);
  if (t) clearTimeout(t.timer);
  S.typing.delete(qid);
}

export function flushTyping() {
  for (const [qid, t] of [...S.typing]) {
    clearTimeout(t.timer);
    S.typing.delete(qid);
    t.commit();
  }
}

export function debounce(q, ms, value, commit) {
  const prev = S.typing.get(q.id);
  if (prev) clearTimeout(prev.timer);
  const entry = { value, commit, timer: setTimeout(() => { S.typing.delete(q.id); commit(); }, ms) };
  S.typing.set(q.id, entry);
  renderSaveState(q.id);
}

export function sendDeferredSoon() {
  if (S.deferred.size) setTimeout(() => { if (S.state === 'active' && S.welcomed) sendDeferred(); }, 0);
}

export function sendDeferred() {
  const items = [...S.deferred];
  S.deferred.clear();
  for (const [qid, value] of items) {
    const q = S.byId.get(qid);
    if (!q) continue;
    S.answers.set(qid, S.saved.has(qid) ? S.saved.get(qid) : null); // so that setAnswer sees a change
    setAnswer(q, value);
  }
}

/** The local clock says the time is over: lock the page and wait for the server's verdict. */
export function markTimeUp() {
  if (S.timeUp || isFinal(S)) return;
  flushTyping(); // what was typed is the candidate's answer: it still has the grace period
  S.timeUp = true;
  el.timerWarning.hidden = true;
  announce('Time is up.', true);
  closeDialogs();
  renderAll();
}

export function goTo(i, { confirmed = false } = {}) {
  if (i === S.index || i < 0 || i >= S.total || isLocked(S)) return;
  if (isLinear(S)) {
    if (i < S.index) return;
    if (!confirmed) {
      openNextDialog(i);
      return;
    }
  }
  flushTyping();
  S.index = i;
  request('goto', { index: i });
  renderQuestion(true);
}

export function reportEvent(kind) {
  if (!S.welcomed || S.state !== 'active' || S.timeUp || S.superseded) return;
  if (!S.eventBucket.take(performance.now())) return; // dropped: events are never queued
  request('event', { kind });
}
