// The page around the question: which view shows, the connection pill, the
// banner, the ready view, the token form and the problem view.
//
// Exported API: showView(name), setConn(state, text), setBanner(state, text),
//   showDisconnected(reconnecting), route(), renderChrome(), renderReady(),
//   renderAll(), showToken(error), showProblem(title, text)

import { fmtDuration } from '../lib/format.js';
import { S } from './app.js';
import { el } from './dom.js';
import { isFinal } from './state.js';
import { renderQuestion, renderStatusLine, renderFlag, renderLock } from './question.js';
import { renderNavigator } from './navigator.js';
import { updateTimer } from './timer.js';
import { renderResult } from './result.js';

const VIEWS = ['loading', 'token', 'problem', 'ready', 'question', 'result'];

export function showView(name) {
  el.view.dataset.view = name;
  for (const v of VIEWS) el[`${v}View`].hidden = name !== v;
}

export function setConn(state, text) {
  el.conn.dataset.state = state;
  el.connText.textContent = text;
}

/** The banner: online (hidden), offline, reconnecting, superseded, ended, restoring (the server lost answers: owed.js). */
export function setBanner(state, text) {
  const changed = el.banner.dataset.state !== state || el.bannerText.textContent !== (text || '');
  el.banner.dataset.state = state;
  // the end of the attempt speaks for itself in the result view
  el.banner.hidden = state === 'online' || (state === 'ended' && isFinal(S));
  if (changed) el.bannerText.textContent = text || '';
  el.retryNow.hidden = !(state === 'offline' || state === 'reconnecting');
  el.takeOver.hidden = state !== 'superseded';
}

const OFFLINE_TEXT = 'You are offline. Keep working: your answers are kept on this device and sent as soon as the connection is back.';
const OFFLINE_TEXT_EARLY = 'Cannot reach the exam server. Retrying…';

export function showDisconnected(reconnecting) {
  const text = S.everWelcomed ? OFFLINE_TEXT : OFFLINE_TEXT_EARLY;
  setBanner(reconnecting ? 'reconnecting' : 'offline', text);
  if (reconnecting) setConn('reconnecting', 'Reconnecting…');
  else setConn('offline', 'Offline');
}

export function route() {
  if (S.fatal) return;
  if (!S.exam) return;
  if (isFinal(S)) {
    showView('result');
    renderResult();
  } else if (S.state === 'ready') {
    showView('ready');
    renderReady();
  } else {
    showView('question');
    renderQuestion(false);
  }
  renderChrome();
}

export function renderChrome() {
  const exam = S.exam;
  if (!exam) return;
  el.barTitle.textContent = exam.title;
  el.barTitle.hidden = false;
  document.title = `${exam.title} · Examwire`;
  el.footerExam.textContent = `Exam ${exam.id}`;
  if (S.attempt) {
    el.attempt.textContent = S.attempt;
    el.attemptWrap.hidden = false;
    el.main.dataset.attempt = S.attempt;
  }
  el.timerBox.hidden = isFinal(S);
  updateTimer();
  renderLock();
}

export function renderReady() {
  const exam = S.exam;
  el.examTitle.textContent = exam.title;
  el.factTotal.textContent = String(exam.total);
  el.factDuration.textContent = fmtDuration(exam.duration_ms);
  el.factNavigation.textContent = exam.navigation === 'linear' ? 'Forward only' : 'Free';
  el.ruleNavigation.textContent = exam.navigation === 'linear'
    ? 'Questions come one after another: once you move on, you cannot go back to earlier questions.'
    : 'You can move between questions, flag them for review and change your answers until you submit.';
  el.start.disabled = !S.welcomed || S.startSent;
  el.start.textContent = S.startSent ? 'Starting…' : 'Start the exam';
}

export function renderAll() {
  if (el.view.dataset.view === 'question') {
    renderStatusLine();
    renderFlag();
    renderNavigator();
    renderLock();
  } else if (el.view.dataset.view === 'ready') {
    renderReady();
  }
  updateTimer();
}

export function showToken(error) {
  S.token = null;
  el.who.textContent = ''; // no token (or a refused one): nobody is signed in
  el.who.hidden = true;
  showView('token');
  el.tokenExam.textContent = S.examId || '';
  el.tokenError.textContent = error || '';
  el.tokenError.hidden = !error;
  setConn('idle', 'Not connected');
  setBanner('online', '');
  if (error) el.token.focus();
}

/** A refusal no reconnection can fix: explained once, in its own view (no banner repeating it). */
export function showProblem(title, text) {
  setBanner('online', '');
  showView('problem');
  el.problemTitle.textContent = title;
  el.problemText.textContent = text;
  el.problemTitle.focus(); // read out at once; the view replaced whatever had focus
}
