// Examwire candidate exam client: the entry point (ES module; nothing is exposed on window).
//
// Protocol: docs/protocol.md (the wire contract; the candidate connection).
// MessagePack binary frames, JSON text frames as a fallback (sessionStorage
// `examwire.encoding` = 'json' or 'msgpack' overrides).
// CSP: no inline script or style, no eval; prompts and options are text and
// only ever reach the DOM through textContent.
//
// This module only wires: the page's events to the actions (answers.js,
// dialogs.js, session.js), and the start-up (exam id from the path, token from
// the fragment or this tab's storage). The layout of the other modules:
//   state.js       the state and its rules (pure; with time.js and replies.js)
//   app.js         the one state object
//   session.js     the connection, requests, journal and server messages
//   answers.js     what the candidate does (answer, move, time up, events)
//   chrome.js, question.js, navigator.js, timer.js, result.js, notices.js, dialogs.js: views
//   dom.js         the page's elements and live regions

import { closeDialog, restoreFocus } from '../lib/dialogs.js';
import { storeGet, sessionStore, examTokenKey, ENCODING_KEY } from '../lib/storage.js';
import { readFragment, clearFragment } from '../lib/token.js';
import { isExamId } from '../lib/protocol.js';
import { S } from './app.js';
import { el, announce } from './dom.js';
import { isFinal, isLocked } from './state.js';
import { wire, reconnectNow, takeOver, useToken, request } from './session.js';
import { renderReady, showToken, showProblem } from './chrome.js';
import { renderFlag, renderStatusLine, showInputError, syncInputs } from './question.js';
import { renderNavigator } from './navigator.js';
import { updateTimer } from './timer.js';
import { setAnswer, cancelTypingFor, flushTyping, goTo, reportEvent } from './answers.js';
import { openSubmitDialog, confirmSubmit, confirmNext } from './dialogs.js';

const TICK_MS = 250;

function examIdFromPath() {
  const m = location.pathname.match(/^\/exam\/([^/]+)\/?$/);
  if (!m) return null;
  try {
    const id = decodeURIComponent(m[1]);
    return isExamId(id) ? id : null;
  } catch {
    return null;
  }
}

/** `#token=…` from the address bar, which is then cleaned. */
function takeFragmentToken() {
  const params = readFragment();
  if (params === null) return null;
  const token = params.get('token');
  clearFragment();
  return token ? token.trim() : null;
}

function wireForms() {
  el.tokenForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = el.token.value.trim();
    if (!token) {
      el.tokenError.textContent = 'Paste your access token first.';
      el.tokenError.hidden = false;
      el.token.focus();
      return;
    }
    el.token.value = '';
    useToken(token);
  });

  el.start.addEventListener('click', () => {
    if (!S.welcomed || S.state !== 'ready' || S.startSent) return;
    el.startError.hidden = true;
    if (request('start') !== null) S.startSent = true;
    renderReady();
  });
}

function wireQuestion() {
  el.prev.addEventListener('click', () => goTo(S.index - 1));
  el.next.addEventListener('click', () => goTo(S.index + 1));
  el.flag.addEventListener('click', () => {
    const q = S.questions[S.index];
    if (!q || isLocked(S)) return;
    const on = !S.flags.has(q.id);
    if (on) S.flags.add(q.id); else S.flags.delete(q.id);
    request('flag', { q: q.id, on });
    renderFlag();
    renderNavigator();
    announce(on ? `Question ${S.index + 1} flagged for review.` : `Flag removed from question ${S.index + 1}.`);
  });
  el.clear.addEventListener('click', () => {
    const q = S.questions[S.index];
    if (!q || isLocked(S)) return;
    cancelTypingFor(q.id);
    showInputError('');
    setAnswer(q, q.type === 'multiple' ? [] : null);
    syncInputs(true);
    renderStatusLine();
    el.qNumber.focus();
  });
}

function wireDialogs() {
  el.submit.addEventListener('click', openSubmitDialog);
  el.submitCancel.addEventListener('click', () => closeDialog(el.submitDialog));
  el.submitConfirm.addEventListener('click', confirmSubmit);
  el.submitDialog.addEventListener('close', restoreFocus);

  el.nextCancel.addEventListener('click', () => closeDialog(el.nextDialog));
  el.nextConfirm.addEventListener('click', confirmNext);
  el.nextDialog.addEventListener('close', restoreFocus);
}

function wireWindow() {
  el.retryNow.addEventListener('click', reconnectNow);
  el.takeOver.addEventListener('click', takeOver);
  el.timerWarningClose.addEventListener('click', () => {
    el.timerWarning.hidden = true;
    el.qNumber.focus();
  });

  window.addEventListener('offline', () => {
    if (S.token && !isFinal(S) && !S.superseded && !S.fatal && wire.active) wire.drop(1006);
  });
  window.addEventListener('online', () => {
    if (S.token && !S.welcomed && !isFinal(S) && !S.superseded && !S.fatal) reconnectNow();
  });
  // whatever is being typed is kept (journal) when the page goes away
  window.addEventListener('pagehide', flushTyping);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'hidden') flushTyping(); });

  window.addEventListener('blur', () => reportEvent('blur'));
  window.addEventListener('focus', () => reportEvent('focus'));
  document.addEventListener('copy', () => reportEvent('copy'));
  document.addEventListener('paste', () => reportEvent('paste'));
  document.addEventListener('fullscreenchange', () => {
    if (document.fullscreenElement) {
      S.wasFullscreen = true;
    } else if (S.wasFullscreen) {
      S.wasFullscreen = false;
      reportEvent('fullscreen_exit');
    }
  });

  setInterval(updateTimer, TICK_MS);
}

function init() {
  const override = storeGet(sessionStore(), ENCODING_KEY);
  if (override === 'json' || override === 'msgpack') wire.encoding = override;
  wireForms();
  wireQuestion();
  wireDialogs();
  wireWindow();
  S.examId = examIdFromPath();
  if (!S.examId) {
    showProblem('No such exam', 'This address does not name an exam. Open the link you were given.');
    return;
  }
  el.footerExam.textContent = `Exam ${S.examId}`;
  const fromLink = takeFragmentToken();
  const token = fromLink || storeGet(sessionStore(), examTokenKey(S.examId));
  if (token) useToken(token);
  else showToken('');
}

init();
