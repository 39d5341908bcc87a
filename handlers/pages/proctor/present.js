// What the dashboard shows for its data: texts and classes, computed without the DOM.
//
// Pure (no DOM, no clock reads): the views put these strings on the page with
// textContent only, so untrusted text (names, reasons, event details) never
// becomes markup.
//
// API
//   rowCells(row, examTotal) -> { name, user, state, badgeCls, extra, dot, conn, connCls, answered, pct,
//                                 flagged, flagCls, question, events, eventsCls, final, lost }
//   rowButtons(row) -> { state, name, extend|pause|resume|message|terminate: { disabled, hidden, label } }
//   leftCell(row, now, offset) -> { text, cls }
//   feedEntry(row, event, serverNow) -> { at, iso, time, who, kind, alert, detail, title }
//   examHeading(exam, examId) -> { title, meta }
//   shownText(shown, total), emptyText(total)

import { clockTime, detailText, fmtClock, fmtDurationShort, fmtNum, fmtPoints, plural, truncate } from '../lib/format.js';
import { FINAL, IN_PROGRESS, STATE_LABEL, STATE_RANK, displayName, leftMs, num } from './state.js';

export const DETAIL_MAX = 120;
export const LOW_MS = 5 * 60 * 1000;
export const CRITICAL_MS = 60 * 1000;
export const ALERT_KINDS = new Set(['blur', 'fullscreen_exit', 'copy', 'paste', 'offline', 'visibility_hidden', 'devtools', 'resize', 'attempt_lost']);

// ------------------------------------------------------------------ table rows
export function rowCells(row, examTotal) {
  const state = typeof row.state === 'string' ? row.state : 'ready';
  const final = FINAL.has(state);
  const name = displayName(row);
  const extra = [];
  if (final && typeof row.score === 'number') extra.push(fmtPoints(row.score));
  if (final && typeof row.percent === 'number') extra.push(`${fmtNum(row.percent, 1)}\u00a0%`);
  if ((final || state === 'paused') && typeof row.reason === 'string' && row.reason && row.reason !== state) extra.push(row.reason);
  const yes = row.connected === true;
  const answered = num(row.answered);
  const total = num(row.total, num(examTotal));
  const flagged = num(row.flagged);
  const events = num(row.events);
  return {
    name,
    // the user id under the name (not repeated when it is the only name there is)
    user: typeof row.user === 'string' && row.user !== name ? row.user : '',
    state: STATE_LABEL[state] || state,
    badgeCls: `badge badge--${STATE_RANK[state] === undefined ? 'unknown' : state}`,
    extra: extra.join(' · '),
    dot: yes ? '●' : '○',
    conn: yes ? 'yes' : 'no',
    connCls: `conn-cell ${yes ? 'is-yes' : 'is-no'}`,
    answered: `${answered} / ${total}`,
    pct: total > 0 ? Math.min(100, Math.round((answered / total) * 100)) : 0,
    flagged: String(flagged),
    flagCls: flagged > 0 ? 'cv flag-some' : 'cv',
    question: state === 'ready' || final || typeof row.index !== 'number' ? '—' : String(row.index + 1),
    events: String(events),
    eventsCls: events > 0 ? 'cv events-some' : 'cv',
    final,
    lost: !final && !yes,
  };
}

/** The row's action buttons in its state: which are disabled or hidden, and their accessible names. */
export function rowButtons(row) {
  const state = typeof row.state === 'string' ? row.state : 'ready';
  const name = displayName(row);
  const going = IN_PROGRESS.has(state);
  return {
    state,
    name,
    extend: { disabled: !going, hidden: false, label: `Extend time for ${name}` },
    pause: { disabled: state !== 'active', hidden: state === 'paused', label: `Pause ${name}` },
    resume: { disabled: state !== 'paused', hidden: state !== 'paused', label: `Resume ${name}` },
    message: { disabled: !going, hidden: false, label: `Message ${name}` },
    terminate: { disabled: !going, hidden: false, label: `Terminate the attempt of ${name}` },
  };
}

export function leftCell(row, now, offset) {
  const ms = leftMs(row, now, offset);
  if (ms === null) return { text: '—', cls: 'cv left is-none' };
  let cls;
  if (row.state !== 'active') cls = 'cv left is-frozen';
  else if (ms <= CRITICAL_MS) cls = 'cv left is-critical';
  else if (ms <= LOW_MS) cls = 'cv left is-low';
  else cls = 'cv left';
  return { text: fmtClock(ms), cls };
}

// ------------------------------------------------------------------ feed, heading, table footer
export function feedEntry(row, event, serverNow) {
  const at = typeof event.at === 'number' ? event.at : serverNow;
  const kind = typeof event.kind === 'string' ? event.kind : String(event.kind ?? 'event');
  const full = detailText(event.detail);
  return {
    at,
    iso: new Date(at).toISOString(),
    time: clockTime(at),
    who: displayName(row),
    kind,
    alert: ALERT_KINDS.has(kind),
    detail: truncate(full, DETAIL_MAX),
    title: full.length > DETAIL_MAX ? truncate(full, 2000) : null, // the whole detail on hover
  };
}

/** The live view's heading from `welcome.exam`. */
export function examHeading(exam, examId) {
  const e = exam && typeof exam === 'object' ? exam : {};
  const title = typeof e.title === 'string' && e.title ? e.title : examId;
  const meta = [];
  if (typeof e.total === 'number') meta.push(plural(e.total, 'question', 'questions'));
  if (typeof e.duration_ms === 'number') meta.push(fmtDurationShort(e.duration_ms));
  if (typeof e.navigation === 'string') meta.push(`${e.navigation} navigation`);
  meta.push(`exam id ${typeof e.id === 'string' ? e.id : examId}`);
  return { title, meta: meta.join(' · ') };
}

export function shownText(shown, total) {
  return total === shown ? plural(total, 'candidate', 'candidates') : `Showing ${shown} of ${total}`;
}

export function emptyText(total) {
  return total === 0 ? 'No candidates yet. Rows appear as candidates connect.' : 'No candidate matches the search and filter.';
}
