// The exam page's clock rules: the deadline and frozen time the server sent,
// the time left, and the warnings. Pure functions over the state object of
// state.js (no DOM, no timers); `serverNow` is passed in.
//
// Exported API (also re-exported by state.js):
//   WARN_AT_MS                                       the warnings: 5 and 1 minutes left
//   setTime(S, deadline, remaining, serverTime)      a deadline, a frozen remaining time, a first clock estimate
//   applyTime(S, time) -> {moreTime, state}          state: a non-final state change to apply, else null
//   remainingMs(S, serverNow) -> ms | null
//   dueWarnings(S, rem) -> [ms]                      time warnings to give now (marked as given)

import { FINAL_STATES as FINAL } from '../lib/protocol.js';

export const WARN_AT_MS = [5 * 60000, 60000];

export function setTime(S, deadline, remaining, serverTime) {
  if (typeof deadline === 'number') S.deadline = deadline;
  else if (deadline === null) S.deadline = null;
  if (typeof remaining === 'number') S.frozenMs = remaining;
  S.clock.seed(serverTime);
}

export function applyTime(S, m) {
  setTime(S, m.deadline, m.remaining_ms, m.server_time);
  if (typeof m.ticket === 'string' && m.ticket) S.ticket = m.ticket; // the newest clock, kept for hello
  let moreTime = false;
  if (typeof m.remaining_ms === 'number') {
    for (const t of [...S.warned]) if (m.remaining_ms > t) S.warned.delete(t);
    if (S.timeUp && m.remaining_ms > 0 && m.state === 'active') {
      S.timeUp = false; // the proctor gave more time
      moreTime = true;
    }
  }
  const state = typeof m.state === 'string' && m.state !== S.state && !FINAL.has(m.state) ? m.state : null;
  return { moreTime, state };
}

export function remainingMs(S, serverNow) {
  if (!S.exam) return null;
  if (S.state === 'active' && typeof S.deadline === 'number') return S.deadline - serverNow;
  if (S.state === 'paused' && typeof S.frozenMs === 'number') return S.frozenMs;
  if (S.state === 'ready') return S.exam.duration_ms;
  return null;
}

export function dueWarnings(S, rem) {
  const due = WARN_AT_MS.filter((t) => rem <= t && !S.warned.has(t) && S.exam.duration_ms > t);
  for (const t of due) S.warned.add(t);
  return due;
}
