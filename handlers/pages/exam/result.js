// The end of the attempt: why it ended, and the result when the exam shows it.
//
// Exported API: renderResult()

import { fmtNum } from '../lib/format.js';
import { S } from './app.js';
import { el } from './dom.js';

function reasonText(state) {
  if (state === 'submitted') return 'Your answers have been handed in.';
  if (state === 'expired') return 'The time ran out: the answers you had saved were handed in automatically.';
  return S.endReason ? `Your proctor ended the exam. Reason: ${S.endReason}` : 'Your proctor ended the exam.';
}

function scored(r) {
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
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = state === 'submitted' ? 'Submitted. Your result is being calculated…' : 'Your result is being calculated…';
    nodes = [p];
  } else {
    el.result.dataset.state = 'submitted';
    const p = document.createElement('p');
    p.className = 'result__plain';
    p.textContent = state === 'terminated' ? 'Your answers so far were submitted.' : 'Your answers were submitted.';
    nodes = [p];
  }
  el.result.replaceChildren(...nodes);
}
