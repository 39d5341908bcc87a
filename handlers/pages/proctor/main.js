// Examwire live proctor dashboard: builds the modules and wires them to the page (ES module;
// nothing is exposed on window).
//
// Protocol: docs/protocol.md (the wire contract; the proctor connection), JSON text frames.
// CSP: no inline script/style, no eval; untrusted text (names, reasons, event
// details) only ever reaches the DOM through textContent.
//
// Modules: state.js (the attempts as plain data: snapshot, updates, sort,
// filter, counts, selection), present.js (texts and classes), actions.js
// (requests and their status texts), rows.js and table.js (the table), feed.js,
// dialogs.js, banners.js (connection pill, status line, views), signin.js,
// session.js (sign-in, exam choice, sign-out), live.js (the connection, on lib/wire.js).

import { pauseAllRequest, pauseAllText, pauseRequest, resumeAllRequest, resumeAllText, resumeRequest } from './actions.js';
import { createBanners } from './banners.js';
import { createDialogs } from './dialogs.js';
import { byId as $ } from '../lib/dom.js';
import { createFeed } from './feed.js';
import { createLive } from './live.js';
import { createSession } from './session.js';
import { createSignin, readTokenInput } from './signin.js';
import { countIn, createState, setFilterState, setFilterText, toggleSort } from './state.js';
import { createTable } from './table.js';

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

const state = createState();
let live = null; // created below; the views ask it for the clock and the retry time
const clock = { now: () => Date.now(), offset: () => (live ? live.clock.offset : 0) };
const table = createTable(el, state, clock);
const feed = createFeed(el);
const banners = createBanners(el, {
  hasRows: () => state.rows.size > 0,
  retryAt: () => (live ? live.retryAt() : null),
});
const signin = createSignin(el);
let session = null;
live = createLive({ state, table, feed, banners, onTokenRefused: (short, text) => session.refuse(short, text) });
session = createSession({ el, state, table, feed, banners, signin, live });
const dialogs = createDialogs(el, state, (request) => live.send(request));

function rowAction(action, row) {
  switch (action) {
    case 'extend': dialogs.extend(row); break;
    case 'pause': live.send(pauseRequest(row)); break;
    case 'resume': live.send(resumeRequest(row)); break;
    case 'terminate': dialogs.terminate(row); break;
    case 'message': dialogs.message(row); break;
    default: break;
  }
}

el.signinForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const token = readTokenInput(el.token.value);
  if (!token) {
    signin.showError('Paste a token first.');
    el.token.focus();
    return;
  }
  session.submitToken(token);
});

el.picker.addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (el.exam.value) session.openExam(el.exam.value);
});

el.signOut.addEventListener('click', () => session.signOut());
el.reconnectNow.addEventListener('click', () => live.retryNow());
window.addEventListener('online', () => live.retryNow());

el.filterText.addEventListener('input', () => {
  setFilterText(state, el.filterText.value);
  table.reorder(false);
});
el.filterState.addEventListener('change', () => {
  setFilterState(state, el.filterState.value);
  table.reorder(true);
});

el.table.tHead.addEventListener('click', (ev) => {
  const th = ev.target instanceof Element ? ev.target.closest('th[data-sort]') : null;
  if (th && ev.target.closest('button')) {
    toggleSort(state, th.dataset.sort);
    table.sorted();
  }
});

el.rows.addEventListener('click', (ev) => {
  const button = ev.target instanceof Element ? ev.target.closest('button[data-action]') : null;
  if (!button || button.disabled) return;
  const tr = button.closest('tr[data-attempt]');
  const row = tr && state.rows.get(tr.dataset.attempt);
  if (row) rowAction(button.dataset.action, row);
});

el.extendAll.addEventListener('click', () => dialogs.extend(null));
el.pauseAll.addEventListener('click', () => dialogs.confirm(pauseAllText(countIn(state, ['active'])), pauseAllRequest()));
el.resumeAll.addEventListener('click', () => dialogs.confirm(resumeAllText(countIn(state, ['paused'])), resumeAllRequest()));
dialogs.wire();

setInterval(() => {
  table.tick();
  banners.countdown();
}, 1000);

session.start();
