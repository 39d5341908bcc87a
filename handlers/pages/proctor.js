// Examwire live proctor dashboard (ES module; nothing is exposed on window).
//
// Protocol: docs/protocol.md (the wire contract; the proctor connection), JSON text frames.
// CSP: no inline script/style, no eval; untrusted text (names, reasons, event
// details) only ever reaches the DOM through textContent.

import { fmtNum, fmtPoints } from './format.js';

const STORE_TOKEN = 'examwire.proctor.token';
const STORE_EXAM = 'examwire.proctor.exam';
const CLIENT = 'examwire-proctor/1';

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15000;
const PING_EVERY_MS = 15000;
const CLOCK_SAMPLES = 5;
const REFRESH_MS = 250;
const FEED_MAX = 200;
const DETAIL_MAX = 120;
const FLASH_MS = 1700;
const LOW_MS = 5 * 60 * 1000;
const CRITICAL_MS = 60 * 1000;

const FINAL = new Set(['submitted', 'expired', 'terminated']);
const IN_PROGRESS = new Set(['ready', 'active', 'paused']);
const STATE_RANK = { active: 0, paused: 1, ready: 2, submitted: 3, expired: 4, terminated: 5 };
const STATE_LABEL = { ready: 'not started', active: 'active', paused: 'paused', submitted: 'submitted', expired: 'expired', terminated: 'terminated' };
const ALERT_KINDS = new Set(['blur', 'fullscreen_exit', 'copy', 'paste', 'offline', 'visibility_hidden', 'devtools', 'resize']);
const ROW_FIELDS = ['user', 'name', 'state', 'connected', 'answered', 'total', 'flagged', 'index', 'deadline', 'remaining_ms', 'events', 'reason', 'score', 'percent'];

// Close codes after which reconnecting cannot help.
const FATAL_CLOSE = new Map([
  [4401, 'Token refused: missing, malformed, expired or wrongly signed'],
  [4403, 'Not allowed: this token may not proctor this exam'],
  [4404, 'No such exam'],
]);

const ERROR_TEXT = {
  not_active: 'the attempt is not in a state that allows this',
  not_found: 'no such attempt in this exam',
  bad_request: 'the server rejected the request as invalid',
  rate_limited: 'too many requests; wait a moment and try again',
  forbidden: 'this token may not do that',
  internal: 'the server failed; try again',
  unknown_type: 'the server does not support this request',
  time_up: "the attempt's time is already up",
};

const $ = (id) => document.getElementById(id);
const el = {
  signin: $('signin'), signinForm: $('signin-form'), token: $('token'), signinError: $('signin-error'),
  picker: $('exam-picker'), exam: $('exam'), open: $('open'),
  choose: $('choose'), chooseText: $('choose-text'),
  conn: $('conn-status'), connText: $('conn-text'), connCountdown: $('conn-countdown'), reconnectNow: $('reconnect-now'),
  who: $('who'), signOut: $('sign-out'),
  live: $('live'), title: $('exam-title'), meta: $('exam-meta'), fatal: $('fatal'),
  extendAll: $('extend-all'), pauseAll: $('pause-all'), resumeAll: $('resume-all'),
  counts: {
    total: $('count-total'), active: $('count-active'), paused: $('count-paused'),
    ready: $('count-ready'), connected: $('count-connected'), finished: $('count-finished'),
  },
  filterText: $('filter-text'), filterState: $('filter-state'), shown: $('shown'),
  status: $('status'), table: $('attempts'), rows: $('rows'), empty: $('empty'),
  feed: $('feed'), feedEmpty: $('feed-empty'),
  extendDialog: $('extend-dialog'), extendForm: $('extend-form'), extendTitle: $('extend-title'),
  extendTarget: $('extend-target'), extendMinutes: $('extend-minutes'), extendError: $('extend-error'), extendConfirm: $('extend-confirm'),
  terminateDialog: $('terminate-dialog'), terminateForm: $('terminate-form'), terminateTarget: $('terminate-target'),
  terminateReason: $('terminate-reason'), terminateError: $('terminate-error'),
  messageDialog: $('message-dialog'), messageForm: $('message-form'), messageTarget: $('message-target'),
  messageText: $('message-text'), messageError: $('message-error'),
  confirmDialog: $('confirm-dialog'), confirmForm: $('confirm-form'), confirmTitle: $('confirm-title'),
  confirmText: $('confirm-text'), confirmOk: $('confirm-ok'),
};

const app = {
  token: null,
  signInSeq: 0,
  exams: [],
  examId: null,
  exam: null,
  // connection
  ws: null,
  gen: 0,
  nextId: 1,
  pending: new Map(),
  live: false,
  dropped: false,
  fatal: false,
  retries: 0,
  retryTimer: null,
  retryAt: 0,
  pingTimer: null,
  clock: [],
  offset: 0,
  // table
  rows: new Map(),
  sort: { key: 'name', dir: 1 },
  filter: { text: '', state: 'all' },
  needOrder: false,
  namesDirty: false,
  dirty: new Set(),
  refreshTimer: null,
  lastRefresh: -Infinity,
  // dialogs
  dialogTarget: null,
  confirmAction: null,
  returnFocus: null,
};

const collator = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true });

// Only rows on (or near) the screen get their clock repainted every second.
const visibility = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const rec = app.rows.get(entry.target.dataset.attempt);
    if (!rec || rec.tr !== entry.target) continue;
    rec.visible = entry.isIntersecting;
    if (rec.visible) renderLeft(rec);
  }
}, { rootMargin: '300px 0px' });

// ------------------------------------------------------------------ storage
function store(key, value) {
  try {
    if (value === null || value === undefined) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch { /* storage disabled: the page still works for this load */ }
}

function recall(key) {
  try { return sessionStorage.getItem(key); } catch { return null; }
}

/** Read `#token=…&exam=…`, then drop the fragment from the address bar. */
function takeFragment() {
  const raw = location.hash.replace(/^#/, '');
  if (!raw) return {};
  const params = new URLSearchParams(raw);
  const token = params.get('token');
  const exam = params.get('exam');
  if (token === null && exam === null) return {};
  history.replaceState(history.state, '', location.pathname + location.search);
  return { token: token ? token.trim() : null, exam: exam ? exam.trim() : null };
}

/** The token's payload, decoded for display only (the server verifies it). */
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

// ------------------------------------------------------------------ formatting
const pad2 = (n) => String(n).padStart(2, '0');

function clockTime(ms) {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function fmtLeft(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}:${pad2(m)}:${pad2(s)}` : `${pad2(m)}:${pad2(s)}`;
}

function fmtDuration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
  const min = Math.round(ms / 60000);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  const rest = min % 60;
  return rest ? `${h} h ${rest} min` : `${h} h`;
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}


/** Does `extra` (say a close reason) only repeat what `text` already says? */
function repeats(text, extra) {
  const norm = (t) => t.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim();
  return norm(text).includes(norm(extra));
}

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function detailText(detail) {
  if (detail === null || detail === undefined) return '';
  try {
    const json = JSON.stringify(detail);
    return json === undefined ? '' : json;
  } catch {
    return String(detail);
  }
}

const num = (v, dflt = 0) => (typeof v === 'number' && Number.isFinite(v) ? v : dflt);

// ------------------------------------------------------------------ clock
function serverNow() {
  return Date.now() + app.offset;
}

function clockSample(rtt, offset) {
  if (!(rtt >= 0) || rtt > 60000 || !Number.isFinite(offset)) return;
  app.clock.push({ rtt, offset });
  if (app.clock.length > CLOCK_SAMPLES) app.clock.shift();
  let best = app.clock[0];
  for (const s of app.clock) if (s.rtt < best.rtt) best = s;
  app.offset = best.offset;
}

function leftMs(d) {
  if (FINAL.has(d.state)) return null;
  if (d.state === 'active') {
    if (typeof d.deadline === 'number') return Math.max(0, d.deadline - serverNow());
    if (typeof d.remaining_ms === 'number') return Math.max(0, d.remaining_ms - (Date.now() - d.seenAt));
    return null;
  }
  return typeof d.remaining_ms === 'number' ? Math.max(0, d.remaining_ms) : null;
}

// ------------------------------------------------------------------ status displays
function setConn(state, text) {
  el.conn.dataset.state = state;
  el.connText.textContent = text;
  el.reconnectNow.hidden = state !== 'reconnecting';
  updateCountdown();
  const live = state === 'live';
  el.extendAll.disabled = !live;
  el.pauseAll.disabled = !live;
  el.resumeAll.disabled = !live;
  el.live.classList.toggle('is-stale', state === 'reconnecting' || state === 'error' || (state === 'connecting' && app.rows.size > 0));
}

function updateCountdown() {
  if (el.conn.dataset.state === 'reconnecting' && app.retryTimer !== null) {
    const s = Math.max(1, Math.ceil((app.retryAt - Date.now()) / 1000));
    el.connCountdown.textContent = `in ${s} s`;
  } else {
    el.connCountdown.textContent = '';
  }
}

function setStatus(kind, text) {
  el.status.dataset.kind = kind;
  el.status.textContent = text ? `${clockTime(Date.now())} · ${text}` : '';
}

function showFatal(text) {
  el.fatal.textContent = text;
  el.fatal.hidden = !text;
  // nothing to watch: keep only the explanation (and any rows already shown)
  el.live.classList.toggle('is-fatal', Boolean(text) && app.rows.size === 0);
}

function showWho(token) {
  const c = claimsOf(token);
  // a name when the token has one; else the user id, labelled as such (never passed off as a name)
  let who = '';
  if (typeof c.name === 'string' && c.name.trim()) who = c.name;
  else if (typeof c.sub === 'string' && c.sub) who = `User ${c.sub}`;
  const role = typeof c.role === 'string' ? c.role : '';
  el.who.textContent = who ? `${who}${role ? ` · ${role}` : ''}` : '';
  el.who.hidden = !who;
}

function showView(view) {
  el.signin.hidden = view !== 'signin';
  el.choose.hidden = view !== 'choose';
  el.live.hidden = view !== 'live';
  el.picker.hidden = view === 'signin';
  el.signOut.hidden = view === 'signin';
  if (view === 'signin') el.who.hidden = true;
}

// ------------------------------------------------------------------ sign-in and exam list
function showSignin(error) {
  showView('signin');
  el.signinError.textContent = error || '';
  el.signinError.hidden = !error;
  document.title = 'Proctor · Examwire';
}

async function readError(res) {
  try {
    const body = await res.json();
    if (body && typeof body === 'object') {
      const parts = [body.error, body.message].filter((x) => typeof x === 'string' && x);
      return parts.join(': ');
    }
  } catch { /* not JSON */ }
  return res.statusText || '';
}

/** Refuse the token: back to the sign-in form with the reason; never retried. */
function refuse(short, full) {
  disconnect();
  app.token = null;
  store(STORE_TOKEN, null);
  setConn('error', short);
  showSignin(full || short);
}

async function signIn(token, wantExam) {
  const seq = ++app.signInSeq;
  app.token = token;
  store(STORE_TOKEN, token);
  showWho(token);
  el.signinError.hidden = true;
  setConn('connecting', 'Checking token…');

  let res;
  try {
    res = await fetch('/v1/exams', {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    res = null;
  }
  if (seq !== app.signInSeq) return; // signed out or signed in again meanwhile

  if (res && (res.status === 401 || res.status === 403)) {
    const why = await readError(res);
    if (seq !== app.signInSeq) return;
    const short = `Refused (HTTP ${res.status})`;
    const head = res.status === 401
      ? 'Token refused (HTTP 401): it is malformed, expired or wrongly signed'
      : 'Not allowed (HTTP 403): this token may not proctor exams; a proctor or admin token is needed';
    refuse(short, why ? `${head}. Server said: ${why}` : `${head}.`);
    return;
  }

  let exams = [];
  let listError = '';
  if (res && res.ok) {
    try {
      const body = await res.json();
      exams = Array.isArray(body && body.exams) ? body.exams.filter((e) => e && typeof e.id === 'string') : [];
    } catch {
      listError = 'The exam list could not be read.';
    }
  } else {
    listError = res ? `The exam list is unavailable (HTTP ${res.status}).` : 'The server could not be reached.';
  }
  if (seq !== app.signInSeq) return;
  app.exams = exams;
  fillExams(exams, wantExam);

  if (wantExam) {
    openExam(wantExam); // the server decides whether this token may proctor it
  } else if (exams.length === 1 && !listError) {
    openExam(exams[0].id);
  } else {
    showView('choose');
    setConn('idle', 'Not connected');
    if (listError) el.chooseText.textContent = `${listError} Reload the page to try again.`;
    else if (exams.length === 0) el.chooseText.textContent = 'This token may not proctor any exam.';
    else el.chooseText.textContent = `${plural(exams.length, 'exam', 'exams')} available. Pick one in the bar above and press Open.`;
    el.exam.focus();
  }
}

function fillExams(exams, wantExam) {
  el.exam.replaceChildren();
  const ids = new Set();
  for (const e of exams) {
    const opt = document.createElement('option');
    opt.value = e.id;
    opt.textContent = typeof e.title === 'string' && e.title ? `${e.title} (${e.id})` : e.id;
    el.exam.append(opt);
    ids.add(e.id);
  }
  if (wantExam && !ids.has(wantExam)) {
    const opt = document.createElement('option');
    opt.value = wantExam;
    opt.textContent = `${wantExam} (not in your list)`;
    el.exam.append(opt);
  }
  if (wantExam) el.exam.value = wantExam;
  el.open.disabled = el.exam.options.length === 0;
}

function signOut() {
  app.signInSeq++;
  disconnect();
  app.token = null;
  app.examId = null;
  app.exams = [];
  store(STORE_TOKEN, null);
  store(STORE_EXAM, null);
  clearTable();
  clearFeed();
  el.exam.replaceChildren();
  el.token.value = '';
  setStatus('', '');
  setConn('idle', 'Not connected');
  showSignin('');
  el.token.focus();
}

// ------------------------------------------------------------------ live view lifecycle
function openExam(id) {
  disconnect();
  app.examId = id;
  store(STORE_EXAM, id);
  if (el.exam.value !== id) el.exam.value = id;
  app.exam = null;
  app.fatal = false;
  app.dropped = false;
  app.retries = 0;
  app.clock = [];
  clearTable();
  clearFeed();
  setStatus('', '');
  showFatal('');
  el.title.textContent = id;
  el.meta.textContent = '';
  document.title = `${id} · Proctor · Examwire`;
  showView('live');
  connect();
}

function disconnect() {
  app.gen++; // events of the old socket are ignored from now on
  clearRetry();
  stopPing();
  if (app.ws) {
    try { app.ws.close(1000, 'bye'); } catch { /* already closing */ }
  }
  app.ws = null;
  app.live = false;
  app.pending.clear();
}

function clearRetry() {
  if (app.retryTimer !== null) clearTimeout(app.retryTimer);
  app.retryTimer = null;
}

function stopPing() {
  if (app.pingTimer !== null) clearInterval(app.pingTimer);
  app.pingTimer = null;
}

function connect() {
  clearRetry();
  if (!app.token || !app.examId) return;
  const gen = ++app.gen;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${location.host}/v1/exams/${encodeURIComponent(app.examId)}/proctor`;
  setConn(app.dropped ? 'reconnecting' : 'connecting', app.dropped ? 'Reconnecting…' : 'Connecting…');
  el.reconnectNow.hidden = true;

  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    onClosed(gen, 1006, '');
    return;
  }
  app.ws = ws;
  app.nextId = 1;
  app.live = false;
  app.clock = [];
  let helloAt = 0;

  ws.onopen = () => {
    if (gen !== app.gen) return;
    helloAt = Date.now();
    ws.send(JSON.stringify({ t: 'hello', token: app.token, v: 1, client: CLIENT }));
  };
  ws.onmessage = (ev) => {
    if (gen !== app.gen || typeof ev.data !== 'string') return;
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    if (!m || typeof m !== 'object' || typeof m.t !== 'string') return;
    handle(m, helloAt);
  };
  ws.onclose = (ev) => onClosed(gen, ev.code, ev.reason);
}

function onClosed(gen, code, reason) {
  if (gen !== app.gen) return;
  app.ws = null;
  app.live = false;
  stopPing();
  failPending();

  if (FATAL_CLOSE.has(code)) {
    app.fatal = true;
    // said once: the status pill only says "Refused", the message says what, and
    // the server's reason only when it adds something ("no such exam" does not)
    const what = FATAL_CLOSE.get(code);
    const why = reason && !repeats(what, reason) ? `: ${reason}` : '';
    const text = `${what} (close ${code}${why}).`;
    const short = `Refused (${code})`;
    if (code === 4401) {
      refuse(short, `${text} Paste a new token.`);
      return;
    }
    setConn('error', short);
    showFatal(`${text} Choose another exam or sign out.`);
    return;
  }
  app.dropped = true;
  scheduleReconnect();
}

function scheduleReconnect() {
  clearRetry();
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** app.retries);
  const delay = Math.random() * ceiling; // full jitter
  app.retries = Math.min(app.retries + 1, 20);
  app.retryAt = Date.now() + delay;
  app.retryTimer = setTimeout(connect, delay);
  setConn('reconnecting', navigator.onLine === false ? 'Offline, reconnecting' : 'Reconnecting');
}

function failPending() {
  if (app.pending.size === 0) return;
  const what = [...app.pending.values()].map((p) => p.what);
  app.pending.clear();
  setStatus('error', `Connection lost before the server answered: ${what.join('; ')}. Check the table before retrying.`);
}

function startPing() {
  stopPing();
  const ping = () => {
    if (app.ws && app.ws.readyState === WebSocket.OPEN) app.ws.send(JSON.stringify({ t: 'ping', ct: Date.now() }));
  };
  ping();
  app.pingTimer = setInterval(ping, PING_EVERY_MS);
}

// ------------------------------------------------------------------ messages
function handle(m, helloAt) {
  switch (m.t) {
    case 'welcome': onWelcome(m, helloAt); break;
    case 'snapshot': onSnapshot(m); break;
    case 'update': onUpdate(m); break;
    case 'ack': onAck(m); break;
    case 'error': onError(m); break;
    case 'pong': onPong(m); break;
    default: break; // unknown pushes are ignored (the protocol may grow)
  }
}

function onWelcome(m, helloAt) {
  const now = Date.now();
  if (typeof m.server_time === 'number') {
    if (helloAt) clockSample(now - helloAt, m.server_time - (helloAt + now) / 2);
    else clockSample(0, m.server_time - now);
  }
  const exam = m.exam && typeof m.exam === 'object' ? m.exam : {};
  app.exam = exam;
  const title = typeof exam.title === 'string' && exam.title ? exam.title : app.examId;
  el.title.textContent = title;
  document.title = `${title} · Proctor · Examwire`;
  const meta = [];
  if (typeof exam.total === 'number') meta.push(plural(exam.total, 'question', 'questions'));
  if (typeof exam.duration_ms === 'number') meta.push(fmtDuration(exam.duration_ms));
  if (typeof exam.navigation === 'string') meta.push(`${exam.navigation} navigation`);
  meta.push(`exam id ${typeof exam.id === 'string' ? exam.id : app.examId}`);
  el.meta.textContent = meta.join(' · ');
}

function onSnapshot(m) {
  const list = Array.isArray(m.attempts) ? m.attempts : [];
  clearTable();
  for (const row of list) {
    if (!row || (typeof row.attempt !== 'string' && typeof row.attempt !== 'number')) continue;
    const rec = createRecord(String(row.attempt));
    applyFields(rec, row);
    renderRow(rec);
    app.rows.set(rec.id, rec);
  }
  app.live = true;
  app.retries = 0;
  showFatal('');
  setConn('live', 'Live');
  app.needOrder = true;
  refresh();
  startPing();
}

function onUpdate(m) {
  if (typeof m.attempt !== 'string' && typeof m.attempt !== 'number') return;
  const id = String(m.attempt);
  let rec = app.rows.get(id);
  if (!rec) {
    rec = createRecord(id);
    app.rows.set(id, rec);
  }
  applyFields(rec, m);
  if (m.event && typeof m.event === 'object') {
    if (typeof m.events !== 'number') rec.d.events = num(rec.d.events) + 1;
    addFeed(rec, m.event);
    flash(rec);
  }
  // Cells are rewritten in the next coalesced refresh (at most 4 per second),
  // so a burst of updates costs one layout, not one per update.
  app.dirty.add(rec);
  app.needOrder = true;
  scheduleRefresh();
}

function onAck(m) {
  const p = app.pending.get(m.id);
  if (!p) return;
  app.pending.delete(m.id);
  // The row itself changes with the server's update (never from the ack, which
  // could be older than an update already shown).
  setStatus('ok', p.done(m));
}

function onError(m) {
  const code = typeof m.code === 'string' ? m.code : 'error';
  const msg = typeof m.message === 'string' && m.message ? ` (${m.message})` : '';
  const explained = ERROR_TEXT[code] ? `${ERROR_TEXT[code]}${msg}` : `${code}${msg}`;
  const p = app.pending.get(m.id);
  if (p) {
    app.pending.delete(m.id);
    setStatus('error', `Could not ${p.what}: ${explained} [${code}].`);
  } else {
    setStatus('error', `Server error: ${explained} [${code}].`);
  }
}

function onPong(m) {
  if (typeof m.ct !== 'number' || typeof m.st !== 'number') return;
  const now = Date.now();
  clockSample(now - m.ct, m.st - (m.ct + now) / 2);
}

// ------------------------------------------------------------------ requests
function send(message, p) {
  if (!app.live || !app.ws || app.ws.readyState !== WebSocket.OPEN) {
    setStatus('error', `Not connected: could not ${p.what}. Wait until the status shows Live.`);
    return false;
  }
  const id = app.nextId++;
  app.pending.set(id, p);
  app.ws.send(JSON.stringify({ ...message, id }));
  setStatus('pending', `Sending: ${p.what}…`);
  return true;
}

function bulkDone(verb) {
  return (ack) => {
    const applied = num(ack.applied, NaN);
    const skipped = num(ack.skipped, 0);
    if (Number.isNaN(applied)) return `${verb} every attempt it applies to.`;
    return `${verb} ${plural(applied, 'attempt', 'attempts')}${skipped ? ` (${skipped} skipped: not in a state that allows it)` : ''}.`;
  };
}

// ------------------------------------------------------------------ table rows
function displayName(d) {
  if (typeof d.name === 'string' && d.name.trim()) return d.name;
  if (typeof d.user === 'string' && d.user) return d.user;
  return 'Unnamed candidate';
}

function mk(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function actionButton(action, label, cls) {
  const b = mk('button', `btn btn--xs${cls ? ` ${cls}` : ''}`, label);
  b.type = 'button';
  b.dataset.action = action;
  return b;
}

function createRecord(id) {
  const tr = document.createElement('tr');
  tr.dataset.attempt = id;
  tr.setAttribute('role', 'row'); // explicit: rows stay rows in the card layout (see proctor.html)
  const td = (col, cls) => {
    const cell = mk('td', cls);
    cell.setAttribute('role', 'cell');
    cell.dataset.col = col;
    tr.append(cell);
    return cell;
  };

  const name = td('name');
  const nameText = mk('div', 'cand-name');
  const userText = mk('div', 'cand-user');
  name.append(nameText, userText);

  const state = td('state');
  const badge = mk('span', 'badge');
  const stateExtra = mk('span', 'state-extra');
  state.append(badge, stateExtra);

  const connected = td('connected');
  const connWrap = mk('span', 'conn-cell');
  const connDot = mk('span', 'dot');
  connDot.setAttribute('aria-hidden', 'true');
  const connText = mk('span', 'conn-word');
  connWrap.append(connDot, connText);
  connected.append(connWrap);

  const answered = td('answered');
  const answeredText = mk('span', 'cv progress-text');
  const bar = mk('span', 'bar');
  bar.setAttribute('aria-hidden', 'true');
  const fill = mk('span', 'bar__fill');
  bar.append(fill);
  answered.append(answeredText, bar);

  // Values that change often sit in size-contained spans (class "cv"), so
  // rewriting them does not relayout a table of thousands of rows.
  const value = (col, cls) => {
    const span = mk('span', cls);
    td(col, 'num').append(span);
    return span;
  };
  const flagged = value('flagged', 'cv');
  const question = value('question', 'cv');
  const leftText = value('left', 'cv left');
  const events = value('events', 'cv');

  const actions = mk('td');
  actions.setAttribute('role', 'cell');
  actions.dataset.col = 'actions';
  const group = mk('div', 'row-actions');
  const buttons = {
    extend: actionButton('extend', 'Extend'),
    pause: actionButton('pause', 'Pause'),
    resume: actionButton('resume', 'Resume'),
    message: actionButton('message', 'Message'),
    terminate: actionButton('terminate', 'Terminate', 'btn--danger-text'),
  };
  group.append(buttons.extend, buttons.pause, buttons.resume, buttons.message, buttons.terminate);
  actions.append(group);
  tr.append(actions);
  visibility.observe(tr);
  app.namesDirty = true;

  return {
    id,
    tr,
    d: { attempt: id, user: '', name: '', state: 'ready', connected: false, answered: 0, total: 0, flagged: 0, index: null, deadline: null, remaining_ms: null, events: 0, reason: null, score: null, percent: null, seenAt: Date.now() },
    c: { nameText, userText, badge, stateExtra, connWrap, connDot, connText, answeredText, fill, flagged, question, leftText, events },
    buttons,
    shown: {},
    flashTimer: null,
    visible: false,
    nameRank: 0,
  };
}

function applyFields(rec, src) {
  if ('name' in src || 'user' in src) app.namesDirty = true;
  for (const key of ROW_FIELDS) {
    if (Object.prototype.hasOwnProperty.call(src, key)) rec.d[key] = src[key];
  }
  if (Object.prototype.hasOwnProperty.call(src, 'remaining_ms') || Object.prototype.hasOwnProperty.call(src, 'deadline')) {
    rec.d.seenAt = Date.now();
  }
}

/** Set a cell's text/class only when it changed (cheap for 2,000 rows). */
function put(rec, key, node, text) {
  if (rec.shown[key] !== text) {
    rec.shown[key] = text;
    node.textContent = text;
  }
}

function putClass(rec, key, node, cls) {
  if (rec.shown[key] !== cls) {
    rec.shown[key] = cls;
    node.className = cls;
  }
}

function renderRow(rec) {
  const d = rec.d;
  const c = rec.c;
  const state = typeof d.state === 'string' ? d.state : 'ready';
  const final = FINAL.has(state);
  const name = displayName(d);

  put(rec, 'name', c.nameText, name);
  // the user id under the name (not repeated when it is the only name there is)
  put(rec, 'user', c.userText, typeof d.user === 'string' && d.user !== name ? d.user : '');

  put(rec, 'state', c.badge, STATE_LABEL[state] || state);
  putClass(rec, 'stateCls', c.badge, `badge badge--${STATE_RANK[state] === undefined ? 'unknown' : state}`);
  const extra = [];
  if (final && typeof d.score === 'number') extra.push(fmtPoints(d.score));
  if (final && typeof d.percent === 'number') extra.push(`${fmtNum(d.percent, 1)}\u00a0%`);
  if ((final || state === 'paused') && typeof d.reason === 'string' && d.reason && d.reason !== state) extra.push(d.reason);
  put(rec, 'extra', c.stateExtra, extra.join(' · '));

  const yes = d.connected === true;
  put(rec, 'dot', c.connDot, yes ? '●' : '○');
  put(rec, 'conn', c.connText, yes ? 'yes' : 'no');
  putClass(rec, 'connCls', c.connWrap, `conn-cell ${yes ? 'is-yes' : 'is-no'}`);

  const answered = num(d.answered);
  const total = num(d.total, num(app.exam && app.exam.total));
  put(rec, 'answered', c.answeredText, `${answered} / ${total}`);
  const pct = total > 0 ? Math.min(100, Math.round((answered / total) * 100)) : 0;
  if (rec.shown.pct !== pct) {
    rec.shown.pct = pct;
    c.fill.style.width = `${pct}%`;
  }

  const flagged = num(d.flagged);
  put(rec, 'flagged', c.flagged, String(flagged));
  putClass(rec, 'flagCls', c.flagged, flagged > 0 ? 'cv flag-some' : 'cv');
  put(rec, 'question', c.question, state === 'ready' || final || typeof d.index !== 'number' ? '—' : String(d.index + 1));
  const events = num(d.events);
  put(rec, 'events', c.events, String(events));
  putClass(rec, 'eventsCls', c.events, events > 0 ? 'cv events-some' : 'cv');
  renderLeft(rec);

  const rowCls = `${final ? 'is-final' : ''}${!final && !yes ? ' is-lost' : ''}${rec.tr.classList.contains('flash') ? ' flash' : ''}`.trim();
  if (rec.tr.className !== rowCls) rec.tr.className = rowCls;

  // actions allowed in this state
  if (rec.shown.actState !== state || rec.shown.actName !== name) {
    rec.shown.actState = state;
    rec.shown.actName = name;
    const b = rec.buttons;
    const going = IN_PROGRESS.has(state);
    b.extend.disabled = !going;
    b.message.disabled = !going;
    b.terminate.disabled = !going;
    b.pause.hidden = state === 'paused';
    b.pause.disabled = state !== 'active';
    b.resume.hidden = state !== 'paused';
    b.resume.disabled = state !== 'paused';
    b.extend.setAttribute('aria-label', `Extend time for ${name}`);
    b.pause.setAttribute('aria-label', `Pause ${name}`);
    b.resume.setAttribute('aria-label', `Resume ${name}`);
    b.message.setAttribute('aria-label', `Message ${name}`);
    b.terminate.setAttribute('aria-label', `Terminate the attempt of ${name}`);
  }
}

function renderLeft(rec) {
  const d = rec.d;
  const ms = leftMs(d);
  let text;
  let cls;
  if (ms === null) {
    text = '—';
    cls = 'cv left is-none';
  } else {
    text = fmtLeft(ms);
    if (d.state !== 'active') cls = 'cv left is-frozen';
    else if (ms <= CRITICAL_MS) cls = 'cv left is-critical';
    else if (ms <= LOW_MS) cls = 'cv left is-low';
    else cls = 'cv left';
  }
  put(rec, 'left', rec.c.leftText, text);
  putClass(rec, 'leftCls', rec.c.leftText, cls);
}

function flash(rec) {
  rec.tr.classList.add('flash');
  clearTimeout(rec.flashTimer);
  rec.flashTimer = setTimeout(() => rec.tr.classList.remove('flash'), FLASH_MS);
}

function clearTable() {
  for (const rec of app.rows.values()) clearTimeout(rec.flashTimer);
  visibility.disconnect();
  app.rows.clear();
  app.dirty.clear();
  el.rows.replaceChildren();
  app.needOrder = true;
  refresh();
}

// ------------------------------------------------------------------ sort, filter, counts
function matches(rec) {
  const d = rec.d;
  const f = app.filter;
  switch (f.state) {
    case 'all': break;
    case 'finished': if (!FINAL.has(d.state)) return false; break;
    case 'disconnected': if (d.connected === true || FINAL.has(d.state)) return false; break;
    default: if (d.state !== f.state) return false;
  }
  if (f.text) {
    const hay = `${typeof d.name === 'string' ? d.name : ''}\n${typeof d.user === 'string' ? d.user : ''}\n${rec.id}`.toLowerCase();
    if (!hay.includes(f.text)) return false;
  }
  return true;
}

function sortValue(rec, key) {
  const d = rec.d;
  switch (key) {
    case 'state': return STATE_RANK[d.state] ?? 9;
    case 'connected': return d.connected === true ? 0 : 1;
    case 'answered': {
      const total = num(d.total);
      return total > 0 ? num(d.answered) / total : num(d.answered);
    }
    case 'flagged': return num(d.flagged);
    case 'question': return typeof d.index === 'number' && IN_PROGRESS.has(d.state) && d.state !== 'ready' ? d.index : -1;
    case 'left': {
      const ms = leftMs(d);
      return ms === null ? Number.MAX_SAFE_INTEGER : ms;
    }
    case 'events': return num(d.events);
    default: return 0;
  }
}

/** Rank every row by name once (collation is slow), so sorting compares numbers only. */
function rankNames() {
  const all = [...app.rows.values()].map((rec) => ({ rec, name: displayName(rec.d) }));
  all.sort((a, b) => collator.compare(a.name, b.name) || (a.rec.id < b.rec.id ? -1 : a.rec.id > b.rec.id ? 1 : 0));
  all.forEach((x, i) => { x.rec.nameRank = i; });
  app.namesDirty = false;
}

function sortRecords(list) {
  if (app.namesDirty) rankNames();
  const { key, dir } = app.sort;
  if (key === 'name') {
    list.sort((a, b) => (a.nameRank - b.nameRank) * dir);
    return list;
  }
  const keyed = list.map((rec) => ({ rec, v: sortValue(rec, key) }));
  keyed.sort((a, b) => ((a.v < b.v ? -1 : a.v > b.v ? 1 : 0) || a.rec.nameRank - b.rec.nameRank) * dir);
  for (let i = 0; i < keyed.length; i++) list[i] = keyed[i].rec;
  return list;
}

function scheduleRefresh() {
  if (app.refreshTimer !== null) return;
  const wait = Math.max(0, app.lastRefresh + REFRESH_MS - performance.now());
  app.refreshTimer = setTimeout(refresh, wait);
}

function refresh() {
  if (app.refreshTimer !== null) clearTimeout(app.refreshTimer);
  app.refreshTimer = null;
  app.lastRefresh = performance.now();
  for (const rec of app.dirty) renderRow(rec);
  app.dirty.clear();
  updateCounts();
  if (!app.needOrder) return;
  app.needOrder = false;

  const order = [];
  for (const rec of app.rows.values()) if (matches(rec)) order.push(rec);
  sortRecords(order);

  // Move only what is out of place: rows already in order stay untouched.
  const body = el.rows;
  let cursor = body.firstChild;
  for (const rec of order) {
    if (rec.tr === cursor) {
      cursor = cursor.nextSibling;
    } else {
      body.insertBefore(rec.tr, cursor);
    }
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }

  const total = app.rows.size;
  el.empty.hidden = order.length > 0;
  el.empty.textContent = total === 0 ? 'No candidates yet. Rows appear as candidates connect.' : 'No candidate matches the search and filter.';
  const shown = total === order.length ? plural(total, 'candidate', 'candidates') : `Showing ${order.length} of ${total}`;
  if (el.shown.textContent !== shown) el.shown.textContent = shown;
}

function updateCounts() {
  let active = 0;
  let paused = 0;
  let ready = 0;
  let connected = 0;
  let finished = 0;
  for (const rec of app.rows.values()) {
    const s = rec.d.state;
    if (s === 'active') active++;
    else if (s === 'paused') paused++;
    else if (s === 'ready') ready++;
    else if (FINAL.has(s)) finished++;
    if (rec.d.connected === true) connected++;
  }
  const set = (node, n) => {
    const text = String(n);
    if (node.textContent !== text) node.textContent = text;
  };
  set(el.counts.total, app.rows.size);
  set(el.counts.active, active);
  set(el.counts.paused, paused);
  set(el.counts.ready, ready);
  set(el.counts.connected, connected);
  set(el.counts.finished, finished);
}

function setSort(key) {
  if (app.sort.key === key) app.sort.dir = -app.sort.dir;
  else app.sort = { key, dir: 1 };
  for (const th of el.table.tHead.querySelectorAll('th[data-sort]')) {
    const on = th.dataset.sort === app.sort.key;
    th.setAttribute('aria-sort', on ? (app.sort.dir === 1 ? 'ascending' : 'descending') : 'none');
  }
  app.needOrder = true;
  refresh();
}

// ------------------------------------------------------------------ event feed
function addFeed(rec, ev) {
  const at = typeof ev.at === 'number' ? ev.at : serverNow();
  const kind = typeof ev.kind === 'string' ? ev.kind : String(ev.kind ?? 'event');
  const full = detailText(ev.detail);

  const li = mk('li', 'is-new');
  const time = mk('time', 'feed__time', clockTime(at));
  time.dateTime = new Date(at).toISOString();
  const line = mk('div', 'feed__line');
  line.append(mk('span', 'feed__who', displayName(rec.d)), mk('span', `feed__kind${ALERT_KINDS.has(kind) ? ' is-alert' : ''}`, kind));
  const detail = mk('div', 'feed__detail', truncate(full, DETAIL_MAX));
  if (full.length > DETAIL_MAX) detail.title = truncate(full, 2000);
  li.append(time, line, detail);
  el.feed.prepend(li);
  setTimeout(() => li.classList.remove('is-new'), FLASH_MS);
  while (el.feed.childElementCount > FEED_MAX) el.feed.lastElementChild.remove();
  el.feedEmpty.hidden = true;
}

function clearFeed() {
  el.feed.replaceChildren();
  el.feedEmpty.hidden = false;
}

// ------------------------------------------------------------------ dialogs
function openDialog(dialog, focus) {
  app.returnFocus = document.activeElement;
  dialog.showModal();
  if (focus) {
    focus.focus();
    if (typeof focus.select === 'function') focus.select();
  }
}

function closeDialog(dialog) {
  if (dialog.open) dialog.close();
}

function restoreFocus() {
  const target = app.returnFocus;
  app.returnFocus = null;
  if (target && target.isConnected && typeof target.focus === 'function' && !target.disabled) target.focus();
}

function fieldError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

function targetText(rec) {
  const d = rec.d;
  const user = typeof d.user === 'string' && d.user && d.user !== displayName(d) ? ` (${d.user})` : '';
  return `${displayName(d)}${user}`;
}

function inProgressCount() {
  let n = 0;
  for (const rec of app.rows.values()) if (IN_PROGRESS.has(rec.d.state)) n++;
  return n;
}

function openExtend(rec) {
  app.dialogTarget = rec ? { attempt: rec.id, name: displayName(rec.d) } : { all: true };
  el.extendTitle.textContent = rec ? 'Extend time' : 'Extend time for everyone';
  el.extendTarget.textContent = rec
    ? `Adds time to the clock of ${targetText(rec)}.`
    : `Adds time to every attempt in progress in this exam (${plural(inProgressCount(), 'candidate', 'candidates')} now). Finished attempts are not changed.`;
  el.extendConfirm.textContent = rec ? 'Extend' : 'Extend everyone';
  el.extendMinutes.value = '5';
  fieldError(el.extendError, '');
  openDialog(el.extendDialog, el.extendMinutes);
}

function submitExtend() {
  const raw = el.extendMinutes.value.trim();
  const minutes = Number(raw);
  if (!raw || !Number.isInteger(minutes) || minutes < 1 || minutes > 1440) {
    fieldError(el.extendError, 'Enter a whole number of minutes from 1 to 1440.');
    el.extendMinutes.focus();
    return;
  }
  const t = app.dialogTarget;
  closeDialog(el.extendDialog);
  const seconds = minutes * 60;
  if (t.all) {
    send({ t: 'extend', seconds, all: true }, {
      what: `extend everyone by ${minutes} min`,
      done: bulkDone(`Added ${minutes} min to`),
    });
  } else {
    send({ t: 'extend', attempt: t.attempt, seconds }, {
      what: `extend ${t.name} by ${minutes} min`,
      done: () => `Extended ${t.name} by ${minutes} min.`,
    });
  }
}

function openTerminate(rec) {
  app.dialogTarget = { attempt: rec.id, name: displayName(rec.d) };
  el.terminateTarget.textContent = `Ends the attempt of ${targetText(rec)} now. Saved answers are scored. This cannot be undone.`;
  el.terminateReason.value = '';
  fieldError(el.terminateError, '');
  openDialog(el.terminateDialog, el.terminateReason);
}

function submitTerminate() {
  const reason = el.terminateReason.value.trim();
  if (!reason || reason.length > 200) {
    fieldError(el.terminateError, 'Give a reason of 1 to 200 characters.');
    el.terminateReason.focus();
    return;
  }
  const t = app.dialogTarget;
  closeDialog(el.terminateDialog);
  send({ t: 'terminate', attempt: t.attempt, reason }, {
    what: `terminate ${t.name}`,
    done: () => `Terminated the attempt of ${t.name}.`,
  });
}

function openMessage(rec) {
  app.dialogTarget = { attempt: rec.id, name: displayName(rec.d) };
  el.messageTarget.textContent = `To ${targetText(rec)}. Shown on the candidate's screen at once.`;
  el.messageText.value = '';
  fieldError(el.messageError, '');
  openDialog(el.messageDialog, el.messageText);
}

function submitMessage() {
  const text = el.messageText.value.trim();
  if (!text || text.length > 2000) {
    fieldError(el.messageError, 'Write a message of 1 to 2000 characters.');
    el.messageText.focus();
    return;
  }
  const t = app.dialogTarget;
  closeDialog(el.messageDialog);
  send({ t: 'message', attempt: t.attempt, text }, {
    what: `message ${t.name}`,
    done: (ack) => (ack.connected === false
      ? `Message recorded, but ${t.name} is not connected and will not see it.`
      : `Message delivered to ${t.name}.`),
  });
}

function openConfirm(title, text, okLabel, action) {
  el.confirmTitle.textContent = title;
  el.confirmText.textContent = text;
  el.confirmOk.textContent = okLabel;
  app.confirmAction = action;
  openDialog(el.confirmDialog, el.confirmOk);
}

function rowAction(action, rec) {
  const name = displayName(rec.d);
  switch (action) {
    case 'extend': openExtend(rec); break;
    case 'pause':
      send({ t: 'pause', attempt: rec.id }, { what: `pause ${name}`, done: () => `Paused ${name}. Their clock is stopped.` });
      break;
    case 'resume':
      send({ t: 'resume', attempt: rec.id }, { what: `resume ${name}`, done: () => `Resumed ${name}.` });
      break;
    case 'terminate': openTerminate(rec); break;
    case 'message': openMessage(rec); break;
    default: break;
  }
}

// ------------------------------------------------------------------ wiring
function tick() {
  for (const rec of app.rows.values()) {
    if (rec.visible && rec.d.state === 'active') renderLeft(rec);
  }
  if (app.sort.key === 'left' && app.rows.size) {
    app.needOrder = true;
    scheduleRefresh();
  }
  updateCountdown();
}

function wire() {
  el.signinForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    let token = el.token.value.trim();
    if (/^bearer\s+/i.test(token)) token = token.replace(/^bearer\s+/i, '');
    if (!token) {
      el.signinError.textContent = 'Paste a token first.';
      el.signinError.hidden = false;
      el.token.focus();
      return;
    }
    store(STORE_EXAM, null);
    signIn(token, null);
  });

  el.picker.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (el.exam.value) openExam(el.exam.value);
  });

  el.signOut.addEventListener('click', signOut);
  el.reconnectNow.addEventListener('click', () => {
    if (app.retryTimer !== null) connect();
  });
  window.addEventListener('online', () => {
    if (app.retryTimer !== null) connect();
  });

  el.filterText.addEventListener('input', () => {
    app.filter.text = el.filterText.value.trim().toLowerCase();
    app.needOrder = true;
    scheduleRefresh();
  });
  el.filterState.addEventListener('change', () => {
    app.filter.state = el.filterState.value;
    app.needOrder = true;
    refresh();
  });

  el.table.tHead.addEventListener('click', (ev) => {
    const th = ev.target instanceof Element ? ev.target.closest('th[data-sort]') : null;
    if (th && ev.target.closest('button')) setSort(th.dataset.sort);
  });

  el.rows.addEventListener('click', (ev) => {
    const button = ev.target instanceof Element ? ev.target.closest('button[data-action]') : null;
    if (!button || button.disabled) return;
    const tr = button.closest('tr[data-attempt]');
    const rec = tr && app.rows.get(tr.dataset.attempt);
    if (rec) rowAction(button.dataset.action, rec);
  });

  el.extendAll.addEventListener('click', () => openExtend(null));
  el.pauseAll.addEventListener('click', () => {
    let active = 0;
    for (const rec of app.rows.values()) if (rec.d.state === 'active') active++;
    openConfirm('Pause everyone?',
      `Stops the clock of every active attempt in this exam (${plural(active, 'candidate', 'candidates')} active now). Candidates cannot answer until resumed.`,
      'Pause everyone',
      () => send({ t: 'pause', all: true }, { what: 'pause everyone', done: bulkDone('Paused') }));
  });
  el.resumeAll.addEventListener('click', () => {
    let paused = 0;
    for (const rec of app.rows.values()) if (rec.d.state === 'paused') paused++;
    openConfirm('Resume everyone?',
      `Restarts the clock of every paused attempt in this exam (${plural(paused, 'candidate', 'candidates')} paused now).`,
      'Resume everyone',
      () => send({ t: 'resume', all: true }, { what: 'resume everyone', done: bulkDone('Resumed') }));
  });

  el.extendForm.addEventListener('submit', (ev) => { ev.preventDefault(); submitExtend(); });
  el.terminateForm.addEventListener('submit', (ev) => { ev.preventDefault(); submitTerminate(); });
  el.messageForm.addEventListener('submit', (ev) => { ev.preventDefault(); submitMessage(); });
  el.confirmForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const action = app.confirmAction;
    app.confirmAction = null;
    closeDialog(el.confirmDialog);
    if (action) action();
  });

  for (const dialog of [el.extendDialog, el.terminateDialog, el.messageDialog, el.confirmDialog]) {
    dialog.addEventListener('click', (ev) => {
      if (ev.target instanceof Element && ev.target.closest('[data-close]')) closeDialog(dialog);
    });
    dialog.addEventListener('close', restoreFocus);
  }

  setInterval(tick, 1000);
}

function init() {
  wire();
  const frag = takeFragment();
  if (frag.token) store(STORE_TOKEN, frag.token);
  if (frag.token && !frag.exam) store(STORE_EXAM, null);
  if (frag.exam) store(STORE_EXAM, frag.exam);
  const token = recall(STORE_TOKEN);
  const exam = recall(STORE_EXAM);
  setConn('idle', 'Not connected');
  if (token) {
    showView('choose');
    el.chooseText.textContent = 'Loading the exams this token may proctor…';
    signIn(token, exam);
  } else {
    showSignin('');
  }
}

init();
