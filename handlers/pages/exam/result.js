// The end of the attempt: why it ended, and the result when the exam shows it.
//
// Exported API: renderResult()

import { fmtNum } from '../lib/format.js';
import { mk } from '../lib/dom.js';
import { S } from './app.js';
import { el } from './dom.js';

function reasonText(state) {
  if (state === 'submitted') return 'Your answers have been handed in.';
  if (state === 'expired') return 'The time ran out: the answers you had saved were handed in automatically.';
  return S.endReason ? `Your proctor ended the exam. Reason: ${S.endReason}` : 'Your proctor ended the exam.';
}

function scored(r) {
  const score = mk('p', 'result__score');
  const label = mk('span', 'result__label', 'Score');
  const value = mk('span', 'result__value', `${fmtNum(r.score)} / ${fmtNum(r.max_score)}`);
  value.id = 'score';
  score.append(label, value);
  const pct = mk('p', 'result__percent', `${typeof r.percent === 'number' ? fmtNum(r.percent, 1) : '?'}\u00a0%`); // never wrapped apart
  pct.id = 'percent';
  const passed = mk('p', `result__passed badge ${r.passed ? 'badge--pass' : 'badge--fail'}`, r.passed ? 'Passed' : 'Not passed');
  passed.id = 'passed';
  return [score, pct, passed];
}

export function renderResult() {
  const state = S.state;
  el.resultView.dataset.state = state;
  el.resultIcon.dataset.state = state;
  el.resultTitle.textContent = state === 'submitted' ? 'Exam submitted' : state === 'expired' ? 'Time is up' : 'Exam ended';
  el.resultReason.textContent = reasonText(state);

  const r = S.result;
  let nodes;
  if (r && typeof r.score === 'number') {
    el.result.dataset.state = 'scored';
    nodes = scored(r);
  } else if (S.exam && S.exam.show_result) {
    el.result.dataset.state = 'waiting';
    const p = mk('p', 'muted', state === 'submitted' ? 'Submitted. Your result is being calculated…' : 'Your result is being calculated…');
    nodes = [p];
  } else {
    el.result.dataset.state = 'submitted';
    const p = mk('p', 'result__plain', state === 'terminated' ? 'Your answers so far were submitted.' : 'Your answers were submitted.');
    nodes = [p];
  }
  el.result.replaceChildren(...nodes);
}
