// The clock in the bar and the time warnings (5 and 1 minutes left).
//
// Exported API: updateTimer()

import { fmtClock, plural } from '../lib/format.js';
import { S } from './app.js';
import { el, announce } from './dom.js';
import { isFinal, remainingMs, dueWarnings, WARN_AT_MS } from './state.js';
import { markTimeUp } from './answers.js';

export function updateTimer() {
  if (!S.exam || isFinal(S)) {
    el.timerBox.hidden = true;
    return;
  }
  el.timerBox.hidden = false;
  const rem = remainingMs(S, S.clock.serverNow());
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
  const due = dueWarnings(S, rem);
  if (due.length > 0) {
    const t = Math.min(...due);
    const words = t >= 60000 ? plural(Math.round(t / 60000), 'minute', 'minutes') : plural(Math.round(t / 1000), 'second', 'seconds');
    el.timerWarningText.textContent = `${words} left. Check your answers and submit before the time runs out.`;
    el.timerWarning.dataset.level = t <= WARN_AT_MS[1] ? 'critical' : 'low';
    el.timerWarning.hidden = false;
    announce(`${words} left.`, true);
  }
}
