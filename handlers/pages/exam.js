// Examwire candidate exam client (ES module; nothing is exposed on window).
//
// Protocol: docs/protocol.md (the wire contract; the candidate connection).
// MessagePack binary frames (msgpack.js), JSON text frames as a fallback.
// CSP: no inline script or style, no eval; prompts and options are text and
// only ever reach the DOM through textContent.
//
// Exactly-once: every request carries an id, strictly increasing across
// reconnects and reloads. Requests that change the attempt (answer, flag, goto,
// submit) are kept in localStorage under `examwire:pending:<attempt>` (a JSON
// list of {id, message}) until their ack or error arrives, and the highest id
// used under `examwire:last-id:<attempt>`. After every welcome they are resent
// with their original ids, in id order; the server acks a repeat `dup:true`.

import { encode as packMsg, decode as unpackMsg } from './msgpack.js';
import { fmtNum, fmtPoints } from './format.js';

const CLIENT = 'examwire-web/1';
/** `msgpack` (binary frames) or `json` (text frames); sessionStorage `examwire.encoding` overrides. */
const PREFERRED_ENCODING = 'msgpack';
const ENCODING_KEY = 'examwire.encoding';
const tokenKey = (examId) => `examwire.exam.token:${examId}`;
const pendingKey = (attempt) => `examwire:pending:${attempt}`;
const lastIdKey = (attempt) => `examwire:last-id:${attempt}`;

const EXAM_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 10000;
const CONNECT_TIMEOUT_MS = 12000;
const PING_EVERY_MS = 30000;
const PING_BURST = [0, 400, 900];
const PONG_TIMEOUT_MS = 10000;
const CLOCK_SAMPLES = 8;
const NUMERIC_DEBOUNCE_MS = 600;
const TEXT_DEBOUNCE_MS = 800;
const TEXT_MAX = 2000;
const NUMERIC_MAX = 1e15;
const FETCH_COUNT = 100;
const WARN_AT_MS = [5 * 60000, 60000];
const TICK_MS = 250;
// outgoing pace: the server allows 20 messages/s with a burst of 40 per connection
const OUT_RATE_PER_S = 15;
const OUT_BURST = 30;
// candidate events: the server allows 1/s with a burst of 10; stay below it
const EVENT_RATE_PER_S = 1;
const EVENT_BURST = 8;

const FINAL = new Set(['submitted', 'expired', 'terminated']);
const PERSISTED = new Set(['answer', 'flag', 'goto', 'submit']);

// Close codes after which reconnecting cannot help.
const FATAL_CLOSE = {
  4400: 'This page is out of date. Reload it to continue.',
  4401: 'Your access token was refused: it is missing, malformed or expired. Open the link you were given again, or paste a new token.',
  4403: 'This access token may not be used for this exam.',
  4404: 'There is no exam with this id. Check the link you were given.',
};

const ERROR_TEXT = {
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

const $ = (id) => document.getElementById(id);
const el = {
  main: $('main'), view: $('view'),
  barTitle: $('bar-title'), timerBox: $('timer-box'), timer: $('timer'), timerLabel: $('timer-label'),
  conn: $('conn'), connText: $('conn-text'), who: $('who'),
  banner: $('banner'), bannerText: $('banner-text'), retryNow: $('retry-now'), takeOver: $('take-over'),
  timerWarning: $('timer-warning'), timerWarningText: $('timer-warning-text'), timerWarningClose: $('timer-warning-close'),
  alert: $('alert'), announce: $('announce'), notice: $('notice'),
  loadingView: $('loading-view'), loadingTitle: $('loading-title'), loadingText: $('loading-text'),
  tokenView: $('token-view'), tokenForm: $('token-form'), token: $('token'), tokenExam: $('token-exam'), tokenError: $('token-error'),
  problemView: $('problem-view'), problemTitle: $('problem-title'), problemText: $('problem-text'),
  readyView: $('ready-view'), examTitle: $('exam-title'), factTotal: $('fact-total'), factDuration: $('fact-duration'),
  factNavigation: $('fact-navigation'), ruleNavigation: $('rule-navigation'), start: $('start'), startError: $('start-error'),
  questionView: $('question-view'), block: $('block'), blockText: $('block-text'),
  qNumber: $('q-number'), qPos: $('q-pos'), qTotal: $('q-total'), qMeta: $('q-meta'), prompt: $('prompt'),
  answerFs: $('answer-fs'), answerLegend: $('answer-legend'), answerBody: $('answer-body'), inputError: $('input-error'),
  saveStatus: $('save-status'), saveDetail: $('save-detail'), clear: $('clear'),
  flag: $('flag'), flagText: $('flag-text'), prev: $('prev'), next: $('next'), linearNote: $('linear-note'),
  progress: $('progress'), progressFill: $('progress-fill'), navigator: $('navigator'),
  submit: $('submit'), submitError: $('submit-error'),
  resultView: $('result-view'), resultIcon: $('result-icon'), resultTitle: $('result-title'), resultReason: $('result-reason'), result: $('result'),
  footerExam: $('footer-exam'), attemptWrap: $('attempt-wrap'), attempt: $('attempt'),
  submitDialog: $('submit-dialog'), submitSummary: $('submit-summary'), submitDetails: $('submit-details'),
  submitCancel: $('submit-cancel'), submitConfirm: $('submit-confirm'),
  nextDialog: $('next-dialog'), nextText: $('next-text'), nextCancel: $('next-cancel'), nextConfirm: $('next-confirm'),
};

const S = {
  examId: null,
  token: null,
  encoding: PREFERRED_ENCODING,
  // connection
  ws: null,
  gen: 0,
  welcomed: false,
  everWelcomed: false,
  retries: 0,
  retryTimer: null,
  retryAt: 0,
  connectTimer: null,
  superseded: false,
  fatal: false,
  offlineSince: null,
  lastRx: 0,
  pingTimers: [],
  pongTimer: null,
  outq: [],
  bucket: OUT_BURST,
  bucketAt: 0,
  pumpTimer: null,
  eventBucket: EVENT_BURST,
  eventAt: 0,
  // clock
  clock: [],
  offset: 0,
  // attempt
  attempt: null,
  exam: null,
  total: 0,
  state: null,
  endReason: null,
  deadline: null,
  frozenMs: null,
  lastId: 0,
  nextId: 1,
  pending: [], // [{id, message}] persisted requests without ack/error, in id order
  inflight: new Map(), // id -> message of requests sent and not yet answered (persisted or not)
  questions: [], // candidate index -> question
  byId: new Map(), // qid -> question
  fetching: new Set(), // batch starts asked for on this connection
  index: 0,
  answers: new Map(), // qid -> value shown (saved, overlaid by pending)
  saved: new Map(), // qid -> value the server has (welcome, then acks)
  flags: new Set(),
  qError: new Map(), // qid -> why the last answer was refused
  typing: new Map(), // qid -> {timer, commit, value} debounced input not yet sent
  deferred: new Map(), // qid -> value typed while the exam was paused: sent when it resumes
  timeUp: false,
  submitting: false,
  result: null,
  warned: new Set(),
  wasFullscreen: false,
  rendered: null, // {index, qid} of the question in the DOM
  navIndex: null, // the question the navigator last scrolled to
  startSent: false,
  returnFocus: null,
  nextTarget: null,
};

// ------------------------------------------------------------------ small helpers
function storeGet(store, key) {
  try { return store.getItem(key); } catch { return null; }
}

function storeSet(store, key, value) {
  try {
    if (value === null || value === undefined) store.removeItem(key);
    else store.setItem(key, value);
  } catch { /* storage full or disabled: the page still works while it stays open */ }
}

const pad2 = (n) => String(n).padStart(2, '0');

function fmtClock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}:${pad2(m)}:${pad2(s)}` : `${pad2(m)}:${pad2(s)}`;
}

function fmtDuration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
  if (ms < 60000) return plural(Math.max(1, Math.round(ms / 1000)), 'second', 'seconds');
  const min = Math.round(ms / 60000);
  if (min < 60) return plural(min, 'minute', 'minutes');
  const h = Math.floor(min / 60);
  const rest = min % 60;
  return rest ? `${plural(h, 'hour', 'hours')} ${plural(rest, 'minute', 'minutes')}` : plural(h, 'hour', 'hours');
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}


function sameValue(a, b) {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b;
}

function isAnswered(value) {
  if (value === null || value === undefined) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'string') return value.trim() !== '';
  return true;
}

function listNumbers(nums) {
  return nums.map((n) => n + 1).join(', ');
}

function claimsOf(token) {
  try {
    const part = token.split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : {};
  } catch {
    return {};
  }
}

function announce(text, assertive = false) {
  const node = assertive ? el.alert : el.announce;
  node.textContent = '';
  // a fresh text node after a tick makes screen readers repeat identical messages
  setTimeout(() => { node.textContent = text; }, 30);
}

const serverNow = () => Date.now() + S.offset;
const isFinalState = () => FINAL.has(S.state);
const linear = () => S.exam && S.exam.navigation === 'linear';
const socketOpen = () => S.ws !== null && S.ws.readyState === WebSocket.OPEN;

// ------------------------------------------------------------------ views and status
function showView(name) {
  el.view.dataset.view = name;
  el.loadingView.hidden = name !== 'loading';
  el.tokenView.hidden = name !== 'token';
  el.problemView.hidden = name !== 'problem';
  el.readyView.hidden = name !== 'ready';
  el.questionView.hidden = name !== 'question';
  el.resultView.hidden = name !== 'result';
}

function setConn(state, text) {
  el.conn.dataset.state = state;
  el.connText.textContent = text;
}

/** The banner: online (hidden), offline, reconnecting, superseded, ended. */
function setBanner(state, text) {
  const changed = el.banner.dataset.state !== state || el.bannerText.textContent !== (text || '');
  el.banner.dataset.state = state;
  // the end of the attempt speaks for itself in the result view
  el.banner.hidden = state === 'online' || (state === 'ended' && isFinalState());
  if (changed) el.bannerText.textContent = text || '';
  el.retryNow.hidden = !(state === 'offline' || state === 'reconnecting');
  el.takeOver.hidden = state !== 'superseded';
}

const OFFLINE_TEXT = 'You are offline. Keep working: your answers are kept on this device and sent as soon as the connection is back.';
const OFFLINE_TEXT_EARLY = 'Cannot reach the exam server. Retrying…';

function showDisconnected(reconnecting) {
  const text = S.everWelcomed ? OFFLINE_TEXT : OFFLINE_TEXT_EARLY;
  setBanner(reconnecting ? 'reconnecting' : 'offline', text);
  if (reconnecting) setConn('reconnecting', 'Reconnecting…');
  else setConn('offline', 'Offline');
}

function route() {
  if (S.fatal) return;
  if (!S.exam) return;
  if (isFinalState()) {
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

function renderChrome() {
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
  el.timerBox.hidden = isFinalState();
  updateTimer();
  renderLock();
}

function renderReady() {
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

// ------------------------------------------------------------------ token and start-up
function examIdFromPath() {
  const m = location.pathname.match(/^\/exam\/([^/]+)\/?$/);
  if (!m) return null;
  try {
    const id = decodeURIComponent(m[1]);
    return EXAM_ID_RE.test(id) ? id : null;
  } catch {
    return null;
  }
}

/** `#token=…` from the address bar, which is then cleaned (history.replaceState). */
function takeFragmentToken() {
  const raw = location.hash.replace(/^#/, '');
  if (!raw) return null;
  const params = new URLSearchParams(raw);
  const token = params.get('token');
  history.replaceState(history.state, '', location.pathname + location.search);
  return token ? token.trim() : null;
}

function showToken(error) {
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
function showProblem(title, text) {
  setBanner('online', '');
  showView('problem');
  el.problemTitle.textContent = title;
  el.problemText.textContent = text;
  el.problemTitle.focus(); // read out at once; the view replaced whatever had focus
}

function useToken(token) {
  S.token = token;
  storeSet(sessionStorage, tokenKey(S.examId), token);
  const claims = claimsOf(token);
  let who = '';
  if (typeof claims.name === 'string' && claims.name.trim()) who = claims.name;
  else if (typeof claims.sub === 'string' && claims.sub) who = `User ${claims.sub}`;
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

// ------------------------------------------------------------------ connection
function wsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/v1/exams/${encodeURIComponent(S.examId)}/attempt`;
}

function connect() {
  clearTimeout(S.retryTimer);
  S.retryTimer = null;
  if (!S.token || S.fatal || S.superseded || isFinalState()) return;
  dropSocket();
  const gen = ++S.gen;
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  ws.binaryType = 'arraybuffer';
  S.ws = ws;
  S.welcomed = false;
  S.outq = [];
  S.bucket = OUT_BURST;
  S.bucketAt = performance.now();
  if (S.everWelcomed) showDisconnected(true);
  else setConn('connecting', 'Connecting…');
  clearTimeout(S.connectTimer);
  S.connectTimer = setTimeout(() => {
    if (gen === S.gen && !S.welcomed) lostConnection(1006);
  }, CONNECT_TIMEOUT_MS);
  ws.onopen = () => {
    if (gen !== S.gen) return;
    rawSend({ t: 'hello', token: S.token, v: 1, client: CLIENT });
  };
  ws.onmessage = (ev) => {
    if (gen !== S.gen) return;
    S.lastRx = Date.now();
    let msg;
    try {
      msg = typeof ev.data === 'string' ? JSON.parse(ev.data) : unpackMsg(ev.data);
    } catch (err) {
      console.warn('examwire: undecodable frame', err);
      return;
    }
    if (msg && typeof msg === 'object' && typeof msg.t === 'string') onMessage(msg);
  };
  ws.onclose = (ev) => {
    if (gen !== S.gen) return;
    lostConnection(ev.code, ev.reason);
  };
  ws.onerror = () => { /* a close event follows */ };
}

/** Forget the current socket without waiting for a close handshake. */
function dropSocket() {
  const ws = S.ws;
  S.ws = null;
  S.gen++;
  S.welcomed = false;
  if (ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(1000); } catch { /* already closed */ }
  }
}

function lostConnection(code) {
  dropSocket();
  clearTimeout(S.connectTimer);
  stopPings();
  clearTimeout(S.pumpTimer);
  S.pumpTimer = null;
  S.outq = [];
  S.fetching.clear();
  S.inflight.clear();
  if (S.startSent) S.startSent = false;
  if (S.everWelcomed && S.offlineSince === null && S.state === 'active') S.offlineSince = Date.now();

  if (isFinalState()) {
    setConn('idle', 'Disconnected');
    return;
  }
  if (code === 4409) {
    superseded();
    return;
  }
  if (Object.prototype.hasOwnProperty.call(FATAL_CLOSE, code)) {
    fatal(code);
    return;
  }
  showDisconnected(false);
  scheduleReconnect();
  renderAll();
}

function scheduleReconnect() {
  clearTimeout(S.retryTimer);
  // exponential backoff with full jitter
  const cap = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(S.retries, 16));
  const delay = Math.random() * cap;
  S.retries += 1;
  S.retryAt = Date.now() + delay;
  S.retryTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  S.retries = 0;
  connect();
}

function superseded() {
  S.superseded = true;
  cancelTyping();
  setConn('idle', 'Not connected');
  setBanner('superseded', 'This exam was opened in another window or device. This window has stopped so that your answers are not mixed up.');
  renderAll();
}

function takeOver() {
  S.superseded = false;
  S.retries = 0;
  setBanner('reconnecting', 'Taking the exam back to this window…');
  connect();
}

function fatal(code) {
  S.fatal = true;
  clearTimeout(S.retryTimer);
  cancelTyping();
  const text = FATAL_CLOSE[code];
  setConn('idle', 'Not connected');
  if (code === 4401) {
    storeSet(sessionStorage, tokenKey(S.examId), null);
    showToken(text); // the form says why (once); the banner stays hidden
    S.fatal = false; // a new token may be pasted
    return;
  }
  showProblem(code === 4404 ? 'No such exam' : code === 4400 ? 'Please reload' : 'Access refused', text);
}

// ------------------------------------------------------------------ sending
function rawSend(msg) {
  const ws = S.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  let frame = null;
  if (S.encoding === 'msgpack') {
    try { frame = packMsg(msg); } catch { frame = null; }
  }
  if (frame === null) frame = JSON.stringify(msg);
  try {
    ws.send(frame);
    return true;
  } catch {
    return false;
  }
}

function enqueue(msg) {
  S.outq.push(msg);
  pump();
}

/** Send queued frames in order, paced below the server's per-connection budget. */
function pump() {
  if (S.pumpTimer !== null) return;
  const now = performance.now();
  S.bucket = Math.min(OUT_BURST, S.bucket + ((now - S.bucketAt) * OUT_RATE_PER_S) / 1000);
  S.bucketAt = now;
  while (S.outq.length > 0 && S.bucket >= 1) {
    if (!socketOpen()) {
      S.outq = [];
      return;
    }
    const msg = S.outq.shift();
    if (msg.t === 'ping') msg.ct = Date.now();
    rawSend(msg);
    S.bucket -= 1;
  }
  if (S.outq.length > 0) {
    const wait = Math.ceil(((1 - S.bucket) * 1000) / OUT_RATE_PER_S);
    S.pumpTimer = setTimeout(() => {
      S.pumpTimer = null;
      pump();
    }, Math.max(wait, 10));
  }
}

/**
 * A request with the next id. Persisted kinds are kept (localStorage) until
 * answered and sent now or after the next welcome; the others are only sent
 * while connected (else null is returned and no id is used).
 */
function request(t, fields = {}) {
  const persist = PERSISTED.has(t);
  if (!persist && !S.welcomed) return null;
  const id = S.nextId++;
  const message = { t, id, ...fields };
  if (persist) {
    S.pending.push({ id, message });
    savePending();
  } else {
    storeSet(localStorage, lastIdKey(S.attempt), String(S.nextId - 1));
  }
  if (S.welcomed) {
    S.inflight.set(id, message);
    enqueue(message);
  }
  return id;
}

function savePending() {
  if (!S.attempt || S.superseded) return;
  storeSet(localStorage, pendingKey(S.attempt), JSON.stringify(S.pending));
  storeSet(localStorage, lastIdKey(S.attempt), String(S.nextId - 1));
}

function loadPending(attempt) {
  let list = [];
  try {
    const raw = JSON.parse(storeGet(localStorage, pendingKey(attempt)) || '[]');
    if (Array.isArray(raw)) {
      list = raw.filter((e) => e && Number.isSafeInteger(e.id) && e.id > 0 && e.message && typeof e.message.t === 'string'
        && e.message.id === e.id);
    }
  } catch { list = []; }
  const last = Number(storeGet(localStorage, lastIdKey(attempt)) || 0);
  return { list, last: Number.isSafeInteger(last) ? last : 0 };
}

function forgetAttemptStorage() {
  if (!S.attempt) return;
  storeSet(localStorage, pendingKey(S.attempt), null);
  storeSet(localStorage, lastIdKey(S.attempt), null);
}

function removePending(id) {
  const i = S.pending.findIndex((e) => e.id === id);
  if (i < 0) return null;
  const [entry] = S.pending.splice(i, 1);
  savePending();
  return entry.message;
}

const pendingAnswerFor = (qid) => S.pending.some((e) => e.message.t === 'answer' && e.message.q === qid);
const laterPending = (t, qid, id) => S.pending.some((e) => e.message.t === t && e.message.q === qid && e.id > id);

// ------------------------------------------------------------------ clock sync
function stopPings() {
  for (const t of S.pingTimers) clearTimeout(t);
  S.pingTimers = [];
  clearTimeout(S.pongTimer);
  S.pongTimer = null;
}

function startPings() {
  stopPings();
  for (const delay of PING_BURST) S.pingTimers.push(setTimeout(() => sendPing(false), delay));
  S.pingTimers.push(setInterval(() => sendPing(true), PING_EVERY_MS));
}

function sendPing(watch) {
  if (!S.welcomed) return;
  const sentAt = Date.now();
  enqueue({ t: 'ping', ct: sentAt });
  if (watch) {
    clearTimeout(S.pongTimer);
    S.pongTimer = setTimeout(() => {
      // nothing at all came back: the connection is dead even if the socket does not know yet
      if (S.welcomed && S.lastRx < sentAt) lostConnection(1006);
    }, PONG_TIMEOUT_MS);
  }
}

function onPong(m) {
  const now = Date.now();
  if (typeof m.ct !== 'number' || typeof m.st !== 'number') return;
  const rtt = now - m.ct;
  if (!(rtt >= 0) || rtt > 60000) return;
  S.clock.push({ rtt, offset: m.st - (m.ct + now) / 2 });
  if (S.clock.length > CLOCK_SAMPLES) S.clock.shift();
  let best = S.clock[0];
  for (const s of S.clock) if (s.rtt < best.rtt) best = s;
  S.offset = best.offset;
  updateTimer();
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
    case 'notice': onNotice(m); break;
    case 'result': onResult(m); break;
    case 'pong': onPong(m); break;
    default: break; // messages added later are ignored
  }
}

function onWelcome(w) {
  clearTimeout(S.connectTimer);
  const firstForAttempt = S.attempt !== w.attempt;
  S.welcomed = true;
  S.retries = 0;
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
  const kept = loadPending(w.attempt);
  const known = new Set(S.pending.map((e) => e.id));
  for (const e of kept.list) if (!known.has(e.id)) S.pending.push(e);
  S.pending.sort((a, b) => a.id - b.id);
  S.nextId = Math.max(S.nextId, S.lastId + 1, kept.last + 1, ...S.pending.map((e) => e.id + 1));
  savePending();

  // the server's truth, overlaid by what has not reached it yet
  S.saved = new Map(Object.entries(w.answers || {}));
  S.answers = new Map(S.saved);
  S.flags = new Set(Array.isArray(w.flags) ? w.flags : []);
  let index = Number.isInteger(w.index) ? w.index : 0;
  for (const { id, message } of S.pending) {
    if (id <= S.lastId) continue;
    if (message.t === 'answer') S.answers.set(message.q, message.value);
    else if (message.t === 'flag') { if (message.on) S.flags.add(message.q); else S.flags.delete(message.q); }
    else if (message.t === 'goto') index = message.index;
    else if (message.t === 'submit') S.submitting = true;
  }
  for (const [qid, t] of S.typing) S.answers.set(qid, t.value);
  if (firstForAttempt) S.index = Math.min(Math.max(0, index), Math.max(0, S.total - 1));

  setTime(w.state, w.deadline, w.remaining_ms, w.server_time);
  if (!S.clock.length && typeof w.server_time === 'number') S.offset = w.server_time - Date.now();
  if (FINAL.has(w.state)) {
    onFinal(w.state, null);
  } else {
    S.state = w.state;
    if (w.state === 'active' && typeof w.remaining_ms === 'number' && w.remaining_ms > 0) S.timeUp = false;
    if (w.state === 'active') sendDeferredSoon();
  }

  setConn('online', 'Connected');
  setBanner('online', '');
  if (wasOffline !== null && S.everWelcomed) announce('Connection restored. Your answers are being sent.');
  S.everWelcomed = true;

  // resend every unanswered request with its original id, in id order
  for (const { id, message } of S.pending) {
    S.inflight.set(id, message);
    enqueue(message);
  }
  startPings();
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
  const id = m.id;
  const message = S.inflight.get(id) || S.pending.find((e) => e.id === id)?.message;
  S.inflight.delete(id);
  removePending(id);
  if (typeof id === 'number' && id > S.lastId) S.lastId = id;
  if (!message) return;
  switch (message.t) {
    case 'answer':
      S.saved.set(message.q, message.value);
      if (!laterPending('answer', message.q, id)) S.qError.delete(message.q);
      renderSaveState(message.q);
      break;
    case 'start':
      S.startSent = false;
      if (typeof m.deadline === 'number') S.deadline = m.deadline;
      if (S.state === 'ready') S.state = 'active';
      ensureQuestions();
      route();
      focusQuestion();
      break;
    case 'fetch':
      break;
    default:
      break;
  }
}

function onError(m) {
  const id = m.id;
  if (typeof id !== 'number') {
    console.warn('examwire: server error', m.code, m.message);
    return;
  }
  const message = S.inflight.get(id) || S.pending.find((e) => e.id === id)?.message;
  S.inflight.delete(id);
  removePending(id);
  if (!message) return;
  const code = m.code;
  const retry = code === 'internal' || code === 'rate_limited';
  switch (message.t) {
    case 'answer': {
      const q = message.q;
      if (laterPending('answer', q, id)) break; // a newer answer for the question is on its way
      if (retry && !isFinalState()) {
        // nothing was applied: try again with a fresh id (ids must keep increasing)
        setTimeout(() => {
          if (!pendingAnswerFor(q) && sameValue(S.answers.get(q) ?? null, message.value ?? null)) {
            request('answer', { q, value: message.value });
            renderSaveState(q);
          }
        }, 1000);
        break;
      }
      if (code === 'not_active' && !isFinalState() && !S.timeUp) {
        // paused under it (the state push may still be on its way): send it again on resume
        S.deferred.set(q, message.value);
        if (S.state === 'active') setTimeout(() => { if (S.state === 'active') sendDeferred(); }, 1000);
        renderSaveState(q);
        break;
      }
      S.qError.set(q, ERROR_TEXT[code] || m.message || code);
      S.answers.set(q, S.saved.has(q) ? S.saved.get(q) : null);
      if (code === 'time_up') markTimeUp();
      renderSaveState(q);
      if (S.rendered && S.rendered.qid === q) syncInputs(true);
      break;
    }
    case 'flag': {
      if (laterPending('flag', message.q, id)) break;
      if (retry) {
        setTimeout(() => {
          if (S.flags.has(message.q) === message.on) request('flag', { q: message.q, on: message.on });
        }, 1000);
        break;
      }
      if (message.on) S.flags.delete(message.q); else S.flags.add(message.q);
      renderNavigator();
      renderFlag();
      break;
    }
    case 'submit':
      S.submitting = false;
      if (code === 'time_up') {
        markTimeUp();
      } else if (retry) {
        el.submitError.textContent = 'The exam could not be submitted just now. Please try again.';
        el.submitError.hidden = false;
      } else {
        el.submitError.textContent = `The exam was not submitted: ${ERROR_TEXT[code] || m.message || code}.`;
        el.submitError.hidden = false;
      }
      renderAll();
      break;
    case 'start':
      S.startSent = false;
      if (code !== 'not_active') {
        el.startError.textContent = `The exam could not be started: ${ERROR_TEXT[code] || m.message || code}.`;
        el.startError.hidden = false;
      }
      route();
      break;
    case 'fetch':
      S.fetching.delete(message.from);
      break;
    default:
      break; // goto, event: nothing to undo (events refused as rate_limited are dropped)
  }
}

function onBatch(m) {
  if (!Array.isArray(m.questions)) return;
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
  renderNavigator();
  if (el.view.dataset.view === 'question' && (!S.rendered || S.rendered.index !== S.index)) renderQuestion(false);
}

function ensureQuestions() {
  if (!S.welcomed || !(S.state === 'active' || S.state === 'paused')) return;
  for (let from = 0; from < S.total; from += FETCH_COUNT) {
    if (S.fetching.has(from)) continue;
    const end = Math.min(S.total, from + FETCH_COUNT);
    let missing = false;
    for (let i = from; i < end; i++) if (!S.questions[i]) { missing = true; break; }
    if (!missing) continue;
    S.fetching.add(from);
    request('fetch', { from, count: end - from });
  }
}

function setTime(state, deadline, remaining, serverTime) {
  if (typeof deadline === 'number') S.deadline = deadline;
  else if (deadline === null) S.deadline = null;
  if (typeof remaining === 'number') S.frozenMs = remaining;
  if (typeof serverTime === 'number' && !S.clock.length) S.offset = serverTime - Date.now();
}

function onTime(m) {
  setTime(m.state, m.deadline, m.remaining_ms, m.server_time);
  if (typeof m.remaining_ms === 'number') {
    for (const t of [...S.warned]) if (m.remaining_ms > t) S.warned.delete(t);
    if (S.timeUp && m.remaining_ms > 0 && m.state === 'active') {
      S.timeUp = false; // the proctor gave more time
      announce('You have been given more time.', true);
    }
  }
  if (typeof m.state === 'string' && m.state !== S.state && !FINAL.has(m.state)) onState(m.state, null);
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
  const before = S.state;
  S.state = state;
  if (state === 'paused' && before !== 'paused') {
    announce('Your proctor has paused the exam.', true);
  } else if (state === 'active' && before === 'paused') {
    announce('The exam has resumed.', true);
    sendDeferred();
  }
  if (state === 'active' || state === 'paused') ensureQuestions();
  route();
}

function sendDeferredSoon() {
  if (S.deferred.size) setTimeout(() => { if (S.state === 'active' && S.welcomed) sendDeferred(); }, 0);
}

function sendDeferred() {
  const items = [...S.deferred];
  S.deferred.clear();
  for (const [qid, value] of items) {
    const q = S.byId.get(qid);
    if (!q) continue;
    S.answers.set(qid, S.saved.has(qid) ? S.saved.get(qid) : null); // so that setAnswer sees a change
    setAnswer(q, value);
  }
}

function onFinal(state, reason) {
  const was = S.state;
  S.state = state;
  if (reason) S.endReason = reason;
  S.timeUp = false;
  S.submitting = false;
  cancelTyping();
  S.deferred.clear();
  stopPings();
  S.pending = [];
  forgetAttemptStorage();
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
  if (isFinalState()) renderResult();
}

// `from` is the proctor's `name` claim, but for a token without one the server
// sends the proctor's user id (docs/protocol.md: "`from` is the proctor's `name`
// claim"; the engine falls back to `sub`), which is meaningless to a candidate
// ("Message from P1"). The page cannot tell a name from an id, so it names the
// role: what a candidate needs to know is that the proctor wrote it.
function onNotice(m) {
  const text = typeof m.text === 'string' ? m.text : '';
  if (!text) return;
  const from = 'your proctor';
  const item = document.createElement('div');
  item.className = 'notice';
  item.setAttribute('role', 'note');
  const body = document.createElement('div');
  body.className = 'notice__body';
  const head = document.createElement('p');
  head.className = 'notice__from';
  head.textContent = `Message from ${from}`;
  const p = document.createElement('p');
  p.className = 'notice__text';
  p.textContent = text;
  body.append(head, p);
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'btn btn--sm notice__close';
  close.textContent = 'Dismiss';
  close.setAttribute('aria-label', `Dismiss the message from ${from}`);
  close.addEventListener('click', () => {
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    const target = next ? next.querySelector('button') : el.qNumber;
    if (target && !target.closest('[hidden]')) target.focus(); else el.main.focus();
  });
  item.append(body, close);
  el.notice.prepend(item);
  while (el.notice.children.length > 5) el.notice.lastElementChild.remove();
}

// ------------------------------------------------------------------ timer
function remainingMs() {
  if (!S.exam) return null;
  if (S.state === 'active' && typeof S.deadline === 'number') return S.deadline - serverNow();
  if (S.state === 'paused' && typeof S.frozenMs === 'number') return S.frozenMs;
  if (S.state === 'ready') return S.exam.duration_ms;
  return null;
}

function updateTimer() {
  if (!S.exam || isFinalState()) {
    el.timerBox.hidden = true;
    return;
  }
  el.timerBox.hidden = false;
  const rem = remainingMs();
  if (rem === null) return;
  const shown = S.timeUp ? 0 : Math.max(0, rem);
  const text = fmtClock(shown);
  if (el.timer.textContent !== text) el.timer.textContent = text;
  let level = 'normal';
  if (S.state === 'paused') level = 'paused';
  else if (S.state === 'active' && (shown <= WARN_AT_MS[1] || S.timeUp)) level = 'critical';
  else if (S.state === 'active' && shown <= WARN_AT_MS[0]) level = 'low';
  el.timerBox.dataset.level = level;
  el.timerLabel.textContent = S.state === 'paused' ? 'Paused' : S.state === 'ready' ? 'Duration' : 'Time left';

  if (S.state !== 'active') return;
  if (rem <= 0) {
    markTimeUp();
    return;
  }
  const due = WARN_AT_MS.filter((t) => rem <= t && !S.warned.has(t) && S.exam.duration_ms > t);
  if (due.length > 0) {
    for (const t of due) S.warned.add(t);
    const t = Math.min(...due);
    const words = t >= 60000 ? plural(Math.round(t / 60000), 'minute', 'minutes') : plural(Math.round(t / 1000), 'second', 'seconds');
    const msg = `${words.replace(/^1 /, '1 ')} left. Check your answers and submit before the time runs out.`;
    el.timerWarningText.textContent = msg;
    el.timerWarning.dataset.level = t <= WARN_AT_MS[1] ? 'critical' : 'low';
    el.timerWarning.hidden = false;
    announce(`${words} left.`, true);
  }
}

/** The local clock says the time is over: lock the page and wait for the server's verdict. */
function markTimeUp() {
  if (S.timeUp || isFinalState()) return;
  flushTyping(); // what was typed is the candidate's answer: it still has the grace period
  S.timeUp = true;
  el.timerWarning.hidden = true;
  announce('Time is up.', true);
  closeDialogs();
  renderAll();
}

// ------------------------------------------------------------------ answering
function locked() {
  return S.state !== 'active' || S.timeUp || S.superseded || S.submitting || isFinalState() || S.fatal;
}

function setAnswer(q, value) {
  if (S.state === 'paused' && !S.timeUp && !S.superseded && !S.submitting) {
    S.answers.set(q.id, value);
    S.deferred.set(q.id, value);
    renderSaveState(q.id);
    return;
  }
  if (locked()) return;
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

function cancelTyping() {
  for (const t of S.typing.values()) clearTimeout(t.timer);
  S.typing.clear();
}

function flushTyping() {
  for (const [qid, t] of [...S.typing]) {
    clearTimeout(t.timer);
    S.typing.delete(qid);
    t.commit();
  }
}

function debounce(q, ms, value, commit) {
  const prev = S.typing.get(q.id);
  if (prev) clearTimeout(prev.timer);
  const entry = { value, commit, timer: setTimeout(() => { S.typing.delete(q.id); commit(); }, ms) };
  S.typing.set(q.id, entry);
  renderSaveState(q.id);
}

function saveStatusOf(qid) {
  if (S.typing.has(qid) || S.deferred.has(qid) || pendingAnswerFor(qid)) return 'saving';
  if (S.qError.has(qid)) return 'error';
  if (S.saved.has(qid) && isAnswered(S.answers.get(qid))) return 'saved';
  if (S.saved.has(qid)) return 'cleared';
  return 'none';
}

function renderSaveState(qid) {
  renderNavigator();
  if (S.rendered && S.rendered.qid === qid) renderStatusLine();
}

function renderStatusLine() {
  const q = S.questions[S.index];
  if (!q) {
    el.saveStatus.textContent = '';
    el.saveStatus.dataset.status = 'none';
    el.saveDetail.textContent = '';
    return;
  }
  const status = saveStatusOf(q.id);
  const text = { saving: 'saving…', saved: 'saved', cleared: 'saved', error: 'not saved', none: '' }[status];
  if (el.saveStatus.textContent !== text) el.saveStatus.textContent = text;
  el.saveStatus.dataset.status = status;
  let detail = '';
  if (status === 'saving' && !S.welcomed && !S.typing.has(q.id)) detail = 'offline: kept on this device, sent when the connection is back';
  else if (status === 'error') detail = S.qError.get(q.id) || '';
  else if (status === 'cleared') detail = 'answer cleared';
  else if (status === 'none') detail = 'not answered yet';
  el.saveDetail.textContent = detail;
  el.clear.hidden = !isAnswered(S.answers.get(q.id)) || locked();
}

// ------------------------------------------------------------------ question view
const TYPE_LABEL = {
  single: 'Choose one answer',
  multiple: 'Choose all answers that apply',
  true_false: 'True or false?',
  numeric: 'Your answer (a number)',
  text: 'Your answer',
};

function focusQuestion() {
  setTimeout(() => {
    if (el.view.dataset.view === 'question') el.qNumber.focus();
  }, 0);
}

function renderQuestion(focus) {
  const q = S.questions[S.index];
  el.qPos.textContent = String(S.index + 1);
  el.qTotal.textContent = String(S.total);
  if (!q) {
    S.rendered = null;
    el.prompt.textContent = 'Loading the question…';
    el.qMeta.textContent = '';
    el.answerFs.hidden = true;
    el.answerBody.replaceChildren();
    ensureQuestions();
  } else if (!S.rendered || S.rendered.index !== S.index || S.rendered.qid !== q.id) {
    buildQuestion(q);
  }
  renderStatusLine();
  renderFlag();
  renderNavigator();
  renderLock();
  if (focus) focusQuestion();
}

function buildQuestion(q) {
  S.rendered = { index: S.index, qid: q.id };
  el.prompt.textContent = q.prompt;
  const points = typeof q.points === 'number' ? q.points : 1;
  el.qMeta.textContent = fmtPoints(points);
  el.answerFs.hidden = false;
  el.inputError.hidden = true;
  el.answerLegend.textContent = TYPE_LABEL[q.type] || 'Your answer';
  el.answerLegend.classList.toggle('visually-hidden', q.type === 'numeric' || q.type === 'text');
  el.answerFs.dataset.type = q.type;
  const body = [];
  const name = `answer-${S.index}`;

  const option = (type, value, text, n) => {
    const label = document.createElement('label');
    label.className = 'opt';
    const input = document.createElement('input');
    input.type = type;
    input.name = name;
    input.value = value;
    input.id = `opt-${S.index}-${n}`;
    const span = document.createElement('span');
    span.className = 'opt__text';
    span.textContent = text;
    label.append(input, span);
    return { label, input };
  };

  if (q.type === 'single' || q.type === 'multiple') {
    const list = document.createElement('div');
    list.className = 'opts';
    const inputs = [];
    q.options.forEach((o, n) => {
      const { label, input } = option(q.type === 'single' ? 'radio' : 'checkbox', o.id, o.text, n);
      inputs.push(input);
      input.addEventListener('change', () => {
        if (q.type === 'single') {
          if (input.checked) setAnswer(q, o.id);
        } else {
          setAnswer(q, inputs.filter((i) => i.checked).map((i) => i.value));
        }
        markChecked(list);
      });
      list.append(label);
    });
    body.push(list);
  } else if (q.type === 'true_false') {
    const list = document.createElement('div');
    list.className = 'opts opts--tf';
    [[true, 'True'], [false, 'False']].forEach(([value, text], n) => {
      const { label, input } = option('radio', String(value), text, n);
      input.addEventListener('change', () => {
        if (input.checked) setAnswer(q, value);
        markChecked(list);
      });
      list.append(label);
    });
    body.push(list);
  } else if (q.type === 'numeric') {
    const wrap = document.createElement('div');
    wrap.className = 'field field--answer';
    const label = document.createElement('label');
    label.htmlFor = 'answer-numeric';
    label.textContent = 'Your answer (a number)';
    const input = document.createElement('input');
    input.type = 'number';
    input.id = 'answer-numeric';
    input.step = 'any';
    input.inputMode = 'decimal';
    input.autocomplete = 'off';
    input.setAttribute('aria-describedby', 'numeric-hint input-error');
    const hint = document.createElement('p');
    hint.id = 'numeric-hint';
    hint.className = 'hint';
    hint.textContent = 'Use a dot for decimals, for example 3.14. Saved automatically.';
    const commit = () => {
      const parsed = parseNumeric(input);
      if (parsed.error) {
        showInputError(parsed.error);
        renderSaveState(q.id);
        return;
      }
      showInputError('');
      setAnswer(q, parsed.value);
    };
    input.addEventListener('input', () => {
      const parsed = parseNumeric(input);
      if (parsed.error) {
        const prev = S.typing.get(q.id);
        if (prev) clearTimeout(prev.timer);
        S.typing.delete(q.id);
        renderSaveState(q.id);
        return; // shown on change or blur, not while typing
      }
      showInputError('');
      debounce(q, NUMERIC_DEBOUNCE_MS, parsed.value, commit);
    });
    input.addEventListener('change', () => { cancelTypingFor(q.id); commit(); });
    input.addEventListener('blur', () => { cancelTypingFor(q.id); commit(); });
    wrap.append(label, input, hint);
    body.push(wrap);
  } else if (q.type === 'text') {
    const wrap = document.createElement('div');
    wrap.className = 'field field--answer';
    const label = document.createElement('label');
    label.htmlFor = 'answer-text';
    label.textContent = 'Your answer';
    const area = document.createElement('textarea');
    area.id = 'answer-text';
    area.rows = 5;
    area.maxLength = TEXT_MAX;
    area.setAttribute('aria-describedby', 'text-count');
    const count = document.createElement('p');
    count.id = 'text-count';
    count.className = 'hint';
    const updateCount = () => { count.textContent = `${area.value.length} / ${TEXT_MAX} characters · saved automatically`; };
    const value = () => (area.value.trim() === '' ? null : area.value);
    const commit = () => setAnswer(q, value());
    area.addEventListener('input', () => {
      updateCount();
      debounce(q, TEXT_DEBOUNCE_MS, value(), commit);
    });
    area.addEventListener('blur', () => { if (S.typing.has(q.id)) { cancelTypingFor(q.id); commit(); } });
    wrap.append(label, area, count);
    body.push(wrap);
    area.dataset.count = '1';
    S.updateCount = updateCount;
  } else {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = 'This page cannot show this kind of question.';
    body.push(p);
  }
  el.answerBody.replaceChildren(...body);
  syncInputs(true);
}

function cancelTypingFor(qid) {
  const t = S.typing.get(qid);
  if (t) clearTimeout(t.timer);
  S.typing.delete(qid);
}

function markChecked(list) {
  for (const label of list.querySelectorAll('.opt')) {
    label.classList.toggle('is-checked', label.querySelector('input').checked);
  }
}

function parseNumeric(input) {
  if (input.validity && input.validity.badInput) return { error: 'Enter a number, for example 42 or 3.14.' };
  const raw = input.value.trim();
  if (raw === '') return { value: null };
  const n = Number(raw);
  if (!Number.isFinite(n)) return { error: 'Enter a number, for example 42 or 3.14.' };
  if (Math.abs(n) > NUMERIC_MAX) return { error: 'This number is too large.' };
  return { value: n };
}

function showInputError(text) {
  el.inputError.textContent = text;
  el.inputError.hidden = !text;
  const input = document.getElementById('answer-numeric');
  if (input) input.setAttribute('aria-invalid', text ? 'true' : 'false');
}

/** Put the shown value of the current question into its inputs (never under the candidate's fingers). */
function syncInputs(force) {
  const q = S.questions[S.index];
  if (!q || !S.rendered || S.rendered.qid !== q.id) return;
  const value = S.answers.has(q.id) ? S.answers.get(q.id) : null;
  if (q.type === 'single' || q.type === 'multiple' || q.type === 'true_false') {
    const chosen = q.type === 'multiple' ? new Set(Array.isArray(value) ? value : [])
      : new Set(value === null || value === undefined ? [] : [String(value)]);
    for (const input of el.answerBody.querySelectorAll('input')) input.checked = chosen.has(input.value);
    const list = el.answerBody.querySelector('.opts');
    if (list) markChecked(list);
  } else if (q.type === 'numeric') {
    const input = document.getElementById('answer-numeric');
    if (input && (force || (document.activeElement !== input && !S.typing.has(q.id)))) {
      input.value = typeof value === 'number' ? String(value) : '';
    }
  } else if (q.type === 'text') {
    const area = document.getElementById('answer-text');
    if (area && (force || (document.activeElement !== area && !S.typing.has(q.id)))) {
      area.value = typeof value === 'string' ? value : '';
      if (S.updateCount) S.updateCount();
    }
  }
}

function renderFlag() {
  const q = S.questions[S.index];
  const on = Boolean(q && S.flags.has(q.id));
  el.flag.setAttribute('aria-pressed', on ? 'true' : 'false');
  el.flag.classList.toggle('is-on', on);
  el.flagText.textContent = on ? 'Flagged for review' : 'Flag for review';
}

function renderLock() {
  if (el.view.dataset.view !== 'question') return;
  const lock = locked();
  const q = S.questions[S.index];
  el.answerFs.disabled = lock;
  el.flag.disabled = lock || !q;
  el.prev.disabled = lock || linear() || S.index <= 0;
  el.next.disabled = lock || S.index >= S.total - 1;
  el.linearNote.hidden = !linear();
  el.submit.disabled = lock;
  el.submit.textContent = S.submitting ? 'Submitting…' : 'Submit exam…';
  for (const b of el.navigator.querySelectorAll('button')) {
    const i = Number(b.dataset.index);
    b.disabled = (S.state !== 'active' && S.state !== 'paused') || S.superseded || S.submitting || S.timeUp
      || S.state === 'paused' || (linear() && i < S.index);
  }
  let block = '';
  let kind = '';
  // superseded: the banner says it (once), with the button that takes the exam back
  if (S.superseded) kind = 'superseded';
  else if (S.timeUp) { block = 'Time is up. Your saved answers are being handed in…'; kind = 'timeup'; }
  else if (S.state === 'paused') { block = 'Your proctor has paused the exam. The clock is stopped; please wait.'; kind = 'paused'; }
  else if (S.submitting) { block = S.welcomed ? 'Submitting your exam…' : 'Your exam will be submitted as soon as the connection is back.'; kind = 'submitting'; }
  el.block.hidden = !block;
  el.block.dataset.kind = kind;
  if (el.blockText.textContent !== block) el.blockText.textContent = block;
  el.clear.hidden = !q || !isAnswered(S.answers.get(q.id)) || lock;
}

function navLabel(i, q) {
  const parts = [`Question ${i + 1}`];
  if (!q) return parts.join(', ');
  const status = saveStatusOf(q.id);
  parts.push(isAnswered(S.answers.get(q.id)) ? 'answered' : 'not answered');
  if (S.flags.has(q.id)) parts.push('flagged');
  if (status === 'saving') parts.push('saving');
  if (status === 'error') parts.push('not saved');
  if (linear() && i < S.index) parts.push('closed');
  return parts.join(', ');
}

function renderNavigator() {
  if (!S.exam) return;
  const ol = el.navigator;
  if (ol.children.length !== S.total) {
    const items = [];
    for (let i = 0; i < S.total; i++) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'nav-btn';
      b.dataset.index = String(i);
      b.textContent = String(i + 1);
      b.addEventListener('click', () => goTo(i));
      li.append(b);
      items.push(li);
    }
    ol.replaceChildren(...items);
  }
  let answered = 0;
  for (let i = 0; i < S.total; i++) {
    const b = ol.children[i].firstChild;
    const q = S.questions[i];
    const isAns = Boolean(q) && isAnswered(S.answers.get(q.id));
    if (isAns) answered++;
    const flagged = Boolean(q) && S.flags.has(q.id);
    const status = q ? saveStatusOf(q.id) : 'none';
    b.dataset.answered = isAns ? 'true' : 'false';
    b.dataset.flagged = flagged ? 'true' : 'false';
    b.dataset.saving = status === 'saving' ? 'true' : 'false';
    b.dataset.error = status === 'error' ? 'true' : 'false';
    b.dataset.closed = linear() && i < S.index ? 'true' : 'false';
    if (i === S.index) b.setAttribute('aria-current', 'step');
    else b.removeAttribute('aria-current');
    const label = navLabel(i, q);
    if (b.getAttribute('aria-label') !== label) b.setAttribute('aria-label', label);
  }
  el.progress.textContent = `${answered} of ${S.total} answered`;
  el.progressFill.style.width = S.total ? `${(100 * answered) / S.total}%` : '0%';
  if (S.navIndex !== S.index && el.view.dataset.view === 'question') {
    S.navIndex = S.index;
    keepCurrentInView();
  }
}

/** Scroll the navigator (only it, never the page) so that the current question's cell is in view. */
function keepCurrentInView() {
  const nav = el.navigator;
  const li = nav.children[S.index];
  if (!li || nav.scrollHeight <= nav.clientHeight) return;
  const pad = parseFloat(getComputedStyle(nav).paddingTop) || 0;
  const box = nav.getBoundingClientRect();
  const top = box.top + nav.clientTop;
  const cell = li.getBoundingClientRect();
  if (cell.top < top + pad) nav.scrollTop -= top + pad - cell.top;
  else if (cell.bottom > top + nav.clientHeight - pad) nav.scrollTop += cell.bottom - (top + nav.clientHeight - pad);
}

function renderAll() {
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

// ------------------------------------------------------------------ navigation
function goTo(i, { confirmed = false } = {}) {
  if (i === S.index || i < 0 || i >= S.total || locked()) return;
  if (linear()) {
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

function openNextDialog(i) {
  S.nextTarget = i;
  const q = S.questions[S.index];
  const unanswered = q && !isAnswered(S.answers.get(q.id));
  const closing = i - S.index === 1 ? `question ${S.index + 1}` : `questions ${S.index + 1} to ${i}`;
  el.nextText.textContent = `In this exam you cannot go back: ${closing} will be closed.${unanswered ? ` Question ${S.index + 1} is not answered.` : ''}`;
  el.nextConfirm.textContent = `Go to question ${i + 1}`;
  openDialog(el.nextDialog, el.nextCancel);
}

function openDialog(dialog, focusTarget) {
  S.returnFocus = document.activeElement;
  if (!dialog.open) dialog.showModal();
  focusTarget.focus();
}

function closeDialog(dialog) {
  if (dialog.open) dialog.close();
}

function closeDialogs() {
  closeDialog(el.submitDialog);
  closeDialog(el.nextDialog);
}

function restoreFocus() {
  const target = S.returnFocus;
  S.returnFocus = null;
  if (target && target.isConnected && !target.disabled && !target.closest('[hidden]')) target.focus();
}

function openSubmitDialog() {
  if (locked()) return;
  flushTyping();
  const unanswered = [];
  const flagged = [];
  for (let i = 0; i < S.total; i++) {
    const q = S.questions[i];
    if (!q || !isAnswered(S.answers.get(q.id))) unanswered.push(i);
    if (q && S.flags.has(q.id)) flagged.push(i);
  }
  const saving = S.pending.filter((e) => e.message.t === 'answer').length;
  const answered = S.total - unanswered.length;
  el.submitSummary.textContent = `You answered ${answered} of ${S.total} questions.`;
  const items = [];
  const add = (cls, label, text) => {
    const li = document.createElement('li');
    li.className = cls;
    const strong = document.createElement('strong');
    strong.textContent = label;
    li.append(strong, ` ${text}`);
    items.push(li);
  };
  if (unanswered.length) add('submit-details__unanswered', unanswered.length === 1 ? 'Unanswered question:' : 'Unanswered questions:', listNumbers(unanswered));
  else add('submit-details__ok', 'Every question is answered.', '');
  if (flagged.length) add('submit-details__flagged', 'Flagged for review:', listNumbers(flagged));
  if (saving) add('submit-details__saving', 'Still saving:', `${plural(saving, 'answer', 'answers')}; ${S.welcomed ? 'they are sent before your submission.' : 'you are offline; they and your submission are sent when the connection is back.'}`);
  el.submitDetails.replaceChildren(...items);
  el.submitError.hidden = true;
  openDialog(el.submitDialog, el.submitCancel);
}

function confirmSubmit() {
  closeDialog(el.submitDialog);
  if (locked()) return;
  flushTyping();
  S.submitting = true;
  request('submit');
  renderAll();
}

// ------------------------------------------------------------------ result view
function renderResult() {
  const state = S.state;
  el.resultView.dataset.state = state;
  el.resultIcon.dataset.state = state;
  el.resultTitle.textContent = state === 'submitted' ? 'Exam submitted' : state === 'expired' ? 'Time is up' : 'Exam ended';
  if (state === 'submitted') el.resultReason.textContent = 'Your answers have been handed in.';
  else if (state === 'expired') el.resultReason.textContent = 'The time ran out: the answers you had saved were handed in automatically.';
  else el.resultReason.textContent = S.endReason ? `Your proctor ended the exam. Reason: ${S.endReason}` : 'Your proctor ended the exam.';

  const r = S.result;
  const nodes = [];
  if (r && typeof r.score === 'number') {
    el.result.dataset.state = 'scored';
    const score = document.createElement('p');
    score.className = 'result__score';
    const label = document.createElement('span');
    label.className = 'result__label';
    label.textContent = 'Score';
    const value = document.createElement('span');
    value.id = 'score';
    value.className = 'result__value';
    value.textContent = `${fmtNum(r.score)} / ${fmtNum(r.max_score)}`;
    score.append(label, value);
    const pct = document.createElement('p');
    pct.className = 'result__percent';
    pct.id = 'percent';
    pct.textContent = `${typeof r.percent === 'number' ? fmtNum(r.percent, 1) : '?'}\u00a0%`; // never wrapped apart
    const passed = document.createElement('p');
    passed.id = 'passed';
    passed.className = `result__passed badge ${r.passed ? 'badge--pass' : 'badge--fail'}`;
    passed.textContent = r.passed ? 'Passed' : 'Not passed';
    nodes.push(score, pct, passed);
  } else if (S.exam && S.exam.show_result) {
    el.result.dataset.state = 'waiting';
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = state === 'submitted' ? 'Submitted. Your result is being calculated…' : 'Your result is being calculated…';
    nodes.push(p);
  } else {
    el.result.dataset.state = 'submitted';
    const p = document.createElement('p');
    p.className = 'result__plain';
    p.textContent = state === 'terminated' ? 'Your answers so far were submitted.' : 'Your answers were submitted.';
    nodes.push(p);
  }
  el.result.replaceChildren(...nodes);
}

// ------------------------------------------------------------------ candidate events
function reportEvent(kind) {
  if (!S.welcomed || S.state !== 'active' || S.timeUp || S.superseded) return;
  const now = performance.now();
  S.eventBucket = Math.min(EVENT_BURST, S.eventBucket + ((now - S.eventAt) * EVENT_RATE_PER_S) / 1000);
  S.eventAt = now;
  if (S.eventBucket < 1) return; // dropped: events are never queued
  S.eventBucket -= 1;
  request('event', { kind });
}

// ------------------------------------------------------------------ wiring
function wire() {
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

  el.prev.addEventListener('click', () => goTo(S.index - 1));
  el.next.addEventListener('click', () => goTo(S.index + 1));
  el.flag.addEventListener('click', () => {
    const q = S.questions[S.index];
    if (!q || locked()) return;
    const on = !S.flags.has(q.id);
    if (on) S.flags.add(q.id); else S.flags.delete(q.id);
    request('flag', { q: q.id, on });
    renderFlag();
    renderNavigator();
    announce(on ? `Question ${S.index + 1} flagged for review.` : `Flag removed from question ${S.index + 1}.`);
  });
  el.clear.addEventListener('click', () => {
    const q = S.questions[S.index];
    if (!q || locked()) return;
    cancelTypingFor(q.id);
    showInputError('');
    setAnswer(q, q.type === 'multiple' ? [] : null);
    syncInputs(true);
    renderStatusLine();
    el.qNumber.focus();
  });

  el.submit.addEventListener('click', openSubmitDialog);
  el.submitCancel.addEventListener('click', () => closeDialog(el.submitDialog));
  el.submitConfirm.addEventListener('click', confirmSubmit);
  el.submitDialog.addEventListener('close', restoreFocus);

  el.nextCancel.addEventListener('click', () => closeDialog(el.nextDialog));
  el.nextConfirm.addEventListener('click', () => {
    const target = S.nextTarget;
    S.nextTarget = null;
    S.returnFocus = null;
    closeDialog(el.nextDialog);
    if (target !== null) goTo(target, { confirmed: true });
  });
  el.nextDialog.addEventListener('close', restoreFocus);

  el.retryNow.addEventListener('click', reconnectNow);
  el.takeOver.addEventListener('click', takeOver);
  el.timerWarningClose.addEventListener('click', () => {
    el.timerWarning.hidden = true;
    el.qNumber.focus();
  });

  window.addEventListener('offline', () => {
    if (S.token && !isFinalState() && !S.superseded && !S.fatal && (S.ws || S.retryTimer)) lostConnection(1006);
  });
  window.addEventListener('online', () => {
    if (S.token && !S.welcomed && !isFinalState() && !S.superseded && !S.fatal) reconnectNow();
  });
  // whatever is being typed is kept (pending list) when the page goes away
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
  const override = storeGet(sessionStorage, ENCODING_KEY);
  if (override === 'json' || override === 'msgpack') S.encoding = override;
  wire();
  S.examId = examIdFromPath();
  if (!S.examId) {
    showProblem('No such exam', 'This address does not name an exam. Open the link you were given.');
    return;
  }
  el.footerExam.textContent = `Exam ${S.examId}`;
  const fromLink = takeFragmentToken();
  const token = fromLink || storeGet(sessionStorage, tokenKey(S.examId));
  if (token) useToken(token);
  else showToken('');
}

init();
