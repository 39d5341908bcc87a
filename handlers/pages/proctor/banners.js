// The dashboard's status displays: the connection pill, the status line, the
// refusal banner, who is signed in, and which view (sign-in, exam choice, live) shows.
//
// API
//   createBanners(el, info) -> banners
//     el: { conn, connText, connCountdown, reconnectNow, extendAll, pauseAll, resumeAll, live, status,
//           fatal, who, signin, choose, picker, signOut, title, meta }
//     info: { hasRows() -> bool, retryAt() -> ms | null (a reconnect is scheduled for then) }
//   banners.setConn(state, text)    state: idle | connecting | live | reconnecting | error (data-state)
//   banners.hideRetry()             no "Retry now" while a connection is being opened
//   banners.countdown()             "in 3 s" next to "Reconnecting" (every second)
//   banners.setStatus(kind, text)   the line above the table, time-stamped; kind: ok | error | pending | ''
//   banners.showFatal(text)         a refusal that retrying cannot fix ('' hides it)
//   banners.showWho(token)          the signed-in proctor, from the token's claims
//   banners.showView(view)          signin | choose | live
//   banners.heading(title, meta)    the live view's exam title and details, and the document title

import { clockTime } from '../lib/format.js';
import { claimsOf, whoOf } from '../lib/token.js';

export const APP_TITLE = 'Proctor · Examwire';

export function createBanners(el, info) {
  function countdown() {
    const at = info.retryAt();
    if (el.conn.dataset.state === 'reconnecting' && at !== null) {
      const s = Math.max(1, Math.ceil((at - Date.now()) / 1000));
      el.connCountdown.textContent = `in ${s} s`;
    } else {
      el.connCountdown.textContent = '';
    }
  }

  function setConn(state, text) {
    el.conn.dataset.state = state;
    el.connText.textContent = text;
    el.reconnectNow.hidden = state !== 'reconnecting';
    countdown();
    const live = state === 'live';
    el.extendAll.disabled = !live;
    el.pauseAll.disabled = !live;
    el.resumeAll.disabled = !live;
    el.live.classList.toggle('is-stale', state === 'reconnecting' || state === 'error' || (state === 'connecting' && info.hasRows()));
  }

  function hideRetry() {
    el.reconnectNow.hidden = true;
  }

  function setStatus(kind, text) {
    el.status.dataset.kind = kind;
    el.status.textContent = text ? `${clockTime(Date.now())} · ${text}` : '';
  }

  function showFatal(text) {
    el.fatal.textContent = text;
    el.fatal.hidden = !text;
    // nothing to watch: keep only the explanation (and any rows already shown)
    el.live.classList.toggle('is-fatal', Boolean(text) && !info.hasRows());
  }

  function showWho(token) {
    const c = claimsOf(token);
    const who = whoOf(c);
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

  function heading(title, meta) {
    el.title.textContent = title;
    el.meta.textContent = meta;
    document.title = `${title} · ${APP_TITLE}`;
  }

  return { setConn, hideRetry, countdown, setStatus, showFatal, showWho, showView, heading };
}
