// The exam page's connection: the shared wire client (lib/wire.js), the
// requests and their local journal (lib/journal.js), and what each server
// message does (rules in state.js, drawing in the view modules).
//
// Exactly-once: every request carries an id, strictly increasing across
// reconnects and reloads. Requests that change the attempt (answer, flag, goto,
// submit) stay in the journal until their ack or error arrives; after every
// welcome they are resent with their original ids, in id order.
//
// Loss (docs/protocol.md, "Loss is detected, never silent"): what the server
// acknowledged is kept on this device until the attempt is final (restore.js,
// journal.js's saved record); `hello` carries the highest id acknowledged and
// the newest ticket; when a welcome shows the server lost some of it, the page
// says so and sends it again (fresh ids) as soon as the attempt runs.
//
// Exported API: wire, connect(), reconnectNow(), takeOver(), useToken(token),
//   request(t, fields) -> id | null, ensureQuestions()

import { Wire, socketUrl } from '../lib/wire.js';
import { PROTOCOL_VERSION } from '../lib/protocol.js';
import {
  readJournal, writeJournal, writeLastId, clearJournal, readSaved, clearSaved, writeAttemptOf,
} from '../lib/journal.js';
import { storeSet, localStore, sessionStore, examTokenKey } from '../lib/storage.js';
import { claimsOf, whoOf } from '../lib/token.js';
import { S } from './app.js';
import { el, announce } from './dom.js';
import {
  FINAL, isFinal, sameValue, pendingAnswerFor, addRequest, applyWelcome, applyAck, applyError,
  applyBatch, missingBatches, applyTime, applyState, applyFinal, connectionLost,
  helloEvidence,
} from './state.js';
import { RESTORE_TEXT, userOf, knownRecord, saveRecord, sendRestore, restored } from './owed.js';
import { showView, setConn, setBanner, showDisconnected, route, renderAll, showToken, showProblem } from './chrome.js';
import { renderQuestion, renderSaveState, renderFlag, syncInputs, focusQuestion } from './question.js';
import { renderNavigator } from './navigator.js';
import { updateTimer } from './timer.js';
import { renderResult } from './result.js';
import { showNotice } from './notices.js';
import { closeDialogs } from './dialogs.js';
import { cancelTyping, markTimeUp, sendDeferred, sendDeferredSoon } from './answers.js';

const CLIENT = 'examwire-web/1';

// Close codes after which reconnecting cannot help.
const FATAL_TEXT = {
  4400: 'This page is out of date. Reload it to continue.',
  4401: 'Your access token was refused: it is missing, malformed or expired. Open the link you were given again, or paste a new token.',
  4403: 'This access token may not be used for this exam.',
  4404: 'There is no exam with this id. Check the link you were given.',
};

export const wire = new Wire({
  url: () => socketUrl(`/v1/exams/${encodeURIComponent(S.examId)}/attempt`),
  hello: () => ({ t: 'hello', token: S.token, v: PROTOCOL_VERSION, client: CLIENT, ...helloEvidence(knownRecord()) }),
  canConnect: () => Boolean(S.token) && !S.fatal && !S.superseded && !isFinal(S),
  encoding: 'msgpack',
  backoff: { baseMs: 500, capMs: 10000 },
  connectTimeoutMs: 12000,
  pingEveryMs: 30000,
  pingBurst: [0, 400, 900],
  pongTimeoutMs: 10000,
  // the server allows 20 messages/s with a burst of 40 per connection
  pace: { ratePerS: 15, burst: 30 },
  fatal: Object.keys(FATAL_TEXT).map(Number),
  on: { connecting: onConnecting, message: onMessage, lost: onLost },
});

// ------------------------------------------------------------------ connection
export function connect() {
  wire.connect();
}

export function reconnectNow() {
  wire.reconnectNow();
}

export function useToken(token) {
  S.token = token;
  storeSet(sessionStore(), examTokenKey(S.examId), token);
  const who = whoOf(claimsOf(token));
  el.who.textContent = who;
  el.who.hidden = !who;
  S.fatal = false;
  if (!S.exam) {
    showView('loading');
    el.loadingTitle.textContent = 'Connecting to the exam…';
    el.loadingText.textContent = 'One moment, please.';
  }
  connect();
}

function onConnecting() {
  S.welcomed = false;
  if (S.everWelcomed) showDisconnected(true);
  else setConn('connecting', 'Connecting…');
}

function onLost({ code, verdict }) {
  connectionLost(S, Date.now());
  if (isFinal(S)) {
    setConn('idle', 'Disconnected');
    return;
  }
  if (verdict === 'superseded') {
    superseded();
    return;
  }
  if (verdict === 'fatal') {
    fatal(code);
    return;
  }
  showDisconnected(false);
  renderAll();
}

function superseded() {
  S.superseded = true;
  cancelTyping();
  setConn('idle', 'Not connected');
  setBanner('superseded', 'This exam was opened in another window or device. This window has stopped so that your answers are not mixed up.');
  renderAll();
}

export function takeOver() {
  S.superseded = false;
  setBanner('reconnecting', 'Taking the exam back to this window…');
  wire.reconnectNow();
}

function fatal(code) {
  S.fatal = true;
  cancelTyping();
  const text = FATAL_TEXT[code];
  setConn('idle', 'Not connected');
  if (code === 4401) {
    storeSet(sessionStore(), examTokenKey(S.examId), null);
    showToken(text); // the form says why (once); the banner stays hidden
    S.fatal = false; // a new token may be pasted
    return;
  }
  showProblem(code === 4404 ? 'No such exam' : code === 4400 ? 'Please reload' : 'Access refused', text);
}

// ------------------------------------------------------------------ requests and the journal
/** A request with the next id (see state.addRequest), kept in the journal and sent when connected. */
export function request(t, fields = {}) {
  const r = addRequest(S, t, fields);
  if (r === null) return null;
  if (r.persist) savePending();
  else writeLastId(localStore(), S.attempt, S.ids.nextId - 1);
  if (S.welcomed) wire.send(r.message);
  return r.id;
}

function savePending() {
  if (!S.attempt || S.superseded) return;
  writeJournal(localStore(), S.attempt, S.pending, S.ids.nextId - 1);
}

export function ensureQuestions() {
  for (const { from, count } of missingBatches(S)) request('fetch', { from, count });
}

// ------------------------------------------------------------------ incoming messages
function onMessage(m) {
  switch (m.t) {
    case 'welcome': onWelcome(m); break;
    case 'ack': onAck(m); break;
    case 'error': onError(m); break;
    case 'batch': onBatch(m); break;
    case 'time': onTime(m); break;
    case 'state': onState(m.state, m.reason); break;
    case 'notice': showNotice(m); break;
    case 'result': onResult(m); break;
    case 'pong': if (S.clock.pong(m)) updateTimer(); break;
    default: break; // messages added later are ignored
  }
}

function onWelcome(w) {
  const kept = { ...readJournal(localStore(), w.attempt), saved: readSaved(localStore(), w.attempt) };
  const { wasOffline, final, lost } = applyWelcome(S, w, kept);
  S.attemptUser = userOf(S.token);
  if (!final && S.attemptUser) writeAttemptOf(localStore(), S.examId, S.attemptUser, w.attempt);
  savePending();
  saveRecord();
  if (final) onFinal(w.state, null);
  else if (w.state === 'active') sendDeferredSoon();

  setConn('online', 'Connected');
  setBanner('online', '');
  if (wasOffline !== null && S.everWelcomed) announce('Connection restored. Your answers are being sent.');
  S.everWelcomed = true;

  // resend every unanswered request with its original id, in id order
  for (const { id, message } of S.pending) {
    S.ids.track(id, message);
    wire.send(message);
  }
  if (S.restore !== null) {
    setBanner('restoring', RESTORE_TEXT);
    if (lost) announce(RESTORE_TEXT, true);
    sendRestore();
  }
  if (S.state === 'active' || S.state === 'paused') {
    ensureQuestions();
    if (wasOffline !== null && S.state === 'active') {
      request('event', { kind: 'offline', detail: { ms: Date.now() - wasOffline } });
    }
  }
  route();
  if (S.state === 'ready' && document.activeElement === document.body) el.start.focus();
}

function onAck(m) {
  const before = S.pending.length;
  const owed = S.restore !== null;
  const message = applyAck(S, m);
  if (S.pending.length !== before) savePending();
  saveRecord();
  if (owed && S.restore === null) restored();
  if (!message) return;
  if (message.t === 'answer') {
    renderSaveState(message.q);
  } else if (message.t === 'start') {
    ensureQuestions();
    route();
    focusQuestion();
  }
}

function onError(m) {
  const before = S.pending.length;
  const owed = S.restore !== null;
  const d = applyError(S, m);
  if (S.pending.length !== before) savePending();
  if (owed) {
    saveRecord();
    if (S.restore === null) restored();
  }
  switch (d.kind) {
    case 'server':
      console.warn('examwire: server error', m.code, m.message);
      break;
    case 'retry-answer':
      // nothing was applied: try again with a fresh id (ids must keep increasing)
      setTimeout(() => {
        if (!pendingAnswerFor(S, d.q) && sameValue(S.answers.get(d.q) ?? null, d.value ?? null)) {
          request('answer', { q: d.q, value: d.value });
          renderSaveState(d.q);
        }
      }, 1000);
      break;
    case 'deferred':
      // paused under it (the state push may still be on its way): sent again on resume
      if (S.state === 'active') setTimeout(() => { if (S.state === 'active') sendDeferred(); }, 1000);
      renderSaveState(d.q);
      break;
    case 'answer-refused':
      if (d.timeUp) markTimeUp();
      renderSaveState(d.q);
      if (S.rendered && S.rendered.qid === d.q) syncInputs(true);
      break;
    case 'retry-flag':
      setTimeout(() => {
        if (S.flags.has(d.q) === d.on) request('flag', { q: d.q, on: d.on });
      }, 1000);
      break;
    case 'flag-reverted':
      renderNavigator();
      renderFlag();
      break;
    case 'submit':
      if (d.timeUp) {
        markTimeUp();
      } else {
        el.submitError.textContent = d.text;
        el.submitError.hidden = false;
      }
      renderAll();
      break;
    case 'start':
      if (d.text) {
        el.startError.textContent = d.text;
        el.startError.hidden = false;
      }
      route();
      break;
    default:
      break;
  }
}

function onBatch(m) {
  if (!applyBatch(S, m)) return;
  sendRestore(); // a linear exam's owed answers wait for their questions' positions
  renderNavigator();
  if (el.view.dataset.view === 'question' && (!S.rendered || S.rendered.index !== S.index)) renderQuestion(false);
}

function onTime(m) {
  const { moreTime, state } = applyTime(S, m);
  saveRecord(); // the newest ticket
  if (moreTime) announce('You have been given more time.', true);
  if (state !== null) onState(state, null);
  updateTimer();
  renderAll();
}

function onState(state, reason) {
  if (typeof state !== 'string') return;
  if (FINAL.has(state)) {
    onFinal(state, reason);
    route();
    return;
  }
  const { paused, resumed } = applyState(S, state);
  if (paused) {
    announce('Your proctor has paused the exam.', true);
  } else if (resumed) {
    announce('The exam has resumed.', true);
    sendRestore();
    sendDeferred();
  }
  if (state === 'active' || state === 'paused') ensureQuestions();
  route();
}

function onFinal(state, reason) {
  cancelTyping();
  const { was } = applyFinal(S, state, reason);
  wire.stopPings();
  if (S.attempt) {
    // final: nothing is kept any more (the results store has it)
    clearJournal(localStore(), S.attempt);
    clearSaved(localStore(), S.attempt);
    if (S.attemptUser) writeAttemptOf(localStore(), S.examId, S.attemptUser, null);
  }
  closeDialogs();
  setBanner('ended', state === 'submitted' ? 'Your exam has been submitted.' : state === 'expired'
    ? 'The time is up: your saved answers have been handed in.' : 'Your proctor has ended this exam.');
  if (!FINAL.has(was)) {
    announce(state === 'submitted' ? 'Your exam has been submitted.' : state === 'expired' ? 'Time is up. The exam has ended.' : 'Your proctor has ended the exam.', true);
    setTimeout(() => el.resultTitle.focus(), 50);
  }
}

function onResult(m) {
  S.result = m;
  if (isFinal(S)) renderResult();
}
